"""Daily partitioned assets: thin wrappers that read, call a `chatpulse` function, write."""
