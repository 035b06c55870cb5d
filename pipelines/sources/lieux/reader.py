"""Files of places (équipements, lieux d'action, résidences des bénéficiaires) opened in DuckDB.

:func:`read_points` opens a CSV (``;``, ``,`` or tab; decimal point or comma; UTF-8 or UTF-16
with BOM, the policy of every reader: :func:`pipelines.lib.tables.text_encoding`) or Parquet
file as a DuckDB FROM item and finds its identifier, coordinate and optional columns by name,
and its coordinate system (given, or detected from the values). The result, a
:class:`PointsSource`, is what :func:`geo.points.assign_points` assigns to the QPV.
"""

from __future__ import annotations

import logging
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
from pipelines.lib.tables import IngestionError, csv_shape

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
) -> PointsSource:
    """Open a CSV (``;``, ``,`` or tab; decimal point or comma) or Parquet file of records.

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
    if suffix in {".parquet", ".pq", ".geoparquet"}:
        sql = f"read_parquet({literal})"
    elif suffix in {".csv", ".txt", ".tsv"}:
        # the project's one encoding policy, and the separator and field count of every
        # record checked by the reading library (pipelines/lib/tables.py): a record of the wrong
        # field count would put its coordinates in another column, so the file is refused
        try:
            shape = csv_shape(path, path.name)
        except IngestionError as err:
            raise PointsError(str(err)) from None
        if shape.misshapen_count:
            raise PointsError(shape.message(path.name))
        sql = (
            f"read_csv({literal}, all_varchar = true, header = true, "
            f"encoding = '{shape.encoding}', delim = {sql_string(shape.delimiter)}, "
            "quote = '\"', escape = '\"')"
        )
    else:
        raise PointsError(
            f"Format non pris en charge pour {path.name} : attendu .csv, .txt, .tsv ou .parquet"
        )
    try:
        described = _columns_of(con, sql)
    except Exception as err:  # noqa: BLE001
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
    chosen = normalise_crs(crs) or _detect_crs(con, sql, x_col, y_col, numeric, path.name)
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
