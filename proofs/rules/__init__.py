"""One sympy derivation per rule, named after the rule it proves (``fuse_conv_bn.py`` proves R1)."""
