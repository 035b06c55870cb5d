"""One package per source: its reader and its Dagster ingestion assets."""
