"""Ingestion asset ``raw/indicateurs_locaux``: local indicator tables (Compas, CAF, France
Travail, ARS...) of ``raw/compas/`` and ``raw/indicateurs/``, read through their mapping files
(``*.mapping.yml``, :mod:`.mapping`). A data file without a mapping is not guessed: it is logged
(statut ``sans_mapping``) and listed in ``raw.rejets``. A mapping that does not match the
indicator dictionary, or a file that cannot be read at all, fails the asset naming the file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipelines.lib.assets import Ingested, ReadContext, ingestion_asset
from pipelines.lib.files import TABLE_SUFFIXES
from pipelines.lib.raw_schemas import REJECT_COLUMNS, file_log, unread_logs
from pipelines.lib.tables import IngestionError
from pipelines.settings import DBT_PROJECT_DIR
from pipelines.sources.indicateurs.mapping import (
    check_mapping,
    find_mappings,
    load_mapping,
    unmapped_files,
)
from pipelines.sources.indicateurs.reader import SOURCE, read_local_table

PROVIDER_FOLDERS = ("compas", "indicateurs")
DICTIONARY = DBT_PROJECT_DIR / "seeds" / "indicateurs" / "ref_indicateurs.csv"


def dictionary_units(path: Path = DICTIONARY) -> dict[str, str]:
    """{indicateur: unite} of the indicator dictionary seed."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["indicateur"]: row["unite"] for row in csv.DictReader(fh)}


def _reject(path: Path, raw: str | None, motif: str) -> pd.DataFrame:
    return pd.DataFrame([[SOURCE, str(path), None, None, None, raw, motif]], columns=REJECT_COLUMNS)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REJECT_COLUMNS)


def read_local_indicators(
    raw_dir: Path, log: Callable[[str], None] | None = None
) -> tuple[pd.DataFrame | None, pd.DataFrame, list]:
    """(values, rejects, ingestion_log records) of every provider folder. Raises IngestionError."""
    units = dictionary_units()
    frames, rejects, logs = [], [], []
    for name in PROVIDER_FOLDERS:
        folder = raw_dir / name
        logs.extend(unread_logs(SOURCE, folder, TABLE_SUFFIXES | {".yml", ".yaml"}))
        mappings = [load_mapping(p) for p in find_mappings(folder)]
        for mapping in mappings:
            problems = check_mapping(mapping, units)
            if problems:
                raise IngestionError(f"{mapping.path}: {problems[0]}")
            files = mapping.files()
            if not files:
                rejects.append(
                    _reject(
                        mapping.path,
                        ", ".join(mapping.fichiers),
                        "aucun fichier de données ne correspond au mapping (clé fichiers)",
                    )
                )
            for path in files:
                table = read_local_table(path, mapping)
                if log:
                    log(
                        f"{path.name} ({mapping.path.name}): {table.report['lignes_chargees']} "
                        f"territoires, {table.report['valeurs']} valeurs "
                        f"({table.report['valeurs_secretes']} secrètes), "
                        f"{len(table.rejects)} rejets"
                    )
                frames.append(table.values)
                rejects.append(table.rejects)
                extra = table.report["colonnes_hors_mapping"]
                logs.append(
                    file_log(
                        SOURCE,
                        path,
                        table.report["lignes_lues"],
                        table.report["lignes_chargees"],
                        table.report["lignes_rejetees"],
                        message=(
                            f"mapping {mapping.path.name}"
                            + (
                                f" ; colonnes hors mapping gardées sans indicateur : {extra}"
                                if extra
                                else ""
                            )
                        ),
                    )
                )
        for path in unmapped_files(folder, mappings):
            logs.append(
                file_log(
                    SOURCE,
                    path,
                    0,
                    0,
                    0,
                    statut="sans_mapping",
                    message="aucun fichier *.mapping.yml ne décrit ce fichier : non chargé",
                )
            )
            rejects.append(
                _reject(
                    path,
                    None,
                    "fichier sans mapping : écrire un <nom>.mapping.yml (voir docs/indicateurs.md)",
                )
            )
    frame = pd.concat(frames, ignore_index=True) if frames else None
    return frame, _concat(rejects), logs


def read_indicateurs_locaux(ctx: ReadContext) -> Ingested:
    frame, rejects, logs = read_local_indicators(ctx.raw, log=ctx.log.info)
    return Ingested(frame, rejects, logs)


indicateurs_locaux = ingestion_asset(
    table="indicateurs_locaux",
    source=SOURCE,
    read=read_indicateurs_locaux,
    description=(
        "Tableaux d'indicateurs locaux (Compas, CAF, France Travail, ARS...) de data/raw/compas/ "
        "et data/raw/indicateurs/, lus par leur fichier de correspondance *.mapping.yml, en "
        "format long."
    ),
)
