"""db.padded: lists sized up to a power of two or a multiple of 8, so that statements shaped
by a count are built for a dozen counts only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from slotwise.db import padded


def test_sizes_go_up_to_a_power_of_two_then_a_multiple_of_eight() -> None:
    assert padded([]) == []
    assert padded([1]) == [1]
    assert padded([1, 2]) == [1, 2]
    assert padded([1, 2, 3]) == [1, 2, 3, 3]
    assert padded(list(range(5))) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert len(padded(list(range(9)))) == 16
    assert len(padded(list(range(20)))) == 24
    assert len(padded(list(range(64)))) == 64


@given(st.lists(st.integers(), min_size=1, max_size=200))
def test_the_values_come_first_then_the_last_repeated(values: list[int]) -> None:
    result = padded(values)
    size = len(result)
    assert size & (size - 1) == 0 if size <= 8 else size % 8 == 0
    assert len(values) <= size < len(values) + 8
    assert result[: len(values)] == values
    assert set(result[len(values) :]) <= {values[-1]}
