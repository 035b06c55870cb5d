"""Export asset: every mart of the ``marts`` schema to ``MARTS_DIR/<table>.parquet``, and as
Excel-FR CSV and workbooks (``csv/``, ``tableurs/``).

Counts of people are masked under the statistical-secrecy threshold in what is published
(``pipelines/publication/secret.py``); the warehouse keeps the true values.

Tables with a GEOMETRY column are written as GeoParquet (DuckDB spatial writes the ``geo``
metadata with the CRS) by DuckDB itself. The map marts also go to the QGIS kit,
``qgis/observatoire.gpkg`` and ``qgis/observatoire.qgz`` (:mod:`pipelines.publication.qgis`).

``indicateurs_resultat`` (the result indicators of the annual meeting of each contrat de ville,
seed 004 annex 8) is also written as one CSV per territory and year,
``indicateurs_resultat/<territoire>_<annee>.csv``, the file a territory sends for the yearly
regional synthesis.
"""

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from geo.export import export_dim_qpv
from pipelines.duckdb_utils import tables_in
from pipelines.publication.cells import neutralise_formula
from pipelines.publication.qgis import QgisExport, export_qgis
from pipelines.publication.scdl import ScdlExport, export_scdl
from pipelines.publication.secret import load_specs, mask_counts
from pipelines.publication.tableurs import SpreadsheetExport, export_spreadsheets, published
from pipelines.warehouse.manifest import mart_names
from pipelines.warehouse.resources import ProjectFolders, Warehouse


def quote_identifier(name: str) -> str:
    """A SQL identifier in double quotes (``"`` doubled): table names never reach SQL bare."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class MartsExport:
    """What :func:`export_marts` wrote: rows per mart, masked cells, geo and SCDL files."""

    folder: Path
    written: dict[str, int] = field(default_factory=dict)
    masked_cells: dict[str, int] = field(default_factory=dict)
    geo_files: dict = field(default_factory=dict)
    scdl: ScdlExport | None = None
    spreadsheets: SpreadsheetExport | None = None
    result_files: list[Path] = field(default_factory=list)
    qgis: QgisExport | None = None


def export_marts(con: duckdb.DuckDBPyConnection, out: Path, log=None) -> MartsExport:
    """Every table of the ``marts`` schema to ``out/<table>.parquet`` (secret statistique
    applied), ``dim_qpv`` also as GeoParquet/GeoPackage/GeoJSON, ``subventions_scdl`` as SCDL,
    and the Excel-FR CSV and workbooks (:mod:`pipelines.publication.tableurs`).

    Paths reach DuckDB as bound parameters and table names as quoted identifiers: a marts folder
    such as ``/srv/l'observation/marts`` is written like any other."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = MartsExport(out)
    tables = sorted(tables_in(con, "marts"))
    specs = load_specs()
    with ExitStack() as stack:
        # each mart as published (statistical secrecy applied, pipelines/publication) once,
        # for the Parquet file, the CSV and the workbooks
        sources = {t: stack.enter_context(published(con, t, specs)) for t in tables}
        result = _export_published(con, out, tables, specs, sources, result, log)
    return result


def _export_published(con, out, tables, specs, sources, result: MartsExport, log):
    for table in tables:
        target = out / f"{table}.parquet"
        tmp = target.with_suffix(".parquet.tmp")
        source = sources[table]
        if table in specs:
            result.masked_cells[table] = con.execute(
                f"select count(*) from {source} where secret_statistique"
            ).fetchone()[0]
        con.execute(
            f"COPY (SELECT * FROM {source}) TO ? (FORMAT parquet, COMPRESSION zstd)", [str(tmp)]
        )
        tmp.replace(target)
        rows = con.execute(f"select count(*) from marts.{quote_identifier(table)}").fetchone()[0]
        result.written[table] = rows
        if log:
            log.info(f"{target}: {rows} lignes")
    if "dim_qpv" in tables:
        # GeoParquet with its CRS, GeoPackage and GeoJSON that open in QGIS as they are
        result.geo_files = export_dim_qpv(con, out)
        if log:
            log.info(f"dim_qpv: {sorted(str(p) for p in result.geo_files.values())}")
    if "dim_qpv" in tables:
        # the QGIS kit: qgis/observatoire.gpkg (styled layers) and qgis/observatoire.qgz
        result.qgis = export_qgis(con, out, sources=sources, log=log)
    if "subventions_scdl" in tables:
        result.scdl = export_scdl(con, out)
        if log:
            log.info(f"SCDL subventions: {len(result.scdl.files)} fichier(s) dans {out}/scdl")
            for name, fields in result.scdl.incomplete.items():
                log.warning(f"SCDL {name}: champs à compléter {fields}")
        result.written["scdl_fichiers"] = len(result.scdl.files)
    # Excel-FR: csv/<mart>.csv (;, BOM, decimal comma) and tableurs/<territoire>_<annee>.xlsx
    # (the latest programmation year of each territory, up to WORKBOOKS_MAX territories)
    result.spreadsheets = export_spreadsheets(
        con, out, latest_only=True, max_territories=workbooks_max(), sources=sources
    )
    if log:
        log.info(
            f"Tableurs: {len(result.spreadsheets.csv_files)} CSV dans {out}/csv, "
            f"{len(result.spreadsheets.workbooks)} classeur(s) dans {out}/tableurs"
        )
        if result.spreadsheets.skipped:
            log.warning(f"Classeurs: {result.spreadsheets.skipped}")
    if "indicateurs_resultat" in tables:
        result.result_files = export_result_indicators(con, out)
        result.written["indicateurs_resultat_fichiers"] = len(result.result_files)
        if log:
            log.info(
                f"indicateurs de résultats: {len(result.result_files)} fichier(s) dans "
                f"{out / RESULT_FOLDER}"
            )
    return result


#: folder of the per territory and year CSV of indicateurs_resultat, under the marts folder
RESULT_FOLDER = "indicateurs_resultat"
#: its columns, in the order a person reads them (names and French labels, no internal code)
RESULT_COLUMNS = (
    "territoire",
    "annee",
    "rubrique",
    "libelle_indicateur",
    "valeur",
    "unite",
    "statut",
    "motif_non_renseigne",
    "source",
)


def export_result_indicators(con: duckdb.DuckDBPyConnection, out: Path) -> list[Path]:
    """``marts.indicateurs_resultat`` as one CSV per territory and year (UTF-8 with BOM, ``;``,
    decimal comma: opens as is in a French spreadsheet), in the order of the indicators, with
    statistical secrecy applied to the beneficiary figures."""
    folder = Path(out) / RESULT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    frame = con.execute(
        f"select {', '.join(RESULT_COLUMNS)}, effectif_secret from marts.indicateurs_resultat "
        "order by territoire, annee, rang"
    ).df()
    specs = load_specs()
    if "indicateurs_resultat" in specs:
        frame = mask_counts(frame, specs["indicateurs_resultat"])
        frame.loc[frame["secret_statistique"], "statut"] = "masqué (secret statistique)"
    frame = frame[list(RESULT_COLUMNS)].copy()
    for column in frame.select_dtypes(include="object").columns:
        # no text a spreadsheet would evaluate (pipelines/publication/cells.py)
        frame[column] = frame[column].map(
            lambda v: neutralise_formula(v) if isinstance(v, str) else v
        )
    written = []
    for (territoire, annee), rows in frame.groupby(["territoire", "annee"], sort=True):
        target = folder / f"{territoire}_{int(annee)}.csv"
        rows.to_csv(target, sep=";", decimal=",", index=False, encoding="utf-8-sig")
        written.append(target)
    return written


#: Most territories whose workbooks a build writes (``OBSERVATOIRE_CLASSEURS_MAX``): an EPCI's
#: or a department's build writes them, a national one (344 territories) leaves them to
#: ``observatoire export excel``.
WORKBOOKS_MAX = 20


def workbooks_max() -> int:
    return int(os.environ.get("OBSERVATOIRE_CLASSEURS_MAX", WORKBOOKS_MAX))


def build_export_asset():
    marts = mart_names()

    @dg.asset(
        key=["exports", "marts_parquet"],
        group_name="exports",
        kinds={"parquet"},
        deps=[dg.AssetKey(["marts", name]) for name in marts],
        description="Chaque mart exporté en Parquet (GeoParquet pour dim_qpv) dans data/marts/.",
    )
    def marts_parquet(
        context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        out = folders.marts
        with warehouse.connect() as con:
            result = export_marts(con, out, context.log)
        return dg.MaterializeResult(
            metadata={
                "dossier": dg.MetadataValue.path(str(out)),
                "marts": dg.MetadataValue.json(result.written),
                "lignes_avec_secret_statistique": dg.MetadataValue.json(result.masked_cells),
                "kit_qgis": dg.MetadataValue.json(result.qgis.layers if result.qgis else {}),
            }
        )

    return marts_parquet
