"""The reference architectures, one model family per module, with the authors' parameter names."""
