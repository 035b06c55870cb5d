"""Read the official QPV contours (ANCT / SIG Ville) and the official list of QPV.

Entry points:

* :func:`read_contours` reads a GeoJSON, GeoPackage, Shapefile or the official ANCT ZIP, validates
  the QPV codes (2015 or 2024 geography), normalises the commune codes, repairs invalid
  geometries, reprojects to WGS84 and computes areas and centroids in a projected CRS.
* :func:`read_liste_qpv` reads the list CSV ``listeqp2024-cog2024.csv``.
* :func:`to_duckdb` writes a contours GeoDataFrame into a DuckDB table with a GEOMETRY column.

Nothing is dropped silently: rows with an unusable code or geometry go to ``rejects`` with the
file, layer, 1-based feature index, column, raw value and reason.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from pyproj import CRS, Transformer

from geo.crs import WGS84, area_crs_for_code, crs_label, is_wgs84_geographic

logger = logging.getLogger(__name__)

SOURCE = "sig_ville"
REJECT_COLUMNS = ["source", "fichier", "feuille", "ligne", "colonne", "valeur_brute", "motif"]
OUTPUT_COLUMNS = [
    "code_qpv",
    "libelle_qpv",
    "geographie",
    "insee_com",
    "lib_com",
    "surface_km2",
    "crs_surface",
    "centroide_lon",
    "centroide_lat",
    "geometrie_reparee",
    "source_fichier",
    "source_couche",
    "crs_source",
    "geometry",
]
LISTE_COLUMNS = [
    "code_qpv",
    "libelle_qpv",
    "insee_reg",
    "lib_reg",
    "insee_dep",
    "lib_dep",
    "insee_com",
    "lib_com",
    "siren_epci",
    "lib_epci",
]

RE_CODE_2015 = re.compile(r"^QP(\d{3}|02[AB])\d{3}$")
RE_CODE_2024 = re.compile(r"^QN(\d{3}|02[AB])\d{2}[NMIC]$")
RE_INSEE_COM = re.compile(r"^(\d{5}|2[AB]\d{3})$")

#: Relative area change above which a repair is flagged in the report.
AREA_CHANGE_WARNING = 0.01

#: Format families looked for in a ZIP, in order of preference.
ZIP_FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    ("GPKG", (".gpkg",)),
    ("GEOJSON", (".geojson", ".json")),
    ("SHP", (".shp",)),
]

# Normalised column names (lower case, no accents, "_" separators) for each target attribute.
_CODE_NAMES = {
    "code_qp",
    "code_qpv",
    "codeqp",
    "codeqpv",
    "cod_qp",
    "code_quartier",
    "code_quart",
    "id_qp",
    "qp",
    "qpv",
    "quartier",
}
_LIB_NAMES = {
    "lib_qp",
    "lib_qpv",
    "nom_qp",
    "nom_qpv",
    "libelle",
    "libelle_qp",
    "libelle_qpv",
    "libelle_quartier",
    "lib_quartier",
    "nom_quartier",
    "nom",
}
_INSEE_NAMES = {
    "insee_com",
    "insee_comm",
    "insee",
    "code_insee",
    "codeinsee",
    "com_insee",
    "codgeo",
    "depcom",
    "code_com",
    "cod_com",
    "code_commune",
    "code_commu",
    "insee_commune",
}
_LIBCOM_NAMES = {
    "lib_com",
    "nom_com",
    "nom_commune",
    "nom_commu",
    "lib_commune",
    "lib_commun",
    "libelle_commune",
    "libelle_com",
    "libelle_co",
}
# Columns holding communes either as INSEE codes or as names (2015 layers: ``commune_qp``).
_COMMUNE_NAMES = {"commune_qp", "commune", "communes", "commune_q", "communes_qp"}


class ContoursError(ValueError):
    """Raised when a contours file cannot be read safely (the message is in French)."""


@dataclass
class ContoursResult:
    """Result of :func:`read_contours`.

    Attributes:
        qpv: one row per QPV code, columns :data:`OUTPUT_COLUMNS`, CRS EPSG:4326.
        rejects: rows that could not be loaded, columns :data:`REJECT_COLUMNS`.
        report: one dict per file/layer read (fichier, couche, crs_source, lus, charges,
            invalides, repares, rejetes, doublons, fusionnes, ecart_surface_max_pct,
            avertissements).
    """

    qpv: gpd.GeoDataFrame
    rejects: pd.DataFrame
    report: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Codes and text normalisation
# --------------------------------------------------------------------------------------------


def geographie_of_code(code: str | None) -> str | None:
    """Return '2015' or '2024' according to the QPV code pattern, None if it matches neither."""
    if not code:
        return None
    if RE_CODE_2024.match(code):
        return "2024"
    if RE_CODE_2015.match(code):
        return "2015"
    return None


def unescape_excel(value: str) -> str:
    """Remove Excel text escaping: ``="60057"`` (and its CSV-quoted form) gives ``60057``.

    The raw CSV field (``"=""60057"`` followed by three double quotes) is handled as well.
    """
    text = value.strip()
    while True:
        previous = text
        if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
            text = text[1:-1].replace('""', '"').strip()
        if text.startswith("="):
            text = text[1:].strip()
        if text == previous:
            return text


def clean_text(value: Any) -> str | None:
    """Turn a raw cell into a stripped, unescaped string (None for empty / missing values)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, np.integer | np.floating):
        return clean_text(value.item())
    text = unescape_excel(str(value))
    return text or None


def _normalise_code_token(token: str, width: int) -> str | None:
    """Normalise one numeric code token: strip quotes, ``.0`` suffixes, restore leading zeros."""
    token = token.replace('"', "").replace("=", "").strip().upper()
    if not token:
        return None
    if re.fullmatch(r"\d+\.0+", token):
        token = token.split(".")[0]
    if token.isdigit() and len(token) < width:
        token = token.zfill(width)
    return token


def split_codes(value: Any, width: int = 5) -> list[str]:
    """Split a multi-valued code field (``;``, ``,`` or blanks) into normalised codes."""
    text = clean_text(value)
    if text is None:
        return []
    tokens = re.split(r"[;,\s]+", text)
    codes = [_normalise_code_token(tok, width) for tok in tokens]
    return [code for code in codes if code]


def split_names(value: Any) -> list[str]:
    """Split a multi-valued name field on ``;`` (or on ``,`` when there is no ``;``).

    Empty names are kept as empty strings so that positions still match the codes (the national
    2024 layer has ``insee_com = "93059; 93072"`` with ``lib_com = "; Stains"``).
    """
    text = clean_text(value)
    if text is None:
        return []
    separator = ";" if ";" in text else ","
    return [unescape_excel(part).strip() for part in text.split(separator)]


def normalise_pairs(
    codes_value: Any, names_value: Any, width: int = 5
) -> tuple[str | None, str | None]:
    """Normalise a (codes, names) pair of multi-valued fields, e.g. insee_com / lib_com.

    Codes get their leading zeros back and Excel escaping removed. When there are as many codes
    as names the pairs are sorted by code (a stable order whatever the source order) and
    de-duplicated, so that the i-th name is still the name of the i-th code; otherwise both
    lists keep their source order. Both are joined with ``;``.
    """
    codes = split_codes(codes_value, width)
    names = split_names(names_value)
    if codes and len(codes) == len(names):
        pairs = sorted(dict.fromkeys(zip(codes, names, strict=True)))
        codes = [code for code, _ in pairs]
        names = [name for _, name in pairs]
    else:
        codes = list(dict.fromkeys(codes))
    return (";".join(codes) or None, ";".join(names) if any(names) else None)


def communes_incomplete(insee_com: str | None, lib_com: str | None) -> bool:
    """True when INSEE codes are given but some commune names are missing or unmatched."""
    if not insee_com:
        return False
    if not lib_com:
        return True
    names = lib_com.split(";")
    return len(names) != len(insee_com.split(";")) or not all(names)


def normalise_departement(value: Any) -> str | None:
    """Normalise département codes: '1' -> '01', '2a' -> '2A', '971' kept; several joined by ;."""
    out: list[str] = []
    for token in split_codes(value, width=0):
        if token.isdigit():
            number = int(token)
            token = f"{number:02d}" if number < 100 else str(number)
        out.append(token)
    return ";".join(dict.fromkeys(out)) or None


def _normalise_simple_codes(value: Any, width: int) -> str | None:
    codes = split_codes(value, width)
    return ";".join(dict.fromkeys(codes)) or None


def _normalise_name(name: str) -> str:
    """Normalise a column name for matching: lower case, no accents, ``_`` separators."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# --------------------------------------------------------------------------------------------
# Column recognition
# --------------------------------------------------------------------------------------------


def _share_matching(values: Iterable[Any], predicate: Any) -> float:
    texts = [t for t in (clean_text(v) for v in values) if t is not None]
    if not texts:
        return 0.0
    return sum(1 for t in texts if predicate(t)) / len(texts)


def _is_qpv_code(text: str) -> bool:
    return geographie_of_code(text.upper()) is not None


def _is_insee_list(text: str) -> bool:
    codes = split_codes(text)
    return bool(codes) and all(RE_INSEE_COM.match(code) for code in codes)


def _map_columns(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, str | None]:
    """Find the source columns for code, libelle, insee_com and lib_com (None when absent)."""
    normalised = {col: _normalise_name(col) for col in columns}
    mapping: dict[str, str | None] = {"code": None, "libelle": None, "insee": None, "libcom": None}
    used: set[str] = set()

    def pick(key: str, predicate: Any) -> None:
        if mapping[key] is not None:
            return
        for col in columns:
            if col not in used and predicate(normalised[col]):
                mapping[key] = col
                used.add(col)
                return

    pick("code", lambda n: n in _CODE_NAMES or n.startswith(("code_q", "cod_q")))
    pick("insee", lambda n: n in _INSEE_NAMES)
    pick("libcom", lambda n: n in _LIBCOM_NAMES)
    # 2015 layers: `commune_qp` holds names (or codes): decide from the values.
    for col in columns:
        if col in used or normalised[col] not in _COMMUNE_NAMES:
            continue
        key = "insee" if _share_matching(frame[col].head(200), _is_insee_list) >= 0.8 else "libcom"
        if mapping[key] is None:
            mapping[key] = col
            used.add(col)
    pick(
        "libelle",
        lambda n: n in _LIB_NAMES or n.startswith(("lib_q", "nom_q", "libelle_q", "libelle")),
    )
    if mapping["code"] is None:
        # Unknown name: take the column whose values look like QPV codes.
        best, best_share = None, 0.0
        for col in columns:
            if col in used:
                continue
            share = _share_matching(frame[col].head(500), _is_qpv_code)
            if share > best_share:
                best, best_share = col, share
        if best is not None and best_share >= 0.5:
            mapping["code"] = best
            used.add(best)
    return mapping


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def _transform(geoms: np.ndarray, source: str, target: str) -> np.ndarray:
    transformer = _transformer(source, target)

    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, apply)


def polygonal_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal parts of each geometry and return MultiPolygons (empty if none).

    Points and lines produced by ``make_valid`` inside GeometryCollections are dropped.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.empty(len(geoms), dtype=object)
    out[:] = [shapely.MultiPolygon() for _ in range(len(geoms))]
    present = ~shapely.is_missing(geoms)
    if not present.any():
        return out
    positions = np.flatnonzero(present)
    parts, index = shapely.get_parts(geoms[present], return_index=True)
    # A second pass flattens MultiPolygons that were nested in GeometryCollections.
    parts, index2 = shapely.get_parts(parts, return_index=True)
    index = index[index2]
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, index = parts[keep], index[keep]
    if len(parts):
        # shapely wants dense indices: a geometry with no polygonal part leaves a gap
        owners, dense = np.unique(index, return_inverse=True)
        multi = shapely.multipolygons(parts, indices=dense)
        out[positions[owners]] = multi
    return out


def _fallback_utm(geom: shapely.Geometry) -> str:
    """WGS 84 / UTM zone of a geometry's centre, for territories without a listed CRS."""
    point = geom.representative_point()
    zone = int((point.x + 180) // 6) % 60 + 1
    return f"EPSG:{(32600 if point.y >= 0 else 32700) + zone}"


def _area_crs(codes: Sequence[str], geoms_wgs84: np.ndarray) -> np.ndarray:
    labels = [
        area_crs_for_code(code) or _fallback_utm(geom)
        for code, geom in zip(codes, geoms_wgs84, strict=True)
    ]
    return np.array(labels, dtype=object)


def _project_by_crs(geoms_wgs84: np.ndarray, crs_labels: np.ndarray) -> np.ndarray:
    projected = np.empty(len(geoms_wgs84), dtype=object)
    for label in pd.unique(crs_labels):
        mask = crs_labels == label
        projected[mask] = _transform(geoms_wgs84[mask], WGS84, label)
    return projected


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class _LayerSource:
    ogr_path: str
    fichier: str
    couche: str | None


def _layers_of(ogr_path: str, fichier: str) -> list[_LayerSource]:
    try:
        layers = pyogrio.list_layers(ogr_path)
    except Exception as exc:  # pyogrio raises several error types
        raise ContoursError(f"Lecture impossible du fichier {fichier} : {exc}") from exc
    sources = []
    for name, geometry_type in layers:
        if geometry_type is None:
            logger.warning("Couche %s de %s sans géométrie : ignorée", name, fichier)
            continue
        sources.append(_LayerSource(ogr_path, fichier, str(name)))
    if not sources:
        raise ContoursError(f"Aucune couche géographique dans le fichier {fichier}")
    return sources


def _zip_sources(path: Path) -> list[_LayerSource]:
    with zipfile.ZipFile(path) as archive:
        members = [
            name
            for name in archive.namelist()
            if not name.endswith("/")
            and "__MACOSX" not in name
            and not Path(name).name.startswith(".")
        ]
    for _family, extensions in ZIP_FAMILIES:
        chosen = sorted(m for m in members if m.lower().endswith(extensions))
        if chosen:
            sources: list[_LayerSource] = []
            for member in chosen:
                ogr_path = f"/vsizip/{path.resolve()}/{member}"
                sources.extend(_layers_of(ogr_path, f"{path.name}/{member}"))
            return sources
    raise ContoursError(
        f"L'archive {path.name} ne contient aucun fichier GPKG, GeoJSON ou Shapefile"
    )


def _sources(path: Path) -> list[_LayerSource]:
    if not path.exists():
        raise ContoursError(f"Fichier introuvable : {path}")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _zip_sources(path)
    if suffix in {".geojson", ".json", ".gpkg", ".shp"}:
        return _layers_of(str(path), path.name)
    raise ContoursError(
        f"Format non pris en charge pour {path.name} : attendu .geojson, .json, .gpkg, .shp ou .zip"
    )


# --------------------------------------------------------------------------------------------
# Reading one layer
# --------------------------------------------------------------------------------------------


@dataclass
class _LayerResult:
    frame: pd.DataFrame  # normalised rows, geometry in EPSG:4326 (numpy object array column)
    rejects: list[dict[str, Any]]
    report: dict[str, Any]
    geographic: bool


def _reject(source: _LayerSource, ligne: int, colonne: str, valeur: Any, motif: str) -> dict:
    return {
        "source": SOURCE,
        "fichier": source.fichier,
        "feuille": source.couche,
        "ligne": ligne,
        "colonne": colonne,
        "valeur_brute": "" if valeur is None else str(valeur),
        "motif": motif,
    }


def _short_wkt(geom: Any) -> str:
    if geom is None:
        return ""
    return shapely.to_wkt(geom, rounding_precision=6)[:120]


def _read_layer(source: _LayerSource) -> _LayerResult:
    where = f"{source.fichier} (couche {source.couche})"
    try:
        frame = pyogrio.read_dataframe(source.ogr_path, layer=source.couche)
    except Exception as exc:
        raise ContoursError(f"Lecture impossible de {where} : {exc}") from exc
    if frame.crs is None:
        raise ContoursError(
            f"Système de coordonnées (CRS) absent pour {where} : le fichier ne déclare pas sa "
            "projection (fichier .prj manquant ?). Impossible de deviner le CRS : fournissez le "
            "fichier avec sa projection."
        )
    crs = CRS.from_user_input(frame.crs)
    label = crs_label(crs) or str(crs)
    geographic = is_wgs84_geographic(crs)
    n_rows = len(frame)
    geoms_src = np.asarray(frame.geometry.values, dtype=object)
    if crs.is_geographic and n_rows:
        minx, miny, maxx, maxy = shapely.total_bounds(geoms_src)
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise ContoursError(
                f"Coordonnées incompatibles avec le CRS déclaré ({label}) dans {where} : "
                "des valeurs sortent des bornes en degrés. Le CRS déclaré est probablement faux."
            )

    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    mapping = _map_columns(attributes, list(attributes.columns))
    if mapping["code"] is None:
        raise ContoursError(
            f"Aucune colonne de code QPV reconnue dans {where} ; colonnes présentes : "
            f"{', '.join(map(str, attributes.columns))}"
        )
    code_col = mapping["code"]

    def column(key: str) -> list[Any]:
        col = mapping[key]
        return [None] * n_rows if col is None else attributes[col].tolist()

    raw_codes = column("code")
    codes = [(clean_text(v) or "").upper() for v in raw_codes]
    geographies = [geographie_of_code(c) for c in codes]
    libelles = [clean_text(v) for v in column("libelle")]
    communes = [
        normalise_pairs(c, n) for c, n in zip(column("insee"), column("libcom"), strict=True)
    ]

    rejects: list[dict[str, Any]] = []
    valid_code = np.array([g is not None for g in geographies], dtype=bool)
    for i in np.flatnonzero(~valid_code):
        motif = (
            "code QPV absent"
            if not codes[i]
            else "code QPV invalide : ne correspond ni au format 2015 (QPdddnnn) ni au format "
            "2024 (QNdddnnL)"
        )
        rejects.append(_reject(source, int(i) + 1, str(code_col), raw_codes[i], motif))

    # Geometry: missing / empty, then repair, reprojection and polygonal extraction.
    missing = shapely.is_missing(geoms_src) | shapely.is_empty(geoms_src)
    for i in np.flatnonzero(valid_code & missing):
        rejects.append(
            _reject(
                source,
                int(i) + 1,
                "geometry",
                _short_wkt(geoms_src[i]),
                "géométrie absente ou vide",
            )
        )
    usable = valid_code & ~missing
    invalid_src = usable & ~shapely.is_valid(geoms_src)
    geoms = geoms_src.copy()
    if not geographic:
        geoms[usable] = _transform(
            geoms_src[usable], label if ":" in label else crs.to_wkt(), WGS84
        )
    invalid_wgs84 = usable & ~shapely.is_valid(geoms)
    to_repair = invalid_src | invalid_wgs84
    repaired = geoms.copy()
    if to_repair.any():
        repaired[to_repair] = shapely.make_valid(geoms[to_repair])
    repaired[usable] = polygonal_multipolygons(repaired[usable])

    failed = usable & (shapely.is_empty(repaired) | ~shapely.is_valid(repaired))
    for i in np.flatnonzero(failed):
        if shapely.is_empty(repaired[i]):
            motif = "géométrie sans partie surfacique (vide après réparation)"
        else:
            motif = f"géométrie invalide après réparation : {shapely.is_valid_reason(repaired[i])}"
        motif = f"{codes[i]} : {motif}"
        rejects.append(_reject(source, int(i) + 1, "geometry", _short_wkt(geoms_src[i]), motif))
    loaded = usable & ~failed
    repaired_ok = to_repair & loaded

    # Area change caused by the repair, measured in the projected CRS used for surfaces.
    warnings: list[str] = []
    max_change = 0.0
    if repaired_ok.any():
        idx = np.flatnonzero(repaired_ok)
        crs_labels = _area_crs([codes[i] for i in idx], repaired[idx])
        before = shapely.area(_project_by_crs(geoms[idx], crs_labels))
        after = shapely.area(_project_by_crs(repaired[idx], crs_labels))
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.where(before > 0, (after - before) / before, np.nan)
        if np.isfinite(change).any():
            max_change = float(np.nanmax(np.abs(change)))
        for i, delta in zip(idx, change, strict=True):
            if np.isfinite(delta) and abs(delta) > AREA_CHANGE_WARNING:
                warnings.append(
                    f"{codes[i]} : la réparation de la géométrie change la surface de "
                    f"{delta * 100:+.2f} %"
                )

    rows = np.flatnonzero(loaded)
    out = pd.DataFrame(
        {
            "code_qpv": [codes[i] for i in rows],
            "libelle_qpv": [libelles[i] for i in rows],
            "geographie": [geographies[i] for i in rows],
            "insee_com": [communes[i][0] for i in rows],
            "lib_com": [communes[i][1] for i in rows],
            "geometrie_reparee": repaired_ok[rows],
            "source_fichier": source.fichier,
            "source_couche": source.couche,
            "crs_source": label,
            "geometry": repaired[rows],
        }
    )
    incomplete = [
        code
        for code, (insee, names) in zip(
            out["code_qpv"], out[["insee_com", "lib_com"]].values, strict=True
        )
        if communes_incomplete(insee, names)
    ]
    if incomplete:
        warnings.append(
            f"{len(incomplete)} QPV avec des noms de communes manquants ou en nombre différent "
            f"des codes INSEE (laissés tels quels) : {', '.join(incomplete)}"
        )
    out, merged = _merge_duplicate_codes(out)
    if merged:
        warnings.append(
            f"{merged} entité(s) portant un code déjà présent dans la couche ont été fusionnées "
            "avec la première entité de même code"
        )
    for message in warnings:
        logger.warning("%s : %s", where, message)
    report = {
        "fichier": source.fichier,
        "couche": source.couche,
        "crs_source": label,
        "lus": n_rows,
        "charges": len(out),
        "invalides": int(to_repair.sum()),
        "repares": int(repaired_ok.sum()),
        "rejetes": len(rejects),
        "doublons": 0,
        "fusionnes": merged,
        "ecart_surface_max_pct": round(max_change * 100, 6),
        "avertissements": warnings,
    }
    return _LayerResult(out, rejects, report, geographic)


def _merge_duplicate_codes(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Merge features sharing a code inside one layer (union of their polygons)."""
    duplicated = frame["code_qpv"].duplicated(keep=False)
    if not duplicated.any():
        return frame, 0
    merged_count = int(frame["code_qpv"].duplicated().sum())
    firsts = frame.drop_duplicates("code_qpv").set_index("code_qpv")
    for code, group in frame[duplicated].groupby("code_qpv", sort=False):
        union = shapely.union_all(np.asarray(group["geometry"].tolist(), dtype=object))
        firsts.at[code, "geometry"] = polygonal_multipolygons(np.array([union], dtype=object))[0]
        firsts.at[code, "geometrie_reparee"] = bool(group["geometrie_reparee"].any())
    return firsts.reset_index(), merged_count


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def read_contours(path: Path | str) -> ContoursResult:
    """Read QPV contours from a GeoJSON, GeoPackage (all layers), Shapefile or ANCT ZIP.

    In a ZIP only one format family is read (GPKG, else GeoJSON, else Shapefile). When several
    layers hold the same code, one row is kept: from a WGS84 layer if there is one, else from the
    first layer; the other rows are counted as ``doublons`` in their layer's report entry.

    Raises:
        ContoursError: missing file, unsupported format, missing CRS, no QPV code column.
    """
    path = Path(path)
    layers = [_read_layer(source) for source in _sources(path)]

    # Preferred layers first: WGS84 ones (the national layer covering everything), then file order.
    order = sorted(range(len(layers)), key=lambda i: (not layers[i].geographic, i))
    seen: dict[str, int] = {}
    frames = []
    for i in order:
        layer = layers[i]
        frame = layer.frame
        dup_mask = frame["code_qpv"].isin(seen.keys()).to_numpy()
        if dup_mask.any():
            kept_in = pd.Series([seen[c] for c in frame.loc[dup_mask, "code_qpv"]]).value_counts()
            layer.report["doublons"] = int(dup_mask.sum())
            for other, count in kept_in.items():
                message = (
                    f"{count} code(s) déjà chargé(s) depuis la couche "
                    f"{layers[other].report['couche']} ({layers[other].report['fichier']}) : "
                    "lignes écartées"
                )
                layer.report["avertissements"].append(message)
            frame = frame[~dup_mask]
            layer.report["charges"] = len(frame)
        seen.update(dict.fromkeys(frame["code_qpv"], i))
        frames.append(frame)

    columns = [
        c
        for c in OUTPUT_COLUMNS
        if c not in {"surface_km2", "crs_surface", "centroide_lon", "centroide_lat"}
    ]
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    combined = combined.sort_values("code_qpv", kind="stable").reset_index(drop=True)
    qpv = _with_measures(combined)
    rejects = pd.DataFrame(
        [r for layer in layers for r in layer.rejects], columns=REJECT_COLUMNS
    ).astype({"ligne": "int64"})
    return ContoursResult(qpv=qpv, rejects=rejects, report=[layer.report for layer in layers])


def _with_measures(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """Add surface_km2, crs_surface and the centroid (computed in the projected CRS)."""
    geoms = np.asarray(frame["geometry"].tolist(), dtype=object)
    n = len(frame)
    surface = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    crs_labels = _area_crs(frame["code_qpv"].tolist(), geoms) if n else np.array([], object)
    for label in pd.unique(crs_labels):
        mask = crs_labels == label
        projected = _transform(geoms[mask], WGS84, label)
        surface[mask] = shapely.area(projected) / 1e6
        centroids = shapely.centroid(projected)
        x, y = _transformer(label, WGS84).transform(
            shapely.get_x(centroids), shapely.get_y(centroids)
        )
        lon[mask], lat[mask] = x, y
    out = frame.drop(columns="geometry").assign(
        surface_km2=surface,
        crs_surface=crs_labels,
        centroide_lon=lon,
        centroide_lat=lat,
        geometrie_reparee=frame["geometrie_reparee"].astype(bool),
    )
    text_columns = [
        "code_qpv",
        "libelle_qpv",
        "geographie",
        "insee_com",
        "lib_com",
        "source_fichier",
        "source_couche",
        "crs_source",
    ]
    out[text_columns] = out[text_columns].astype(object)
    gdf = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)
    return gdf[OUTPUT_COLUMNS]


def read_liste_qpv(path: Path | str) -> pd.DataFrame:
    """Read the official list of QPV (``listeqp2024-cog2024.csv``: ``;``, UTF-8 with BOM).

    Column names are matched case-insensitively. Codes are restored (leading zeros of insee_com,
    insee_reg, insee_dep, siren_epci; Excel escaping ``="60057"`` removed); multi-valued fields
    (several communes or EPCI in one quoted field) are joined with ``;`` in the same order as their
    labels. Rows whose QPV code is invalid are not returned: they are listed, with the CSV line
    number (header = line 1), in ``result.attrs["rejets"]`` (columns :data:`REJECT_COLUMNS`).
    """
    path = Path(path)
    if not path.exists():
        raise ContoursError(f"Fichier introuvable : {path}")
    read_options = {"sep": ";", "dtype": str, "keep_default_na": False}
    try:
        raw = pd.read_csv(path, encoding="utf-8-sig", **read_options)
    except UnicodeDecodeError:
        logger.warning("%s n'est pas en UTF-8 : lecture en Windows-1252", path.name)
        raw = pd.read_csv(path, encoding="cp1252", **read_options)
    names = {_normalise_name(c): c for c in raw.columns}
    aliases = {
        "code_qpv": ["code_qp", "code_qpv", "code_quartier", "codeqp"],
        "libelle_qpv": ["lib_qp", "nom_qp", "libelle_qp", "libelle", "lib_qpv", "nom_qpv"],
        "insee_reg": ["insee_reg", "reg", "code_reg", "code_region"],
        "lib_reg": ["lib_reg", "nom_reg", "libelle_reg", "region"],
        "insee_dep": ["insee_dep", "dep", "code_dep", "code_departement"],
        "lib_dep": ["lib_dep", "nom_dep", "libelle_dep", "departement"],
        "insee_com": ["insee_com", "code_insee", "depcom", "codgeo", "code_commune"],
        "lib_com": ["lib_com", "nom_com", "libelle_com", "commune", "nom_commune"],
        "siren_epci": ["siren_epci", "epci", "code_epci"],
        "lib_epci": ["lib_epci", "nom_epci", "libelle_epci"],
    }
    source: dict[str, str | None] = {
        target: next((names[a] for a in options if a in names), None)
        for target, options in aliases.items()
    }
    if source["code_qpv"] is None:
        raise ContoursError(
            f"Aucune colonne de code QPV (code_qp) dans {path.name} ; colonnes présentes : "
            f"{', '.join(raw.columns)}"
        )

    def col(target: str) -> list[Any]:
        name = source[target]
        return [None] * len(raw) if name is None else raw[name].tolist()

    codes = [(clean_text(v) or "").upper() for v in col("code_qpv")]
    communes = [
        normalise_pairs(c, n) for c, n in zip(col("insee_com"), col("lib_com"), strict=True)
    ]
    epci = [
        normalise_pairs(c, n, width=9)
        for c, n in zip(col("siren_epci"), col("lib_epci"), strict=True)
    ]
    out = pd.DataFrame(
        {
            "code_qpv": codes,
            "libelle_qpv": [clean_text(v) for v in col("libelle_qpv")],
            "insee_reg": [_normalise_simple_codes(v, 2) for v in col("insee_reg")],
            "lib_reg": [clean_text(v) for v in col("lib_reg")],
            "insee_dep": [normalise_departement(v) for v in col("insee_dep")],
            "lib_dep": [clean_text(v) for v in col("lib_dep")],
            "insee_com": [c for c, _ in communes],
            "lib_com": [n for _, n in communes],
            "siren_epci": [c for c, _ in epci],
            "lib_epci": [n for _, n in epci],
        },
        dtype=object,
    )
    valid = np.array([geographie_of_code(c) is not None for c in codes], dtype=bool)
    rejects = pd.DataFrame(
        [
            {
                "source": SOURCE,
                "fichier": path.name,
                "feuille": None,
                "ligne": int(i) + 2,
                "colonne": source["code_qpv"],
                "valeur_brute": raw[source["code_qpv"]].iloc[i],
                "motif": "code QPV absent" if not codes[i] else "code QPV invalide",
            }
            for i in np.flatnonzero(~valid)
        ],
        columns=REJECT_COLUMNS,
    )
    result = out[valid].reset_index(drop=True)
    result.attrs["rejets"] = rejects
    return result


def _quote_table(table: str) -> str:
    parts = table.split(".")
    if not all(parts):
        raise ValueError(f"Nom de table invalide : {table!r}")
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def to_duckdb(gdf: gpd.GeoDataFrame, con: Any, table: str) -> None:
    """Write a GeoDataFrame into ``table`` (replaced) of an open DuckDB connection.

    The geometry goes through WKB and ``ST_GeomFromWKB``: the spatial extension must already be
    loaded on ``con``. Column order is kept; the geometry column keeps its name. The coordinates
    are written as they are (EPSG:4326 lon/lat for :func:`read_contours` output).
    """
    geometry_name = gdf.geometry.name
    frame = pd.DataFrame(gdf.drop(columns=geometry_name))
    frame[geometry_name] = shapely.to_wkb(np.asarray(gdf.geometry.values, dtype=object))
    arrow_table = pa.Table.from_pandas(frame, preserve_index=False)
    view = f"_geo_import_{uuid.uuid4().hex}"
    con.register(view, arrow_table)
    try:
        geom = '"' + geometry_name.replace('"', '""') + '"'
        con.execute(
            f"CREATE OR REPLACE TABLE {_quote_table(table)} AS "
            f"SELECT * REPLACE (ST_GeomFromWKB({geom}) AS {geom}) FROM {view}"
        )
    finally:
        con.unregister(view)
