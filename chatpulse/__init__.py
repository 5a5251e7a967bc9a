"""ChatPulse core: pure functions over DataFrames (no Dagster imports), reused by assets and the CLI."""

import os

# mimalloc, Arrow's default memory pool, reads its options when pyarrow loads, so they are set before any
# chatpulse module imports it: pages freed go back to the system at once instead of after a delay, and
# arenas are committed as used, so one step's peak does not carry the steps' before it. On a 1M-request
# day, peak RSS 1,150 -> 990-1,010 MB at the same wall time (README, Issue 14). A value already set wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
