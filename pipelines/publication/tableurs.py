"""Excel-FR outputs of the marts: CSV for a French spreadsheet, and one workbook per territory
and year.

- ``csv/<mart>.csv``: every mart, ``;``-separated, UTF-8 with a BOM (Excel-FR opens it in
  columns, accents right), decimal comma, booleans « oui »/« non », dates JJ/MM/AAAA, French
  column headers (:mod:`.libelles`); geometry columns left out (they are in the Parquet and
  GeoPackage files).
- ``tableurs/<territoire>_<annee>.xlsx``: for each territory and programmation year, one sheet
  per mart that concerns it (its rows for the territory and the year; observation marts by the
  territory's QPV, every millésime), French headers, number formats (€, %, integers), header row
  frozen, filters; a « Lisez-moi » sheet (territory, year, sources, statistical secrecy, what is
  left out and why) and a « Colonnes » sheet (sheet, header, technical name, description from
  the marts' YAML). A territory without programmation gets one workbook ``<territoire>.xlsx``
  of its observation marts.

Both are written from the *published* figures: counts under the statistical-secrecy threshold
are masked exactly as in the Parquet exports (:func:`published`). A text cell that a
spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``...) is written with a leading
``'`` (:func:`pipelines.publication.cells.neutralise_formula`); numbers never are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from pipelines.duckdb_utils import tables_in
from pipelines.lib.files import link_or_copy
from pipelines.publication.cells import FORMULA_STARTS, neutralise_formula
from pipelines.publication.libelles import column_label, sheet_title
from pipelines.publication.secret import MaskSpec, load_specs, mask_counts, threshold
from pipelines.warehouse.manifest import mart_descriptions

BOM = b"\xef\xbb\xbf"
MONEY_FORMAT = '#,##0.00" €"'
INTEGER_FORMAT = "#,##0"
DECIMAL_FORMAT = "#,##0.0##"
PERCENT_POINTS_FORMAT = '0.0" %"'  # a rate written in percent (44.6 for 44.6 %)
PERCENT_FORMAT = "0.0%"  # a share written as a fraction (0.18 for 18 %)
DATE_FORMAT = "DD/MM/YYYY"
#: Long tables (one row per QPV × indicator × millésime, or every commune of France): in the
#: CSV files, not in the workbooks, whose « Fiche quartier » sheet has the same values by QPV.
NOT_IN_WORKBOOKS = ("indicateurs_qpv", "indicateurs_references")
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class SpreadsheetExport:
    """What :func:`export_spreadsheets` wrote."""

    csv_files: list[Path] = field(default_factory=list)
    workbooks: list[Path] = field(default_factory=list)
    #: why no workbook was written (too many territories for a build), else None
    skipped: str | None = None


@contextmanager
def published(
    con: duckdb.DuckDBPyConnection, table: str, specs: dict[str, MaskSpec]
) -> Iterator[str]:
    """The SQL relation of a mart as published: the mart itself, or its copy with the small
    counts masked (statistical secrecy) when the mart has counts of people."""
    source = f"marts.{_quote(table)}"
    if table not in specs:
        yield source
        return
    types = con.execute(f"describe select * from {source}").fetchall()
    frame = mask_counts(con.execute(f"select * from {source}").df(), specs[table])
    frame_name, name = f"_masque_{table}", f"_publie_{table}"
    con.register(frame_name, frame)
    # the mart's own types back (pandas made DECIMAL amounts and masked counts DOUBLE): amounts
    # stay DECIMAL(18,2) in every export, counts integers (BIGINT: Parquet has no HUGEINT)
    # (geometries come back from pandas as WKB)
    columns = ", ".join(
        f"ST_GeomFromWKB({_quote(column)}) as {_quote(column)}"
        if kind.startswith("GEOMETRY")
        else f"cast({_quote(column)} as {'BIGINT' if kind == 'HUGEINT' else kind}) "
        f"as {_quote(column)}"
        for column, kind, *_ in types
    )
    con.execute(
        f"create or replace temp view {_quote(name)} as "
        f"select {columns}, secret_statistique from {_quote(frame_name)}"
    )
    try:
        yield _quote(name)
    finally:
        con.execute(f"drop view if exists {_quote(name)}")
        con.unregister(frame_name)


def _columns(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple[str, str]]:
    """(name, type) of the columns of a relation as published (masking adds
    ``secret_statistique``)."""
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {source}").fetchall()]


def _csv_expression(name: str, kind: str, label: str | None = None) -> str | None:
    """The CSV cell of a column: text neutralised, booleans in French, dates JJ/MM/AAAA; named
    ``label`` (default: the column's French label)."""
    col = _quote(name)
    alias = _quote(column_label(name) if label is None else label)
    if kind.startswith("GEOMETRY") or kind == "BLOB":
        return None
    if kind == "BOOLEAN":
        text = f"case when {col} then 'oui' when not {col} then 'non' end"
    elif kind == "DATE":
        text = f"strftime({col}, '%d/%m/%Y')"
    elif kind.endswith("[]"):
        text = f"array_to_string({col}, ', ')"
    elif kind in ("VARCHAR", "JSON") or kind.startswith("STRUCT") or kind.startswith("MAP"):
        text = f"cast({col} as varchar)"
    elif kind.startswith("DECIMAL") or kind in ("DOUBLE", "FLOAT", "REAL"):
        # decimal comma (DuckDB writes a CSV's numbers with a point only)
        return f"replace(cast({col} as varchar), '.', ',') as {alias}"
    else:
        return f"{col} as {alias}"
    starts = ", ".join("'" + c.replace("'", "''") + "'" for c in FORMULA_STARTS)
    return f"case when left({text}, 1) in ({starts}) then '''' || {text} else {text} end as {alias}"


def write_csv_fr(con: duckdb.DuckDBPyConnection, source: str, path: Path) -> Path:
    """``source`` (a published mart) to ``path`` as a CSV an Excel-FR opens in columns.

    The byte order mark goes in the first column's name, so that DuckDB writes the whole file
    in one pass (it writes no BOM of its own); a first name the CSV would quote (a ``;``, a
    quote, a line break) would put the quote before the mark: the file is then written and
    copied behind the mark, as before."""
    columns = [(n, k) for n, k in _columns(con, source) if _csv_expression(n, k) is not None]
    first = column_label(columns[0][0]) if columns else ""
    one_pass = bool(columns) and not any(c in first for c in ';"\r\n')
    exprs = [
        _csv_expression(n, k, BOM.decode("utf-8") + first if one_pass and i == 0 else None)
        for i, (n, k) in enumerate(columns)
    ]
    tmp = path.with_suffix(".csv.tmp")
    con.execute(
        f"COPY (select {', '.join(exprs)} from {source}) TO ? "
        "(FORMAT csv, HEADER, DELIMITER ';', QUOTE '\"')",
        [str(path if one_pass else tmp)],
    )
    if one_pass:
        return path
    with path.open("wb") as out, tmp.open("rb") as body:
        out.write(BOM)
        while chunk := body.read(1 << 20):
            out.write(chunk)
    tmp.unlink()
    return path


# -- workbooks ---------------------------------------------------------------------------------


def _number_format(name: str, kind: str, values: list) -> str | None:
    numeric = kind.startswith("DECIMAL") or kind in ("DOUBLE", "FLOAT", "REAL", *_INTEGER_TYPES)
    if numeric and (
        re.match(r"^(taux|part|ecart|evolution)_", name) or name.startswith("pourcentage")
    ):
        # a share written as a fraction (0.18) or a rate in percent (44.6): by its values
        numbers = [abs(float(v)) for v in values if isinstance(v, int | float | Decimal)]
        return PERCENT_FORMAT if numbers and max(numbers) <= 1 else PERCENT_POINTS_FORMAT
    if kind.startswith("DECIMAL") or (numeric and re.match(r"^(montant|cout)", name)):
        return MONEY_FORMAT
    if kind in _INTEGER_TYPES:
        return None if name == "annee" or name.startswith("millesime") else INTEGER_FORMAT
    if numeric:
        return DECIMAL_FORMAT
    if kind == "DATE":
        return DATE_FORMAT
    return None


def _cell(value, kind: str):
    if value is None:
        return None
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, int | float | date | datetime):
        return value
    if isinstance(value, list | tuple):
        value = ", ".join("" if v is None else str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    return neutralise_formula(str(value))


def _sheet_name(table: str, used: set[str]) -> str:
    title = re.sub(r"[\\/*?:\[\]]", "-", sheet_title(table))  # characters Excel refuses
    name, n = title, 2
    while name in used:
        suffix = f" ({n})"
        name = title[: 31 - len(suffix)] + suffix
        n += 1
    used.add(name)
    return name


def _descriptions() -> dict[str, dict[str, str]]:
    """{mart: {column: description}} from the dbt manifest (the marts' YAML)."""
    return {mart: columns for mart, (_, columns) in mart_descriptions().items()}


def _territories(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select territoire, coalesce(nom, territoire) from referentiels.ref_territoires order by 1"
    ).fetchall()


#: The marts whose years are programmation years (a workbook per territory and such year);
#: other marts with a year (targets' years, zonings' periods) do not make workbooks of their own.
YEAR_MARTS = ("synthese_programmation", "depenses_orientation")


def _years(con: duckdb.DuckDBPyConnection, tables: dict, territory: str) -> list[int]:
    """The programmation years of a territory."""
    years: set[int] = set()
    for table in [t for t in YEAR_MARTS if t in tables] or list(tables):
        names = {n for n, _ in tables[table]}
        if {"territoire", "annee"} <= names:
            years |= {
                int(r[0])
                for r in con.execute(
                    f"select distinct annee from marts.{_quote(table)} "
                    "where territoire = ? and annee is not null",
                    [territory],
                ).fetchall()
            }
    return sorted(years)


def _filter(columns: list[tuple[str, str]], territory: str, year: int | None):
    """The WHERE clause and parameters of a mart for one territory (and year), or None when
    the mart cannot be cut by territory (national tables: in the CSV files)."""
    names = {n for n, _ in columns}
    if "territoire" in names:
        if "annee" in names and year is not None:
            return "territoire = ? and annee = ?", [territory, year]
        return "territoire = ?", [territory]
    if "code_qpv" in names:
        return (
            "code_qpv in (select code_qpv from referentiels.ref_perimetre_qpv "
            "where territoire = ?)",
            [territory],
        )
    return None


def write_workbook(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    territory: tuple[str, str],
    year: int | None,
    tables: dict[str, list[tuple[str, str]]],
    sources: dict[str, str],
    descriptions: dict[str, dict[str, str]],
) -> Path:
    """The workbook of one territory (and programmation year); ``sources``: the published
    relation of each mart (:func:`published`)."""
    code, nom = territory
    book = Workbook()
    readme = book.active
    readme.title = "Lisez-moi"
    columns_sheet = book.create_sheet("Colonnes")
    columns_sheet.append(["Feuille", "En-tête", "Nom technique (mart.colonne)", "Description"])
    used = {"Lisez-moi", "Colonnes"}
    written: list[tuple[str, int]] = []
    empty: list[str] = []
    national: list[str] = []
    fictitious = False
    for table, columns in tables.items():
        where = _filter(columns, code, year)
        if where is None or table in NOT_IN_WORKBOOKS:
            national.append(sheet_title(table))
            continue
        kept = [(n, k) for n, k in columns if not (k.startswith("GEOMETRY") or k == "BLOB")]
        select = ", ".join(_quote(n) for n, _ in kept)
        rows = con.execute(
            f"select {select} from {sources[table]} where {where[0]} order by all", where[1]
        ).fetchall()
        if not rows:
            empty.append(sheet_title(table))
            continue
        sheet = book.create_sheet(_sheet_name(table, used))
        sheet.append([column_label(n) for n, _ in kept])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in rows:
            sheet.append([_cell(v, k) for v, (_, k) in zip(row, kept, strict=True)])
            fictitious = fictitious or any(isinstance(v, str) and "FICTIF" in v for v in row)
        for j, (name, kind) in enumerate(kept, start=1):
            letter = get_column_letter(j)
            fmt = _number_format(name, kind, [r[j - 1] for r in rows])
            if fmt:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=j, max_col=j):
                    cell.number_format = fmt
            sheet.column_dimensions[letter].width = min(45, max(12, len(column_label(name)) + 2))
            columns_sheet.append(
                [
                    sheet.title,
                    column_label(name),
                    f"{table}.{name}",
                    descriptions.get(table, {}).get(name, ""),
                ]
            )
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(kept))}{len(rows) + 1}"
        written.append((sheet.title, len(rows)))
    lines = [
        [f"Observatoire de la politique de la ville — {nom}"],
        [f"Territoire : {nom} (code {code})"],
        [f"Année de programmation : {year}" if year else "Observation (tous millésimes)"],
        [f"Produit le {datetime.now():%d/%m/%Y} à partir de l'entrepôt publié."],
        [],
        [
            "Secret statistique : les effectifs de personnes inférieurs à "
            f"{threshold()} sont masqués (cellule vide, colonne « Secret statistique appliqué » "
            "à oui), avec le masquage complémentaire qui empêche de les retrouver par différence."
        ],
        [
            "Sources : la colonne « Source » ou « Fichier source » de chaque feuille ; la section "
            "Méthodologie du rapport annuel les détaille."
        ],
    ]
    if fictitious:
        lines.append(
            ["Données de suivi FICTIVES (démonstration) : programmations et bilans inventés."]
        )
    lines += [[], ["Feuille", "Lignes"], *[[t, n] for t, n in written]]
    if empty:
        lines += [[], ["Sans ligne pour ce territoire et cette année : " + ", ".join(empty)]]
    if national:
        lines += [
            [],
            [
                "Tables longues ou nationales, dans les fichiers csv/ et Parquet (pas dans ce "
                "classeur) : " + ", ".join(national)
            ],
        ]
    for line in lines:
        readme.append(line)
    readme.column_dimensions["A"].width = 110
    columns_sheet.freeze_panes = "A2"
    columns_sheet.column_dimensions["D"].width = 90
    tmp = path.with_suffix(".xlsx.tmp")
    book.save(tmp)
    tmp.replace(path)
    return path


def export_spreadsheets(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    territories: list[str] | None = None,
    years: list[int] | None = None,
    csv: bool = True,
    latest_only: bool = False,
    max_territories: int | None = None,
    sources: dict[str, str] | None = None,
    csv_reused: Mapping[str, Path] | None = None,
) -> SpreadsheetExport:
    """``out/csv/<mart>.csv`` for every mart and ``out/tableurs/*.xlsx`` per territory and
    year (those given, else all; the latest year of each with ``latest_only``). With more
    territories than ``max_territories``, no workbook: ``skipped`` says why (a national build
    would write hundreds; ``observatoire export excel --territoire`` writes those wanted).
    ``csv_reused``: the CSV already written of some marts (published by the same version of
    the project, for the same rows), linked instead of written again."""
    out = Path(out)
    result = SpreadsheetExport()
    specs = load_specs()
    names = [
        t
        for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "order by 1"
        ).fetchall()
    ]
    with ExitStack() as stack:
        # each mart as published (small counts masked) once, for the CSV and every workbook
        if sources is None:  # the caller may have published them already (export_marts)
            sources = {t: stack.enter_context(published(con, t, specs)) for t in names}
        tables = {t: _columns(con, sources[t]) for t in names}
        if csv:
            (out / "csv").mkdir(parents=True, exist_ok=True)
            for table in tables:
                path = out / "csv" / f"{table}.csv"
                if csv_reused and table in csv_reused:
                    link_or_copy(csv_reused[table], path)
                    result.csv_files.append(path)
                else:
                    result.csv_files.append(write_csv_fr(con, sources[table], path))
        if not {"ref_territoires", "ref_perimetre_qpv"} <= set(tables_in(con, "referentiels")):
            return result
        (out / "tableurs").mkdir(parents=True, exist_ok=True)
        descriptions = _descriptions()
        chosen_territories = [
            t for t in _territories(con) if not territories or t[0] in territories
        ]
        if max_territories is not None and len(chosen_territories) > max_territories:
            result.skipped = (
                f"{len(chosen_territories)} territoires (plus de {max_territories}) : aucun "
                "classeur écrit par la construction ; observatoire export excel --territoire "
                "<code> écrit ceux d'un territoire"
            )
            return result
        for territory in chosen_territories:
            found = _years(con, tables, territory[0])
            chosen = [y for y in found if not years or y in years]
            if latest_only and chosen:
                chosen = chosen[-1:]
            if found and not chosen:
                continue
            for year in chosen or [None]:
                name = f"{territory[0]}_{year}.xlsx" if year else f"{territory[0]}.xlsx"
                path = out / "tableurs" / name
                result.workbooks.append(
                    write_workbook(con, path, territory, year, tables, sources, descriptions)
                )
    return result
