"""Deployment: ONNX export and INT8 quantization, LiteRT, and the channel alignment choice."""
