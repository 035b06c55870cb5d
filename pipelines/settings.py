"""Paths of the project, resolved at call time (never at import time).

One setting, the environment variable ``OBSERVATOIRE_WAREHOUSE``, gives the DuckDB file to both
the dbt profile (``dbt_project/profiles.yml``) and the Dagster resources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
REFERENTIELS_DIR = DBT_PROJECT_DIR / "seeds" / "referentiels"
#: The territory folders of the three worked examples (copied into raw/territoires by the demo).
EXAMPLES_TERRITORIES_DIR = PROJECT_ROOT / "exemples" / "territoires"
DEMO_DIR = PROJECT_ROOT / "data" / "demo"

ENV_WAREHOUSE = "OBSERVATOIRE_WAREHOUSE"
ENV_RAW_DIR = "OBSERVATOIRE_RAW_DIR"
ENV_MARTS_DIR = "OBSERVATOIRE_MARTS_DIR"

DEFAULT_RAW_DIR = PROJECT_ROOT / "data" / "raw"
DEFAULT_WAREHOUSE = PROJECT_ROOT / "data" / "warehouse.duckdb"
DEFAULT_MARTS_DIR = PROJECT_ROOT / "data" / "marts"
#: The Dagster instance (runs, materializations, check results) when DAGSTER_HOME is not set.
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"


@dataclass(frozen=True)
class Paths:
    """Where a build reads raw files, writes the warehouse and exports the marts."""

    raw_dir: Path
    warehouse: Path
    marts_dir: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            raw_dir=Path(os.environ.get(ENV_RAW_DIR, DEFAULT_RAW_DIR)),
            warehouse=Path(os.environ.get(ENV_WAREHOUSE, DEFAULT_WAREHOUSE)),
            marts_dir=Path(os.environ.get(ENV_MARTS_DIR, DEFAULT_MARTS_DIR)),
        )

    def resolved(self) -> Paths:
        """Absolute paths. The warehouse and the marts folder keep their own name: once
        published they are links into the current publication
        (:mod:`pipelines.warehouse.publication`), and a build must replace the link, not write
        beside its target."""
        return Paths(
            self.raw_dir.resolve(),
            self.warehouse.parent.resolve() / self.warehouse.name,
            self.marts_dir.parent.resolve() / self.marts_dir.name,
        )

    @property
    def staging_warehouse(self) -> Path:
        """The warehouse a build writes before publication (write-audit-publish).

        It keeps the published file's name, in a folder beside it: DuckDB names the catalog
        after the file and dbt's views refer to it, so the name must not change on publication.
        """
        return self.staging_dir / self.warehouse.name

    @property
    def staging_dir(self) -> Path:
        return self.warehouse.with_name(f".{self.warehouse.name}.construction")

    @property
    def staging_marts(self) -> Path:
        return self.marts_dir.with_name(f".{self.marts_dir.name}.construction")
