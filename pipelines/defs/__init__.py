"""Dagster definitions, one module per system: ingestion, dbt, exports."""
