"""Ingestion asset ``raw/insee_valeurs``: the INSEE QPV bases of ``data/raw/insee/``, long form."""

from __future__ import annotations

from pipelines.lib.assets import Ingested, ReadContext, concat, ingestion_asset
from pipelines.lib.files import TABLE_SUFFIXES
from pipelines.lib.raw_schemas import file_log, unread_logs
from pipelines.lib.tables import IngestionError
from pipelines.sources.insee.reader import (
    list_insee_files,
    millesime_from_name,
    read_insee_file,
    source_of,
)

SOURCE = "insee"


def read_insee(ctx: ReadContext) -> Ingested:
    frames, rejects = [], []
    logs = unread_logs(SOURCE, ctx.raw / "insee", TABLE_SUFFIXES)
    files = list_insee_files(ctx.raw / "insee")
    check_one_file_per_base(files)
    for path in files:
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


def check_one_file_per_base(files: list) -> None:
    """Two files of one base and millésime (``IPRO_2022.csv`` and ``IPRO_2022_v2.csv``) would
    both publish every value: refused, naming both (keep one in the folder)."""
    seen: dict[tuple[str, int | None], object] = {}
    for path in files:
        key = (source_of(path), millesime_from_name(path.name))
        if key in seen:
            raise IngestionError(
                f"{path}: même base {key[0]} et même millésime {key[1]} que {seen[key]} : "
                "garder un seul fichier par base et par millésime (déplacer l'autre hors du "
                "dossier brut)"
            )
        seen[key] = path


insee_valeurs = ingestion_asset(
    table="insee_valeurs",
    source=SOURCE,
    read=read_insee,
    description="Bases INSEE QPV (data/raw/insee/*.csv|xlsx) en format long.",
)
