"""Ingestion assets of the indicator side beyond the INSEE bases.

* ``raw/indicateurs_locaux``: local indicator tables (Compas, CAF, France Travail, ARS...) of
  ``raw/compas/`` and ``raw/indicateurs/``, read through their mapping files
  (``*.mapping.yml``, see pipelines/ingestion/compas.py). A data file without a mapping is not
  guessed: it is logged (statut ``sans_mapping``) and listed in ``raw.rejets``.
* ``raw/valeurs_reference`` and ``raw/passage_qpv_2015_2024``: the files of
  ``raw/referentiels/`` recognised by their header (pipelines/ingestion/references.py).

Each asset writes its table (full schema even when its folder is absent), its rejects and one
``raw.ingestion_log`` record per file, and fails with a one-line reason naming the file when a
file or a mapping cannot be read at all.
"""

import csv
from pathlib import Path

import dagster as dg
import pandas as pd

from pipelines.defs.resources import ProjectFolders, Warehouse
from pipelines.lib.raw_schemas import (
    RAW_INDICATOR_KEY,
    file_log,
    register_raw_table,
    replace_source_rows,
    replace_table,
)
from pipelines.lib.tables import REJECT_COLUMNS, IngestionError
from pipelines.settings import DBT_PROJECT_DIR
from pipelines.sources.indicateurs.reader import (
    SOURCE,
    check_mapping,
    find_mappings,
    load_mapping,
    read_local_table,
    unmapped_files,
)
from pipelines.sources.referentiels.reader import (
    SOURCE_PASSAGE,
    SOURCE_VALEURS,
    list_reference_files,
    read_reference_file,
)

GROUP = "ingestion"
PROVIDER_FOLDERS = ("compas", "indicateurs")
DICTIONARY = DBT_PROJECT_DIR / "seeds" / "indicateurs" / "ref_indicateurs.csv"

RAW_INDICATEURS_LOCAUX = [
    *RAW_INDICATOR_KEY,
    ("indicateur", "VARCHAR"),
    ("unite", "VARCHAR"),
    ("facteur", "DOUBLE"),
    ("valeur", "DOUBLE"),
    ("valeur_fichier", "DOUBLE"),
    ("secret", "BOOLEAN"),
    ("marqueur_secret", "VARCHAR"),
    ("mapping", "VARCHAR"),
]
RAW_VALEURS_REFERENCE = [
    ("territoire_type", "VARCHAR"),
    ("territoire_code", "VARCHAR"),
    ("libelle_territoire", "VARCHAR"),
    ("millesime", "INTEGER"),
    ("indicateur", "VARCHAR"),
    ("valeur", "DOUBLE"),
    ("source", "VARCHAR"),
    ("note", "VARCHAR"),
    ("fichier", "VARCHAR"),
    ("ligne", "BIGINT"),
]
RAW_PASSAGE = [
    ("code_qpv_2015", "VARCHAR"),
    ("libelle_qpv_2015", "VARCHAR"),
    ("code_qpv_2024", "VARCHAR"),
    ("libelle_qpv_2024", "VARCHAR"),
    ("statut", "VARCHAR"),
    ("rang", "INTEGER"),
    ("fichier", "VARCHAR"),
    ("ligne", "BIGINT"),
]
register_raw_table("indicateurs_locaux", RAW_INDICATEURS_LOCAUX)
register_raw_table("valeurs_reference", RAW_VALEURS_REFERENCE)
register_raw_table("passage_qpv_2015_2024", RAW_PASSAGE)


def dictionary_units(path: Path = DICTIONARY) -> dict[str, str]:
    """{indicateur: unite} of the indicator dictionary seed."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["indicateur"]: row["unite"] for row in csv.DictReader(fh)}


def _reject(path: Path, raw: str | None, motif: str) -> pd.DataFrame:
    return pd.DataFrame([[SOURCE, str(path), None, None, None, raw, motif]], columns=REJECT_COLUMNS)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REJECT_COLUMNS)


def read_local_indicators(
    raw_dir: Path, log=None
) -> tuple[pd.DataFrame | None, pd.DataFrame, list]:
    """(values, rejects, ingestion_log records) of every provider folder. Raises IngestionError."""
    units = dictionary_units()
    frames, rejects, logs = [], [], []
    for name in PROVIDER_FOLDERS:
        folder = raw_dir / name
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


def read_references(raw_dir: Path) -> dict[str, tuple[pd.DataFrame | None, pd.DataFrame, list]]:
    """{kind: (rows, rejects, logs)} for the files of raw/referentiels/."""
    acc = {SOURCE_VALEURS: ([], [], []), SOURCE_PASSAGE: ([], [], [])}
    for path in list_reference_files(raw_dir / "referentiels"):
        result = read_reference_file(path)
        if result is None:
            continue  # a file for another reader (entetes_alias.csv...)
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
    return {
        kind: (
            pd.concat(frames, ignore_index=True) if frames else None,
            _concat(rejects),
            logs,
        )
        for kind, (frames, rejects, logs) in acc.items()
    }


def _write(con, source: str, table: str, frame, rejects, logs) -> int:
    rows = replace_table(con, table, frame)
    replace_source_rows(con, "rejets", source, rejects)
    replace_source_rows(con, "ingestion_log", source, pd.DataFrame(logs) if logs else None)
    return rows


def _metadata(table: str, rows: int, rejects: pd.DataFrame, logs: list) -> dict:
    return {
        "table": dg.MetadataValue.text(f"raw.{table}"),
        "lignes_table": dg.MetadataValue.int(rows),
        "fichiers": dg.MetadataValue.int(len(logs)),
        "lignes_lues": dg.MetadataValue.int(sum(int(x["lignes_lues"]) for x in logs)),
        "lignes_chargees": dg.MetadataValue.int(sum(int(x["lignes_chargees"]) for x in logs)),
        "lignes_rejetees": dg.MetadataValue.int(sum(int(x["lignes_rejetees"]) for x in logs)),
        "rejets_total": dg.MetadataValue.int(len(rejects)),
        "fichiers_lus": dg.MetadataValue.json(
            [
                {k: x[k] for k in ("fichier", "empreinte_sha256", "statut", "lignes_chargees")}
                for x in logs
            ]
        ),
    }


@dg.asset(
    key=["raw", "indicateurs_locaux"],
    group_name=GROUP,
    kinds={"python", "duckdb"},
    description=(
        "Tableaux d'indicateurs locaux (Compas, CAF, France Travail, ARS...) de data/raw/compas/ "
        "et data/raw/indicateurs/, lus par leur fichier de correspondance *.mapping.yml, en "
        "format long."
    ),
)
def indicateurs_locaux(
    context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
) -> dg.MaterializeResult:
    try:
        frame, rejects, logs = read_local_indicators(folders.raw, log=context.log.info)
    except IngestionError as err:
        raise dg.Failure(description=str(err)) from None
    with warehouse.connect() as con:
        rows = _write(con, SOURCE, "indicateurs_locaux", frame, rejects, logs)
    return dg.MaterializeResult(metadata=_metadata("indicateurs_locaux", rows, rejects, logs))


def _reference_asset(kind: str, table: str, description: str):
    @dg.asset(
        key=["raw", table],
        group_name=GROUP,
        kinds={"python", "duckdb"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        try:
            frame, rejects, logs = read_references(folders.raw)[kind]
        except IngestionError as err:
            raise dg.Failure(description=str(err)) from None
        with warehouse.connect() as con:
            rows = _write(con, kind, table, frame, rejects, logs)
        context.log.info(f"raw.{table}: {len(logs)} fichier(s), {rows} lignes")
        return dg.MaterializeResult(metadata=_metadata(table, rows, rejects, logs))

    return _asset


valeurs_reference = _reference_asset(
    "valeurs_reference",
    "valeurs_reference",
    "Valeurs de référence (France, EPCI, communes...) des fichiers de data/raw/referentiels/ "
    "ayant les colonnes territoire_code, indicateur, valeur.",
)
passage_qpv_2015_2024 = _reference_asset(
    "passage_qpv",
    "passage_qpv_2015_2024",
    "Table de passage officielle QPV 2015 <-> 2024 (QP2024;Label_QP2024;Statut;QP2015_1;...) "
    "de data/raw/referentiels/, une ligne par couple de codes.",
)

indicateurs_assets = [indicateurs_locaux, valeurs_reference, passage_qpv_2015_2024]
