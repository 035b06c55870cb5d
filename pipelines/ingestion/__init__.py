"""Readers of the raw files: pure functions, no Dagster, no DuckDB."""
