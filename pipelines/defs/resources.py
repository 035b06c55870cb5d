"""Resources: the warehouse (DuckDB, one env var shared with dbt) and the project's folders."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.duckdb_utils import load_spatial
from pipelines.settings import ENV_MARTS_DIR, ENV_RAW_DIR, ENV_WAREHOUSE


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, with the spatial extension loaded on every connection."""

    @contextmanager
    def connect(self):
        with self.get_connection() as con:
            load_spatial(con)
            yield con


class ProjectFolders(dg.ConfigurableResource):
    """Where raw files are read and marts exported."""

    raw_dir: str
    marts_dir: str

    @property
    def raw(self) -> Path:
        return Path(self.raw_dir)

    @property
    def marts(self) -> Path:
        return Path(self.marts_dir)


def default_resources() -> dict:
    """Resources read from the environment at launch time (dg.EnvVar), not at import time."""
    from pipelines.defs.dbt import dbt_resource

    return {
        "warehouse": Warehouse(database=dg.EnvVar(ENV_WAREHOUSE)),
        "folders": ProjectFolders(
            raw_dir=dg.EnvVar(ENV_RAW_DIR), marts_dir=dg.EnvVar(ENV_MARTS_DIR)
        ),
        "dbt": dbt_resource(),
    }
