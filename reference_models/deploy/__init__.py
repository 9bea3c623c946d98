"""Deployment: one package per backend (:mod:`.onnx`, :mod:`.litert`), the INT8 layout and its
decision (:mod:`.int8`), what every export promises (:mod:`.export_contract`), compiled networks
(:mod:`.compiled_network`) and the channel alignment choice per runtime (:mod:`.alignment`)."""
