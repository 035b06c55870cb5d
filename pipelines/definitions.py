"""The code location's single entry point: ``dagster dev -m pipelines.definitions``.

The asset graph follows the data: sources (raw files -> ``raw`` tables) -> dbt (référentiels,
staging, intermediate, marts) -> exports and report -> ``publication/entrepot``, which swaps the
build in -> ``publication/postgis`` (only when ``OBSERVATOIRE_POSTGRES_URL`` is set), which copies
the published marts to the team's PostGIS. ``observatoire build`` runs the same job with its own
folders and progress logger.
"""

from __future__ import annotations

import dagster as dg

from pipelines.publication.postgis import settings_from_env
from pipelines.report.assets import rapports_annuels
from pipelines.settings import ENV_MARTS_DIR, ENV_RAW_DIR, ENV_WAREHOUSE
from pipelines.sources import source_assets
from pipelines.warehouse.automation import (
    BUILD_JOB,
    build_entrepot,
    fichiers_bruts,
    reconstruction_annuelle,
    suivi_par_annee,
)
from pipelines.warehouse.dbt import build_dbt_assets, dbt_resource
from pipelines.warehouse.exports import build_export_asset
from pipelines.warehouse.manifest import mart_names
from pipelines.warehouse.postgis import build_postgis_asset
from pipelines.warehouse.publication import build_publication_asset
from pipelines.warehouse.resources import ProjectFolders, Warehouse

__all__ = ["BUILD_JOB", "build_definitions", "defs"]


def default_resources(folders: ProjectFolders | None = None) -> dict:
    """Resources read from the environment at launch time (dg.EnvVar), or the CLI's folders."""
    if folders is None:
        folders = ProjectFolders(
            raw_dir=dg.EnvVar(ENV_RAW_DIR),
            warehouse=dg.EnvVar(ENV_WAREHOUSE),
            marts_dir=dg.EnvVar(ENV_MARTS_DIR),
        )
    return {"folders": folders, "warehouse": Warehouse(folders=folders), "dbt": dbt_resource()}


def build_definitions(
    folders: ProjectFolders | None = None, loggers: dict | None = None
) -> dg.Definitions:
    """Definitions of the project; the CLI passes its own folders and progress logger."""
    assets = [
        *source_assets,
        build_dbt_assets(),
        build_export_asset(),
        rapports_annuels,
    ]
    upstream = [key for asset in assets for key in asset.keys]
    assets.append(build_publication_asset(upstream, mart_names()))
    if settings_from_env() is not None:  # OBSERVATOIRE_POSTGRES_URL: the marts to PostGIS too
        assets.append(build_postgis_asset())
    return dg.Definitions(
        assets=assets,
        jobs=[build_entrepot, suivi_par_annee],
        schedules=[reconstruction_annuelle],
        sensors=[fichiers_bruts],
        resources=default_resources(folders),
        executor=dg.in_process_executor,
        loggers=loggers,
    )


defs = build_definitions()
