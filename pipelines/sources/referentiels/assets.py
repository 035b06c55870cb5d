"""Ingestion assets of ``raw/referentiels/``: ``raw/valeurs_reference`` (France, EPCI,
communes... values to compare the QPV with) and ``raw/passage_qpv_2015_2024`` (the official
2015 <-> 2024 correspondence), files recognised by their header (:mod:`.reader`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipelines.lib.assets import Ingested, ReadContext, ingestion_asset
from pipelines.lib.files import TABLE_SUFFIXES
from pipelines.lib.raw_schemas import REJECT_COLUMNS, file_log, unread_logs
from pipelines.sources.referentiels.reader import (
    SOURCE_PASSAGE,
    SOURCE_VALEURS,
    check_unique_values,
    list_reference_files,
    read_reference_file,
)

#: The file of the folder read by another asset (the programmations' header aliases).
OTHER_READERS = "entetes_alias.csv"


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REJECT_COLUMNS)


def read_references(raw_dir: Path) -> dict[str, tuple[pd.DataFrame | None, pd.DataFrame, list]]:
    """{kind: (rows, rejects, logs)} for the files of raw/referentiels/."""
    acc = {SOURCE_VALEURS: ([], [], []), SOURCE_PASSAGE: ([], [], [])}
    folder = raw_dir / "referentiels"
    acc[SOURCE_VALEURS][2].extend(unread_logs(SOURCE_VALEURS, folder, TABLE_SUFFIXES))
    for path in list_reference_files(folder):
        result = read_reference_file(path)
        if result is None:
            if path.name.lower() != OTHER_READERS:
                acc[SOURCE_VALEURS][2].append(
                    file_log(
                        SOURCE_VALEURS,
                        path,
                        0,
                        0,
                        0,
                        statut="non_lu",
                        message="colonnes non reconnues : ni valeurs de référence "
                        "(territoire_code, indicateur, valeur), ni table de passage QPV 2015 "
                        "<-> 2024",
                    )
                )
            continue
        frames, rejects, logs = acc[result.kind]
        frames.append(result.rows)
        rejects.append(result.rejects)
        logs.append(
            file_log(
                result.kind,
                path,
                result.report["lignes_lues"],
                result.report["lignes_chargees"],
                result.report["lignes_rejetees"],
            )
        )
    check_unique_values(
        pd.concat(acc[SOURCE_VALEURS][0], ignore_index=True) if acc[SOURCE_VALEURS][0] else None
    )
    return {
        kind: (
            pd.concat(frames, ignore_index=True) if frames else None,
            _concat(rejects),
            logs,
        )
        for kind, (frames, rejects, logs) in acc.items()
    }


def _read(kind: str) -> Callable[[ReadContext], Ingested]:
    def read(ctx: ReadContext) -> Ingested:
        frame, rejects, logs = read_references(ctx.raw)[kind]
        ctx.log.info(f"{kind}: {len(logs)} fichier(s), {0 if frame is None else len(frame)} lignes")
        return Ingested(frame, rejects, logs)

    return read


valeurs_reference = ingestion_asset(
    table="valeurs_reference",
    source=SOURCE_VALEURS,
    read=_read(SOURCE_VALEURS),
    description="Valeurs de référence (France, EPCI, communes...) des fichiers de "
    "data/raw/referentiels/ ayant les colonnes territoire_code, indicateur, valeur.",
)
passage_qpv_2015_2024 = ingestion_asset(
    table="passage_qpv_2015_2024",
    source=SOURCE_PASSAGE,
    read=_read(SOURCE_PASSAGE),
    description="Table de passage officielle QPV 2015 <-> 2024 (QP2024;Label_QP2024;Statut;"
    "QP2015_1;...) de data/raw/referentiels/, une ligne par couple de codes.",
)
