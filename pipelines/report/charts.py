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
    return lines[:3] or [""]


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
    legend_height = 20 * math.ceil(len(series) / 3) + 10
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
        for j, line in enumerate(_wrap(bar.label, 38)):
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
    y0 = 30 + step * len(bars)
    for k, name in enumerate(series):
        col, row = k % 3, k // 3
        x, y = 10 + col * (width // 3), y0 + row * 20
        out.append(f"<rect x='{x}' y='{y}' width='12' height='12' fill='{colors[name]}'/>")
        out.append(_text(x + 18, y + 10, name[:40], 10))
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


def _quantile_breaks(values: list[float], n: int) -> list[float]:
    """Quantile breaks (n classes) of the values; fewer when there are few distinct values."""
    v = sorted(set(values))
    if len(v) <= n:
        return v[1:]
    return [v[min(len(v) - 1, round(len(v) * k / n))] for k in range(1, n)]


def choropleth(
    areas: list[Area],
    extent: tuple[float, float, float, float],
    title: str,
    unit: str,
    palette: str = "sequential",
    categories: dict[str, str] | None = None,
    decimals: int = 1,
    width: int = 760,
) -> str:
    """A choropleth (palette 'sequential' or 'diverging', centred on 0) or, with ``categories``
    (area.info -> colour), a categorical map; areas without value are grey and said so."""
    xmin, ymin, xmax, ymax = extent
    dx, dy = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    pad = 0.04 * max(dx, dy)
    vb = (xmin - pad, -ymax - pad, dx + 2 * pad, dy + 2 * pad)
    map_height = int(width * 0.72 * vb[3] / vb[2]) if vb[2] else 400
    map_height = max(220, min(map_height, 560))
    values = [a.value for a in areas if a.value is not None]
    legend: list[tuple[str, str]] = []
    if categories is not None:
        fill = {a.code: categories.get(a.info, NO_DATA) for a in areas}
        legend = list(categories.items())
        legend = [(color, label) for label, color in legend]
    elif palette == "diverging":
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
        breaks = _quantile_breaks(values, len(SEQUENTIAL))

        def shade(v: float) -> str:
            for i, b in enumerate(breaks):
                if v < b:
                    return SEQUENTIAL[i]
            return SEQUENTIAL[len(breaks)]

        fill = {a.code: shade(a.value) if a.value is not None else NO_DATA for a in areas}
        if values:
            bounds = [min(values), *breaks, max(values)]
            legend = [
                (
                    SEQUENTIAL[i],
                    f"{number(bounds[i], decimals)} à {number(bounds[i + 1], decimals)}",
                )
                for i in range(len(bounds) - 1)
            ]
    if any(a.value is None for a in areas) and categories is None:
        legend.append((NO_DATA, "sans donnée (voir tableau)"))
    legend_height = 18 * len(legend) + 30
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} "
        f"{map_height + legend_height}' width='{width}' style='max-width:100%;height:auto' "
        f"role='img' aria-label='{escape(title)}'>",
        f"<title>{escape(title)}</title>",
        f"<svg x='0' y='0' width='{width}' height='{map_height}' "
        f"viewBox='{vb[0]:.0f} {vb[1]:.0f} {vb[2]:.0f} {vb[3]:.0f}' "
        "preserveAspectRatio='xMidYMid meet'>",
    ]
    label_size = vb[2] / 70
    for a in areas:
        out.append(
            f"<path d='{a.path}' fill='{fill[a.code]}' stroke='#333' "
            f"stroke-width='1' vector-effect='non-scaling-stroke' fill-rule='evenodd'>"
            f"<title>{escape(a.info)}</title></path>"
        )
    for a in areas:
        if a.label and a.x is not None and a.y is not None:
            out.append(
                f"<text x='{a.x:.0f}' y='{-a.y:.0f}' font-size='{label_size:.0f}' "
                f"text-anchor='middle' {FONT} stroke='white' "
                f"stroke-width='{label_size / 6:.0f}' "
                f"paint-order='stroke'>{escape(a.label)}</text>"
            )
    out.append("</svg>")
    y = map_height + 16
    out.append(_text(10, y, unit, 11, font_weight="bold"))
    for i, (color, label) in enumerate(legend):
        yy = y + 8 + 18 * i
        out.append(f"<rect x='10' y='{yy}' width='14' height='12' fill='{color}' stroke='#333'/>")
        out.append(_text(30, yy + 10, label, 10))
    out.append("</svg>")
    return "".join(out)
