"""Ingestion asset ``raw/insee_valeurs``: the INSEE QPV bases of ``data/raw/insee/``, long form."""

from __future__ import annotations

from pipelines.lib.assets import Ingested, ReadContext, concat, ingestion_asset
from pipelines.lib.raw_schemas import file_log
from pipelines.sources.insee.reader import list_insee_files, read_insee_file

SOURCE = "insee"


def read_insee(ctx: ReadContext) -> Ingested:
    frames, rejects, logs = [], [], []
    for path in list_insee_files(ctx.raw / "insee"):
        result = read_insee_file(path)
        ctx.log.info(
            f"{path.name}: {result.report['lignes_chargees']} lignes, "
            f"{result.report['valeurs']} valeurs ({result.report['valeurs_secretes']} secrètes), "
            f"{len(result.rejects)} rejets"
        )
        frames.append(result.values)
        rejects.append(result.rejects)
        logs.append(
            file_log(
                SOURCE,
                path,
                result.report["lignes_lues"],
                result.report["lignes_chargees"],
                result.report["lignes_rejetees"],
            )
        )
    return Ingested(concat(frames), concat(rejects), logs)


insee_valeurs = ingestion_asset(
    table="insee_valeurs",
    source=SOURCE,
    read=read_insee,
    description="Bases INSEE QPV (data/raw/insee/*.csv|xlsx) en format long.",
)
