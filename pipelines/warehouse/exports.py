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
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from geo.export import export_dim_qpv
from pipelines.duckdb_utils import quote_identifier, sql_literal, tables_in
from pipelines.lib.files import link_or_copy
from pipelines.publication.cells import neutralise_formula
from pipelines.publication.empreintes import group_fingerprints, reusable, write_record
from pipelines.publication.qgis import QgisExport, export_qgis
from pipelines.publication.scdl import ScdlExport, export_scdl
from pipelines.publication.secret import load_specs, mask_counts
from pipelines.publication.tableurs import SpreadsheetExport, export_spreadsheets, published
from pipelines.warehouse.manifest import mart_names
from pipelines.warehouse.resources import (
    ProjectFolders,
    Warehouse,
    same_version_as_published,
)


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


def export_marts(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    log=None,
    reused: Mapping[str, Path] | None = None,
    published_marts: Path | None = None,
) -> MartsExport:
    """Every table of the ``marts`` schema to ``out/<table>.parquet`` (secret statistique
    applied), ``dim_qpv`` also as GeoParquet/GeoPackage/GeoJSON, ``subventions_scdl`` as SCDL,
    and the Excel-FR CSV and workbooks (:mod:`pipelines.publication.tableurs`).

    ``reused``: marts whose published files are those this export would write
    (:func:`reusable_marts`), with the published marts folder: their Parquet file and CSV are
    linked from there, and the published Parquet file is the mart as published for the
    workbooks and the QGIS kit.

    ``published_marts``: the published marts folder when its files may be taken as they are (same
    version, same options): the SCDL and result-indicator files whose rows did not change are
    linked from there (:mod:`pipelines.publication.empreintes`).

    Paths reach DuckDB as bound parameters and table names as quoted identifiers: a marts folder
    such as ``/srv/l'observation/marts`` is written like any other."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = MartsExport(out)
    tables = sorted(tables_in(con, "marts"))
    specs = load_specs()
    reused = dict(reused or {})
    # a geometry read back from Parquet carries the file's CRS in its type: the maps of the
    # QGIS kit read those marts from the warehouse, as in a full build
    with_geometry = {
        table
        for (table,) in con.execute(
            "select distinct table_name from duckdb_columns() where schema_name = 'marts' "
            "and database_name = current_database() and data_type like 'GEOMETRY%'"
        ).fetchall()
    }
    with ExitStack() as stack:
        # each mart as published (statistical secrecy applied, pipelines/publication) once,
        # for the Parquet file, the CSV and the workbooks
        sources = {
            t: f"read_parquet({sql_literal(str(reused[t] / f'{t}.parquet'))})"
            if t in reused and t not in with_geometry
            else stack.enter_context(published(con, t, specs))
            for t in tables
        }
        result = _export_published(
            con, out, tables, specs, sources, result, log, reused, published_marts
        )
    return result


def _export_published(
    con, out, tables, specs, sources, result: MartsExport, log, reused, published_marts=None
):
    for table in tables:
        target = out / f"{table}.parquet"
        tmp = target.with_suffix(".parquet.tmp")
        source = sources[table]
        if table in specs:
            result.masked_cells[table] = con.execute(
                f"select count(*) from {source} where secret_statistique"
            ).fetchone()[0]
        if table in reused:
            link_or_copy(reused[table] / target.name, target)
        else:
            con.execute(
                f"COPY (SELECT * FROM {source}) TO ? (FORMAT parquet, COMPRESSION zstd)",
                [str(tmp)],
            )
            tmp.replace(target)
        rows = con.execute(f"select count(*) from marts.{quote_identifier(table)}").fetchone()[0]
        result.written[table] = rows
    if log:
        # one line per kind of file, not per file: every message is an event Dagster writes to
        # its SQLite log (a few ms each; 2,000 messages took 12 s of a national build)
        log.info(
            f"{len(tables)} marts en Parquet dans {out} ({sum(result.written.values())} lignes"
            + (f" ; {len(reused)} repris de la publication précédente" if reused else "")
            + ")"
        )
    if "dim_qpv" in tables:
        # GeoParquet with its CRS, GeoPackage and GeoJSON that open in QGIS as they are
        result.geo_files = export_dim_qpv(con, out)
        if log:
            log.info(f"dim_qpv: {sorted(str(p) for p in result.geo_files.values())}")
    if "dim_qpv" in tables:
        # the QGIS kit: qgis/observatoire.gpkg (styled layers) and qgis/observatoire.qgz
        result.qgis = export_qgis(con, out, sources=sources, log=log)
    if "subventions_scdl" in tables:
        result.scdl = export_scdl(con, out, published_marts)
        if log:
            log.info(
                f"SCDL subventions: {len(result.scdl.files)} fichier(s) dans {out}/scdl"
                + (
                    f" ({len(result.scdl.reused)} repris de la publication précédente)"
                    if result.scdl.reused
                    else ""
                )
            )
            if result.scdl.incomplete:
                log.warning(scdl_incomplete_line(result.scdl.incomplete))
        result.written["scdl_fichiers"] = len(result.scdl.files)
    # Excel-FR: csv/<mart>.csv (;, BOM, decimal comma) and tableurs/<territoire>_<annee>.xlsx
    # (the latest programmation year of each territory, up to WORKBOOKS_MAX territories)
    result.spreadsheets = export_spreadsheets(
        con,
        out,
        latest_only=True,
        max_territories=workbooks_max(),
        sources=sources,
        csv_reused={t: folder / "csv" / f"{t}.csv" for t, folder in reused.items()},
    )
    if log:
        log.info(
            f"Tableurs: {len(result.spreadsheets.csv_files)} CSV dans {out}/csv, "
            f"{len(result.spreadsheets.workbooks)} classeur(s) dans {out}/tableurs"
        )
        if result.spreadsheets.skipped:
            log.warning(f"Classeurs: {result.spreadsheets.skipped}")
    if "indicateurs_resultat" in tables:
        result.result_files = export_result_indicators(con, out, published_marts)
        result.written["indicateurs_resultat_fichiers"] = len(result.result_files)
        if log:
            log.info(
                f"indicateurs de résultats: {len(result.result_files)} fichier(s) dans "
                f"{out / RESULT_FOLDER}"
            )
    return result


def scdl_incomplete_line(incomplete: Mapping[str, Mapping[str, int]], shown: int = 3) -> str:
    """One warning for the SCDL files with fields to complete: how many files, the lines to
    complete per field over all of them, and the first files."""
    totals: dict[str, int] = {}
    for fields in incomplete.values():
        for name, count in fields.items():
            totals[name] = totals.get(name, 0) + count
    names = sorted(incomplete)
    return (
        f"SCDL : champs à compléter dans {len(names)} fichier(s) ("
        + ", ".join(f"{name} : {count} ligne(s)" for name, count in sorted(totals.items()))
        + ") ; par exemple "
        + ", ".join(names[:shown])
        + (" ..." if len(names) > shown else "")
    )


#: Marts never taken from the published folder: ``dim_qpv``'s Parquet file is GeoParquet with
#: its CRS (written by :func:`geo.export.export_dim_qpv`), read by the QGIS kit each time.
NEVER_REUSED = frozenset({"dim_qpv"})


def fingerprints(con: duckdb.DuckDBPyConnection, database: str = "") -> dict[str, tuple]:
    """``{mart: (rows, sum of the rows' hashes)}`` of the ``marts`` schema of ``con`` (or of
    the attached ``database``): equal fingerprints, same rows in any order (about 0.5 s for the
    2.5 million rows of the national bench)."""
    prefix = f"{quote_identifier(database)}." if database else ""
    names = [
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' "
            "and database_name = coalesce(nullif(?, ''), current_database())",
            [database],
        ).fetchall()
    ]
    return {
        name: con.execute(
            f"select count(*), sum(hash(r)) from {prefix}marts.{quote_identifier(name)} as r"
        ).fetchone()
        for name in names
    }


def reusable_marts(
    con: duckdb.DuckDBPyConnection, published_warehouse: Path, published_marts: Path
) -> dict[str, Path]:
    """The marts of ``con`` whose rows are those of the published warehouse (same fingerprint)
    and whose published Parquet file and CSV are there: ``{mart: published marts folder}``.

    For a build of some years (``--annee``) from a copy of the published warehouse, by the same
    version of the project with the same options (the caller checks): the observation marts,
    which no programmation touches, keep their published files (the 1.6 million rows of
    ``indicateurs_qpv`` on the national bench)."""
    folder = Path(published_marts).resolve()
    if not Path(published_warehouse).is_file() or not folder.is_dir():
        return {}
    mine = fingerprints(con)
    con.execute(f"attach {sql_literal(str(published_warehouse))} as _publie (read_only)")
    try:
        theirs = fingerprints(con, "_publie")
    finally:
        con.execute("detach _publie")
    return {
        name: folder
        for name, print_ in mine.items()
        if name not in NEVER_REUSED
        and theirs.get(name) == print_
        and (folder / f"{name}.parquet").is_file()
        and (folder / "csv" / f"{name}.csv").is_file()
    }


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


#: the file of a territory and year, as an SQL expression over ``marts.indicateurs_resultat``
RESULT_FILE_SQL = "territoire || '_' || cast(cast(annee as integer) as varchar) || '.csv'"


def export_result_indicators(
    con: duckdb.DuckDBPyConnection, out: Path, published_marts: Path | None = None
) -> list[Path]:
    """``marts.indicateurs_resultat`` as one CSV per territory and year (UTF-8 with BOM, ``;``,
    decimal comma: opens as is in a French spreadsheet), in the order of the indicators, with
    statistical secrecy applied to the beneficiary figures.

    ``published_marts``: the published marts folder when its files may be taken as they are:
    the file of a territory and year whose rows have the recorded fingerprint is linked
    (:mod:`pipelines.publication.empreintes`)."""
    folder = Path(out) / RESULT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    fingerprints = group_fingerprints(
        con,
        "marts.indicateurs_resultat",
        RESULT_FILE_SQL,
        [*RESULT_COLUMNS, "effectif_secret", "rang"],
    )
    reuse = reusable(published_marts / RESULT_FOLDER if published_marts else None, fingerprints)
    entries = {name: reuse.link(name, folder) for name in sorted(reuse.files)}
    written = [folder / name for name in entries]
    frame = con.execute(
        f"select {', '.join(RESULT_COLUMNS)}, effectif_secret from marts.indicateurs_resultat "
        f"where not list_has(?::varchar[], {RESULT_FILE_SQL}) "
        "order by territoire, annee, rang",
        [sorted(reuse.files)],
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
    for (territoire, annee), rows in frame.groupby(["territoire", "annee"], sort=True):
        name = f"{territoire}_{int(annee)}.csv"
        target = folder / name
        rows.to_csv(target, sep=";", decimal=",", index=False, encoding="utf-8-sig")
        written.append(target)
        entries[name] = {"empreinte": fingerprints[name], "lignes": len(rows)}
    write_record(folder, entries)
    return sorted(written)


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
            reused, published_marts = {}, None
            if "dagster/partition" in context.run.tags and same_version_as_published(
                folders.paths.warehouse
            ):
                # a build of some years: the marts it did not change keep their files
                reused = reusable_marts(con, folders.paths.warehouse, folders.paths.marts_dir)
                context.log.info(f"marts repris de la publication: {sorted(reused)}")
                published_marts = folders.paths.marts_dir.resolve()
            result = export_marts(con, out, context.log, reused, published_marts)
        return dg.MaterializeResult(
            metadata={
                "dossier": dg.MetadataValue.path(str(out)),
                "marts": dg.MetadataValue.json(result.written),
                "lignes_avec_secret_statistique": dg.MetadataValue.json(result.masked_cells),
                "kit_qgis": dg.MetadataValue.json(result.qgis.layers if result.qgis else {}),
                "marts_repris": dg.MetadataValue.json(sorted(reused)),
            }
        )

    return marts_parquet
