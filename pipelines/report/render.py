"""The rapport annuel as one self-contained HTML file (and its PDF, printed by Chromium).

``rendre`` turns the rows read by :mod:`pipelines.report.data` into the page: tables, SVG charts
and maps (:mod:`pipelines.report.charts`), all inline, no script, no font or image fetched. Each
table carries ``data-mart`` (the mart its rows come from) and each cell ``data-colonne`` /
``data-valeur`` (the raw value), so that a test, or a reader, can check the page against the
warehouse.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pipelines.report import charts, formats
from pipelines.report.data import DonneesRapport

TEMPLATES = Path(__file__).with_name("templates")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# What a fiche quartier shows (fiche_quartier columns), in this order, when the mart has a value.
FICHE = [
    ("pop_municipale", "Population municipale", "nombre"),
    ("part_femmes", "Part des femmes", "pourcent"),
    ("part_etrangers", "Part des étrangers", "pourcent"),
    ("part_0_24", "Part des 0-24 ans", "pourcent"),
    ("taux_emploi", "Taux d'emploi 15-64 ans", "pourcent"),
    ("taux_emploi_femmes", "Taux d'emploi des femmes", "pourcent"),
    ("part_emplois_precaires", "Part des emplois précaires", "pourcent"),
    ("demandeurs_emploi_abc", "Demandeurs d'emploi ABC", "nombre"),
    ("demandeurs_emploi_abc_femmes", "dont femmes", "nombre"),
    ("demandeurs_emploi_abc_hommes", "dont hommes", "nombre"),
    ("demandeurs_emploi_abc_moins_25", "dont moins de 25 ans", "nombre"),
    ("taux_pauvrete_60", "Taux de pauvreté (60 %)", "pourcent"),
    ("revenu_disponible_median_uc", "Revenu disponible médian par UC", "euros"),
    ("part_prestations_sociales", "Part des prestations sociales", "pourcent"),
    ("allocataires_caf", "Allocataires CAF", "nombre"),
    ("allocataires_rsa", "Allocataires RSA", "nombre"),
    ("part_familles_monoparentales", "Part des familles monoparentales", "pourcent"),
    ("part_beneficiaires_c2s", "Part des bénéficiaires de la C2S", "pourcent"),
    ("indice_fragilite", "Indice de fragilité", "nombre1"),
]

COMPARABILITE = {
    "comparable": "évolution comparable",
    "ecart_millesimes_insuffisant": "non comparable : millésimes trop proches (voir l'encadré)",
    "autre_geographie": "non comparable : autre géographie (2015 → 2024, voir l'encadré)",
    "sans_millesime_precedent": "pas de millésime antérieur",
}


def _v(valeur):
    """The raw value of a cell for data-valeur (empty when missing)."""
    if valeur is None or (not isinstance(valeur, (list, tuple)) and pd.isna(valeur)):
        return ""
    return str(valeur)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def _premier(frame: pd.DataFrame, colonne: str):
    """The first non-missing value of a column (the same reference repeated on every row)."""
    if frame.empty or colonne not in frame:
        return None
    serie = frame[colonne].dropna()
    return None if serie.empty else serie.iloc[0]


def _carte_categories(
    d: DonneesRapport, categorie: dict[str, str], titre: str, legende: str
) -> str:
    """The territory's contours coloured by a category per QPV code (read from a mart)."""
    contours = d["contours"]
    if contours.empty or d.emprise is None:
        return ""
    inconnu = "non renseigné"
    noms = sorted({categorie.get(c, inconnu) for c in contours["code_qpv"]})
    couleurs = {n: charts.CATEGORIES[i % len(charts.CATEGORIES)] for i, n in enumerate(noms)}
    zones = [
        charts.Zone(
            code=r["code_qpv"],
            chemin=r["chemin"],
            valeur=None,
            info=categorie.get(r["code_qpv"], inconnu),
            etiquette=r["code_qpv"][-4:],
            x=r["x"],
            y=r["y"],
        )
        for r in _records(contours)
    ]
    return charts.carte(zones, d.emprise, titre, legende, categories=couleurs)


def _carte_communes(d: DonneesRapport) -> str:
    communes = d["communes"]
    principale = (
        communes[communes["rang_commune"] == 1].set_index("code_qpv")["nom_commune"].to_dict()
    )
    return _carte_categories(
        d,
        principale,
        "Les QPV du territoire, colorés par leur commune principale",
        "Commune principale du QPV (étiquette : fin du code QPV)",
    )


LIENS = {
    "un_pour_un": "reconduit : un QPV 2015 pour un QPV 2024",
    "fusion": "fusion de plusieurs QPV 2015",
    "scission": "issu de la scission d'un QPV 2015",
    "recomposition": "recomposition (plusieurs liens)",
    "entree": "nouveau QPV 2024",
    "entre_ou_non_relie": "nouveau QPV 2024 ou lien absent de la table",
    "sortie": "sorti de la géographie prioritaire",
    "sorti_ou_non_relie": "sorti ou lien absent de la table",
}


def _carte_passage(d: DonneesRapport) -> str:
    """Each contour coloured by its kind of link in passage_qpv_2015_2024."""
    categorie: dict[str, str] = {}
    for r in _records(d["passage"]):
        for code in (r["code_qpv_2024"], r["code_qpv_2015"]):
            if code and code not in categorie:
                categorie[code] = LIENS.get(r["type_lien"], r["type_lien"])
    return _carte_categories(
        d,
        categorie,
        "Le passage de la géographie 2015 à la géographie 2024",
        "Lien avec la géographie 2015 (table de passage)",
    )


def _carte_valeurs(
    d: DonneesRapport, rows: list[dict], colonne: str, titre: str, unite: str, palette: str
) -> str:
    zones = [
        charts.Zone(
            code=r["code_qpv"],
            chemin=r["chemin"],
            valeur=None if pd.isna(r[colonne]) else float(r[colonne]),
            info=f"{r['code_qpv']} {r.get('libelle_qpv') or ''} : {formats.nombre(r[colonne], 1)}",
            etiquette=r["code_qpv"][-4:],
            x=r["x"],
            y=r["y"],
        )
        for r in rows
    ]
    if not zones or d.emprise is None:
        return ""
    return charts.carte(zones, d.emprise, titre, unite, palette=palette)


def _graphique_orientations(d: DonneesRapport) -> str:
    rows = _records(d["depenses_orientation"])
    barres: dict[str, charts.Barre] = {}
    for r in rows:
        libelle = f"{r['orientation_code']} {r['orientation_libelle'] or ''}".strip()
        barre = barres.setdefault(r["orientation_code"], charts.Barre(libelle, []))
        barre.segments.append(
            charts.Segment(r["financeur_nom"] or r["financeur"] or "?", r["montant_accorde"])
        )
    return charts.barres_empilees(
        list(barres.values()),
        "€",
        f"Montants accordés {d.annee} par orientation et par financeur",
    )


def _graphique_financeurs(d: DonneesRapport) -> str:
    barres = [
        charts.Barre(
            f"{r['financeur_nom'] or r['financeur']} ({r['type_credit'] or '?'})",
            [charts.Segment(r["type_credit"] or "non renseigné", r["montant_accorde"])],
            total_affiche=r["montant_accorde"],
        )
        for r in _records(d["depenses_financeur"])
    ]
    return charts.barres_empilees(barres, "€", f"Montants accordés {d.annee} par financeur")


def _graphique_beneficiaires(d: DonneesRapport) -> str:
    barres = []
    for r in _records(d["beneficiaires_orientation"]):
        segments = [
            charts.Segment("femmes", r["femmes"]),
            charts.Segment("hommes", r["hommes"]),
            charts.Segment("sexe non renseigné", r["sexe_non_renseigne"]),
        ]
        masque = bool(r.get("secret_statistique"))
        barres.append(
            charts.Barre(
                f"{r['orientation_code']} {r['orientation_libelle'] or ''}"
                + (" (secret)" if masque else ""),
                segments,
                total_affiche=r["total"],
            )
        )
    return charts.barres_empilees(
        barres, "bénéficiaires", f"Bénéficiaires {d.annee} par orientation et par sexe"
    )


def _graphique_marqueur(d: DonneesRapport) -> str:
    barres = [
        charts.Barre(
            f"{r['libelle']}" + ("" if r["niveau_eligible"] else " (non éligible)"),
            [charts.Segment("montant accordé", r["montant_accorde"])],
            total_affiche=r["montant_accorde"],
        )
        for r in _records(d["marqueur"])
    ]
    return charts.barres_empilees(
        barres, "€", f"Montants accordés {d.annee} par niveau du marqueur égalité"
    )


def contexte(d: DonneesRapport) -> dict:
    taux = d["taux_emploi"]
    carte_emploi_rows = _records(d["carte_emploi"])
    ecart_col = (
        "ecart_epci_points"
        if not d["carte_emploi"].empty and d["carte_emploi"]["ecart_epci_points"].notna().any()
        else "ecart_france_points"
    )
    ecart_ref = "de l'EPCI" if ecart_col == "ecart_epci_points" else "de la France"
    carte_effort = d["carte_effort"]
    effort_carto = _records(carte_effort)
    effort_col = (
        "euros_par_habitant"
        if not carte_effort.empty and carte_effort["euros_par_habitant"].notna().any()
        else "montant_accorde"
    )
    geographies_effort = sorted(set(carte_effort["geographie_programmation"].dropna()))
    return {
        "d": d,
        "t": d.territoire,
        "f": formats,
        "v": _v,
        "rec": _records,
        "premier": _premier,
        "comparabilite": COMPARABILITE,
        "fiche_champs": FICHE,
        "genere_le": dt.date.today().strftime("%d/%m/%Y"),
        "carte_communes": Markup(_carte_communes(d)),
        "carte_passage": Markup(_carte_passage(d)),
        "carte_emploi": Markup(
            _carte_valeurs(
                d,
                [r for r in carte_emploi_rows if r.get("chemin")],
                ecart_col,
                f"Écart du taux d'emploi au taux {ecart_ref} ({d.millesime})",
                f"Écart au taux d'emploi {ecart_ref}, en points",
                "divergent",
            )
        ),
        "carte_emploi_rows": carte_emploi_rows,
        "ecart_col": ecart_col,
        "ecart_ref": ecart_ref,
        "taux_epci": _premier(taux, "taux_emploi_epci"),
        "taux_france": _premier(taux, "taux_emploi_france"),
        "source_epci": _premier(taux, "source_reference_epci"),
        "source_france": _premier(taux, "source_reference_france"),
        "graphique_orientations": Markup(_graphique_orientations(d)),
        "graphique_financeurs": Markup(_graphique_financeurs(d)),
        "graphique_beneficiaires": Markup(_graphique_beneficiaires(d)),
        "graphique_marqueur": Markup(_graphique_marqueur(d)),
        "carte_effort": Markup(
            _carte_valeurs(
                d,
                effort_carto,
                effort_col,
                (
                    f"Effort par habitant {d.annee}"
                    if effort_col == "euros_par_habitant"
                    else f"Montants accordés {d.annee} par QPV"
                ),
                "€ par habitant" if effort_col == "euros_par_habitant" else "€ accordés",
                "sequentiel",
            )
        ),
        "effort_col": effort_col,
        "effort_carto": effort_carto,
        "geographies_effort": geographies_effort,
        "synthese_annee": next((r for r in _records(d["synthese"]) if r["annee"] == d.annee), None),
    }


def rendre(d: DonneesRapport) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("rapport.html.j2").render(**contexte(d))


def chromium() -> str | None:
    """The Chromium executable (OBSERVATOIRE_CHROMIUM, else chromium on the PATH), if any."""
    explicit = os.environ.get("OBSERVATOIRE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def imprimer_pdf(html: Path, pdf: Path, timeout: int = 120) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium (no network: the page needs none)."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError(
            "chromium introuvable : installer le paquet Debian `chromium` (make install-chromium) "
            "ou donner son chemin dans OBSERVATOIRE_CHROMIUM"
        )
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="observatoire-chromium-") as profil:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profil}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            html.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"{html}: Chromium n'a pas produit le PDF (code {proc.returncode}) : "
            f"{proc.stderr.strip().splitlines()[-1:] if proc.stderr else ''}"
        )
    tmp.replace(pdf)
    return pdf
