"""Rapport annuel OSE: one self-contained HTML file (and its PDF) per territory and year.

``ecrire_rapport`` reads the marts of a built warehouse (read-only: analysts may query it at the
same time), renders ``templates/rapport.html.j2`` and prints the PDF with headless Chromium when
it is available. See :mod:`pipelines.report.data` for where each figure comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.report.data import (
    RapportError,
    annees_disponibles,
    charger,
    connect,
    resolve_territoire,
    territoires,
)
from pipelines.report.render import chromium, imprimer_pdf, rendre

__all__ = [
    "RapportError",
    "Rapport",
    "ecrire_rapport",
    "ecrire_rapports_recents",
    "rapports_recents",
]


@dataclass
class Rapport:
    territoire: str
    annee: int
    html: Path
    pdf: Path | None
    pdf_erreur: str | None = None


def nom_fichier(territoire: str, annee: int) -> str:
    return f"rapport_{territoire}_{annee}.html"


def _ecrire(con, terr, annee: int, out: Path, pdf: bool) -> Rapport:
    donnees = charger(con, terr, annee)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(rendre(donnees), encoding="utf-8")
    tmp.replace(out)
    rapport = Rapport(terr.code, annee, out, None)
    if pdf:
        if chromium() is None:
            rapport.pdf_erreur = "chromium introuvable : PDF non produit (make install-chromium)"
        else:
            rapport.pdf = imprimer_pdf(out, out.with_suffix(".pdf"))
    return rapport


def ecrire_rapport(
    warehouse: Path,
    territoire: str,
    annee: int | None = None,
    out: Path | None = None,
    out_dir: Path | None = None,
    pdf: bool = True,
) -> Rapport:
    """The report of ``territoire`` (code, SIREN or name) for ``annee`` (default: its latest
    programmation year), written to ``out`` (default ``out_dir/rapport_<code>_<annee>.html``)."""
    con = connect(warehouse)
    try:
        terr = resolve_territoire(con, territoire)
        if annee is None:
            annees = annees_disponibles(con, terr.code)
            if not annees:
                raise RapportError(f"{terr.code} : aucune programmation dans l'entrepôt")
            annee = annees[-1]
        if out is None:
            out = Path(out_dir or ".") / nom_fichier(terr.code, annee)
        return _ecrire(con, terr, annee, Path(out), pdf)
    finally:
        con.close()


def rapports_recents(con, out_dir: Path, pdf: bool = True) -> list[Rapport]:
    """One report per territory, for its latest programmation year, on an open connection
    (spatial loaded): what the Dagster asset ``rapport/rapports_annuels`` does."""
    rapports = []
    for terr in territoires(con):
        annees = annees_disponibles(con, terr.code)
        if annees:
            out = Path(out_dir) / nom_fichier(terr.code, annees[-1])
            rapports.append(_ecrire(con, terr, annees[-1], out, pdf))
    return rapports


def ecrire_rapports_recents(warehouse: Path, out_dir: Path, pdf: bool = True) -> list[Rapport]:
    """One report per territory of the warehouse, for its latest programmation year."""
    con = connect(warehouse)
    try:
        return rapports_recents(con, out_dir, pdf)
    finally:
        con.close()
