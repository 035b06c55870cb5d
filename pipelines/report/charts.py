"""Charts and maps of the rapport annuel as inline SVG (no script, no network resource).

The report must open anywhere, offline, and print to PDF: every chart is a plain ``<svg>``
element built here from rows the report read from the marts. Nothing is computed here but
positions: values, totals and shares come from the marts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from pipelines.report.formats import nombre

# Colour-blind safe palettes (Okabe-Ito for categories; ColorBrewer RdBu / Blues for maps).
CATEGORIES = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#999999",
    "#000000",
]
DIVERGENT = ["#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac"]
SEQUENTIEL = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"]
SANS_DONNEE = "#e0e0e0"
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


@dataclass
class Segment:
    serie: str
    valeur: float | None


@dataclass
class Barre:
    libelle: str
    segments: list[Segment]
    total_affiche: float | None = None  # a total read from a mart, printed at the bar's end


def _couleurs(series: Sequence[str]) -> dict[str, str]:
    return {s: CATEGORIES[i % len(CATEGORIES)] for i, s in enumerate(series)}


def _texte(x: float, y: float, texte: str, taille: int = 11, ancre: str = "start", **attrs) -> str:
    extra = " ".join(f"{k.replace('_', '-')}='{v}'" for k, v in attrs.items())
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{taille}' text-anchor='{ancre}' {FONT} "
        f"{extra}>{escape(texte)}</text>"
    )


def _couper(texte: str, largeur: int) -> list[str]:
    lignes, courante = [], ""
    for mot in texte.split():
        if courante and len(courante) + 1 + len(mot) > largeur:
            lignes.append(courante)
            courante = mot
        else:
            courante = f"{courante} {mot}".strip()
    if courante:
        lignes.append(courante)
    return lignes[:3] or [""]


def barres_empilees(
    barres: list[Barre], unite: str, titre: str, largeur: int = 760, decimales: int = 0
) -> str:
    """Horizontal stacked bars, one per category, segments by series, with a legend."""
    series: list[str] = []
    for barre in barres:
        for seg in barre.segments:
            if seg.serie not in series:
                series.append(seg.serie)
    couleurs = _couleurs(series)
    marge_g, marge_d, haut_barre, pas = 250, 110, 18, 40
    legende_h = 20 * math.ceil(len(series) / 3) + 10
    hauteur = 30 + pas * max(len(barres), 1) + legende_h
    maxi = max(
        [sum(max(s.valeur or 0, 0) for s in b.segments) for b in barres] + [1e-9],
    )
    zone = largeur - marge_g - marge_d
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {largeur} {hauteur}' "
        f"width='{largeur}' style='max-width:100%;height:auto' role='img' "
        f"aria-label='{escape(titre)}'>",
        f"<title>{escape(titre)}</title>",
    ]
    if not barres:
        out.append(_texte(10, 30, "Aucune donnée pour cette année."))
    for i, barre in enumerate(barres):
        y = 20 + i * pas
        for j, ligne in enumerate(_couper(barre.libelle, 38)):
            out.append(
                _texte(marge_g - 8, y + 12 + 12 * j - 6 * (len(ligne) > 0), ligne, 10, "end")
            )
        x = marge_g
        for seg in barre.segments:
            if not seg.valeur or seg.valeur <= 0:
                continue
            w = zone * seg.valeur / maxi
            out.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{haut_barre}' "
                f"fill='{couleurs[seg.serie]}'><title>{escape(seg.serie)} : "
                f"{escape(nombre(seg.valeur, decimales))} {escape(unite)}</title></rect>"
            )
            x += w
        if barre.total_affiche is not None:
            out.append(
                _texte(x + 6, y + 13, f"{nombre(barre.total_affiche, decimales)} {unite}", 10)
            )
    y0 = 30 + pas * len(barres)
    for k, serie in enumerate(series):
        col, lig = k % 3, k // 3
        x, y = 10 + col * (largeur // 3), y0 + lig * 20
        out.append(f"<rect x='{x}' y='{y}' width='12' height='12' fill='{couleurs[serie]}'/>")
        out.append(_texte(x + 18, y + 10, serie[:40], 10))
    out.append("</svg>")
    return "".join(out)


@dataclass
class Zone:
    """One polygon of a map: its SVG path (projected metres, y negated) and what colours it."""

    code: str
    chemin: str
    valeur: float | None
    info: str
    etiquette: str | None = None
    x: float | None = None
    y: float | None = None


def _classes(valeurs: list[float], n: int) -> list[float]:
    """Quantile breaks (n classes) of the values; fewer when there are few distinct values."""
    v = sorted(set(valeurs))
    if len(v) <= n:
        return v[1:]
    return [v[min(len(v) - 1, round(len(v) * k / n))] for k in range(1, n)]


def carte(
    zones: list[Zone],
    emprise: tuple[float, float, float, float],
    titre: str,
    unite: str,
    palette: str = "sequentiel",
    categories: dict[str, str] | None = None,
    decimales: int = 1,
    largeur: int = 760,
) -> str:
    """A choropleth (palette 'sequentiel' or 'divergent', centred on 0) or, with ``categories``
    (zone.info -> colour), a categorical map; zones without value are grey and said so."""
    xmin, ymin, xmax, ymax = emprise
    dx, dy = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    pad = 0.04 * max(dx, dy)
    vb = (xmin - pad, -ymax - pad, dx + 2 * pad, dy + 2 * pad)
    hauteur_carte = int(largeur * 0.72 * vb[3] / vb[2]) if vb[2] else 400
    hauteur_carte = max(220, min(hauteur_carte, 560))
    valeurs = [z.valeur for z in zones if z.valeur is not None]
    legende: list[tuple[str, str]] = []
    if categories is not None:
        couleur = {z.code: categories.get(z.info, SANS_DONNEE) for z in zones}
        legende = list(categories.items())
        legende = [(c, lib) for lib, c in legende]
    elif palette == "divergent":
        borne = max([abs(v) for v in valeurs] + [1e-9])
        neg = [-borne * k / 3 for k in (2, 1)]
        pos = [borne * k / 3 for k in (1, 2)]
        seuils = [*neg, 0.0, *pos]

        def teinte(v: float) -> str:
            for i, s in enumerate(seuils):
                if v < s:
                    return DIVERGENT[i]
            return DIVERGENT[-1]

        couleur = {z.code: teinte(z.valeur) if z.valeur is not None else SANS_DONNEE for z in zones}
        bornes = [-borne, *seuils, borne]
        legende = [
            (DIVERGENT[i], f"{nombre(bornes[i], decimales)} à {nombre(bornes[i + 1], decimales)}")
            for i in range(len(DIVERGENT))
        ]
    else:
        seuils = _classes(valeurs, len(SEQUENTIEL))

        def teinte(v: float) -> str:
            for i, s in enumerate(seuils):
                if v < s:
                    return SEQUENTIEL[i]
            return SEQUENTIEL[len(seuils)]

        couleur = {z.code: teinte(z.valeur) if z.valeur is not None else SANS_DONNEE for z in zones}
        if valeurs:
            bornes = [min(valeurs), *seuils, max(valeurs)]
            legende = [
                (
                    SEQUENTIEL[i],
                    f"{nombre(bornes[i], decimales)} à {nombre(bornes[i + 1], decimales)}",
                )
                for i in range(len(bornes) - 1)
            ]
    if any(z.valeur is None for z in zones) and categories is None:
        legende.append((SANS_DONNEE, "sans donnée (voir tableau)"))
    legende_h = 18 * len(legende) + 30
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {largeur} "
        f"{hauteur_carte + legende_h}' width='{largeur}' style='max-width:100%;height:auto' "
        f"role='img' aria-label='{escape(titre)}'>",
        f"<title>{escape(titre)}</title>",
        f"<svg x='0' y='0' width='{largeur}' height='{hauteur_carte}' "
        f"viewBox='{vb[0]:.0f} {vb[1]:.0f} {vb[2]:.0f} {vb[3]:.0f}' "
        "preserveAspectRatio='xMidYMid meet'>",
    ]
    taille_etiquette = vb[2] / 70
    for z in zones:
        out.append(
            f"<path d='{z.chemin}' fill='{couleur[z.code]}' stroke='#333' "
            f"stroke-width='1' vector-effect='non-scaling-stroke' fill-rule='evenodd'>"
            f"<title>{escape(z.info)}</title></path>"
        )
    for z in zones:
        if z.etiquette and z.x is not None and z.y is not None:
            out.append(
                f"<text x='{z.x:.0f}' y='{-z.y:.0f}' font-size='{taille_etiquette:.0f}' "
                f"text-anchor='middle' {FONT} stroke='white' "
                f"stroke-width='{taille_etiquette / 6:.0f}' "
                f"paint-order='stroke'>{escape(z.etiquette)}</text>"
            )
    out.append("</svg>")
    y = hauteur_carte + 16
    out.append(_texte(10, y, unite, 11, font_weight="bold"))
    for i, (c, lib) in enumerate(legende):
        yy = y + 8 + 18 * i
        out.append(f"<rect x='10' y='{yy}' width='14' height='12' fill='{c}' stroke='#333'/>")
        out.append(_texte(30, yy + 10, lib, 10))
    out.append("</svg>")
    return "".join(out)
