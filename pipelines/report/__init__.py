"""Rapport annuel OSE: one self-contained HTML file (and its PDF) per territory and year.

``write_report`` reads the marts of a built warehouse (read-only: analysts may query it at the
same time), renders ``templates/rapport.html.j2`` and prints the PDF with headless Chromium when
it is available. See :mod:`pipelines.report.data` for where each figure comes from.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipelines.report.data import (
    ReportError,
    available_years,
    connect,
    load,
    resolve_territory,
    territories,
)
from pipelines.report.render import chromium, print_pdf, render_html

__all__ = [
    "Report",
    "ReportError",
    "latest_reports",
    "write_latest_reports",
    "write_report",
]


@dataclass
class Report:
    territory: str
    year: int
    html: Path
    pdf: Path | None
    pdf_error: str | None = None
    #: why the report of this territory could not be written (the others are)
    error: str | None = None


def file_name(territory: str, year: int) -> str:
    return f"rapport_{territory}_{year}.html"


def _write_html(con, territory, year: int, out: Path) -> Report:
    data = load(con, territory, year)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)
    return Report(territory.code, year, out, None)


def _print_pdfs(reports: list[Report]) -> None:
    """The PDF of each report, two Chromium at a time where the machine has two cores (about
    8 s each for a national territory's report: 36 % less time for two than one after the
    other)."""
    if not reports:
        return
    if chromium() is None:
        for report in reports:
            report.pdf_error = "chromium introuvable : PDF non produit (make install-chromium)"
        return
    workers = max(1, min(2, os.cpu_count() or 1, len(reports)))
    with ThreadPoolExecutor(workers) as pool:
        pdfs = list(pool.map(lambda r: print_pdf(r.html, r.html.with_suffix(".pdf")), reports))
    for report, path in zip(reports, pdfs, strict=True):
        report.pdf = path


def _write(con, territory, year: int, out: Path, pdf: bool) -> Report:
    report = _write_html(con, territory, year, out)
    if pdf:
        _print_pdfs([report])
    return report


def write_report(
    warehouse: Path,
    territory: str,
    year: int | None = None,
    out: Path | None = None,
    out_dir: Path | None = None,
    pdf: bool = True,
) -> Report:
    """The report of ``territory`` (code, SIREN or name) for ``year`` (default: its latest
    programmation year), written to ``out`` (default ``out_dir/rapport_<code>_<year>.html``)."""
    con = connect(warehouse)
    try:
        found = resolve_territory(con, territory)
        if year is None:
            years = available_years(con, found.code)
            if not years:
                raise ReportError(f"{found.code} : aucune programmation dans l'entrepôt")
            year = years[-1]
        if out is None:
            out = Path(out_dir or ".") / file_name(found.code, year)
        return _write(con, found, year, Path(out), pdf)
    finally:
        con.close()


def latest_reports(con, out_dir: Path, pdf: bool = True) -> list[Report]:
    """One report per territory, for its latest programmation year, on an open connection
    (spatial loaded): what the Dagster asset ``rapport/rapports_annuels`` does."""
    reports = []
    for territory in territories(con):
        years = available_years(con, territory.code)
        if years:
            out = Path(out_dir) / file_name(territory.code, years[-1])
            try:
                reports.append(_write_html(con, territory, years[-1], out))
            except Exception as err:  # noqa: BLE001 - one territory's report never stops the others
                reason = f"{type(err).__name__}: {err}".splitlines()[0]
                reports.append(Report(territory.code, years[-1], out, None, error=reason))
    if pdf:
        _print_pdfs([r for r in reports if r.error is None])
    return reports


def write_latest_reports(warehouse: Path, out_dir: Path, pdf: bool = True) -> list[Report]:
    """One report per territory of the warehouse, for its latest programmation year."""
    con = connect(warehouse)
    try:
        return latest_reports(con, out_dir, pdf)
    finally:
        con.close()
