"""The code location's single entry point: ``dagster dev -m pipelines.definitions``."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.automation import (
    fichiers_bruts,
    publication_annees,
    publication_atomique,
    reconstruction_annuelle,
    suivi_par_annee,
)
from pipelines.defs.dbt import build_dbt_assets
from pipelines.defs.exports import build_export_asset
from pipelines.defs.indicateurs_assets import indicateurs_assets
from pipelines.defs.ingestion import ingestion_assets
from pipelines.defs.rapport import rapports_annuels
from pipelines.defs.resources import default_resources
from pipelines.sources.lieux.assets import geo_assets

BUILD_JOB = "build_entrepot"


def build_definitions(loggers: dict | None = None) -> dg.Definitions:
    """Definitions of the project; the CLI passes its own progress logger."""
    build_job = dg.define_asset_job(
        BUILD_JOB,
        selection=dg.AssetSelection.all(),
        description="Construction complète: ingestion, dbt (seeds, modèles, tests), exports.",
    )
    return dg.Definitions(
        assets=[
            *ingestion_assets,
            *indicateurs_assets,
            *geo_assets,
            build_dbt_assets(),
            build_export_asset(),
            rapports_annuels,
        ],
        jobs=[build_job, publication_atomique, publication_annees, suivi_par_annee],
        schedules=[reconstruction_annuelle],
        sensors=[fichiers_bruts],
        resources=default_resources(),
        executor=dg.in_process_executor,
        loggers=loggers,
    )


defs = build_definitions()
