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

from pipelines.report.formats import number

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
DIVERGING = ["#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac"]
SEQUENTIAL = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"]
#: one-signed negative values (a gap below the reference): darker is further below
SEQUENTIAL_NEGATIVE = ["#a50f15", "#de2d26", "#fb6a4a", "#fcae91", "#fee5d9"]
NO_DATA = "#e0e0e0"
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


@dataclass
class Segment:
    series: str
    value: float | None


@dataclass
class Bar:
    label: str
    segments: list[Segment]
    shown_total: float | None = None  # a total read from a mart, printed at the bar's end


def _colors(series: Sequence[str]) -> dict[str, str]:
    return {s: CATEGORIES[i % len(CATEGORIES)] for i, s in enumerate(series)}


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = "start", **attrs) -> str:
    extra = " ".join(f"{k.replace('_', '-')}='{v}'" for k, v in attrs.items())
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' {FONT} "
        f"{extra}>{escape(text)}</text>"
    )


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines or [""]


def stacked_bars(
    bars: list[Bar], unit: str, title: str, width: int = 760, decimals: int = 0
) -> str:
    """Horizontal stacked bars, one per category, segments by series, with a legend."""
    series: list[str] = []
    for bar in bars:
        for seg in bar.segments:
            if seg.series not in series:
                series.append(seg.series)
    colors = _colors(series)
    left_margin, right_margin, bar_height, step = 250, 110, 18, 40
    legend_lines = [_wrap(name, 50) for name in series]
    legend_rows = [
        max(len(legend_lines[k]) for k in range(i, min(i + 2, len(series))))
        for i in range(0, len(series), 2)
    ]
    legend_height = sum(14 * n + 8 for n in legend_rows) + 10
    height = 30 + step * max(len(bars), 1) + legend_height
    largest = max(
        [sum(max(s.value or 0, 0) for s in b.segments) for b in bars] + [1e-9],
    )
    plot_width = width - left_margin - right_margin
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='{width}' style='max-width:100%;height:auto' role='img' "
        f"aria-label='{escape(title)}'>",
        f"<title>{escape(title)}</title>",
    ]
    if not bars:
        out.append(_text(10, 30, "Aucune donnée pour cette année."))
    for i, bar in enumerate(bars):
        y = 20 + i * step
        for j, line in enumerate(_wrap(bar.label, 38)[:3]):
            out.append(
                _text(left_margin - 8, y + 12 + 12 * j - 6 * (len(line) > 0), line, 10, "end")
            )
        x = left_margin
        for seg in bar.segments:
            if not seg.value or seg.value <= 0:
                continue
            w = plot_width * seg.value / largest
            out.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{bar_height}' "
                f"fill='{colors[seg.series]}'><title>{escape(seg.series)} : "
                f"{escape(number(seg.value, decimals))} {escape(unit)}</title></rect>"
            )
            x += w
        if bar.shown_total is not None:
            out.append(_text(x + 6, y + 13, f"{number(bar.shown_total, decimals)} {unit}", 10))
    y = 30 + step * len(bars)
    for i, n_lines in enumerate(legend_rows):
        for k in range(2 * i, min(2 * i + 2, len(series))):
            x = 10 + (k % 2) * (width // 2)
            name = series[k]
            out.append(f"<rect x='{x}' y='{y}' width='12' height='12' fill='{colors[name]}'/>")
            for j, line in enumerate(legend_lines[k]):
                out.append(_text(x + 18, y + 10 + 14 * j, line, 10))
        y += 14 * n_lines + 8
    out.append("</svg>")
    return "".join(out)


@dataclass
class Area:
    """One polygon of a map: its SVG path (projected metres, y negated) and what colours it."""

    code: str
    path: str
    value: float | None
    info: str
    label: str | None = None
    x: float | None = None
    y: float | None = None


@dataclass
class Outline:
    """A commune's outline under the QPV of a map: its SVG path (projected metres, y negated,
    clipped to the map's window), and where its name goes when it is a commune of the territory
    (``label``) and the name fits inside (``width`` x ``height``, metres)."""

    code: str
    name: str
    path: str
    label: bool = False
    x: float | None = None
    y: float | None = None
    width: float = 0.0
    height: float = 0.0


#: The legend's line when no commune contours are loaded (``communes=None``).
NO_COMMUNES = "Limites communales non chargées (dossier communes/)"
COMMUNE_STROKE = "#8c8c8c"
COMMUNE_LABEL = "#555555"
#: Size (px of the map's 760 px width) of the communes' names.
COMMUNE_LABEL_PX = 9


def map_frame(
    extent: tuple[float, float, float, float], width: int = 760
) -> tuple[tuple[float, float, float, float], int]:
    """The viewBox (x, y, width, height; y negated) of a map of ``extent`` (projected metres,
    4 % margin) and the map's height in px."""
    xmin, ymin, xmax, ymax = extent
    dx, dy = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    pad = 0.04 * max(dx, dy)
    vb = (xmin - pad, -ymax - pad, dx + 2 * pad, dy + 2 * pad)
    map_height = int(width * 0.72 * vb[3] / vb[2]) if vb[2] else 400
    return vb, max(220, min(map_height, 560))


def map_window(
    extent: tuple[float, float, float, float], width: int = 760
) -> tuple[float, float, float, float]:
    """The area a map of ``extent`` shows (xmin, ymin, xmax, ymax, projected metres): its
    viewBox widened to the map's proportions (what lies outside is clipped by the SVG)."""
    vb, map_height = map_frame(extent, width)
    scale = min(width / vb[2], map_height / vb[3])
    half_w, half_h = width / scale / 2, map_height / scale / 2
    cx, cy = vb[0] + vb[2] / 2, -(vb[1] + vb[3] / 2)
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def _commune_layer(communes: list[Outline], px_per_m: float) -> tuple[str, str]:
    """The communes' outlines (thin grey) and the names that fit inside their commune without
    overlapping another name (largest communes first)."""
    # vector-effect is not inherited: on every path, so that the stroke is in px, not metres
    paths = "".join(
        f"<path d='{c.path}' vector-effect='non-scaling-stroke'><title>{escape(c.name)}</title>"
        "</path>"
        for c in communes
        if c.path
    )
    outlines = (
        f"<g class='limites-communales' fill='none' stroke='{COMMUNE_STROKE}' "
        f"stroke-width='0.8' stroke-dasharray='4 2'>{paths}</g>"
    )
    size = COMMUNE_LABEL_PX / px_per_m
    placed: list[tuple[float, float, float, float]] = []
    labels = []
    for c in sorted(communes, key=lambda c: -(c.width * c.height)):
        if not c.label or c.x is None or c.y is None:
            continue
        w, h = 0.58 * size * len(c.name), 1.3 * size
        if w > 0.9 * c.width or h > 0.6 * c.height:
            continue  # not readable inside its commune
        box = (c.x - w / 2, -c.y - h, c.x + w / 2, -c.y + h / 3)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        labels.append(
            f"<text x='{c.x:.0f}' y='{-c.y + size / 3:.0f}' font-size='{size:.0f}' "
            f"text-anchor='middle' font-style='italic' fill='{COMMUNE_LABEL}' {FONT} "
            f"stroke='white' stroke-width='{size / 5:.0f}' paint-order='stroke'>"
            f"{escape(c.name)}</text>"
        )
    return outlines, "".join(labels)


def _quantile_breaks(values: list[float], n: int) -> list[float]:
    """Quantile breaks (n classes) of the values; fewer when there are few distinct values."""
    v = sorted(set(values))
    if len(v) <= n:
        return v[1:]
    return [v[min(len(v) - 1, round(len(v) * k / n))] for k in range(1, n)]


def _scale_bar(vb: tuple, width: int, map_height: int) -> str:
    """A scale bar (1, 2 or 5 x 10^k metres, about a fifth of the map) at its bottom left."""
    px_per_m = min(width / vb[2], map_height / vb[3])
    target = vb[2] / 5
    power = 10 ** math.floor(math.log10(max(target, 1.0)))
    length = max(m * power for m in (1, 2, 5) if m * power <= target) if target >= 1 else 1
    px = length * px_per_m
    label = f"{number(length / 1000, 0 if length >= 1000 else 1)} km"
    x, y = width - px - 20, map_height - 12
    return (
        f"<g class='echelle'><rect x='{x - 4:.1f}' y='{y - 16}' width='{px + 8:.1f}' height='22' "
        "fill='white' fill-opacity='0.8'/>"
        f"<path d='M{x:.1f},{y - 4} V{y} H{x + px:.1f} V{y - 4}' fill='none' stroke='#222' "
        "stroke-width='1.5'/>" + _text(x + px / 2, y - 6, label, 10, "middle") + "</g>"
    )


def choropleth(
    areas: list[Area],
    extent: tuple[float, float, float, float],
    title: str,
    unit: str,
    palette: str = "sequential",
    categories: dict[str, str] | None = None,
    decimals: int = 1,
    width: int = 760,
    symbols: bool = False,
    unit_symbol: str = "",
    communes: list[Outline] | None = None,
) -> str:
    """A choropleth or, with ``categories`` (area.info -> colour), a categorical map; areas
    without value are grey and said so. Palette 'diverging' (centred on 0) only when the values
    have both signs, sequential classes otherwise. With ``symbols`` (amounts), circles whose
    area is proportional to the value on grey contours. A scale bar in every map (the paths
    are in projected metres). Under the QPV, the ``communes``' outlines (thin grey, with the
    names of the territory's communes where they fit); ``None`` (no commune contours loaded)
    is said in one line of the legend."""
    vb, map_height = map_frame(extent, width)
    values = [a.value for a in areas if a.value is not None]
    legend: list[tuple[str, str]] = []
    if categories is not None:
        fill = {a.code: categories.get(a.info, NO_DATA) for a in areas}
        legend = list(categories.items())
        legend = [(color, label) for label, color in legend]
    elif palette == "diverging" and values and min(values) < 0 < max(values):
        bound = max([abs(v) for v in values] + [1e-9])
        negative = [-bound * k / 3 for k in (2, 1)]
        positive = [bound * k / 3 for k in (1, 2)]
        breaks = [*negative, 0.0, *positive]

        def shade(v: float) -> str:
            for i, b in enumerate(breaks):
                if v < b:
                    return DIVERGING[i]
            return DIVERGING[-1]

        fill = {a.code: shade(a.value) if a.value is not None else NO_DATA for a in areas}
        bounds = [-bound, *breaks, bound]
        legend = [
            (DIVERGING[i], f"{number(bounds[i], decimals)} à {number(bounds[i + 1], decimals)}")
            for i in range(len(DIVERGING))
        ]
    else:
        # one-signed values: sequential classes (quantiles), the darkest furthest from 0
        breaks = _quantile_breaks(values, len(SEQUENTIAL))
        colours = (
            SEQUENTIAL_NEGATIVE[-len(breaks) - 1 :] if values and max(values) <= 0 else SEQUENTIAL
        )

        def shade(v: float) -> str:
            for i, b in enumerate(breaks):
                if v < b:
                    return colours[i]
            return colours[len(breaks)]

        fill = {a.code: shade(a.value) if a.value is not None else NO_DATA for a in areas}
        if values:
            bounds = [min(values), *breaks, max(values)]
            legend = [
                (
                    colours[i],
                    f"{number(bounds[i], decimals)} à {number(bounds[i + 1], decimals)}",
                )
                for i in range(len(bounds) - 1)
            ]
    if any(a.value is None for a in areas) and categories is None:
        legend.append((NO_DATA, "sans donnée (voir tableau)"))
    symbol_height = (
        2 * 0.06 * max(vb[2], vb[3]) * min(width / vb[2], map_height / vb[3]) + 8
        if symbols and values
        else 0
    )
    legend_height = 18 * len(legend) + 30 + int(symbol_height) + 18
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} "
        f"{map_height + legend_height}' width='{width}' style='max-width:100%;height:auto' "
        f"role='img' aria-label='{escape(title)}'>",
        f"<title>{escape(title)}</title>",
        f"<svg x='0' y='0' width='{width}' height='{map_height}' "
        f"viewBox='{vb[0]:.0f} {vb[1]:.0f} {vb[2]:.0f} {vb[3]:.0f}' "
        "preserveAspectRatio='xMidYMid meet'>",
    ]
    label_size = vb[2] / 55
    px_per_m = min(width / vb[2], map_height / vb[3])
    commune_outlines, commune_labels = _commune_layer(communes or [], px_per_m)
    if communes:
        out.append(commune_outlines)
    if symbols:
        fill = {a.code: "#f2f2f2" for a in areas}
    for a in areas:
        out.append(
            f"<path d='{a.path}' fill='{fill[a.code]}' stroke='#333' "
            f"stroke-width='1' vector-effect='non-scaling-stroke' fill-rule='evenodd'>"
            f"<title>{escape(a.info)}</title></path>"
        )
    largest = max([v for v in values if v > 0] + [0.0])
    radius_max = 0.06 * max(vb[2], vb[3])
    if symbols and largest > 0:
        for a in sorted(areas, key=lambda a: -(a.value or 0)):
            if a.value and a.value > 0 and a.x is not None:
                r = radius_max * math.sqrt(a.value / largest)
                out.append(
                    f"<circle cx='{a.x:.0f}' cy='{-a.y:.0f}' r='{r:.0f}' fill='{SEQUENTIAL[3]}' "
                    "fill-opacity='0.65' stroke='#08306b' stroke-width='1' "
                    f"vector-effect='non-scaling-stroke'><title>{escape(a.info)}</title></circle>"
                )
    out.append(commune_labels)
    for a in areas:
        if a.label and a.x is not None and a.y is not None:
            out.append(
                f"<text x='{a.x:.0f}' y='{-a.y:.0f}' font-size='{label_size:.0f}' "
                f"text-anchor='middle' {FONT} stroke='white' "
                f"stroke-width='{label_size / 6:.0f}' "
                f"paint-order='stroke'>{escape(a.label)}</text>"
            )
    out.append("</svg>")
    out.append(_scale_bar(vb, width, map_height))
    y = map_height + 16
    out.append(_text(10, y, unit, 11, font_weight="bold"))
    if symbols and largest > 0:
        # reference circles at the drawn scale: the largest value, a half and a tenth of it
        x = 40.0
        for share in (1.0, 0.5, 0.1):
            r = radius_max * math.sqrt(share) * px_per_m
            cy = y + 8 + radius_max * px_per_m
            out.append(
                f"<circle cx='{x:.0f}' cy='{cy - r:.0f}' r='{r:.1f}' fill='{SEQUENTIAL[3]}' "
                "fill-opacity='0.65' stroke='#08306b'/>"
            )
            caption = f"{number(largest * share, 0)} {unit_symbol}"
            out.append(_text(x + r + 6, cy - r + 4, caption, 10))
            x += 2 * r + 120
        y += 2 * radius_max * px_per_m + 8
        legend = [item for item in legend if item[0] == NO_DATA]
    for i, (color, label) in enumerate(legend):
        yy = y + 8 + 18 * i
        out.append(f"<rect x='10' y='{yy}' width='14' height='12' fill='{color}' stroke='#333'/>")
        out.append(_text(30, yy + 10, label, 10))
    yy = y + 8 + 18 * len(legend)
    if communes is None:
        out.append(_text(10, yy + 10, NO_COMMUNES, 10, fill=COMMUNE_LABEL, font_style="italic"))
    else:
        out.append(
            f"<path d='M10,{yy + 6} H24' stroke='{COMMUNE_STROKE}' stroke-width='1.2' "
            "stroke-dasharray='4 2'/>"
        )
        out.append(_text(30, yy + 10, "Limites communales", 10))
    out.append("</svg>")
    return "".join(out)
