"""Coordinate reference systems used for QPV contours.

Contours are stored in WGS84 (EPSG:4326, lon/lat axis order). Areas and centroids are computed in
a projected CRS chosen from the département of the QPV code (characters 3-5 of the code):
Lambert-93 for metropolitan France and Corsica, the local UTM zone of the official French
overseas geodetic systems elsewhere (Lambert-93 areas are 24 % to 258 % too large overseas).
"""

from __future__ import annotations

from pyproj import CRS

WGS84 = "EPSG:4326"
LAMBERT93 = "EPSG:2154"

#: Projected CRS used for areas, by overseas département / collectivité code.
CRS_SURFACE_OUTRE_MER: dict[str, str] = {
    "971": "EPSG:5490",  # Guadeloupe: RGAF09 / UTM zone 20N
    "972": "EPSG:5490",  # Martinique
    "977": "EPSG:5490",  # Saint-Barthélemy
    "978": "EPSG:5490",  # Saint-Martin
    "973": "EPSG:2972",  # Guyane: RGFG95 / UTM zone 22N
    "974": "EPSG:2975",  # La Réunion: RGR92 / UTM zone 40S
    "975": "EPSG:4467",  # Saint-Pierre-et-Miquelon: RGSPM06 / UTM zone 21N
    "976": "EPSG:4471",  # Mayotte: RGM04 / UTM zone 38S
    "987": "EPSG:3297",  # Polynésie française (Tahiti): RGPF / UTM zone 6S
    "988": "EPSG:3170",  # Nouvelle-Calédonie (Nouméa): RGNC91-93 / UTM zone 58S
}


def departement_of_code(code_qpv: str) -> str:
    """Return the 3-character département part of a QPV code (``QN05921M`` -> ``059``)."""
    return code_qpv[2:5]


def area_crs_for_code(code_qpv: str) -> str | None:
    """Return the projected CRS used to measure a QPV, or None if the territory is unknown.

    Metropolitan France and Corsica (``0xx``, ``02A``, ``02B``) use Lambert-93; overseas codes
    (``97x``, ``98x``) use :data:`CRS_SURFACE_OUTRE_MER`.
    """
    dep = departement_of_code(code_qpv)
    if dep in CRS_SURFACE_OUTRE_MER:
        return CRS_SURFACE_OUTRE_MER[dep]
    if dep.startswith("0") and len(dep) == 3:
        return LAMBERT93
    return None


def crs_label(crs: CRS | str | None) -> str | None:
    """Return a short, stable label for a CRS (``EPSG:2154``, ``OGC:CRS84``) or its name."""
    if crs is None:
        return None
    crs = CRS.from_user_input(crs)
    authority = crs.to_authority(min_confidence=90)
    if authority is not None:
        return f"{authority[0]}:{authority[1]}"
    return crs.name


def is_wgs84_geographic(crs: CRS | str) -> bool:
    """True for EPSG:4326 or OGC:CRS84 (same datum, only the declared axis order differs)."""
    crs = CRS.from_user_input(crs)
    return crs.is_geographic and crs_label(crs) in {"EPSG:4326", "OGC:CRS84"}
