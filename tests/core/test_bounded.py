"""Whole numbers typed into forms that pages read by hand: the same 64-bit rule as every declared input."""

from __future__ import annotations

import pytest

from shgov.core.bounded import whole_number
from shgov.core.errors import InvalidError
from shgov.core.numbers import INT64_MAX, INT64_MIN


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("7", 7),
        (" -3 ", -3),
        (str(INT64_MAX), INT64_MAX),
        (str(INT64_MIN), INT64_MIN),
    ],
)
def test_whole_numbers_are_read(raw: str | None, number: int | None) -> None:
    assert whole_number(raw, "n") == number


@pytest.mark.parametrize(
    "raw", ["abc", "1.5", "1e3", "²", "١٢", "--1", "-", str(INT64_MAX + 1), str(INT64_MIN - 1), "9" * 25, "1" * 5000]
)
def test_anything_else_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidError) as refused:
        whole_number(raw, "rule_id")
    assert refused.value.field == "rule_id"
