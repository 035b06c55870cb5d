"""The rapport annuel as one self-contained HTML file (and its PDF, printed by Chromium).

``render_html`` turns the rows read by :mod:`pipelines.report.data` into the page: tables, SVG
charts and maps (:mod:`pipelines.report.charts`), all inline, no script, no font or image
fetched. Each table carries ``data-mart`` (the mart its rows come from) and each cell
``data-colonne`` / ``data-valeur`` (the raw value), so that a test, or a reader, can check the
page against the warehouse.

Why this module is long: it holds everything between the marts' rows and the printed page that
the template cannot do alone (the maps' numbering and key, the orientation x financeur grid, the
controls grouped by rule, the sources by public name, the contents and the empty columns left
out) and the two-pass PDF print that numbers the contents; each piece is short, and keeping them
together keeps the page's logic in one place beside its template.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pipelines.report import charts, formats, labels
from pipelines.report.data import ReportData

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
FICHE_FIELDS = [
    ("pop_municipale", "Population municipale", "number"),
    ("part_femmes", "Part des femmes", "percent"),
    ("part_etrangers", "Part des étrangers", "percent"),
    ("part_0_24", "Part des 0-24 ans", "percent"),
    ("taux_emploi", "Taux d'emploi 15-64 ans", "percent"),
    ("taux_emploi_femmes", "Taux d'emploi des femmes", "percent"),
    ("part_emplois_precaires", "Part des emplois précaires", "percent"),
    ("demandeurs_emploi_abc", "Demandeurs d'emploi ABC", "number"),
    ("demandeurs_emploi_abc_femmes", "dont femmes", "number"),
    ("demandeurs_emploi_abc_hommes", "dont hommes", "number"),
    ("demandeurs_emploi_abc_moins_25", "dont moins de 25 ans", "number"),
    ("taux_pauvrete_60", "Taux de pauvreté (60 %)", "percent"),
    ("revenu_disponible_median_uc", "Revenu disponible médian par UC", "currency"),
    ("part_prestations_sociales", "Part des prestations sociales", "percent"),
    ("allocataires_caf", "Allocataires CAF", "number"),
    ("allocataires_rsa", "Allocataires RSA", "number"),
    ("part_familles_monoparentales", "Part des familles monoparentales", "percent"),
    ("part_beneficiaires_c2s", "Part des bénéficiaires de la C2S", "percent"),
    ("indice_fragilite", "Indice de fragilité", "number1"),
]

COMPARABILITY = {
    "comparable": "évolution comparable",
    "ecart_millesimes_insuffisant": "non comparable : millésimes trop proches (voir l'encadré)",
    "autre_geographie": "non comparable : autre géographie (2015 → 2024, voir l'encadré)",
    "sans_millesime_precedent": "pas de millésime antérieur",
}


def _v(value):
    """The raw value of a cell for data-valeur (empty when missing)."""
    if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)):
        return ""
    return str(value)


def _css_string(text: str) -> str:
    """A text inside a CSS string of the page's style (quotes and backslashes escaped)."""
    return Markup(text.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\3C "))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def _first(frame: pd.DataFrame, column: str):
    """The first non-missing value of a column (the same reference repeated on every row)."""
    if frame.empty or column not in frame:
        return None
    values = frame[column].dropna()
    return None if values.empty else values.iloc[0]


def _reference_note(rates: pd.DataFrame, level: str) -> str | None:
    """How the reference rate of a level was chosen: its source (a document's title for a quoted
    value), its nature and millésime, and the millésimes its gaps mix (taux_emploi_quartier)."""
    source = _first(rates, f"source_reference_{level}")
    if source is None:
        return None
    nature = _first(rates, f"nature_reference_{level}")
    millesime = _first(rates, f"millesime_reference_{level}")
    comparability = _first(rates, f"comparabilite_ecart_{level}")
    parts = [f"valeur citée : {source}" if nature == "citee" else source]
    if millesime is None:
        parts.append("millésime non indiqué par le document")
    else:
        parts.append(f"millésime {int(millesime)}")
    if comparability == "millesimes_differents":
        parts.append("écarts entre millésimes différents")
    elif comparability == "millesime_reference_non_indique":
        parts.append("écarts à lire avec prudence")
    return " ; ".join(parts)


def map_numbers(d: ReportData) -> dict[str, int]:
    """The number of each contour on the maps (by name), explained by the key under each map."""
    contours = d["contours"]
    if contours.empty:
        return {}
    ordered = sorted(_records(contours), key=lambda r: (str(r["libelle_qpv"] or ""), r["code_qpv"]))
    return {r["code_qpv"]: i + 1 for i, r in enumerate(ordered)}


def map_key(d: ReportData) -> str:
    """The numbered key of the maps: number, quartier's name, commune."""
    numbers = map_numbers(d)
    if not numbers:
        return ""
    rows = {r["code_qpv"]: r for r in _records(d["contours"])}
    items = "".join(
        f"<li><b>{n}</b> {html_lib.escape(str(rows[c]['libelle_qpv'] or c))}"
        f" <span class='code'>{html_lib.escape(labels.communes(rows[c]['noms_communes']))}"
        "</span></li>"
        for c, n in sorted(numbers.items(), key=lambda item: item[1])
    )
    return f"<ol class='cle-carte'>{items}</ol>"


def _category_map(d: ReportData, category: dict[str, str], title: str, legend: str) -> str:
    """The territory's contours coloured by a category per QPV code (read from a mart)."""
    contours = d["contours"]
    if contours.empty or d.extent is None:
        return ""
    unknown = "non renseigné"
    numbers = map_numbers(d)
    names = sorted({category.get(c, unknown) for c in contours["code_qpv"]})
    colors = {n: charts.CATEGORIES[i % len(charts.CATEGORIES)] for i, n in enumerate(names)}
    areas = [
        charts.Area(
            code=r["code_qpv"],
            path=r["chemin"],
            value=None,
            info=category.get(r["code_qpv"], unknown),
            label=str(numbers.get(r["code_qpv"], "")),
            x=r["x"],
            y=r["y"],
        )
        for r in _records(contours)
    ]
    return charts.choropleth(
        areas, d.extent, title, legend, categories=colors, communes=d.commune_outlines
    )


def _commune_map(d: ReportData) -> str:
    communes = d["communes"]
    main_commune = (
        communes[communes["rang_commune"] == 1].set_index("code_qpv")["nom_commune"].to_dict()
    )
    return _category_map(
        d,
        main_commune,
        "Les QPV du territoire, colorés par leur commune principale",
        "Commune principale du QPV (numéros : voir la liste des quartiers)",
    )


def _crosswalk_map(d: ReportData) -> str:
    """Each contour coloured by its kind of link in passage_qpv_2015_2024."""
    category: dict[str, str] = {}
    for r in _records(d["passage"]):
        for code in (r["code_qpv_2024"], r["code_qpv_2015"]):
            if code and code not in category:
                category[code] = labels.label(labels.LINK_TYPES, r["type_lien"])
    return _category_map(
        d,
        category,
        "Le passage de la géographie 2015 à la géographie 2024",
        "Lien avec la géographie 2015 (table de passage)",
    )


def _value_map(
    d: ReportData,
    rows: list[dict],
    column: str,
    title: str,
    unit: str,
    palette: str,
    symbols: bool = False,
    unit_symbol: str = "",
) -> str:
    numbers = map_numbers(d)
    areas = [
        charts.Area(
            code=r["code_qpv"],
            path=r["chemin"],
            value=None if pd.isna(r[column]) else float(r[column]),
            info=f"{r.get('libelle_qpv') or r['code_qpv']} : {formats.number(r[column], 1)}",
            label=str(numbers.get(r["code_qpv"], "")),
            x=r["x"],
            y=r["y"],
        )
        for r in rows
    ]
    if not areas or d.extent is None:
        return ""
    return charts.choropleth(
        areas,
        d.extent,
        title,
        unit,
        palette=palette,
        symbols=symbols,
        unit_symbol=unit_symbol,
        communes=d.commune_outlines,
    )


def _orientations_chart(d: ReportData) -> str:
    rows = _records(d["depenses_orientation"])
    bars: dict[str, charts.Bar] = {}
    for r in rows:
        label = r["orientation_libelle"] or r["orientation_code"] or "?"
        bar = bars.setdefault(r["orientation_code"], charts.Bar(label, []))
        bar.segments.append(
            charts.Segment(funder_short(r["financeur_nom"], r["financeur"]), r["montant_accorde"])
        )
    grid_totals = {code: total for code, _, _, total in orientation_grid(d).rows}
    for code, bar in bars.items():
        bar.shown_total = grid_totals.get(code)
    return charts.stacked_bars(
        list(bars.values()),
        "€",
        f"Montants accordés {d.year} par orientation et par financeur",
    )


def _funders_chart(d: ReportData) -> str:
    bars = [
        charts.Bar(
            f"{funder_short(r['financeur_nom'], r['financeur'])}",
            [
                charts.Segment(
                    labels.label(labels.CREDIT_TYPES, r["type_credit"] or "non_renseigne"),
                    r["montant_accorde"],
                )
            ],
            shown_total=r["montant_accorde"],
        )
        for r in _records(d["depenses_financeur"])
    ]
    return charts.stacked_bars(bars, "€", f"Montants accordés {d.year} par financeur")


def _beneficiaries_chart(d: ReportData) -> str:
    bars = []
    for r in _records(d["beneficiaires_orientation"]):
        segments = [
            charts.Segment("femmes", r["femmes"]),
            charts.Segment("hommes", r["hommes"]),
            charts.Segment("sexe non renseigné", r["sexe_non_renseigne"]),
        ]
        masked = bool(r.get("secret_statistique"))
        bars.append(
            charts.Bar(
                f"{r['orientation_libelle'] or r['orientation_code']}"
                + (" (secret)" if masked else ""),
                segments,
                shown_total=r["total"],
            )
        )
    return charts.stacked_bars(
        bars, "bénéficiaires", f"Bénéficiaires {d.year} par orientation et par sexe"
    )


def _ineligible(value) -> bool:
    """True only for a level below the minimum in force (niveau_eligible false); a level where no
    minimum applies (NULL) is neither eligible nor ineligible: nothing is said."""
    return value is not None and not pd.isna(value) and not bool(value)


def _equality_marker_chart(d: ReportData) -> str:
    bars = [
        charts.Bar(
            f"{r['libelle']}" + (" (non éligible)" if _ineligible(r["niveau_eligible"]) else ""),
            [charts.Segment("montant accordé", r["montant_accorde"])],
            shown_total=r["montant_accorde"],
        )
        for r in _records(d["marqueur"])
    ]
    return charts.stacked_bars(
        bars, "€", f"Montants accordés {d.year} par niveau du marqueur égalité"
    )


def funder_short(name: str | None, code: str | None = None) -> str:
    """A financeur's name short enough for a column or a legend: « État – crédits spécifiques »
    for « État – crédits spécifiques « Politique de la Ville » (programme BOP 147, ANCT) »."""
    text = (name or code or "financeur non renseigné").split(" (")[0]
    return text.replace(" « Politique de la Ville »", "").strip()


def funder_name(name: str | None, code: str | None, territory_codes: list[str]) -> str:
    """A financeur's full name without a parenthesis about the territories of the référentiel
    (« (Nord ; Pas-de-Calais pour CABBALR) »): it says nothing to this territory's reader."""
    text = name or code or "financeur non renseigné"
    for other in territory_codes:
        text = re.sub(rf" \([^()]*\b{re.escape(other)}\b[^()]*\)", "", text)
    return text


@dataclass
class Grid:
    """Montants accordés by orientation (rows) and financeur (columns), with totals: sums of
    the rows of depenses_orientation (its rows are orientation x financeur x type of credit)."""

    funders: list[tuple[str, str]]  # (financeur code, short name), largest total first
    rows: list[tuple[str, str, dict[str, Decimal], Decimal]]  # code, label, cells, total
    totals: dict[str, Decimal]
    total: Decimal


def orientation_grid(d: ReportData) -> Grid:
    frame = d["depenses_orientation"]
    cells: dict[str, dict[str, Decimal]] = {}
    names: dict[str, str] = {}
    labels_: dict[str, str] = {}
    for r in _records(frame):
        funder = r["financeur"] or "?"
        names[funder] = funder_short(r["financeur_nom"], r["financeur"])
        code = r["orientation_code"] or "?"
        labels_[code] = r["orientation_libelle"] or "orientation non reconnue"
        amount = Decimal(str(r["montant_accorde"])) if _v(r["montant_accorde"]) else Decimal(0)
        row = cells.setdefault(code, {})
        row[funder] = row.get(funder, Decimal(0)) + amount
    totals: dict[str, Decimal] = {}
    for row in cells.values():
        for funder, amount in row.items():
            totals[funder] = totals.get(funder, Decimal(0)) + amount
    order = sorted(totals, key=lambda f: (-totals[f], names[f]))
    rows = [
        (code, labels_[code], row, sum(row.values(), Decimal(0)))
        for code, row in sorted(cells.items())
    ]
    return Grid([(f, names[f]) for f in order], rows, totals, sum(totals.values(), Decimal(0)))


@dataclass
class Tally:
    """The objectives without a numeric target (a commune's engagements, the evaluation
    indicators of a priorité), counted by priorité (rows) and opérateur (columns): dozens of
    them have nothing to follow yet, so the report prints their counts and the workbook's
    « Tableau de bord des objectifs » sheet their list (wording, quote, quartier, indicators)."""

    operators: list[str]  # largest count first; « non précisé » for an empty opérateur
    rows: list[tuple[str, dict[str, int], int]]  # priorité, count per opérateur, total
    totals: dict[str, int]
    total: int


def _natural(code: str) -> list:
    """P2 before P10: the digits of a code compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", code)]


def objectives_without_target(d: ReportData) -> Tally:
    cells: dict[str, dict[str, int]] = {}
    order: dict[str, tuple] = {}
    for r in _records(d["objectifs"]):
        if _v(r["cible"]):
            continue
        priority = r["priorite"] if _v(r["priorite"]) else "priorité non précisée"
        operator = r["operateur"] if _v(r["operateur"]) else "non précisé"
        row = cells.setdefault(priority, {})
        row[operator] = row.get(operator, 0) + 1
        # the contract's orientations first (O1, O2... then the transversal ones), then the
        # order of the objectives' codes
        key = (_v(r["orientation_code"]) or "~", _natural(str(r["code_objectif"])))
        order[priority] = min(order.get(priority, key), key)
    totals: dict[str, int] = {}
    for row in cells.values():
        for operator, count in row.items():
            totals[operator] = totals.get(operator, 0) + count
    operators = sorted(totals, key=lambda o: (-totals[o], o))
    rows = [(p, cells[p], sum(cells[p].values())) for p in sorted(cells, key=order.get)]
    return Tally(operators, rows, totals, sum(totals.values()))


def _source_groups(d: ReportData) -> list[dict]:
    """The loaded files that concern the territory, grouped under their source's public name
    (« INSEE, base activité-emploi (IPRO) des QPV, millésime 2022 »): another territory's
    programmation, bilans or référentiels are left out."""
    code = d.territory.code
    others = {c for c in d.territory_codes if c != code}
    groups: dict[str, dict] = {}
    for r in _records(d["sources"]):
        path = str(r["fichier"] or "")
        base = path.replace("\\", "/").split("/")[-1]
        folder = path.replace("\\", "/").split("/")[-2] if "/" in path else ""
        prefix = base.split("_")[0]
        if prefix in others or (r["source"] == "territoires" and folder in others):
            continue
        name = labels.source_name(r["source"], base)
        group = groups.setdefault(
            name,
            {
                "name": name,
                "source": r["source"],
                "files": [],
                "lues": 0,
                "chargees": 0,
                "rejetees": 0,
            },
        )
        group["files"].append(base)
        for key, column in (
            ("lues", "lignes_lues"),
            ("chargees", "lignes_chargees"),
            ("rejetees", "lignes_rejetees"),
        ):
            group[key] += int(r[column]) if _v(r[column]) else 0
    return list(groups.values())


def table_of_contents(d: ReportData) -> list[tuple[str, int, str]]:
    """(target id, level, title) of each chapter and sub-section: the contents on page 1 and
    the headings' text (the PDF's page numbers are found by this text)."""
    return [
        ("territoire", 1, "1. Le territoire et ses quartiers prioritaires"),
        ("les-qpv", 2, "Les quartiers prioritaires du contrat"),
        ("passage", 2, "Le changement de géographie 2015 → 2024"),
        ("observation", 1, f"2. Observation des quartiers ({d.millesime or 'aucun millésime'})"),
        ("taux-emploi", 2, "Taux d'emploi des 15-64 ans"),
        ("indicateurs", 2, "Indicateurs clés par quartier"),
        ("references", 2, "L'ensemble des QPV du territoire et les références"),
        ("fiches", 2, "Fiches quartier"),
        ("suivi", 1, f"3. Suivi de la programmation {d.year}"),
        ("annees", 2, "Les années de programmation"),
        ("depenses", 2, "Dépenses par orientation et par financeur"),
        ("effort", 2, "Effort financier par quartier"),
        ("croisement", 2, "Financements et réalités des quartiers"),
        ("zonages", 2, "Dépenses dans les autres zonages du contrat"),
        ("porteurs", 2, "Les porteurs"),
        ("realisation", 2, "Réalisation des actions (bilans)"),
        ("age-public", 2, "Âge et types de public des bénéficiaires"),
        ("objectifs", 2, f"Objectifs du contrat en {d.year}"),
        ("indicateurs-resultat", 2, "Indicateurs de résultats du contrat de ville"),
        ("egalite", 1, "4. Égalité femmes-hommes"),
        ("beneficiaires-residence", 2, "Bénéficiaires par orientation et quartier de résidence"),
        ("marqueur", 2, "Le marqueur égalité"),
        ("controles", 1, "5. Contrôles à suivre"),
        ("regles-non-verifiables", 2, "Règles non vérifiables avec les données chargées"),
        ("methodologie", 1, "6. Méthodologie et sources"),
        ("definitions", 2, "Définitions (mémento des indicateurs)"),
        ("fichiers", 2, "Sources chargées dans l'entrepôt"),
    ]


def context(d: ReportData) -> dict:
    """The template's variables."""
    rates = d["taux_emploi"]
    employment_map_rows = _records(d["carte_emploi"])
    gap_column = (
        "ecart_epci_points"
        if not d["carte_emploi"].empty and d["carte_emploi"]["ecart_epci_points"].notna().any()
        else "ecart_france_points"
    )
    gap_reference = "de l'EPCI" if gap_column == "ecart_epci_points" else "de la France"
    emploi = d["carte_emploi"]
    if emploi.empty or emploi[gap_column].isna().all():
        # no reference rate known for the territory: the map shows the rate itself
        gap_column, gap_reference = "taux_emploi", None
    effort = d["carte_effort"]
    effort_map_rows = _records(effort)
    effort_column = (
        "euros_par_habitant"
        if not effort.empty and effort["euros_par_habitant"].notna().any()
        else "montant_accorde"
    )
    effort_geographies = sorted(set(effort["geographie_programmation"].dropna()))
    toc = table_of_contents(d)
    qpv_names = {r["code_qpv"]: r["libelle_qpv"] for r in _records(d["qpv"]) if r["libelle_qpv"]}
    for r in _records(d["passage"]):
        for year in ("2015", "2024"):
            if r[f"code_qpv_{year}"] and r[f"libelle_qpv_{year}"]:
                qpv_names.setdefault(r[f"code_qpv_{year}"], r[f"libelle_qpv_{year}"])
    funders = d["depenses_financeur"]
    unknown_credit = [
        r["montant_accorde"] for r in _records(funders) if r["type_credit"] == "non_renseigne"
    ]
    orientation_names: dict[str, str] = {}
    for key in ("depenses_orientation", "beneficiaires_orientation", "realisation"):
        for r in _records(d[key]):
            if r.get("orientation_libelle"):
                orientation_names.setdefault(r["orientation_code"], r["orientation_libelle"])
    groups: dict[tuple, dict] = {}
    for r in _records(d["controles"]):
        key = (r["regle"], r["description"], r["niveau_controle"])
        group = groups.setdefault(
            key,
            {
                "regle": r["regle"],
                "description": r["description"] or r["regle"],
                "niveau": r["niveau_controle"],
                "source_libelle": r["source_libelle"],
                "citation": r["citation"],
                "rows": [],
            },
        )
        group["rows"].append(r)
    return {
        "source_groups": _source_groups(d),
        "lb": labels,
        "control_groups": list(groups.values()),
        "orientation_names": orientation_names,
        "qpv_names": qpv_names,
        "grid": orientation_grid(d),
        "sans_cible": objectives_without_target(d),
        # the numeric targets nothing observes yet: listed one by one
        "chiffres_sans_valeur": [
            r for r in _records(d["objectifs"]) if r["statut"] == "non renseigné" and _v(r["cible"])
        ],
        "funder_short": funder_short,
        "funder_name": lambda r: funder_name(r["financeur_nom"], r["financeur"], d.territory_codes),
        "credit_unknown": sum(unknown_credit) if unknown_credit else None,
        "d": d,
        "t": d.territory,
        "toc": toc,
        "titles": {target: title for target, _, title in toc},
        "running_header": _css_string(f"{d.territory.name} – contrat de ville"),
        "footer_note": _css_string(
            "Données de démonstration (suivi fictif)" if d.demo else "observatoire-qpv"
        ),
        "f": formats,
        "v": _v,
        "rec": _records,
        "first": _first,
        "comparability": COMPARABILITY,
        "fiche_fields": FICHE_FIELDS,
        "generated_on": labels.french_date(dt.date.today()),
        "commune_map": Markup(_commune_map(d)),
        "map_key": Markup(map_key(d)),
        "crosswalk_map": Markup(_crosswalk_map(d)),
        "employment_map": Markup(
            _value_map(
                d,
                [r for r in employment_map_rows if r.get("chemin")],
                gap_column,
                f"Écart du taux d'emploi au taux {gap_reference} ({d.millesime})"
                if gap_reference
                else f"Taux d'emploi des 15-64 ans ({d.millesime})",
                f"Écart au taux d'emploi {gap_reference}, en points"
                if gap_reference
                else "Taux d'emploi des 15-64 ans, en %",
                "diverging" if gap_reference else "sequential",
            )
        ),
        "employment_map_rows": employment_map_rows,
        "gap_column": gap_column,
        "gap_reference": gap_reference,
        "epci_rate": _first(rates, "taux_emploi_epci"),
        "france_rate": _first(rates, "taux_emploi_france"),
        "epci_source": _reference_note(rates, "epci"),
        "france_source": _reference_note(rates, "france"),
        "reference_nature": {"publiee": "publiée", "citee": "valeur citée"},
        "orientations_chart": Markup(_orientations_chart(d)),
        "funders_chart": Markup(_funders_chart(d)),
        "beneficiaries_chart": Markup(_beneficiaries_chart(d)),
        "equality_marker_chart": Markup(_equality_marker_chart(d)),
        "effort_map": Markup(
            _value_map(
                d,
                effort_map_rows,
                effort_column,
                (
                    f"Effort par habitant {d.year}"
                    if effort_column == "euros_par_habitant"
                    else f"Montants accordés {d.year} par QPV"
                ),
                "€ par habitant" if effort_column == "euros_par_habitant" else "€ accordés",
                "sequential",
                symbols=effort_column == "montant_accorde",
                unit_symbol="€",
            )
        ),
        "effort_column": effort_column,
        "effort_map_rows": effort_map_rows,
        "effort_geographies": effort_geographies,
        "year_summary": next((r for r in _records(d["synthese"]) if r["annee"] == d.year), None),
        "regles_evaluables": int(_first(d["regles"], "nb_regles_evaluables") or 0)
        - sum(1 for r in _records(d["regles_non_verifiables"]) if r["statut"] == "non_verifiable"),
    }


#: Tables of at most this many rows (header included) are kept on one page; a longer one may
#: break, but never leaves fewer than HEAD_ROWS or TAIL_ROWS rows on a page (keep_rows_together).
SHORT_TABLE_ROWS = 7
_TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.S)
_ROW = re.compile(r"<tr\b[^>]*>.*?</tr>", re.S)
_CELL = re.compile(r"<t([dh])\b[^>]*>.*?</t\1>", re.S)
_TAG = re.compile(r"<[^>]+>")


def _cell_text(cell: str) -> str:
    return " ".join(html_lib.unescape(_TAG.sub("", cell)).split())


def drop_empty_columns(page: str) -> str:
    """Leave out of each table the columns with no value on any row (a dash or nothing), and
    say which under the table: a reader sees what is missing, not a column of dashes."""

    def one(match: re.Match) -> str:
        table = match.group(0)
        rows = _ROW.findall(table)
        if 2 < len(rows) <= SHORT_TABLE_ROWS:
            # a short table is never split over two pages (no orphan rows on a page)
            table = table.replace("<table ", '<table data-entier="1" ', 1)
        if "colspan" in table or "<thead>" not in table:
            return table
        if len(rows) < 2:
            return table
        cells = [_CELL.findall(row) for row in rows]
        head = [m.group(0) for m in _CELL.finditer(rows[0])]
        body = [[m.group(0) for m in _CELL.finditer(row)] for row in rows[1:]]
        if any(len(r) != len(head) for r in body) or len(cells) < 2:
            return table
        empty = [
            i
            for i in range(len(head))
            if all(_cell_text(r[i]) in {"", formats.MISSING} for r in body)
        ]
        if not empty or len(empty) == len(head):
            return table
        out = table
        for row, row_cells in zip(rows, [head, *body], strict=True):
            kept = row
            for i in empty:
                kept = kept.replace(row_cells[i], "", 1)
            out = out.replace(row, kept, 1)
        names = ", ".join(f"« {_cell_text(head[i])} »" for i in empty)
        return (
            f'{out}\n<p class="manque">Sans valeur pour ce territoire et cette année, donc '
            f"omise(s) : {names}.</p>"
        )

    return _TABLE.sub(one, page)


#: Rows kept with the header at the top of a long table, and together at its end (so that a
#: page never starts with the last row or two of a table, nor ends with its header alone).
HEAD_ROWS = 3
TAIL_ROWS = 3
#: A heading row inside a table (« Mise en œuvre du contrat », a zonage) is kept with this
#: many rows after it.
GROUP_ROWS = 2
_TBODY = re.compile(r"<tbody>(.*?)</tbody>", re.S)
_GROUP_HEADING = re.compile(r"<tr\b[^>]*>\s*<th\b[^>]*colspan", re.S)


def _kept_blocks(rows: list[str]) -> list[tuple[int, int]]:
    """The [start, end) ranges of rows that the print keeps on one page, merged where they
    overlap: the first HEAD_ROWS, the last TAIL_ROWS, each heading row with the rows after it."""
    n = len(rows)
    wanted = [(0, min(HEAD_ROWS, n)), (max(n - TAIL_ROWS, 0), n)]
    wanted += [
        (i, min(i + 1 + GROUP_ROWS, n)) for i, row in enumerate(rows) if _GROUP_HEADING.match(row)
    ]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(wanted):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def keep_rows_together(page: str) -> str:
    """Split the body of each long table into ``<tbody>`` blocks that the print does not break
    (``tbody.lie``: the first rows with the header, the last rows, a heading row with the rows
    it introduces); short tables are already printed whole (``data-entier``)."""

    def one(match: re.Match) -> str:
        table = match.group(0)
        if "data-entier" in table:
            return table
        body = _TBODY.search(table)
        rows = _ROW.findall(body.group(1)) if body else []
        if len(rows) <= HEAD_ROWS:
            return table
        parts, at = [], 0
        for start, end in _kept_blocks(rows):
            if start > at:
                parts.append("<tbody>" + "\n".join(rows[at:start]) + "</tbody>")
            parts.append('<tbody class="lie">' + "\n".join(rows[start:end]) + "</tbody>")
            at = end
        if at < len(rows):
            parts.append("<tbody>" + "\n".join(rows[at:]) + "</tbody>")
        return table[: body.start()] + "\n".join(parts) + table[body.end() :]

    return _TABLE.sub(one, page)


def render_html(d: ReportData) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = keep_rows_together(
        drop_empty_columns(env.get_template("rapport.html.j2").render(**context(d)))
    )
    # a contents entry whose part is not in the page (no rule left unverifiable...) is left out
    return re.sub(
        r'<li class="toc-\d" data-cible="([^"]+)".*?</li>\n?',
        lambda m: m.group(0) if f'id="{m.group(1)}"' in page else "",
        page,
    )


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


def _chromium_print(exe: str, html: Path, pdf: Path, timeout: int) -> None:
    with tempfile.TemporaryDirectory(prefix="observatoire-chromium-") as profile:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        pdf.unlink(missing_ok=True)
        raise RuntimeError(
            f"{html}: Chromium n'a pas produit le PDF (code {proc.returncode}) : "
            f"{proc.stderr.strip().splitlines()[-1:] if proc.stderr else ''}"
        )


#: One entry of the table of contents: its target id and title (the heading's exact text).
TOC_ENTRY = re.compile(r'<li class="toc-(?:1|2)" data-cible="([^"]+)" data-titre="([^"]+)"')


def _normalise(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def pdf_pages_text(pdf: Path) -> list[str] | None:
    """The text of each page of a PDF (poppler's pdftotext), or None where it is missing."""
    exe = shutil.which("pdftotext")
    if exe is None:
        return None
    proc = subprocess.run([exe, str(pdf), "-"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.split("\f")


def heading_pages(pages: list[str], titles: list[tuple[str, str]]) -> dict[str, int]:
    """The page of each heading of the table of contents: the first page after the contents
    (page 1) and after the previous heading whose text has a line equal to the title."""
    found: dict[str, int] = {}
    lines = [[_normalise(line) for line in page.splitlines()] for page in pages]
    # the contents may run over page 1: headings are searched after its last entry
    last = _normalise(html_lib.unescape(titles[-1][1])) if titles else ""
    start = next((i + 1 for i, page in enumerate(lines) if last in page), 1)
    for target, title in titles:
        wanted = _normalise(html_lib.unescape(title))
        for number in range(start, len(lines)):
            if wanted in lines[number]:
                found[target] = number + 1
                start = number
                break
    return found


def print_pdf(html: Path, pdf: Path, timeout: int = 120) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium (no network: the page needs none).

    Page numbers and running headers are CSS ``@page`` margin boxes (Chromium 131 and later).
    The table of contents gets its page numbers from a first print: the page of each heading is
    read with ``pdftotext``, written into the contents (fixed-width places, so that nothing
    moves) and the page printed again. Without ``pdftotext`` the contents has no numbers."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError(
            "chromium introuvable : installer le paquet Debian `chromium` (make install-chromium) "
            "ou donner son chemin dans OBSERVATOIRE_CHROMIUM"
        )
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    _chromium_print(exe, html, tmp, timeout)
    source = html.read_text(encoding="utf-8")
    titles = TOC_ENTRY.findall(source)
    pages = pdf_pages_text(tmp) if titles else None
    if pages:
        numbers = heading_pages(pages, titles)
        numbered = re.sub(
            r'<span class="toc-page" data-cible="([^"]+)"></span>',
            lambda m: (
                f'<span class="toc-page" data-cible="{m.group(1)}">'
                f"{numbers.get(m.group(1), '')}</span>"
            ),
            source,
        )
        second = html.with_name(f".{html.stem}.pagine.html")
        try:
            second.write_text(numbered, encoding="utf-8")
            _chromium_print(exe, second, tmp, timeout)
        finally:
            second.unlink(missing_ok=True)
    tmp.replace(pdf)
    return pdf
