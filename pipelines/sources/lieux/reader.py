"""Files of places (équipements, lieux d'action, résidences des bénéficiaires) opened in DuckDB.

:func:`read_points` opens a CSV (``;``, ``,`` or tab; decimal point or comma; UTF-8 or UTF-16
with BOM, the policy of every reader: :func:`pipelines.lib.tables.text_encoding`) or Parquet
file as a DuckDB FROM item and finds its identifier, coordinate and optional columns by name,
and its coordinate system (given, or detected from the values). The result, a
:class:`PointsSource`, is what :func:`geo.points.assign_points` assigns to the QPV.

:func:`load_points` is the asset's faster road for large files (issue #18): the file is read
ONCE by DuckDB (the dialect the reading library detects, the field count of every record checked
by DuckDB itself, the coordinates parsed once with the rule's number reading) into a temporary
table that the assignment then reads, once per geography. Its results are those of
:func:`read_points` + :func:`geo.points.assign_points`, the slow road the tests compare it to.

**The BAN geocoder's CSV.** The file that adresse.data.gouv.fr's batch geocoder (``/search/csv``,
the addok-csv plugin) returns is read as it is: the user's columns, then ``latitude``,
``longitude``, ``result_label``, ``result_score``, ``result_score_next``, ``result_type``,
``result_id``, ``result_housenumber``, ``result_name``, ``result_street``, ``result_postcode``,
``result_city``, ``result_context``, ``result_citycode``, ``result_oldcitycode``,
``result_oldcity``, ``result_district``, ``result_status``. It is recognised by its
``result_score`` column (:func:`ban_columns`); a record whose score is below the threshold
(:func:`score_threshold`, ``OBSERVATOIRE_SCORE_BAN_MIN``, 0,5 by default) or empty (address not
found: ``result_status`` ``not-found``, ``error``, ``skipped``) is never assigned: it goes to
``raw.rejets`` with its score.

Why this module is long: the two roads of reading a file of places (:func:`read_points`, the
reference the tests and :func:`geo.points.assign_points` use, and :func:`load_points`, the
asset's one reading) share their column finding, CRS detection, number reading and refusal
messages; split apart, each half would import the other's private rules.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.points import (
    LAMBERT93,
    WGS84,
    Points,
    PointsError,
    emprise_lambert93,
    quote_ident,
    sql_number,
    sql_string,
)
from pipelines.lib.tables import IngestionError, csv_dialect, csv_shape

logger = logging.getLogger(__name__)

_ID_NAMES = ("identifiant", "id", "id_lieu", "code", "code_lieu", "ref", "reference", "numero")
_X_NAMES = (
    "lon",
    "long",
    "lng",
    "longitude",
    "x",
    "coord_x",
    "coordonnee_x",
    "x_l93",
    "x_lambert93",
    "x_lambert_93",
    "lambert_x",
    "xl93",
)
_Y_NAMES = (
    "lat",
    "latitude",
    "y",
    "coord_y",
    "coordonnee_y",
    "y_l93",
    "y_lambert93",
    "y_lambert_93",
    "lambert_y",
    "yl93",
)


#: Columns of the BAN geocoder's CSV (normalised names): its score and its status.
BAN_SCORE = "result_score"
BAN_STATUS = "result_status"
#: Environment variable of the score threshold, and its default.
ENV_SCORE_MIN = "OBSERVATOIRE_SCORE_BAN_MIN"
#: 0.5: the BAN's score is a text similarity between the address asked and the address found
#: (0 to 1). Above 0.5 the address found is, in practice, the one asked or its street; below,
#: the geocoder has matched another street or only the commune (its centre: a point that
#: would be counted in or out of a QPV for no reason). A team whose addresses are well
#: written can raise it (0.7 is a common choice for housenumber-level work).
DEFAULT_SCORE_MIN = 0.5


def score_threshold() -> float:
    """The BAN score threshold: ``OBSERVATOIRE_SCORE_BAN_MIN`` (``0.6`` or ``0,6``, between 0
    and 1), else :data:`DEFAULT_SCORE_MIN`. Raises PointsError on another value."""
    text = os.environ.get(ENV_SCORE_MIN, "").strip()
    if not text:
        return DEFAULT_SCORE_MIN
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise PointsError(
            f"{ENV_SCORE_MIN} = {text!r} : attendu un score entre 0 et 1 (par exemple 0,5)"
        )
    return value


def french_number(value: float) -> str:
    """0.5 -> '0,5' (a threshold in a message)."""
    return f"{value:g}".replace(".", ",")


def ban_columns(columns: Sequence[str]) -> tuple[str | None, str | None]:
    """The ``result_score`` and ``result_status`` columns of a BAN geocoder's CSV (None, None
    for another file)."""
    score = _find(columns, [BAN_SCORE])
    return score, (_find(columns, [BAN_STATUS]) if score else None)


def _normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def normalise_crs(crs: str | int | None) -> str | None:
    """'EPSG:4326' / 'EPSG:2154' from the usual spellings (None stays None: detect)."""
    if crs is None:
        return None
    text = re.sub(r"[^a-z0-9]", "", str(crs).lower())
    if text in {"4326", "epsg4326", "wgs84", "ogccrs84", "crs84", "lonlat"}:
        return WGS84
    if text in {"2154", "epsg2154", "l93", "lambert93", "rgf93", "rgf93lambert93"}:
        return LAMBERT93
    raise PointsError(
        f"Système de coordonnées non pris en charge : {crs} (attendu : WGS84 EPSG:4326 ou "
        "Lambert-93 EPSG:2154)"
    )


@dataclass
class PointsSource(Points):
    """A file of records opened in DuckDB, with its recognised columns.

    ``sql`` is a FROM item (``read_csv(...)`` or ``read_parquet(...)``); ``x`` / ``y`` are the
    coordinate columns, ``numeric`` whether they are typed as numbers (else parsed from text),
    ``crs`` the coordinate system (given or detected), ``identifiant`` the identifier column,
    ``extra`` the optional columns found (output name -> column or None).
    """

    path: Path | None = None
    identifiant: str | None = None
    extra: dict[str, str | None] = field(default_factory=dict)
    #: (encoding, separator) of a CSV, None for Parquet
    dialect: tuple[str, str] | None = None
    #: the BAN geocoder's score and status columns, None for another file
    score: str | None = None
    status: str | None = None


def _columns_of(con: Any, relation_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]


def _find(columns: Sequence[str], names: Sequence[str]) -> str | None:
    by_norm = {_normalise_name(c): c for c in reversed(columns)}
    for name in names:
        if name in by_norm:
            return by_norm[name]
    return None


def read_points(
    con: Any,
    path: Path | str,
    *,
    x: str | None = None,
    y: str | None = None,
    identifiant: str | None = None,
    crs: str | int | None = None,
    extra: dict[str, Sequence[str]] | None = None,
    checked: bool = True,
) -> PointsSource:
    """Open a CSV (``;``, ``,`` or tab; decimal point or comma) or Parquet file of records.

    With ``checked`` False the file is only opened and its columns found: the field counts
    and the CRS (when not given: ``crs`` None) are left to :func:`load_points`, which reads the
    file once for everything.

    Coordinate columns are found by name (``lon``/``longitude``/``x``..., ``lat``/
    ``latitude``/``y``...) unless given. The CRS is ``crs`` if given, else detected from the
    median absolute values of the first 100,000 rows: both at most 180 gives WGS84 (degrees,
    longitude first), values in the Lambert-93 range (in either order) give EPSG:2154.
    ``extra`` maps an output name to candidate column names (e.g. ``{"type": ["type"]}``).

    Raises:
        PointsError: missing file, unknown format, coordinate columns not found, CRS unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise PointsError(f"Fichier introuvable : {path}")
    suffix = path.suffix.lower()
    literal = sql_string(str(path))
    dialect = None
    if suffix in {".parquet", ".pq", ".geoparquet"}:
        sql = f"read_parquet({literal})"
    elif suffix in {".csv", ".txt", ".tsv"}:
        # the project's one encoding policy, and the separator and field count of every
        # record checked by the reading library (pipelines/lib/tables.py): a record of the wrong
        # field count would put its coordinates in another column, so the file is refused
        try:
            if checked:
                shape = csv_shape(path, path.name)
                if shape.misshapen_count:
                    raise PointsError(shape.message(path.name))
                dialect = (shape.encoding, shape.delimiter)
            else:
                dialect = csv_dialect(path, path.name)
        except IngestionError as err:
            raise PointsError(str(err)) from None
        sql = _csv_sql(path, dialect)
    else:
        raise PointsError(
            f"Format non pris en charge pour {path.name} : attendu .csv, .txt, .tsv ou .parquet"
        )
    try:
        described = _columns_of(con, sql)
    except Exception as err:  # noqa: BLE001
        if dialect is not None and not checked:
            _refuse_misshapen(path)
        raise PointsError(f"Lecture impossible de {path.name} : {err}") from None
    columns = [name for name, _ in described]
    types = dict(described)
    x_col = x or _find(columns, _X_NAMES)
    y_col = y or _find(columns, _Y_NAMES)
    for given, found, label in ((x, x_col, "x"), (y, y_col, "y")):
        if given is not None and given not in columns:
            raise PointsError(f"Colonne {given} absente de {path.name}")
        if found is None:
            raise PointsError(
                f"Colonne de coordonnée {label} (longitude/x) introuvable dans {path.name} ; "
                f"colonnes présentes : {', '.join(columns)}"
                if label == "x"
                else f"Colonne de coordonnée {label} (latitude/y) introuvable dans {path.name} ; "
                f"colonnes présentes : {', '.join(columns)}"
            )
    assert x_col is not None and y_col is not None
    numeric_types = ("DOUBLE", "FLOAT", "DECIMAL", "INTEGER", "BIGINT", "SMALLINT", "REAL")
    numeric = all(
        types[c].upper().startswith(numeric_types) or types[c].upper().startswith("HUGEINT")
        for c in (x_col, y_col)
    )
    id_col = identifiant or _find(columns, _ID_NAMES)
    extras = {
        name: _find(columns, [_normalise_name(n) for n in names])
        for name, names in (extra or {}).items()
    }
    chosen = normalise_crs(crs)
    if chosen is None and checked:
        chosen = _detect_crs(con, sql, x_col, y_col, numeric, path.name)
    score, status = ban_columns(columns)
    return PointsSource(
        path=path,
        sql=sql,
        columns=columns,
        x=x_col,
        y=y_col,
        numeric=numeric,
        crs=chosen,
        identifiant=id_col,
        extra=extras,
        types=types,
        dialect=dialect,
        score=score,
        status=status,
    )


def _csv_sql(path: Path, dialect: tuple[str, str], options: str = "") -> str:
    """The DuckDB FROM item of a CSV: every cell as text, the dialect of the reading library."""
    encoding, delimiter = dialect
    return (
        f"read_csv({sql_string(str(path))}, all_varchar = true, header = true, "
        f"encoding = '{encoding}', delim = {sql_string(delimiter)}, "
        f"quote = '\"', escape = '\"'{options})"
    )


def _detect_crs(con: Any, sql: str, x: str, y: str, numeric: bool, name: str) -> str:
    xs = sql_number(f"src.{quote_ident(x)}", numeric)
    ys = sql_number(f"src.{quote_ident(y)}", numeric)
    row = con.execute(
        f"""SELECT median(abs(_x)), median(abs(_y)), count(*) FROM (
            SELECT {xs} AS _x, {ys} AS _y FROM (SELECT * FROM {sql} LIMIT 100000) AS src
        ) WHERE _x IS NOT NULL AND _y IS NOT NULL AND NOT isnan(_x) AND NOT isnan(_y)
            AND NOT isinf(_x) AND NOT isinf(_y)"""
    ).fetchone()
    mx, my, n = row
    if not n:
        return WGS84
    if mx <= 180 and my <= 180:
        return WGS84
    low, high = sorted((mx, my))
    x0, y0, x1, y1 = emprise_lambert93()
    if x0 <= low <= x1 and y0 <= high <= y1:
        return LAMBERT93
    raise PointsError(
        f"Système de coordonnées non reconnu dans {name} (médianes |x| = {mx:g}, |y| = {my:g}) :"
        " indiquez-le (WGS84 EPSG:4326 ou Lambert-93 EPSG:2154)"
    )


# --------------------------------------------------------------------------------------------
# One reading of the file for everything (the asset's road)
# --------------------------------------------------------------------------------------------

#: Columns the loading adds to the temporary table (the input columns keep their names).
LINE = "_ligne"
X_NUMBER = "_lieux_x"
Y_NUMBER = "_lieux_y"
SCORE_NUMBER = "_lieux_score"
KEPT = "_lieux_retenu"


@dataclass
class LoadedPoints:
    """A file of places read once into the temporary table ``table``.

    ``table`` holds every record: ``_ligne`` (line in the file, 2 for the first record of a
    CSV), the input columns of ``columns``, the coordinates as numbers (``_lieux_x``,
    ``_lieux_y``), the BAN score (``_lieux_score``) and ``_lieux_retenu`` (false: score under
    the threshold or empty, never assigned). ``points`` is the relation of the kept records for
    :func:`geo.points.assignment_sql`; ``rows`` the records of the file; ``low_score`` those
    set aside for their score.
    """

    source: PointsSource
    table: str
    columns: list[str]
    points: Points
    rows: int
    low_score: int
    threshold: float | None


def load_points(
    con: Any,
    source: PointsSource,
    table: str = "_lieux_source",
    *,
    threshold: float | None = None,
) -> LoadedPoints:
    """Read ``source`` (from :func:`read_points`, ``checked`` False) once into the temporary
    table ``table``, with the checks of :func:`read_points`: a CSV record of the wrong field
    count refuses the file with the reading library's message (lines named), the CRS is
    detected on the first 100,000 records when not given.

    The coordinates are parsed once by the rule's own number reading
    (:func:`geo.points.sql_number`); the assignment then reads them as numbers, unless a cell
    is neither empty nor a number (the rule's motif needs the text then: it reads the text, as
    :func:`geo.points.assign_points` would). ``threshold`` (:func:`score_threshold` by default)
    applies to a BAN geocoder's file only.

    Raises:
        PointsError: file unreadable or misshapen, CRS unknown, threshold invalid.
    """
    path = source.path
    assert path is not None
    name = path.name
    first_line = 2 if source.dialect is not None else 1
    columns: list[str] = []
    for col in (
        source.identifiant,
        source.x,
        source.y,
        source.extra.get("type"),
        source.extra.get("dossier"),
        source.score,
        source.status,
    ):
        if col is not None and col not in columns:
            columns.append(col)
    clash = {LINE, X_NUMBER, Y_NUMBER, SCORE_NUMBER, KEPT} & set(columns)
    if clash:
        raise PointsError(f"{name} : colonne(s) au nom réservé : {', '.join(sorted(clash))}")
    if source.score is not None and threshold is None:
        threshold = score_threshold()
    relation = quote_ident(table)
    select = ", ".join(quote_ident(c) for c in columns)
    names = [(source.x, X_NUMBER), (source.y, Y_NUMBER)]
    if source.score is not None:
        names.append((source.score, SCORE_NUMBER))
        kept = f"coalesce({SCORE_NUMBER} >= {threshold!r}, false)"
    else:
        kept = "true"
    # the score is read as text whatever its type (a Parquet file may carry it as a number)
    numbers = [
        (_number(quote_ident(c), source.numeric and out != SCORE_NUMBER), out) for c, out in names
    ]
    casts = ", ".join(
        f"{step} AS {out}_{i}" for (steps, _), out in numbers for i, step in enumerate(steps)
    )
    parsed = ", ".join(
        "CASE "
        + " ".join(f"WHEN {out}_{i} IS NOT NULL THEN {out}_{i}" for i in range(len(steps)))
        + f" ELSE {full} END AS {out}"
        for (steps, full), out in numbers
    )
    if source.score is None:
        parsed += f", CAST(NULL AS DOUBLE) AS {SCORE_NUMBER}"

    def create(from_item: str) -> None:
        # the numbers are read in the scan's parallel pipeline, the lines numbered after it
        # (row_number over the file's order, as read_points + assign_points number them)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {relation} AS
            SELECT row_number() OVER () + {first_line - 1} AS {LINE}, * FROM (
                SELECT *, {kept} AS {KEPT} FROM (
                    SELECT {select}, {parsed} FROM (
                        SELECT {select}, {casts} FROM {from_item}
                    )
                )
            )"""
        )

    if source.dialect is None:
        _read_or_refuse(lambda: create(source.sql), name)
    else:
        errors, scans = f"{table}_erreurs", f"{table}_lectures"
        options = f", store_rejects = true, rejects_table = '{errors}', rejects_scan = '{scans}'"
        failure = None
        try:
            create(_csv_sql(path, source.dialect, options))
            misshapen = con.execute(f"SELECT count(*) FROM {quote_ident(errors)}").fetchone()[0]
        except Exception as err:  # noqa: BLE001 - DuckDB raises several error types
            failure, misshapen = err, 0
        finally:
            for rejects in (errors, scans):
                con.execute(f"DROP TABLE IF EXISTS {quote_ident(rejects)}")
        if misshapen or failure is not None:
            # DuckDB set records aside or could not read the file: the reading library names
            # the records of the wrong field count as every reader does; when it finds none,
            # the file is read as before, without setting anything aside
            con.execute(f"DROP TABLE IF EXISTS {relation}")
            _refuse_misshapen(path)
            _read_or_refuse(lambda: create(source.sql), name)
    rows, low = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE NOT {KEPT}) FROM {relation}"
    ).fetchone()
    crs = source.crs
    if crs is None:
        sample = f"(SELECT * FROM {relation} WHERE {LINE} < {first_line + 100000})"
        crs = _detect_crs(con, sample, X_NUMBER, Y_NUMBER, True, name)
    # numbers when every cell is empty or a number (the same rows, statuses and motifs)
    text_cells = 0
    if not source.numeric:
        text_cells = con.execute(
            f"""SELECT count(*) FROM {relation} WHERE {KEPT} AND (
                ({X_NUMBER} IS NULL AND trim(CAST({quote_ident(source.x)} AS VARCHAR)) <> '')
                OR ({Y_NUMBER} IS NULL AND trim(CAST({quote_ident(source.y)} AS VARCHAR)) <> '')
            )"""
        ).fetchone()[0]
    by_number = source.numeric or text_cells == 0
    points = Points(
        sql=f"(SELECT * FROM temp.{relation} WHERE {KEPT})",
        x=X_NUMBER if by_number and not source.numeric else source.x,
        y=Y_NUMBER if by_number and not source.numeric else source.y,
        crs=crs,
        numeric=by_number,
        columns=[LINE, *columns],
        types={**source.types, X_NUMBER: "DOUBLE", Y_NUMBER: "DOUBLE", LINE: "BIGINT"},
    )
    return LoadedPoints(
        source=source,
        table=table,
        columns=[LINE, *columns],
        points=points,
        rows=int(rows),
        low_score=int(low),
        threshold=threshold,
    )


def _number(expr: str, numeric: bool) -> tuple[list[str], str]:
    """The rule's number reading (:func:`geo.points.sql_number`) in steps: cheap casts first,
    the rule itself for the cells they do not read. ``(steps, rule)``: the value is the first
    step that is not NULL, else the rule.

    A cell DuckDB's cast reads ('2.5', ' 2.5 ', '1e5') is a number with no blank inside, which
    the rule reads as the same value; a cell without a point that DuckDB's cast reads once its
    commas are points ('2,5', ' 2,5') is what the rule reads too (it drops the points, none
    here, and turns the comma into a point). The rule's regular expressions (blanks inside,
    no-break spaces, '1.234,5') then run on the other cells only: on a file of 2 M decimal-comma
    coordinates, about 1.8 s of CPU instead of 7 (tests/test_lieux_reader.py checks the steps
    against the rule on every kind of cell).
    """
    if numeric:
        return [sql_number(expr, True)], "NULL"
    return [
        f"try_cast({expr} AS DOUBLE)",
        f"CASE WHEN contains({expr}, '.') THEN NULL "
        f"ELSE try_cast(replace({expr}, ',', '.') AS DOUBLE) END",
    ], sql_number(expr, False)


def _refuse_misshapen(path: Path) -> None:
    """PointsError with the reading library's message when records of ``path`` have the wrong
    field count (the lines named); nothing otherwise."""
    try:
        shape = csv_shape(path, path.name)
    except IngestionError as err:
        raise PointsError(str(err)) from None
    if shape.misshapen_count:
        raise PointsError(shape.message(path.name))


def _read_or_refuse(read, name: str) -> None:
    try:
        read()
    except PointsError:
        raise
    except Exception as err:  # noqa: BLE001 - DuckDB raises several error types
        raise PointsError(f"Lecture impossible de {name} : {err}") from None
