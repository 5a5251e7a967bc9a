"""threads.in_order: results in the items' order, items drawn a bounded way ahead, errors at their turn."""

import threading
import time

import pytest

from chatpulse.threads import in_order


def test_results_come_in_the_items_order_whatever_finishes_first() -> None:
    # Earlier items sleep longer, so they finish last.
    def slow_then_fast(n: int) -> int:
        time.sleep((10 - n) * 0.002)
        return n * n

    assert list(in_order(slow_then_fast, range(10), threads=3)) == [n * n for n in range(10)]


def test_items_are_drawn_at_most_threads_ahead_of_the_result_taken() -> None:
    drawn: list[int] = []

    def items():
        for n in range(20):
            drawn.append(n)
            yield n

    results = in_order(lambda n: n, items(), threads=2)
    for taken in results:
        # Item `taken` is out; the next two have been started and one more drawn, no further.
        assert len(drawn) == min(taken + 3, 20)
    assert drawn == list(range(20))


def test_an_error_is_raised_at_its_turn_and_nothing_runs_after_it() -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def fail_at_three(n: int) -> int:
        with lock:
            ran.append(n)
        if n == 3:
            raise ValueError("three")
        time.sleep(0.01)
        return n

    results = in_order(fail_at_three, range(100), threads=1)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="three"):
        next(results)
    time.sleep(0.05)
    assert ran == [0, 1, 2, 3]  # item 4 was drawn, but not started: the call before it had failed
