"""db.padded: lists sized up to a power of two, so that statements shaped by a count are
built for a handful of counts only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from slotwise.db import padded


def test_sizes_go_up_to_the_next_power_of_two() -> None:
    assert padded([]) == []
    assert padded([1]) == [1]
    assert padded([1, 2]) == [1, 2]
    assert padded([1, 2, 3]) == [1, 2, 3, 3]
    assert padded(list(range(5))) == [0, 1, 2, 3, 4, 4, 4, 4]


@given(st.lists(st.integers(), min_size=1, max_size=200))
def test_the_values_come_first_then_the_last_repeated(values: list[int]) -> None:
    result = padded(values)
    size = len(result)
    assert size & (size - 1) == 0  # a power of two
    assert len(values) <= size < 2 * len(values)
    assert result[: len(values)] == values
    assert set(result[len(values) :]) <= {values[-1]}
