"""Export asset: every mart of the ``marts`` schema to ``MARTS_DIR/<table>.parquet``, and as
Excel-FR CSV and workbooks (``csv/``, ``tableurs/``).

Counts of people are masked under the statistical-secrecy threshold in what is published
(``pipelines/publication/secret.py``); the warehouse keeps the true values.

Tables with a GEOMETRY column are written as GeoParquet (DuckDB spatial writes the ``geo``
metadata with the CRS) by DuckDB itself.
"""

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from geo.export import export_dim_qpv
from pipelines.duckdb_utils import tables_in
from pipelines.publication.scdl import ScdlExport, export_scdl
from pipelines.publication.secret import load_specs, mask_counts
from pipelines.publication.tableurs import SpreadsheetExport, export_spreadsheets
from pipelines.warehouse.dbt import mart_names
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
    for table in tables:
        target = out / f"{table}.parquet"
        tmp = target.with_suffix(".parquet.tmp")
        source = f"marts.{quote_identifier(table)}"
        if table in specs:
            # published figures respect statistical secrecy (pipelines/publication)
            frame = mask_counts(con.execute(f"select * from {source}").df(), specs[table])
            result.masked_cells[table] = int(frame["secret_statistique"].sum())
            con.register("_publie", frame)
            source = "_publie"
        con.execute(
            f"COPY (SELECT * FROM {source}) TO ? (FORMAT parquet, COMPRESSION zstd)", [str(tmp)]
        )
        if source == "_publie":
            con.unregister("_publie")
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
    if "subventions_scdl" in tables:
        result.scdl = export_scdl(con, out)
        if log:
            log.info(f"SCDL subventions: {len(result.scdl.files)} fichier(s) dans {out}/scdl")
            for name, fields in result.scdl.incomplete.items():
                log.warning(f"SCDL {name}: champs à compléter {fields}")
        result.written["scdl_fichiers"] = len(result.scdl.files)
    # Excel-FR: csv/<mart>.csv (;, BOM, decimal comma) and tableurs/<territoire>_<annee>.xlsx
    result.spreadsheets = export_spreadsheets(con, out)
    if log:
        log.info(
            f"Tableurs: {len(result.spreadsheets.csv_files)} CSV dans {out}/csv, "
            f"{len(result.spreadsheets.workbooks)} classeur(s) dans {out}/tableurs"
        )
    return result


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
            }
        )

    return marts_parquet
