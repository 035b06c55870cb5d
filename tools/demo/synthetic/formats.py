"""Formatting and writing helpers: French amounts, dates and percentages, CSV files (BOM,
line endings, preamble), normalised XLSX workbooks and README files, and the base class of
the file writers.
"""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .plans import FIXED_TIMESTAMP, MENTION
from .referentiels import Node, Referentiels

_THOUSANDS = (" ", "\u00a0", "\u202f")


def fr_amount(value: float | None, rng: random.Random, euro: bool = True) -> str:
    """``12 500,00 €`` with a normal, non-breaking or narrow non-breaking space."""
    if value is None:
        return ""
    text = f"{value:,.2f}".replace(",", "§").replace(".", ",")
    text = text.replace("§", rng.choice(_THOUSANDS))
    return f"{text} €" if euro else text


def fr_total(value: float) -> str:
    """``1 234 567,50 €`` with plain spaces (README figures)."""
    return f"{value:,.2f} €".replace(",", " ").replace(".", ",")


def fr_date(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def fr_percent(value: float) -> str:
    return f"{round(value * 100)} %"


def code_label(node: Node | None, with_label: bool = True) -> str:
    if node is None:
        return ""
    return f"{node.code} - {node.libelle}" if with_label else node.code


def _write_csv(
    path: Path,
    preamble: str | None,
    header: list[str],
    rows: list[list[str]],
    delimiter: str,
    bom: bool,
    newline: str,
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL
    )
    if preamble:
        writer.writerow([preamble])
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def _normalise_xlsx(path: Path) -> None:
    """Fixed timestamps inside the XLSX zip so that the same seed gives the same bytes."""
    with zipfile.ZipFile(path) as source:
        items = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in items:
            if name == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                    rb"\g<1>2026-01-01T00:00:00Z",
                    data,
                )
            info = zipfile.ZipInfo(name, FIXED_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)


def _save_workbook(workbook: Any, path: Path) -> None:
    workbook.properties.creator = "observatoire-qpv (générateur de démonstration)"
    workbook.properties.title = MENTION
    workbook.properties.created = datetime(2026, 1, 1)
    workbook.save(path)
    _normalise_xlsx(path)


def _readme_sheet(workbook: Any, title: str, lines: list[str]) -> None:
    sheet = workbook.active
    sheet.title = title
    for idx, line in enumerate(lines, start=1):
        sheet.cell(row=idx, column=1, value=line)
    sheet.column_dimensions["A"].width = 110


def _plain(value: float | None) -> str:
    """CABBALR style: ``12500`` or ``12500,5``; empty for None."""
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".replace(".", ",")


def _readme(folder: Path, title: str, lines: list[str]) -> Path:
    path = folder / "README.txt"
    text = "\n".join([f"{MENTION.upper()} — {title}", "=" * 72, *lines, ""])
    path.write_text(text, encoding="utf-8")
    return path


class FolderWriter:
    """Base of the file writers: where the files go, the référentiels and the shared random
    generator (one sequence of draws for all files, so the order of the calls matters)."""

    def __init__(self, raw_dir: Path, refs: Referentiels, rng: random.Random) -> None:
        self.raw_dir = raw_dir
        self.refs = refs
        self.rng = rng
        self.written: list[Path] = []
        self.summary: list[str] = []

    def folder(self, name: str) -> Path:
        path = self.raw_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
