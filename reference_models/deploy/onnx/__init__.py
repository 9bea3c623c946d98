"""The ONNX backend: export (:mod:`.export`), ONNX Runtime (:mod:`.runtime`), static INT8
(:mod:`.int8`)."""
