"""The rules: one module per rule, named after it (``fuse_conv_bn.py`` holds R1 ``fuse_conv_bn``).

Each module states its theorem and preconditions, checks them, implements the transform and
registers it in the catalogue (:mod:`et.contract`); ``import et`` imports them all.
"""
