"""Tests that kill the mutants of ``et/domain.py`` the rules' tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the rules use declared domains only
through ``non_negative``, so what makes a domain invalid (a NaN bound at either end, a reversed
interval; a single point is a valid domain), how it prints, and what ``as_domain`` returns were
never pinned.
"""

from __future__ import annotations

import math

import pytest

from et.domain import IMAGE_8BIT, IMAGE_UNIT, REAL, InputDomain, as_domain


@pytest.mark.parametrize(
    ("low", "high"), [(math.nan, 1.0), (0.0, math.nan), (math.nan, math.nan), (1.0, 0.0)]
)
def test_nan_bounds_and_reversed_intervals_are_refused(low: float, high: float) -> None:
    with pytest.raises(ValueError) as raised:
        InputDomain(low, high)
    assert str(raised.value) == f"invalid input domain [{low}, {high}]"


def test_a_single_point_is_a_domain() -> None:
    point = InputDomain(0.5, 0.5)
    assert (point.low, point.high) == (0.5, 0.5)


def test_domains_print_as_closed_intervals() -> None:
    assert str(IMAGE_UNIT) == "[0, 1]"
    assert str(IMAGE_8BIT) == "[0, 255]"
    assert str(REAL) == "[-inf, inf]"
    assert str(InputDomain(-0.25, 1e6)) == "[-0.25, 1e+06]"


def test_as_domain_keeps_a_domain_and_converts_a_pair_to_floats() -> None:
    assert as_domain(IMAGE_UNIT) is IMAGE_UNIT
    domain = as_domain((0, 2))
    assert domain == InputDomain(0.0, 2.0)
    assert type(domain.low) is float and type(domain.high) is float
    with pytest.raises(ValueError):
        as_domain((2, 0))
