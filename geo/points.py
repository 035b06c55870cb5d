"""Point-in-QPV: assign records to the QPV containing them, in DuckDB spatial SQL only.

The rule has a single home, the dbt macro ``dbt_project/macros/assign_qpv.sql`` (its header
gives the rule in full); this module renders it with Jinja and runs it:

* :func:`assign_points` assigns a relation of records (:class:`Points`: a FROM item and its
  coordinate columns) to the QPV polygons of a DuckDB relation (``code_qpv``, ``geom`` in
  WGS84, optional ``geographie``), writing a table or a Parquet file, and counts the statuses;
* :func:`assignment_sql` gives the SQL alone (what the benchmark and dbt run).

Rules (from the macro): statut ``dans_qpv``, ``hors_qpv``, ``coordonnees_invalides`` (missing,
not numeric, infinite, out of range, or exactly (0, 0)) or ``lon_lat_inverses`` (coordinates that
only make sense swapped: not assigned, ``code_qpv_apres_inversion`` gives the QPV after swapping
back). A QPV is a closed set (``ST_Intersects``); a point in several QPV gets the smallest code and
``nb_qpv`` counts them (``ambigus``). Lambert-93 input is transformed to WGS84.

How: DuckDB's ``SPATIAL_JOIN`` (an R-tree over the polygons' boxes, then the exact
``ST_Intersects``) in one streaming query: memory does not grow with the number of records. No
compiled code: DuckDB and its spatial extension only. Reading files of places (column and CRS
detection) is :mod:`pipelines.sources.lieux.reader`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The macro holding the rule.
MACRO = Path(__file__).resolve().parents[1] / "dbt_project" / "macros" / "assign_qpv.sql"

STATUTS = ("dans_qpv", "hors_qpv", "coordonnees_invalides", "lon_lat_inverses")

#: Columns added by the assignment (the last five with ``with_details``).
OUTPUT_COLUMNS = [
    "statut",
    "code_qpv",
    "nb_qpv",
    "motif",
    "code_qpv_apres_inversion",
    "lon_wgs84",
    "lat_wgs84",
    "geographie_qpv",
]

WGS84 = "EPSG:4326"
LAMBERT93 = "EPSG:2154"

#: Options of the assignment's Parquet output. Parquet format 2 data pages encode integers
#: (``id``) as DELTA_BINARY_PACKED: at 10 M points the file is 6 MiB instead of 44 MiB. Read by
#: DuckDB and pyarrow (pandas, geopandas).
PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION snappy, PARQUET_VERSION v2)"


class PointsError(ValueError):
    """An input the assignment cannot use safely (the message is in French)."""


@dataclass
class Points:
    """A relation of records to assign.

    ``sql`` is a FROM item (a table name, ``read_parquet(...)``, a subquery in parentheses);
    ``x`` / ``y`` the coordinate columns (longitude / latitude, or Lambert-93 x / y);
    ``numeric`` whether they are typed as numbers (else parsed from text: decimal comma,
    blanks); ``crs`` :data:`WGS84` or :data:`LAMBERT93`; ``columns`` / ``types`` the columns of
    the relation and their DuckDB types.
    """

    sql: str
    x: str
    y: str
    crs: str = WGS84
    numeric: bool = True
    columns: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)


@dataclass
class Assignment:
    """Result of :func:`assign_points`.

    Attributes:
        output: the table name or Parquet path written.
        crs: coordinate system of the input.
        geographie: generation of the QPV polygons used.
        counts: rows per status (``lus`` = all rows, ``dans_qpv``, ``hors_qpv``,
            ``coordonnees_invalides``, ``lon_lat_inverses``) and ``ambigus`` (rows in several
            QPV, given the smallest code).
        seconds: wall time of the assignment query (read, assign, write).
        qpv: number of QPV polygons used.
    """

    output: str
    crs: str
    geographie: str | None
    counts: dict[str, int]
    seconds: float
    qpv: int = 0


# --------------------------------------------------------------------------------------------
# The macro
# --------------------------------------------------------------------------------------------


@functools.cache
def _macros() -> Any:
    import jinja2

    return jinja2.Environment().from_string(MACRO.read_text(encoding="utf-8")).module


def emprise_lambert93() -> tuple[float, float, float, float]:
    """Lambert-93 envelope (x min, y min, x max, y max) of the rule, from the macro."""
    values = [float(v) for v in str(_macros().assign_qpv_emprise_lambert93()).split(",")]
    return values[0], values[1], values[2], values[3]


def sql_number(expr: str, numeric: bool) -> str:
    """SQL turning a raw cell into a DOUBLE as the rule reads it (NULL when not a number)."""
    return str(_macros().assign_qpv_nombre(expr, not numeric)).strip()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_relation(name: str) -> str:
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"Nom de table invalide : {name!r}")
    return ".".join(quote_ident(p) for p in parts)


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def assignment_sql(
    points: Points,
    polygons: str,
    geographie: str | None,
    *,
    keep: Sequence[str] | None = None,
    with_details: bool = True,
) -> str:
    """The rule's SQL (the macro, rendered) for ``points`` against ``polygons``.

    ``polygons`` is a relation (``code_qpv``, ``geom``, and ``geographie`` unless
    ``geographie`` is None). Output: the ``keep`` columns (all of them by default), then
    ``statut``, ``code_qpv``, ``nb_qpv`` and with ``with_details`` the details (macro header).
    """
    if points.crs not in (WGS84, LAMBERT93):
        raise PointsError(f"Système de coordonnées non pris en charge : {points.crs}")
    colonnes = None if keep is None else [quote_ident(c) for c in keep]
    return str(
        _macros().assign_qpv(
            points.sql,
            quote_ident(points.x),
            quote_ident(points.y),
            polygons,
            geographie=geographie,
            crs=points.crs,
            texte=not points.numeric,
            details=with_details,
            colonnes=colonnes,
        )
    )


# --------------------------------------------------------------------------------------------
# Polygons
# --------------------------------------------------------------------------------------------


def _columns_of(con: Any, relation_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]


def choose_geographie(con: Any, polygons: str, geographie: str | None) -> str | None:
    """The generation to use: the one asked, else the only one present, else the latest."""
    relation = quote_relation(polygons)
    columns = {name.lower() for name, _ in _columns_of(con, relation)}
    if "geographie" not in columns:
        return geographie
    present = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT geographie FROM {relation} "
            "WHERE geom IS NOT NULL AND geographie IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    if geographie is not None:
        if geographie not in present:
            raise PointsError(
                f"Aucun contour de la géographie {geographie} dans {polygons} "
                f"(géographies présentes : {', '.join(present) or 'aucune'})"
            )
        return geographie
    if len(present) > 1:
        logger.info(
            "%s contient les géographies %s : la plus récente (%s) est utilisée",
            polygons,
            ", ".join(present),
            present[-1],
        )
    return present[-1] if present else None


def qpv_codes(con: Any, polygons: str, geographie: str | None) -> list[str]:
    """Sorted QPV codes of the polygons used; refuses a code given twice (the rule counts QPV
    by polygon)."""
    where = "geom IS NOT NULL"
    if geographie is not None:
        where += f" AND geographie = {sql_string(geographie)}"
    rows = con.execute(
        f"SELECT code_qpv, count(*) FROM {quote_relation(polygons)} WHERE {where} "
        "GROUP BY code_qpv ORDER BY code_qpv"
    ).fetchall()
    doubles = [r[0] for r in rows if r[1] > 1]
    if doubles:
        raise PointsError(
            f"Codes QPV en double dans {polygons} (géographie {geographie}) : "
            + ", ".join(map(str, doubles[:5]))
        )
    return [r[0] for r in rows]


def enum_type(values: Sequence[str]) -> str:
    """SQL of an anonymous ENUM type over ``values`` (in this order)."""
    return "ENUM(" + ", ".join(sql_string(v) for v in values) + ")"


# --------------------------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------------------------


def load_spatial(con: Any) -> None:
    """``LOAD spatial`` (installed by ``make install``), with a clear error when missing."""
    try:
        con.execute("LOAD spatial")
    except Exception as err:  # noqa: BLE001 - DuckDB raises several error types
        raise PointsError(
            "L'extension DuckDB spatial est nécessaire (ST_Intersects, ST_Transform) : "
            f"l'installer (make install) ({err})"
        ) from None


def _check_keep(keep: Sequence[str]) -> None:
    """Refuse kept input columns whose names clash with the assignment's output columns."""
    clash = sorted(set(keep) & set(OUTPUT_COLUMNS))
    if clash:
        raise PointsError(
            f"Colonnes d'entrée en conflit avec le résultat de l'affectation : {', '.join(clash)}"
        )


def _typed_sql(sql: str, keep: Sequence[str], codes: list[str], enums: bool, details: bool) -> str:
    """The macro's rows with the output types: ENUM statut / codes for Parquet (always written
    with a dictionary), text for a table; ``nb_qpv`` UTINYINT."""
    text = "VARCHAR"
    statut = enum_type(STATUTS) if enums else text
    code = enum_type(codes) if enums and codes else text
    columns = [quote_ident(c) for c in keep]
    columns += [
        f"CAST(statut AS {statut}) AS statut",
        f"CAST(code_qpv AS {code}) AS code_qpv",
        "CAST(nb_qpv AS UTINYINT) AS nb_qpv",
    ]
    if details:
        columns += [
            "motif",
            f"CAST(code_qpv_apres_inversion AS {code}) AS code_qpv_apres_inversion",
            "lon_wgs84",
            "lat_wgs84",
            "geographie_qpv",
        ]
    return f"SELECT {', '.join(columns)} FROM ({sql})"


def _parquet_options(points: Points, keep: Sequence[str]) -> str:
    """:data:`PARQUET_OPTIONS`, without dictionary encoding when no kept column is text.

    The ENUM columns (``statut``, ``code_qpv``) are always written with their dictionary; for
    numbers (identifiers, mostly distinct) DuckDB's dictionary trial is wasted work. A kept
    text column (a commune name...) keeps it.
    """
    if any(points.types.get(c, "VARCHAR").upper().startswith("VARCHAR") for c in keep):
        return PARQUET_OPTIONS
    return PARQUET_OPTIONS[:-1] + ", DICTIONARY_SIZE_LIMIT 0)"


def assign_points(
    con: Any,
    points: Points,
    *,
    polygons: str = "marts.dim_qpv",
    geographie: str | None = None,
    keep: Sequence[str] | None = None,
    output: str | Path | None = None,
    output_table: str | None = None,
    with_details: bool = True,
) -> Assignment:
    """Assign every record of ``points`` to the QPV containing it (rules: module docstring).

    The polygons are those of ``polygons`` for one generation: ``geographie`` if given, else the
    only one present, else the latest (:func:`choose_geographie`). The result goes to a Parquet
    file (``output``) or a table (``output_table``, replaced; ``temp.<name>`` for a temporary
    table), rows in no particular order; columns: ``keep`` (all the input columns by default), then
    ``statut``, ``code_qpv``, ``nb_qpv`` and with ``with_details`` ``motif``,
    ``code_qpv_apres_inversion``, ``lon_wgs84``, ``lat_wgs84``, ``geographie_qpv``.
    """
    if (output is None) == (output_table is None):
        raise ValueError("indiquer soit output (Parquet), soit output_table")
    load_spatial(con)
    keep = list(points.columns if keep is None else keep)
    _check_keep(keep)
    chosen = choose_geographie(con, polygons, geographie)
    codes = qpv_codes(con, polygons, chosen)
    rule = assignment_sql(
        points, quote_relation(polygons), chosen, keep=keep, with_details=with_details
    )
    started = time.perf_counter()
    if output is not None:
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        sql = _typed_sql(rule, keep, codes, enums=True, details=with_details)
        previous = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
        # a file may come out in any order: DuckDB then writes it from every thread
        con.execute("SET preserve_insertion_order = false")
        try:
            options = _parquet_options(points, keep)
            con.execute(f"COPY ({sql}) TO {sql_string(str(target))} {options}")
        finally:
            con.execute(f"SET preserve_insertion_order = {bool(previous)}")
        written = str(target)
        relation = f"read_parquet({sql_string(written)})"
    else:
        sql = _typed_sql(rule, keep, codes, enums=False, details=with_details)
        if output_table.lower().startswith("temp."):
            relation = f"temp.{quote_ident(output_table[5:])}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {relation[5:]} AS {sql}")
        else:
            relation = quote_relation(output_table)
            con.execute(f"CREATE OR REPLACE TABLE {relation} AS {sql}")
        written = output_table
    duration = time.perf_counter() - started
    return Assignment(
        output=written,
        crs=points.crs,
        geographie=chosen,
        counts=count_statuses(con, relation),
        seconds=round(duration, 3),
        qpv=len(codes),
    )


def count_statuses(con: Any, relation_sql: str) -> dict[str, int]:
    """Rows per status, all rows (``lus``) and ambiguous rows of an assignment result."""
    rows = con.execute(
        f"SELECT CAST(statut AS VARCHAR), count(*), count(*) FILTER (WHERE nb_qpv > 1) "
        f"FROM {relation_sql} GROUP BY ALL"
    ).fetchall()
    out = dict.fromkeys(STATUTS, 0)
    ambigus = 0
    for statut, n, amb in rows:
        out[statut] = int(n)
        ambigus += int(amb)
    out["lus"] = sum(out[s] for s in STATUTS)
    out["ambigus"] = ambigus
    return out
