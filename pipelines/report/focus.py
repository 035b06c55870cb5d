"""Notes focus (« Focus Osé », seed 001): short thematic notes that, condensed, make the report.

``observatoire report --focus <thème>`` writes one note (HTML, and its PDF by the same Chromium
printing as the rapport annuel) for a territory and a programmation year: ``emploi``,
``egalite``, or ``quartier`` with ``--qpv <code>``. A note is a cover block, 3 to 6 key figures,
a short text that states figures read from the marts (no commentary), 2 to 4 tables or charts per
section and its sources under their public names. The readers of each theme are in
:mod:`~pipelines.report.focus_emploi`, :mod:`~pipelines.report.focus_egalite` and
:mod:`~pipelines.report.focus_quartier` (shared pieces: :mod:`~pipelines.report.focus_common`),
the note's model in :mod:`~pipelines.report.focus_model`; this module resolves the territory,
year and QPV, renders ``templates/focus.html.j2`` and writes the files. Like the report, a note
reads rows of marts and formats them; the few sums it prints (money or people of several
orientations or financeurs) are sums of mart rows, never of rates, and are withheld (« s »)
when a summed count was masked by statistical secrecy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pipelines.report import focus_egalite, focus_emploi, focus_quartier, formats
from pipelines.report.data import (
    ReportError,
    Territory,
    available_years,
    connect,
    resolve_territory,
    territories,
)
from pipelines.report.focus_model import (
    THEMES,
    FocusNote,
    FocusUsageError,
    Table,
    cells,
    is_demo,
    shown_columns,
    theme_code,
)
from pipelines.report.render import TEMPLATES, chromium, print_pdf

__all__ = ["THEMES", "FocusResult", "FocusUsageError", "write_focus"]

# --- rendering and files --------------------------------------------------------------------


def render(note: FocusNote) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("focus.html.j2").render(
        n=note,
        t=note.territory,
        f=formats,
        cells=cells,
        shown_columns=shown_columns,
        is_table=lambda item: isinstance(item, Table),
        markup=Markup,
        generated_on=dt.date.today().strftime("%d/%m/%Y"),
    )


def file_name(note: FocusNote) -> str:
    return f"focus_{note.theme}_{note.slug or note.territory.code}_{note.year}.html"


@dataclass
class FocusResult:
    theme: str
    territory: str
    year: int
    html: Path
    pdf: Path | None = None
    pdf_error: str | None = None


Loader = Callable[..., FocusNote]


def _loader(theme: str) -> Loader:
    return {
        "emploi": focus_emploi.load_emploi,
        "egalite": focus_egalite.load_egalite,
        "quartier": focus_quartier.load_quartier,
    }[theme]


def _year(con, territory: Territory, year: int | None) -> int:
    years = available_years(con, territory.code)
    if year is None:
        if not years:
            raise ReportError(f"{territory.code} : aucune programmation dans l'entrepôt")
        return years[-1]
    if year not in years:
        raise ReportError(
            f"{territory.code} : aucune programmation pour {year} dans l'entrepôt "
            f"(années disponibles : {', '.join(map(str, years)) or 'aucune'})"
        )
    return year


def _qpv_territory(con, qpv: str, territory: str | None) -> tuple[str, Territory]:
    """The QPV code as stored and its territory; an unknown code lists the valid ones."""
    code = qpv.strip().upper()
    found = con.execute(
        "select code_qpv, territoire from marts.dim_qpv where upper(code_qpv) = ? "
        "and territoire is not null",
        [code],
    ).fetchone()
    scope = resolve_territory(con, territory) if territory else None
    if found is None or (scope is not None and found[1] != scope.code):
        rows = con.execute(
            "select code_qpv, libelle_qpv, territoire from marts.dim_qpv "
            "where territoire is not null and (? is null or territoire = ?) "
            "order by territoire, code_qpv",
            [scope.code if scope else None, scope.code if scope else None],
        ).fetchall()
        shown = [f"{c} ({name}, {t})" for c, name, t in rows[:80]]
        more = f" … et {len(rows) - 80} autres" if len(rows) > 80 else ""
        where = f" du territoire {scope.code}" if scope else " des territoires"
        raise FocusUsageError(
            f"QPV {qpv!r} inconnu{where} ; QPV valides : {', '.join(shown) or 'aucun'}{more}"
        )
    by_code = {t.code: t for t in territories(con)}
    return found[0], by_code[found[1]]


def write_focus(
    warehouse: Path,
    theme: str,
    territory: str | None = None,
    year: int | None = None,
    qpv: str | None = None,
    out: Path | None = None,
    out_dir: Path | None = None,
    pdf: bool = True,
) -> list[FocusResult]:
    """The note ``theme`` of ``territory`` (every territory with a programmation when None; the
    QPV's territory for ``quartier``) for ``year`` (default: the latest programmation year),
    written to ``out`` or ``out_dir/focus_<thème>_<territoire ou QPV>_<année>.html``."""
    theme = theme_code(theme)
    if theme == "quartier" and not qpv:
        raise FocusUsageError("la note focus « quartier » demande --qpv <code du QPV>")
    if theme != "quartier" and qpv:
        raise FocusUsageError(f"--qpv ne sert qu'à la note focus « quartier », pas à « {theme} »")
    con = connect(warehouse)
    try:
        jobs: list[tuple[Territory, str | None]] = []
        if theme == "quartier":
            code, found = _qpv_territory(con, qpv, territory)
            jobs.append((found, code))
        elif territory:
            jobs.append((resolve_territory(con, territory), None))
        else:
            jobs = [(t, None) for t in territories(con) if available_years(con, t.code)]
            if not jobs:
                raise ReportError(f"{warehouse}: aucun territoire n'a de programmation")
        if out is not None and len(jobs) > 1:
            raise FocusUsageError("--out demande --territoire (une seule note)")
        results = []
        for found, code in jobs:
            note_year = _year(con, found, year)
            note = _loader(theme)(con, found, note_year, **({"qpv": code} if code else {}))
            note.demo = is_demo(con)
            # a key figure without value (unpublished, incomplete aggregate) is not shown
            note.figures = [f for f in note.figures if f.text != formats.MISSING]
            target = Path(out) if out is not None else Path(out_dir or ".") / file_name(note)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(render(note), encoding="utf-8")
            tmp.replace(target)
            results.append(FocusResult(theme, found.code, note_year, target))
    finally:
        con.close()
    if pdf:
        for result in results:
            if chromium() is None:
                result.pdf_error = "chromium introuvable : PDF non produit (make install-chromium)"
                continue
            result.pdf = print_pdf(result.html, result.html.with_suffix(".pdf"))
    return results
