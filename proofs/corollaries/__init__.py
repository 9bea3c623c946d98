"""Whole-model corollaries: the ETDS, ABPN and ECBSR conversions as compositions of the rules."""
