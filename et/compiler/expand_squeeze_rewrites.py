"""The rewrites of issue 26's expand-squeeze and partial-channel idioms, in pipeline order.

* :mod:`et.compiler.shifted_identity` (R18): ``conv(z − c) + z`` is one conv of ``z − c``:
  FMEN's residual inside its bias-padded 3×3;
* :mod:`et.compiler.partial_channels` (R6 + G5 + R11): a conv on some channels concatenated
  with the rest passed on is one conv (FasterNet's and PlainUSR's partial conv);
* :mod:`et.compiler.crop_of_padding` (R19): the centre crop of a padded map is the map;
* :mod:`et.compiler.unmerged_joins`: names the sums and products left that no rule merges
  (attention gates included); it records only, so it comes last.
"""

from __future__ import annotations

from et.compiler.crop_of_padding import crop_of_padding
from et.compiler.partial_channels import merge_partial_channels
from et.compiler.shifted_identity import merge_shifted_identity
from et.compiler.unmerged_joins import UNMERGED_JOINS

EXPAND_SQUEEZE_PATTERNS = (
    merge_shifted_identity,
    merge_partial_channels,
    crop_of_padding,
    *UNMERGED_JOINS,
)
