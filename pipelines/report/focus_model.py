"""The model of a note focus (key figures, text, sections of tables and charts, sources) and
how its cells are formatted: shared by the theme readers and the rendering (:mod:`focus`).

A value is formatted as the rapport annuel formats it (:mod:`~pipelines.report.formats`); a
count masked by statistical secrecy prints « s »; a sum of counts over rows is withheld when one
of them was masked (``masked_sum``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import pandas as pd

from pipelines.report import formats
from pipelines.report.data import DEMO_TOKEN, ReportError, Territory

#: theme code -> what the note is about (the code is what `--focus` takes)
THEMES = {
    "emploi": "Emploi et insertion professionnelle",
    "egalite": "Égalité entre les femmes et les hommes",
    "quartier": "Un quartier (avec --qpv <code>)",
}


class FocusUsageError(ReportError):
    """An unknown theme or QPV, or a missing --qpv: a usage error (exit code 2)."""


# --- the note's model ---------------------------------------------------------------------


@dataclass
class Column:
    """A column of a table: the mart column ``key`` formatted as ``kind``."""

    key: str
    header: str
    #: text, number, number1, percent, points, currency, currency2, share, count; auto: the
    #: row's ``_kind``; note: the text of ``<key>_note`` (a value with its nature)
    kind: str = "text"
    mart: str | None = None  # when the cell comes from another mart than the table's


@dataclass
class Table:
    id: str
    mart: str
    columns: list[Column]
    rows: list[dict]
    caption: str = ""
    title: str = ""


@dataclass
class Chart:
    id: str
    svg: str
    caption: str


@dataclass
class Figure:
    """A key figure: its formatted value, what it is, and the mart cell it comes from."""

    text: str
    label: str
    mart: str
    column: str
    raw: object = None


@dataclass
class Block:
    """A section of the note: its text, then its tables and charts, or one line saying why
    there is nothing to show."""

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    items: list[Table | Chart] = field(default_factory=list)
    empty: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class FocusNote:
    theme: str
    title: str
    subtitle: str
    territory: Territory
    year: int
    figures: list[Figure] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    scope: str | None = None
    demo: bool = False
    secrecy_threshold: int = 5
    slug: str = ""


# --- formatting -----------------------------------------------------------------------------


def missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt(value, kind: str, masked: bool = False) -> str:
    """A value as the report prints it (formats), ``s`` for a count masked by secrecy."""
    if kind == "count":
        return formats.count(value, masked and missing(value))
    if masked and missing(value) and kind in {"percent", "share"}:
        return formats.SECRET
    if kind == "number":
        return formats.number(value)
    if kind == "number1":
        return formats.number(value, 1)
    if kind == "percent":
        return formats.percent(value)
    if kind == "points":
        return formats.points(value)
    if kind == "currency":
        return formats.currency(value)
    if kind == "currency2":
        return formats.currency(value, 2)
    if kind == "share":
        return formats.share(value)
    return formats.MISSING if missing(value) else str(value)


def raw(value) -> str:
    return "" if missing(value) else str(value)


def records(frame: pd.DataFrame | None) -> list[dict]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def shown_columns(table: Table) -> list[Column]:
    """The table's columns but the numeric ones without any value (a reference the territory
    does not have): a column of dashes says nothing."""
    return [
        col
        for col in table.columns
        if col.kind == "text" or any(not missing(row.get(col.key)) for row in table.rows)
    ]


def cells(table: Table, row: dict, columns: list[Column] | None = None) -> list[dict]:
    """The cells of one row: text, raw value, column and mart (for data-* attributes)."""
    masked = bool(row.get("secret_statistique"))
    out = []
    for col in columns if columns is not None else table.columns:
        value = row.get(col.key)
        if col.kind == "note":  # a value printed with its nature and millésime
            text = row.get(f"{col.key}_note") or formats.MISSING
        else:
            text = fmt(value, row.get("_kind", "text") if col.kind == "auto" else col.kind, masked)
        out.append(
            {
                "text": text,
                "raw": raw(value),
                "column": col.key,
                "mart": col.mart,
                "numeric": col.kind not in {"text", "note"},
            }
        )
    return out


def masked_sum(frame: pd.DataFrame, column: str) -> tuple[float | None, bool]:
    """The sum of a count column over rows, or (None, True) when one of its cells was masked by
    statistical secrecy (the sum would give the masked value away by difference)."""
    if frame is None or frame.empty or column not in frame:
        return None, False
    if "secret_statistique" in frame and frame[column].isna().any():
        if frame.loc[frame[column].isna(), "secret_statistique"].astype(bool).any():
            return None, True
    values = frame[column].dropna()
    return (float(values.sum()) if not values.empty else None), False


def normalise(text: str) -> str:
    """Lower case without accents: ``Égalité`` -> ``egalite``."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def theme_code(text: str) -> str:
    key = normalise(text)
    if key not in THEMES:
        listing = " ; ".join(f"{code} ({label})" for code, label in THEMES.items())
        raise FocusUsageError(
            f"thème de note focus inconnu {text!r} ; thèmes disponibles : {listing}"
        )
    return key


# --- public names of the sources -----------------------------------------------------------


def observation_sources(con, codes: list[str]) -> list[str]:
    """« INSEE, base IPRO 2022 », « Fournisseur local, tableau COMPAS 2022 »: the bases and
    millésimes of the indicators published for these QPV (indicateurs_qpv)."""
    if not codes:
        return []
    rows = con.execute(
        f"""
        select distinct origine, source, millesime from marts.indicateurs_qpv
        where code_qpv in ({", ".join("?" for _ in codes)}) and not coalesce(secret, false)
        order by origine, source, millesime
        """,
        codes,
    ).fetchall()
    out = []
    for origin, source, millesime in rows:
        if (origin or "").upper() == "INSEE":
            out.append(f"INSEE, base {source} {millesime}")
        else:
            out.append(f"{(origin or 'source locale').capitalize()}, tableau {source} {millesime}")
    return out


def suivi_sources(con, year: int, bilans: bool = True) -> list[str]:
    out = [f"Programmation {year} du contrat de ville (actions et montants par financeur)"]
    if bilans:
        out.append(f"Bilans des actions {year} (bénéficiaires déclarés par les porteurs)")
    return out


def is_demo(con) -> bool:
    found = con.execute(
        "select count(*) from staging.stg_audit__ingestion_log where fichier like ?",
        [f"%{DEMO_TOKEN}%"],
    ).fetchone()[0]
    return bool(found)
