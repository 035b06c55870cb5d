"""Reader of the commune contours, drawn as outlines under the QPV of the report's maps.

A commune contours file (GeoJSON, GeoPackage, Shapefile, zipped or not: IGN ADMIN EXPRESS,
the « contours des communes » of data.gouv.fr, an extract of the collectivité's SIG) is placed
in ``data/raw/communes/`` or beside the QPV contours in ``data/raw/sig_ville/``. It is
recognised by its attributes (:func:`file_kind`):

* a layer with a QPV code column (the SIG Ville reader's recognition,
  :func:`pipelines.sources.sig_ville.attributes.map_columns`) makes a file of QPV contours,
  even when it also has ``insee_com`` / ``lib_com`` columns;
* otherwise a layer with an INSEE commune code column (``code``, ``insee_com``, ``codgeo``,
  ``com_code``..., whose values look like commune codes) and a name column (``nom``,
  ``lib_com``, ``libgeo``...) makes a file of commune contours;
* anything else is neither: the assets list it in ``raw.ingestion_log`` with the reason.

The file's layers are opened by the SIG Ville reader (:func:`~pipelines.sources.sig_ville.
reader.layer_sources`) and the geometry (CRS checks, repair, reprojection to WGS84, polygonal
parts) is :mod:`geo.contours`'s, as for the QPV. Rows with an unusable code or geometry go to
``rejects`` with file, layer, feature and reason; features sharing a code are united.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from geo.contours import ContoursError as GeoContoursError
from geo.contours import layer_crs, merge_duplicate_codes, repair_layer
from geo.crs import WGS84
from pipelines.lib.codes import COMMUNE, split_codes
from pipelines.lib.raw_schemas import REJECT_COLUMNS
from pipelines.sources.sig_ville.attributes import clean_text, map_columns, normalise_name
from pipelines.sources.sig_ville.reader import ContoursError, layer_sources

logger = logging.getLogger(__name__)

SOURCE = "communes"
QPV = "qpv"
COMMUNES = "communes"

#: Normalised names of the INSEE commune code column (IGN, INSEE, data.gouv.fr, local SIG).
CODE_NAMES = (
    "insee_com",
    "code_insee",
    "codgeo",
    "com_code",
    "code_commune",
    "code_com",
    "codecommune",
    "codeinsee",
    "inseecom",
    "insee_comm",
    "insee",
    "depcom",
    "cod_com",
    "code",
    "com",
)
#: Normalised names of the commune name column.
NAME_NAMES = (
    "nom",
    "nom_com",
    "nom_commune",
    "lib_com",
    "libcom",
    "libgeo",
    "libelle",
    "libelle_com",
    "libelle_commune",
    "lib_commune",
    "nom_commu",
    "nomcom",
    "nom_officiel",
    "name",
)
#: Share of a column's values that must look like commune codes for it to be the code column.
CODE_SHARE = 0.5
#: Features read to recognise a layer's columns.
SAMPLE = 500
OUTPUT_COLUMNS = [
    "code_commune",
    "nom_commune",
    "geometrie_reparee",
    "source_fichier",
    "source_couche",
    "crs_source",
    "geometry",
]


def _commune_code(value: Any) -> str | None:
    codes = split_codes(clean_text(value))
    return codes[0] if len(codes) == 1 and COMMUNE.match(codes[0]) else None


def commune_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """(code column, name column) of a layer's attributes, None where not found.

    The code column is the first column named as in :data:`CODE_NAMES` (in that order of
    preference) whose non-empty values are at least half commune codes (``77288``, ``2A004``,
    leading zeros restored); the name column the first named as in :data:`NAME_NAMES`.
    """
    by_name: dict[str, str] = {}
    for col in frame.columns:
        by_name.setdefault(normalise_name(str(col)), col)
    code = None
    for name in CODE_NAMES:
        col = by_name.get(name)
        if col is None:
            continue
        values = [v for v in (clean_text(x) for x in frame[col].head(SAMPLE)) if v is not None]
        if values and sum(_commune_code(v) is not None for v in values) >= CODE_SHARE * len(values):
            code = col
            break
    name_col = next((by_name[n] for n in NAME_NAMES if n in by_name and by_name[n] != code), None)
    return code, name_col


def file_kind(path: Path | str) -> tuple[str | None, str]:
    """What a contours file holds: (:data:`QPV`, ...), (:data:`COMMUNES`, ...) or (None, the
    reason it is neither, naming the columns present).

    Raises:
        ContoursError: missing or unreadable file, unsupported format, no geographic layer.
    """
    path = Path(path)
    layers = []
    for source in layer_sources(path):
        try:
            frame = pyogrio.read_dataframe(
                source.ogr_path, layer=source.couche, read_geometry=False, max_features=SAMPLE
            )
        except Exception as exc:  # pyogrio raises several error types
            raise ContoursError(
                f"Lecture impossible de {source.fichier} (couche {source.couche}) : {exc}"
            ) from exc
        frame = pd.DataFrame(frame)
        if map_columns(frame, list(frame.columns))["code"] is not None:
            return QPV, "contours de QPV (colonne de code QPV)"
        layers.append(frame)
    for frame in layers:
        code, name = commune_columns(frame)
        if code is not None and name is not None:
            return COMMUNES, f"contours de communes (colonnes {code}, {name})"
    columns = sorted({str(c) for frame in layers for c in frame.columns})
    return None, (
        "ni contours de QPV (pas de colonne de code QPV : code_qp...) ni contours de communes "
        "(pas de colonne de code INSEE : code, insee_com, codgeo... avec une colonne de nom : "
        f"nom, lib_com...) ; colonnes présentes : {', '.join(columns) or '(aucune)'}"
    )


@dataclass
class CommunesResult:
    """Result of :func:`read_communes`.

    Attributes:
        communes: one row per commune code, columns :data:`OUTPUT_COLUMNS`, CRS EPSG:4326.
        rejects: features that could not be loaded, columns :data:`REJECT_COLUMNS`.
        report: one dict per layer read (fichier, couche, crs_source, lus, charges, repares,
            rejetes, fusionnes).
    """

    communes: gpd.GeoDataFrame
    rejects: pd.DataFrame
    report: list[dict[str, Any]] = field(default_factory=list)

    @property
    def read(self) -> int:
        """Features read in every layer (loaded + rejected + merged into another)."""
        return sum(int(r["lus"]) for r in self.report)


def _reject(fichier: str, couche: str | None, ligne: int, colonne: str, valeur: Any, motif: str):
    return {
        "source": SOURCE,
        "fichier": fichier,
        "feuille": couche,
        "ligne": ligne,
        "colonne": colonne,
        "valeur_brute": "" if valeur is None else str(valeur),
        "motif": motif,
    }


def _read_layer(source: Any) -> tuple[pd.DataFrame, list[dict], dict] | None:
    """One layer's communes, rejects and report; None for a layer without commune columns
    (a GeoPackage may hold other layers). ``source`` is a layer of :func:`layer_sources`."""
    where = f"{source.fichier} (couche {source.couche})"
    try:
        frame = pyogrio.read_dataframe(source.ogr_path, layer=source.couche)
    except Exception as exc:
        raise ContoursError(f"Lecture impossible de {where} : {exc}") from exc
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    code_col, name_col = commune_columns(attributes)
    if code_col is None or name_col is None:
        return None  # another layer of the file (a GeoPackage may hold several)
    try:
        crs, label, geographic = layer_crs(frame, where)
    except GeoContoursError as err:
        raise ContoursError(str(err)) from None
    raw_codes = attributes[code_col].tolist()
    codes = [_commune_code(v) or "" for v in raw_codes]
    names = [clean_text(v) for v in attributes[name_col].tolist()]
    valid_code = np.array([bool(c) for c in codes], dtype=bool)
    rejects = [
        _reject(
            source.fichier,
            source.couche,
            int(i) + 1,
            str(code_col),
            raw_codes[i],
            "code commune absent"
            if clean_text(raw_codes[i]) is None
            else "code commune invalide : attendu 5 caractères (59350, 2A004)",
        )
        for i in np.flatnonzero(~valid_code)
    ]
    geoms_src = np.asarray(frame.geometry.values, dtype=object)
    geometry = repair_layer(geoms_src, crs, label, geographic, codes, valid_code)
    rejects += [
        _reject(source.fichier, source.couche, i + 1, col, value, motif)
        for i, col, value, motif in geometry.rejects
    ]
    for message in geometry.warnings:
        logger.warning("%s : %s", where, message)
    rows = np.flatnonzero(geometry.loaded)
    out = pd.DataFrame(
        {
            # merge_duplicate_codes (geo.contours) keys its rows on ``code_qpv``
            "code_qpv": [codes[i] for i in rows],
            "nom_commune": [names[i] for i in rows],
            "geometrie_reparee": geometry.repaired[rows],
            "source_fichier": source.fichier,
            "source_couche": source.couche,
            "crs_source": label,
            "geometry": geometry.geometries[rows],
        }
    )
    out, merged = merge_duplicate_codes(out)
    report = {
        "fichier": source.fichier,
        "couche": source.couche,
        "crs_source": label,
        "lus": len(frame),
        "charges": len(out),
        "repares": int(geometry.repaired.sum()),
        "rejetes": len(rejects),
        "fusionnes": merged,
    }
    return out.rename(columns={"code_qpv": "code_commune"}), rejects, report


def read_communes(path: Path | str) -> CommunesResult:
    """Read the commune contours of a GeoJSON, GeoPackage (its commune layers), Shapefile or ZIP.

    Raises:
        ContoursError: missing or unreadable file, a commune layer without CRS or whose
            coordinates do not fit its CRS, or no layer with commune code and name columns.
    """
    path = Path(path)
    frames, rejects, report = [], [], []
    for source in layer_sources(path):
        layer = _read_layer(source)
        if layer is None:
            continue
        frames.append(layer[0])
        rejects.extend(layer[1])
        report.append(layer[2])
    if not report:
        raise ContoursError(
            f"{path.name} : aucune couche avec une colonne de code INSEE de commune et une "
            "colonne de nom"
        )
    combined = pd.concat(frames, ignore_index=True)
    # a code in two layers of the file: the first layer's contour is kept, the others counted
    duplicated = combined["code_commune"].duplicated()
    for i, entry in enumerate(report):
        in_layer = (combined["source_couche"] == entry["couche"]) & duplicated
        if in_layer.any():
            entry["fusionnes"] += int(in_layer.sum())
            entry["charges"] -= int(in_layer.sum())
            logger.warning(
                "%s : %d commune(s) déjà lue(s) dans une autre couche, écartée(s) (couche %s)",
                path.name,
                int(in_layer.sum()),
                report[i]["couche"],
            )
    combined = combined[~duplicated].sort_values("code_commune", kind="stable")
    combined = combined.reset_index(drop=True)
    communes = gpd.GeoDataFrame(
        combined.drop(columns="geometry").astype({"geometrie_reparee": bool}),
        geometry=gpd.GeoSeries(combined["geometry"].tolist(), crs=WGS84),
        crs=WGS84,
    )[OUTPUT_COLUMNS]
    return CommunesResult(
        communes=communes,
        rejects=pd.DataFrame(rejects, columns=REJECT_COLUMNS).astype({"ligne": "int64"}),
        report=report,
    )
