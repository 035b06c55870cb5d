"""Reader of the SIG Ville files: the official QPV contours and the official list of QPV.

* :func:`read_contours` reads a GeoJSON, GeoPackage (every layer), Shapefile or the official
  ANCT ZIP (``SHP/``, ``GEOJSON/``, ``GPKG/``: one format family read), recognises the attribute
  columns (:mod:`.attributes`), validates the QPV codes (2015 or 2024 geography) and normalises
  the commune codes; the geometry (CRS checks, repair, reprojection to WGS84, areas and
  centroids in a projected CRS) is :mod:`geo.contours`'s.
* :func:`read_liste_qpv` reads the list CSV ``listeqp2024-cog2024.csv`` (``;``, UTF-8 with BOM)
  through :func:`pipelines.lib.tables.read_tables`.

Nothing is dropped silently: rows with an unusable code or geometry go to ``rejects`` with the
file, layer, 1-based feature index, column, raw value and reason.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from geo.contours import (
    OUTPUT_COLUMNS,
    layer_crs,
    merge_duplicate_codes,
    repair_layer,
    with_measures,
)
from geo.contours import ContoursError as GeoContoursError
from pipelines.lib.codes import geographie_of
from pipelines.lib.raw_schemas import REJECT_COLUMNS
from pipelines.lib.tables import IngestionError, check_unique_header, read_tables
from pipelines.sources.sig_ville.attributes import (
    clean_text,
    communes_incomplete,
    departements,
    map_columns,
    normalise_name,
    normalise_pairs,
    simple_codes,
)

logger = logging.getLogger(__name__)

SOURCE = "sig_ville"
CONTOURS_SUFFIXES = frozenset({".geojson", ".json", ".gpkg", ".shp", ".zip"})
#: Files read with a Shapefile (never reported as not read).
SHAPEFILE_PARTS = frozenset(
    {".dbf", ".shx", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd", ".shp.xml", ".xml"}
)
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

#: Format families looked for in a ZIP, in order of preference.
ZIP_FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    ("GPKG", (".gpkg",)),
    ("GEOJSON", (".geojson", ".json")),
    ("SHP", (".shp",)),
]


class ContoursError(IngestionError, GeoContoursError):
    """A contours or list file cannot be read safely (the message is in French)."""


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


def layer_sources(path: Path) -> list[_LayerSource]:
    """The geographic layers of a contours file (every layer of a GeoPackage, one format family
    of a ZIP), each with its GDAL path, file name and layer name; the commune contours reader
    (:mod:`pipelines.sources.communes`) opens its files through it.

    Raises:
        ContoursError: missing or unreadable file, unsupported format, no geographic layer.
    """
    return _sources(path)


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


def _read_layer(source: _LayerSource) -> _LayerResult:
    where = f"{source.fichier} (couche {source.couche})"
    try:
        frame = pyogrio.read_dataframe(source.ogr_path, layer=source.couche)
    except Exception as exc:
        raise ContoursError(f"Lecture impossible de {where} : {exc}") from exc
    try:
        crs, label, geographic = layer_crs(frame, where)
    except GeoContoursError as err:
        raise ContoursError(str(err)) from None
    n_rows = len(frame)
    geoms_src = np.asarray(frame.geometry.values, dtype=object)

    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    mapping = map_columns(attributes, list(attributes.columns))
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
    geographies = [geographie_of(c) for c in codes]
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

    # geometry: missing / empty, then repair, reprojection and polygonal extraction (geo)
    geometry = repair_layer(geoms_src, crs, label, geographic, codes, valid_code)
    for i, colonne, valeur, motif in geometry.rejects:
        rejects.append(_reject(source, i + 1, colonne, valeur, motif))
    warnings = list(geometry.warnings)
    repaired, repaired_ok = geometry.geometries, geometry.repaired

    rows = np.flatnonzero(geometry.loaded)
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
    out, merged = merge_duplicate_codes(out)
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
        "invalides": geometry.invalid,
        "repares": int(repaired_ok.sum()),
        "rejetes": len(rejects),
        "doublons": 0,
        "fusionnes": merged,
        "ecart_surface_max_pct": round(geometry.max_change * 100, 6),
        "avertissements": warnings,
    }
    return _LayerResult(out, rejects, report, geographic)


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
    qpv = with_measures(combined)
    rejects = pd.DataFrame(
        [r for layer in layers for r in layer.rejects], columns=REJECT_COLUMNS
    ).astype({"ligne": "int64"})
    return ContoursResult(qpv=qpv, rejects=rejects, report=[layer.report for layer in layers])


#: Column names of the official list (and of its older or local variants), normalised.
LISTE_ALIASES = {
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
_CODE_ALIASES = frozenset(LISTE_ALIASES["code_qpv"])
_ALL_ALIASES = frozenset(a for options in LISTE_ALIASES.values() for a in options)


def _liste_header(rows: Sequence[Sequence[Any]], k: int) -> float | None:
    """The list's header: a row naming the QPV code column, scored by its known columns."""
    names = {normalise_name(str(c)) for c in rows[k] if c is not None}
    return len(names & _ALL_ALIASES) if names & _CODE_ALIASES else None


def read_liste_qpv(path: Path | str) -> pd.DataFrame:
    """Read the official list of QPV (``listeqp2024-cog2024.csv``: ``;``, UTF-8 with BOM).

    Column names are matched case-insensitively. Codes are restored (leading zeros of insee_com,
    insee_reg, insee_dep, siren_epci; Excel escaping ``="60057"`` removed); multi-valued fields
    (several communes or EPCI in one quoted field) are joined with ``;`` in the same order as their
    labels. Rows whose QPV code is invalid are not returned: they are listed, with their line in
    the file, in ``result.attrs["rejets"]`` (columns :data:`REJECT_COLUMNS`). A file not in UTF-8
    is refused (:func:`pipelines.lib.tables.decode_text`).
    """
    path = Path(path)
    if not path.exists():
        raise ContoursError(f"Fichier introuvable : {path}")
    table = read_tables(path, _liste_header, 20)[0]
    if table.header_index is None:
        first = table.rows[0].cells if table.rows else []
        raise ContoursError(
            f"Aucune colonne de code QPV (code_qp) dans {path.name} ; colonnes présentes : "
            f"{', '.join(map(str, first))}"
        )
    header = [str(c) for c in table.header]
    check_unique_header(header, normalise_name, path.name)
    misshapen = {r.line: e for r in table.data if (e := table.field_count_error(r))}
    data = [r for r in table.data if not r.blank and r.line not in misshapen]
    names = {normalise_name(c): j for j, c in enumerate(header)}
    source: dict[str, int | None] = {
        target: next((names[a] for a in options if a in names), None)
        for target, options in LISTE_ALIASES.items()
    }

    def col(target: str) -> list[Any]:
        j = source[target]
        return [None if j is None else (r.cells[j] if j < len(r.cells) else None) for r in data]

    code_col = source["code_qpv"]
    raw_codes = col("code_qpv")
    codes = [(clean_text(v) or "").upper() for v in raw_codes]
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
            "insee_reg": [simple_codes(v, 2) for v in col("insee_reg")],
            "lib_reg": [clean_text(v) for v in col("lib_reg")],
            "insee_dep": [departements(v) for v in col("insee_dep")],
            "lib_dep": [clean_text(v) for v in col("lib_dep")],
            "insee_com": [c for c, _ in communes],
            "lib_com": [n for _, n in communes],
            "siren_epci": [c for c, _ in epci],
            "lib_epci": [n for _, n in epci],
        },
        columns=LISTE_COLUMNS,
        dtype=object,
    )
    valid = np.array([geographie_of(c) is not None for c in codes], dtype=bool)
    rejects = pd.DataFrame(
        [
            {
                "source": SOURCE,
                "fichier": path.name,
                "feuille": None,
                "ligne": data[i].line,
                "colonne": header[code_col],
                "valeur_brute": "" if raw_codes[i] is None else raw_codes[i],
                "motif": "code QPV absent" if not codes[i] else "code QPV invalide",
            }
            for i in np.flatnonzero(~valid)
        ]
        + [
            {
                "source": SOURCE,
                "fichier": path.name,
                "feuille": None,
                "ligne": line,
                "colonne": None,
                "valeur_brute": None,
                "motif": reason,
            }
            for line, reason in sorted(misshapen.items())
        ],
        columns=REJECT_COLUMNS,
    )
    result = out[valid].reset_index(drop=True)
    result.attrs["rejets"] = rejects
    return result
