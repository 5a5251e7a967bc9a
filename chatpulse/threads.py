"""Work done in threads beside the caller's, in the order it was asked for.

For work that runs without the GIL (Arrow's readers and compute functions, RE2, LZ4, ISA-L, ADBC's ingest),
so that the caller's thread makes the next item meanwhile.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def in_order(function: Callable[[Item], Result], items: Iterable[Item], threads: int) -> Iterator[Result]:
    """function(item) for each of `items`, run in `threads` threads, yielded in the items' order.

    Items are drawn in the caller's thread while earlier calls run. A call starts only once the result of the
    call `threads` items before it has been taken, so at most `threads` calls run at once and one more item is
    held (memory is bounded whatever the number of items), and no call starts after an earlier one failed.
    With one thread the calls run one at a time, in order (one connection's statements). Raises what `function`
    or `items` raised, at that item's turn; on leaving early (an error, the caller stopping) it waits for the
    calls running.
    """
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[Future[Result]] = deque()
        for item in items:
            if len(pending) == threads:
                yield pending.popleft().result()
            pending.append(pool.submit(function, item))
        while pending:
            yield pending.popleft().result()
