"""ChatPulse core: pure functions over DataFrames (no Dagster imports), reused by assets and the CLI."""
