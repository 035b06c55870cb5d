"""Deterministic generator of FICTITIOUS demo data (« données fictives de démonstration »).

It writes, in the file formats users really have, the yearly programmations of the three
territories of the seeds (Valenciennes Métropole, CA Maubeuge-Val de Sambre, CA Béthune-Bruay
Artois Lys Romane), the bilans of the granted actions and a Compas-style indicator table. Every
file name carries the ``DEMO_FICTIF`` token, every file says it is fictitious (a preamble line or a
« Lisez-moi » / « Notes » sheet) and each folder gets a README.txt.

Nothing about the contracts is hard-coded: the orientation hierarchies, QPV lists, statuses,
marqueur égalité scales, financeur labels and funding rules are read at run time from the
référentiel CSVs (``dbt_project/seeds/referentiels``). Each funding rule of
``ref_regles_financement.csv`` that applies to a territory and a demo year gets a few violating
actions; the other actions conform. What is code here is only the shape of each territory's export
and how to break each *kind* of rule (``regle``), with the rule's parameters taken from the file.
"""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from stdnum import luhn

DEMO_TOKEN = "DEMO_FICTIF"
MENTION = "Données fictives de démonstration"
FIXED_TIMESTAMP = (2026, 1, 1, 0, 0, 0)

# Rules that cannot be broken by an action row: a permission (CAF bonus) or a contract-level duty
# (yearly evaluation to the COPIL). They are listed in the README, not injected.
NON_ACTION_RULES = {
    "caf_majoration_investissement_qpv": "majoration possible (pas une contrainte sur une action)",
    "evaluation_copil_par_an": "obligation du contrat, pas d'une action",
}
# Year-level targets: judged on all the actions of a year, not on one action.
TARGET_RULES = {
    "cpo_part_actions_cible",
    "actions_suivi_renforce",
    "region_part_figures_imposees_cible",
}
TARGET_TOLERANCE = 0.10
CONSEIL_CITOYEN = "Conseil citoyen"

REQUIRED_FILES = (
    "ref_orientations.csv",
    "ref_perimetre_qpv.csv",
    "ref_financeurs_alias.csv",
    "ref_statuts_action.csv",
    "ref_marqueur_egalite.csv",
    "ref_regles_financement.csv",
)


@dataclass(frozen=True)
class TerritoryPlan:
    """Which contract, years, QPV geography and marqueur scale the demo uses for a territory."""

    code: str
    referentiel: str
    years: tuple[int, int]
    geographie: str
    echelle_marqueur: str
    n_actions: tuple[int, int]


PLANS = (
    TerritoryPlan("VM", "VM_2024_2030", (2026, 2027), "2024", "2026", (40, 48)),
    TerritoryPlan("CAMVS", "CAMVS_2024_2030", (2025, 2026), "2024", "2026", (32, 40)),
    TerritoryPlan("CABBALR", "CABBALR_2022", (2022, 2023), "2015", "2019", (44, 54)),
)

# How each territory's export names the financeurs (first label that the alias référentiel
# resolves is used). Codes are the canonical ones of ref_financeurs.csv.
FINANCEUR_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "VM": {
        "ETAT_BOP147": ("État - Politique de la ville", "État"),
        "EPCI": ("Valenciennes Métropole",),
        "COMMUNE": ("Commune",),
        "REGION": ("Région Hauts-de-France", "Région"),
        "DEPARTEMENT": ("Département du Nord", "Département"),
        "CAF": ("CAF du Nord", "CAF"),
    },
    "CAMVS": {
        "ETAT_BOP147": ("État (BOP 147)", "BOP 147", "État"),
        "EPCI": ("Agglomération",),
        "COMMUNE": ("Commune",),
        "REGION": ("Région",),
        "DEPARTEMENT": ("Département",),
        "CAF": ("CAF",),
    },
    "CABBALR": {
        "ETAT_BOP147": ("Etat (ANCT)", "ANCT"),
        "CABBALR_FCS": ("Fonds de Cohésion Sociale", "FCS"),
        "COMMUNE": ("Commune",),
        "REGION": ("Région Hauts-de-France", "Région"),
        "DEPARTEMENT": ("Département du Pas-de-Calais", "Département"),
        "CAF": ("CAF du Pas-de-Calais", "CAF"),
    },
}
# Probability that an action asks each financeur (the first is the contract's EPCI credit line).
FUNDING_ODDS = {
    "ETAT_BOP147": 0.8,
    "EPCI": 0.6,
    "CABBALR_FCS": 0.65,
    "COMMUNE": 0.45,
    "REGION": 0.25,
    "DEPARTEMENT": 0.2,
    "CAF": 0.25,
}
FUNDING_SHARE = {
    "ETAT_BOP147": (0.12, 0.27),
    "EPCI": (0.06, 0.18),
    "CABBALR_FCS": (0.08, 0.2),
    "COMMUNE": (0.04, 0.12),
    "REGION": (0.05, 0.18),
    "DEPARTEMENT": (0.03, 0.1),
    "CAF": (0.03, 0.1),
}
FREE_FINANCEURS = ("COMMUNE", "DEPARTEMENT", "CAF")  # no rule: may get more than requested

ASSOCIATIONS = (
    "Les Ateliers du Lien",
    "Horizon Quartiers",
    "Passerelle Emploi",
    "Santé Pour Tous",
    "Parents Ensemble",
    "Les Jardins du Voisinage",
    "Sport et Citoyenneté",
    "Mots et Merveilles",
    "Élan Numérique",
    "Cap Avenir",
    "Trait d'Union",
    "Voisins Solidaires",
    "La Boussole",
    "Mosaïque des Cités",
    "Les Petits Pas",
    "Regards Croisés",
    "Femmes Debout",
    "Pas à Pas",
    "Le Fil d'Ariane",
    "Main dans la Main",
    "Culture en Partage",
    "Objectif Mobilité",
    "Les Ailes de la Réussite",
    "Écoute et Droits",
    "Bien Vivre au Quartier",
    "L'Escale",
)
OTHER_PORTEURS = (
    ("Centre social fictif {}", "Association"),
    ("Régie de quartier fictive {}", "Association"),
    ("Bailleur fictif {} Habitat", "Bailleur social"),
    ("CCAS fictif de {}", "Établissement public"),
)
PLACE_WORDS = ("du Val", "des Tilleuls", "de la Source", "des Forges", "du Canal", "des Prés")
ACTIONS = (
    "Ateliers santé et bien-être",
    "Accompagnement vers l'emploi des femmes",
    "Permanence d'accès aux droits",
    "Club ados du mercredi",
    "Chantier éducatif d'été",
    "Jardin partagé au pied des immeubles",
    "Médiation numérique de proximité",
    "Café des parents",
    "Aide aux devoirs et soutien à la parentalité",
    "Auto-école sociale",
    "Groupe de parole pour victimes de violences",
    "Forum des métiers",
    "Prévention des conduites à risque",
    "Théâtre-forum sur l'égalité filles-garçons",
    "Coaching vers la création d'entreprise",
    "Garde d'enfants à horaires atypiques",
    "Sensibilisation au dépistage des cancers",
    "Marches exploratoires de femmes",
    "Atelier couture et insertion",
    "Lecture à voix haute en pied d'immeuble",
    "Repair café et réemploi",
    "Parcours sportif santé",
    "Accueil de jour des victimes",
    "Éducation aux médias",
    "Mobilité douce : vélo-école",
    "Mémoire du quartier",
    "Accompagnement des auteurs de violences",
    "Ateliers sociolinguistiques",
    "Permanence santé mentale jeunes",
    "Fête de quartier participative",
)


# --------------------------------------------------------------------------------------------
# Référentiels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    code: str
    libelle: str
    niveau: int
    parent: str | None
    transversal: bool


@dataclass(frozen=True)
class Rule:
    territoire: str
    regle: str
    financeur: str | None
    annee_debut: int
    annee_fin: int | None
    condition_statut: str | None
    valeur: str
    unite: str

    @property
    def label(self) -> str:
        parts = [self.regle]
        if self.financeur:
            parts.append(self.financeur)
        if self.condition_statut:
            parts.append(self.condition_statut)
        return " / ".join(parts)

    def applies(self, year: int) -> bool:
        return self.annee_debut <= year and (self.annee_fin is None or year <= self.annee_fin)

    def number(self) -> float:
        return float(self.valeur)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]


def _fold(text: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


class Referentiels:
    """The référentiel CSVs the generator needs, read once."""

    def __init__(self, folder: Path) -> None:
        missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"référentiels introuvables dans {folder}: {', '.join(missing)} "
                "(générer ou copier les seeds dbt avant la démo)"
            )
        self.folder = folder
        self.orientations = _read_csv(folder / "ref_orientations.csv")
        self.qpv = _read_csv(folder / "ref_perimetre_qpv.csv")
        self.aliases = _read_csv(folder / "ref_financeurs_alias.csv")
        self.statuts = _read_csv(folder / "ref_statuts_action.csv")
        self.marqueurs = _read_csv(folder / "ref_marqueur_egalite.csv")
        self.rules = [
            Rule(
                territoire=r["territoire"],
                regle=r["regle"],
                financeur=r.get("financeur") or None,
                annee_debut=int(r["annee_debut"]) if r.get("annee_debut") else 0,
                annee_fin=int(r["annee_fin"]) if r.get("annee_fin") else None,
                condition_statut=r.get("condition_statut") or None,
                valeur=r.get("valeur", ""),
                unite=r.get("unite", ""),
            )
            for r in _read_csv(folder / "ref_regles_financement.csv")
        ]
        optional = {
            "qic": "ref_quartiers_interet_communautaire.csv",
            "territoires": "ref_territoires.csv",
        }
        self.extra: dict[str, list[dict[str, str]]] = {
            key: _read_csv(folder / name) if (folder / name).exists() else []
            for key, name in optional.items()
        }

    def nodes(self, referentiel: str) -> list[Node]:
        nodes = [
            Node(
                r["code"],
                r["libelle"],
                int(r["niveau"]),
                r.get("code_parent") or None,
                r.get("transversal", "").lower() in {"true", "1", "oui", "vrai"},
            )
            for r in self.orientations
            if r["referentiel"] == referentiel
        ]
        if not nodes:
            raise ValueError(f"référentiel d'orientations « {referentiel} » absent")
        return nodes

    def qpv_list(self, territoire: str, geographie: str) -> list[tuple[str, str]]:
        found = [
            (r["code_qpv"], r["libelle_qpv"])
            for r in self.qpv
            if r["territoire"] == territoire and r["geographie"] == geographie
        ]
        if not found:
            raise ValueError(f"aucun QPV {geographie} pour {territoire} dans ref_perimetre_qpv")
        return found

    def statuts_of(self, territoire: str) -> list[dict[str, str]]:
        return [r for r in self.statuts if r["territoire"] == territoire]

    def marqueur_levels(self, echelle: str) -> list[str]:
        rows = [r for r in self.marqueurs if r["echelle"] == echelle]
        rows.sort(key=lambda r: int(r.get("rang") or 0))
        return [r["niveau"] for r in rows]

    def alias_code(self, label: str, territoire: str) -> str | None:
        key = _fold(label)
        specific = [r for r in self.aliases if _fold(r["alias"]) == key]
        for row in specific:
            if row.get("territoire") == territoire:
                return row["financeur"]
        for row in specific:
            if not row.get("territoire"):
                return row["financeur"]
        return None

    def financeur_label(self, territoire: str, code: str) -> str:
        options = FINANCEUR_LABELS[territoire][code]
        for label in options:
            if self.alias_code(label, territoire) == code:
                return label
        return options[0]

    def rules_for(self, territoire: str, year: int) -> list[Rule]:
        return [r for r in self.rules if r.territoire == territoire and r.applies(year)]


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


@dataclass
class Porteur:
    nom: str
    siret: str
    type: str


@dataclass
class Funding:
    code: str
    demande: float | None
    accorde: float | None
    nature: str = "Fonctionnement"
    volet: str | None = None


@dataclass
class Action:
    territoire: str
    annee: int
    dossier: str
    porteur: Porteur
    intitule: str
    levels: dict[int, Node]
    leaf: Node
    transversal: Node | None
    qpv: list[str] | None  # None = all QPV
    qic: str | None
    statut: dict[str, str] | None
    cout_total: float
    couts_indirects: float
    achats: float
    fundings: list[Funding]
    cpo: bool
    cpo_duree: int | None
    rang: int
    marqueur: str
    part_qpv: float
    date_fin: date
    reunions: int
    date_bilan: date | None = None
    date_bilan_intermediaire: date | None = None
    date_report: date | None = None
    suivi_renforce: bool = False
    realisee: bool = True
    continuation: bool = False
    violations: list[str] = field(default_factory=list)

    def funding(self, code: str) -> Funding | None:
        return next((f for f in self.fundings if f.code == code), None)

    @property
    def granted(self) -> bool:
        return any((f.accorde or 0) > 0 for f in self.fundings)

    def rescale(self, new_cost: float) -> None:
        """Change the total cost keeping every share (amounts, indirect costs, purchases)."""
        ratio = new_cost / self.cout_total
        self.cout_total = new_cost
        self.couts_indirects = round(self.couts_indirects * ratio, 2)
        self.achats = round(self.achats * ratio, 2)
        for f in self.fundings:
            f.demande = None if f.demande is None else _round(f.demande * ratio)
            f.accorde = None if f.accorde is None else _round(f.accorde * ratio)


def _round(value: float, step: int = 50) -> float:
    return float(max(step, round(value / step) * step))


def _luhn_digit(prefix: str) -> str:
    """The Luhn check digit completing ``prefix`` (python-stdnum, as the readers check it)."""
    return luhn.calc_check_digit(prefix)


def fictitious_siret(rng: random.Random, valid: bool = True) -> str:
    """A SIRET with a correct Luhn key (SIREN and SIRET); ``valid=False`` breaks the key."""
    siren8 = "99" + "".join(rng.choice("0123456789") for _ in range(6))
    siren = siren8 + _luhn_digit(siren8)
    nic4 = f"{rng.randint(1, 99):04d}"
    siret = siren + nic4 + _luhn_digit(siren + nic4)
    if not valid:
        siret = siret[:-1] + str((int(siret[-1]) + 3) % 10)
    return siret


class TerritoryGenerator:
    """Builds the two demo years of one territory from its référentiels."""

    def __init__(self, plan: TerritoryPlan, refs: Referentiels, rng: random.Random) -> None:
        self.plan = plan
        self.refs = refs
        self.rng = rng
        self.nodes = refs.nodes(plan.referentiel)
        self.by_code = {n.code: n for n in self.nodes}
        parents = {n.parent for n in self.nodes if n.parent}
        childless = [n for n in self.nodes if n.code not in parents and not n.transversal]
        self.leaves = [n for n in childless if n.niveau > 1] or childless
        self.transversals = [n for n in self.nodes if n.transversal and n.niveau == 1]
        self.level_one = [n for n in self.nodes if n.niveau == 1 and not n.transversal]
        self.max_level = max(n.niveau for n in self.nodes)
        self.qpv = refs.qpv_list(plan.code, plan.geographie)
        self.qpv_names = dict(self.qpv)
        self.qic = [r for r in refs.extra["qic"] if r.get("territoire") == plan.code]
        self.statuts = refs.statuts_of(plan.code)
        self.levels_marqueur = refs.marqueur_levels(plan.echelle_marqueur)
        self.financeurs = list(FINANCEUR_LABELS[plan.code])
        self.epci_code = "CABBALR_FCS" if "CABBALR_FCS" in self.financeurs else "EPCI"
        self.porteurs = self._porteurs()
        self.actions: dict[int, list[Action]] = {}
        self.seq = 0
        own_rules = [r for r in refs.rules if r.territoire == plan.code]

        def values(kind: str) -> list[float]:
            return [r.number() for r in own_rules if r.regle == kind]

        # Parameters the conforming actions respect (from the rules, not hard-coded).
        self.min_state_request = max(values("etat_demande_minimum"), default=0.0)
        self.min_expenses = max(values("etat_depenses_minimum"), default=0.0)
        self.region_fonct_max = min(values("region_fonctionnement_max"), default=None)
        self.region_inv_range = (
            max(values("region_investissement_min"), default=None),
            min(values("region_investissement_max"), default=None),
        )

    # -- building blocks ---------------------------------------------------------------------

    def _porteurs(self) -> list[Porteur]:
        rng = self.rng
        porteurs: list[Porteur] = []
        names = list(ASSOCIATIONS)
        rng.shuffle(names)
        for name in names[:18]:
            porteurs.append(
                Porteur(f"Association fictive {name}", fictitious_siret(rng), "Association")
            )
        for pattern, kind in OTHER_PORTEURS:
            porteurs.append(
                Porteur(pattern.format(rng.choice(PLACE_WORDS)), fictitious_siret(rng), kind)
            )
        if self.plan.code == "CABBALR":
            for code, _name in self.qpv[:2]:
                porteurs.append(
                    Porteur(
                        f"Conseil citoyen fictif du quartier {code}",
                        fictitious_siret(rng),
                        CONSEIL_CITOYEN,
                    )
                )
        for porteur in rng.sample(porteurs, 2):  # invalid SIRET on purpose
            porteur.siret = fictitious_siret(rng, valid=False)
        return porteurs

    def _dossier(self, year: int) -> str:
        self.seq += 1
        if self.plan.code == "VM":
            return f"{year}-{self.seq:05d}"
        if self.plan.code == "CAMVS":
            return f"CAMVS-{year}-{self.seq:03d}"
        return f"{year % 100:02d}-PV-{self.seq:03d}"

    def _levels(self, leaf: Node) -> dict[int, Node]:
        chain: dict[int, Node] = {}
        node: Node | None = leaf
        while node is not None:
            chain[node.niveau] = node
            node = self.by_code.get(node.parent) if node.parent else None
        if 1 not in chain and self.level_one:
            chain[1] = self.rng.choice(self.level_one)
        return chain

    def _statut(self, categories: set[str] | None) -> dict[str, str] | None:
        options = [s for s in self.statuts if categories is None or s["categorie"] in categories]
        return self.rng.choice(options) if options else None

    def _statut_for(self, reconduction: bool) -> dict[str, str] | None:
        if not self.statuts:
            return None
        news = {s["categorie"] for s in self.statuts if s["categorie"] == "nouvelle"}
        others = {s["categorie"] for s in self.statuts} - news
        return self._statut(others if reconduction and others else news or None)

    def _qpv_target(self) -> tuple[list[str] | None, str | None]:
        draw = self.rng.random()
        codes = [c for c, _ in self.qpv]
        if self.qic and draw < 0.06:
            return [], self.rng.choice(self.qic)["nom"]
        if draw < 0.55:
            return [self.rng.choice(codes)], None
        if draw < 0.85:
            return sorted(self.rng.sample(codes, self.rng.randint(2, min(4, len(codes))))), None
        return None, None

    def _marqueur(self, year: int) -> str:
        levels = self.levels_marqueur or ["0", "1", "2"]
        minimum = self._marqueur_minimum(year)
        allowed = levels[levels.index(minimum) :] if minimum in levels else levels
        weights = [1.0 if lvl != levels[0] else 0.6 for lvl in allowed]
        return self.rng.choices(allowed, weights=weights)[0]

    def _marqueur_minimum(self, year: int) -> str | None:
        rules = [
            r
            for r in self.refs.rules_for(self.plan.code, year)
            if r.regle == "marqueur_egalite_niveau_min"
        ]
        levels = self.levels_marqueur
        best = None
        for rule in rules:
            if rule.valeur in levels and (
                best is None or levels.index(rule.valeur) > levels.index(best)
            ):
                best = rule.valeur
        return best

    def _fundings(self, cost: float, qic: str | None) -> list[Funding]:
        rng = self.rng
        fundings: list[Funding] = []
        for code in self.financeurs:
            if code == "ETAT_BOP147" and qic:
                continue
            if rng.random() >= FUNDING_ODDS.get(code, 0.2):
                continue
            low, high = FUNDING_SHARE[code]
            demande = _round(cost * rng.uniform(low, high))
            nature = "Fonctionnement"
            if code == "ETAT_BOP147" and cost * 0.27 >= self.min_state_request:
                demande = max(demande, self.min_state_request)
            if code == "REGION":
                inv_min, inv_max = self.region_inv_range
                if inv_min is not None and inv_max is not None and rng.random() < 0.25:
                    nature = "Investissement"
                    demande = _round(rng.uniform(inv_min * 1.2, min(inv_max * 0.8, cost * 0.3)))
                elif self.region_fonct_max is not None:
                    demande = min(demande, _round(self.region_fonct_max * 0.8))
            fundings.append(Funding(code, demande, None, nature))
        if not fundings:
            code = self.epci_code
            fundings.append(Funding(code, _round(cost * 0.15), None))
        for f in fundings:
            draw = rng.random()
            if draw < 0.06:
                f.accorde = 0.0
            elif draw < 0.13:
                f.accorde = None  # not yet decided
            elif draw < 0.2 and f.code in FREE_FINANCEURS:
                f.accorde = _round((f.demande or 0) * rng.uniform(1.05, 1.25))
            elif draw < 0.55:
                f.accorde = _round((f.demande or 0) * rng.uniform(0.7, 0.98))
            else:
                f.accorde = f.demande
            if rng.random() < 0.08 and f.accorde and f.demande and f.accorde < f.demande:
                f.accorde -= 0.5  # a few amounts with cents
        return fundings

    def _new_action(self, year: int, reconduction: bool = False) -> Action:
        rng = self.rng
        leaf = rng.choice(self.leaves)
        qpv, qic = self._qpv_target()
        small = self.plan.code == "CABBALR" and rng.random() < 0.15
        cost = _round(rng.uniform(3000, 12000) if small else rng.uniform(20000, 95000), 100)
        cpo = rng.random() < (0.45 if self.plan.code != "CABBALR" else 0.12)
        porteur = rng.choice(self.porteurs)
        action = Action(
            territoire=self.plan.code,
            annee=year,
            dossier=self._dossier(year),
            porteur=porteur,
            intitule=f"{rng.choice(ACTIONS)} (action fictive)",
            levels=self._levels(leaf),
            leaf=leaf,
            transversal=rng.choice(self.transversals) if self.transversals else None,
            qpv=qpv,
            qic=qic,
            statut=self._statut_for(reconduction),
            cout_total=cost,
            couts_indirects=round(cost * rng.uniform(0.02, 0.09), 2),
            achats=round(cost * rng.uniform(0.0, 0.09), 2),
            fundings=self._fundings(cost, qic),
            cpo=cpo,
            cpo_duree=rng.choice((2, 3)) if cpo else None,
            rang=rng.randint(2, 3) if reconduction else 1,
            marqueur=self._marqueur(year),
            part_qpv=round(rng.uniform(0.62, 0.98), 2),
            date_fin=date(year, 12, 31),
            reunions=rng.randint(2, 4),
        )
        if action.cpo:
            action.dossier += "-01"
        if rng.random() < 0.12:  # prorogation to the next spring, within the limit
            action.date_fin = date(year + 1, rng.choice((3, 6)), rng.choice((15, 30)))
        if porteur.type == CONSEIL_CITOYEN and self.min_expenses and qic is None:
            # The seed exempts conseils citoyens from the minimum expenses: show one below it.
            action.rescale(_round(self.min_expenses * rng.uniform(0.5, 0.9), 100))
            self.ensure_funding(action, "ETAT_BOP147", 0.25)
        return action

    def _continuation(self, previous: Action, year: int) -> Action:
        """The next yearly tranche of a CPO (suffix -02, -03) or a reconducted action."""
        rng = self.rng
        if previous.cpo:
            base = previous.dossier.rsplit("-", 1)[0]
            index = int(previous.dossier.rsplit("-", 1)[1]) + 1
            dossier = f"{base}-{index:02d}"
        else:
            dossier = self._dossier(year)
        fundings = [Funding(f.code, f.demande, None, f.nature) for f in previous.fundings]
        action = Action(
            territoire=previous.territoire,
            annee=year,
            dossier=dossier,
            porteur=previous.porteur,
            intitule=previous.intitule,
            levels=previous.levels,
            leaf=previous.leaf,
            transversal=previous.transversal,
            qpv=previous.qpv,
            qic=previous.qic,
            statut=self._statut_for(True),
            cout_total=previous.cout_total,
            couts_indirects=previous.couts_indirects,
            achats=previous.achats,
            fundings=fundings,
            cpo=previous.cpo,
            cpo_duree=previous.cpo_duree,
            rang=min(previous.rang + 1, 3),
            marqueur=self._marqueur(year),
            part_qpv=previous.part_qpv,
            date_fin=date(year, 12, 31),
            reunions=rng.randint(2, 4),
            continuation=True,
        )
        for f in action.fundings:
            f.accorde = f.demande if rng.random() < 0.8 else _round((f.demande or 0) * 0.9)
        return action

    # -- years --------------------------------------------------------------------------------

    def build(self) -> None:
        first, second = self.plan.years
        n_first = self.rng.randint(*self.plan.n_actions)
        year_one = [
            self._new_action(first, reconduction=self.rng.random() < 0.55) for _ in range(n_first)
        ]
        self._finish_year(first, year_one)
        carried = [a for a in year_one if a.cpo and (a.cpo_duree or 0) >= 2]
        carried += [a for a in year_one if not a.cpo and self.rng.random() < 0.35]
        year_two = [self._continuation(a, second) for a in carried]
        n_second = self.rng.randint(*self.plan.n_actions)
        while len(year_two) < n_second:
            year_two.append(self._new_action(second, reconduction=self.rng.random() < 0.4))
        self.rng.shuffle(year_two)
        self._finish_year(second, year_two)

    def _finish_year(self, year: int, actions: list[Action]) -> None:
        self.actions[year] = actions
        self._dates(year, actions)
        rules = self.refs.rules_for(self.plan.code, year)
        targets = [r for r in rules if r.regle in TARGET_RULES]
        for rule in rules:
            if rule.regle in NON_ACTION_RULES or rule.regle in TARGET_RULES:
                continue
            injector = INJECTORS.get(rule.regle)
            if injector is None:
                continue
            wanted = 2 if self.rng.random() < 0.5 else 1
            for _ in range(wanted):
                candidates = [
                    a
                    for a in actions
                    if not a.violations
                    and not (a.continuation and rule.regle.startswith("cpo_"))
                    and a.porteur.type != CONSEIL_CITOYEN
                    and a.qic is None
                ]
                if not candidates:
                    raise ValueError(
                        f"{self.plan.code} {year}: trop de règles pour le nombre d'actions"
                    )
                action = self.rng.choice(candidates)
                injector(self, rule, action)
                action.violations.append(rule.label)
                if len(candidates) < 15:
                    break
        for rule in targets:
            # Break a yearly target in one demo year only: the first (the last for the count of
            # actions under suivi renforcé), so that the other year shows a conforming total.
            years = [y for y in self.plan.years if rule.applies(y)]
            violate = year == (years[-1] if rule.regle == "actions_suivi_renforce" else years[0])
            TARGETS[rule.regle](self, rule, actions, violate)
        if self.plan.code == "CABBALR":
            self._report_requests(year, actions)
        self._regional_volets(actions, rules)

    def _dates(self, year: int, actions: list[Action]) -> None:
        rng = self.rng
        for action in actions:
            statut = (action.statut or {}).get("categorie", "")
            if statut and statut != "nouvelle":
                action.date_bilan_intermediaire = date(year - 1, 9, 1) + timedelta(
                    days=rng.randint(0, 16)
                )
            if rng.random() < 0.1 and action.annee == max(self.plan.years):
                action.date_bilan = None  # not handed in yet
            else:
                action.date_bilan = date(year + 1, 1, 10) + timedelta(days=rng.randint(0, 75))
            action.realisee = rng.random() > 0.05

    def _report_requests(self, year: int, actions: list[Action]) -> None:
        rules = [
            r
            for r in self.refs.rules_for(self.plan.code, year)
            if r.regle == "report_demande_date_limite"
        ]
        for rule in rules:
            limit = date.fromisoformat(rule.valeur)
            for action in self.rng.sample(
                [a for a in actions if not a.violations and a.funding("ETAT_BOP147")], 2
            ):
                action.date_report = limit - timedelta(days=self.rng.randint(3, 20))

    def _regional_volets(self, actions: list[Action], rules: list[Rule]) -> None:
        if not any(r.regle == "region_part_figures_imposees_cible" for r in rules):
            flip = True
            for action in actions:
                f = action.funding("REGION")
                if f and f.volet is None and self.plan.code == "CABBALR":
                    f.volet = "Figure imposée" if flip else "Figure libre"
                    flip = not flip

    # -- helpers used by injectors -------------------------------------------------------------

    def set_statut(self, action: Action, code: str | None = None) -> None:
        """Give the action a status (by code, else a reconduction one) and, for a reconducted
        action, a conforming date of bilan intermédiaire."""
        if code is not None:
            action.statut = _statut_by_code(self, code) or action.statut
        else:
            action.statut = self._statut_for(True) or action.statut
        categorie = (action.statut or {}).get("categorie", "nouvelle")
        if categorie != "nouvelle" and action.date_bilan_intermediaire is None:
            action.date_bilan_intermediaire = date(action.annee - 1, 9, 1)

    def ensure_funding(self, action: Action, code: str, share: float = 0.2) -> Funding:
        funding = action.funding(code)
        if funding is None:
            funding = Funding(code, _round(action.cout_total * share), None)
            action.fundings.append(funding)
        if not funding.demande:
            funding.demande = _round(action.cout_total * share)
        if code == "ETAT_BOP147" and action.cout_total * 0.27 >= self.min_state_request:
            funding.demande = max(funding.demande, self.min_state_request)
        funding.accorde = funding.demande
        return funding

    def set_state_share(self, action: Action, code: str, share: float) -> None:
        funding = self.ensure_funding(action, code)
        funding.demande = funding.accorde = _round(action.cout_total * share)
        others = [f for f in action.fundings if f is not funding]
        room = action.cout_total - funding.demande
        total_others = sum((f.demande or 0) for f in others)
        if total_others > room:
            action.fundings = [funding]
            if room >= 1000:
                action.fundings.append(Funding(self.epci_code, _round(room * 0.5), None))
                action.fundings[-1].accorde = action.fundings[-1].demande


# --------------------------------------------------------------------------------------------
# Rule kinds: how to break one (parameters come from ref_regles_financement.csv)
# --------------------------------------------------------------------------------------------


def _deadline(rule: Rule, year: int) -> date:
    if rule.unite == "date_n_plus_1":
        month, day = (int(x) for x in rule.valeur.split("-"))
        return date(year + 1, month, day)
    return date.fromisoformat(rule.valeur)


def _statut_by_code(gen: TerritoryGenerator, code: str | None) -> dict[str, str] | None:
    return next((s for s in gen.statuts if s["statut_code"] == code), None)


def _inj_min_request(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    funding = gen.ensure_funding(a, rule.financeur or "ETAT_BOP147")
    funding.demande = funding.accorde = _round(rule.number() - gen.rng.uniform(800, 2500), 100)


def _inj_share_cap(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    if rule.condition_statut:
        gen.set_statut(a, rule.condition_statut)
    if rule.regle.startswith("anct_part_max_annee_"):
        a.rang = int(rule.regle.rsplit("_", 1)[1])
        gen.set_statut(a)
    gen.set_state_share(a, rule.financeur or "ETAT_BOP147", rule.number() + 0.12)


def _inj_indirect(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    a.couts_indirects = round(a.cout_total * (rule.number() + 0.05), 2)


def _inj_purchases(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    a.achats = round(a.cout_total * (rule.number() + 0.08), 2)


def _inj_marqueur(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    levels = gen.levels_marqueur
    below = levels[: levels.index(rule.valeur)] if rule.valeur in levels else levels[:1]
    a.marqueur = below[0]


def _inj_cpo_min(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or gen.epci_code)
    a.cpo, a.cpo_duree = True, int(rule.number()) - 1
    if not re.search(r"-0\d$", a.dossier):
        a.dossier += "-01"


def _inj_cpo_max(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or gen.epci_code)
    a.cpo, a.cpo_duree = True, int(rule.number()) + 1
    if not re.search(r"-0\d$", a.dossier):
        a.dossier += "-01"


def _inj_bilan_late(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    else:
        a.fundings[0].accorde = a.fundings[0].demande
    a.realisee = True
    a.date_bilan = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(4, 25))


def _inj_bilan_intermediaire(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    if rule.condition_statut:
        gen.set_statut(a, rule.condition_statut)
    a.date_bilan_intermediaire = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(5, 20))


def _inj_prorogation(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    a.date_fin = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(15, 60))


def _inj_reunions(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    a.reunions = max(0, int(rule.number()) - gen.rng.randint(1, 2))


def _inj_min_expenses(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or "ETAT_BOP147")
    a.rescale(_round(rule.number() - gen.rng.uniform(400, 1200), 100))


def _inj_public_qpv(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    a.part_qpv = round(rule.number() - gen.rng.uniform(0.12, 0.25), 2)


def _inj_region_amount(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    nature = "Investissement" if "investissement" in rule.regle else "Fonctionnement"
    funding = gen.ensure_funding(a, rule.financeur or "REGION")
    funding.nature = nature
    if rule.regle.endswith("_min"):
        amount = _round(rule.number() - gen.rng.uniform(1000, 2500), 100)
    else:
        amount = _round(rule.number() + gen.rng.uniform(5000, 20000), 100)
    if a.cout_total < amount * 2:
        a.rescale(_round(amount * 2.2, 100))
    funding.demande = funding.accorde = amount


def _inj_qic(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    if gen.qic:
        a.qpv, a.qic = [], gen.rng.choice(gen.qic)["nom"]
    gen.ensure_funding(a, rule.financeur or "ETAT_BOP147", 0.2)


def _inj_report(gen: TerritoryGenerator, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or "ETAT_BOP147")
    a.date_report = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(5, 15))


INJECTORS: dict[str, Callable[[TerritoryGenerator, Rule, Action], None]] = {
    "etat_demande_minimum": _inj_min_request,
    "etat_part_max_cout": _inj_share_cap,
    "anct_part_max_annee_2": _inj_share_cap,
    "anct_part_max_annee_3": _inj_share_cap,
    "couts_indirects_part_max": _inj_indirect,
    "achats_part_max": _inj_purchases,
    "marqueur_egalite_niveau_min": _inj_marqueur,
    "cpo_duree_min": _inj_cpo_min,
    "cpo_duree_max": _inj_cpo_max,
    "bilan_date_limite": _inj_bilan_late,
    "bilan_date_limite_etat": _inj_bilan_late,
    "bilan_date_limite_epci": _inj_bilan_late,
    "bilan_intermediaire_date_limite": _inj_bilan_intermediaire,
    "prorogation_date_limite": _inj_prorogation,
    "reunions_suivi_par_action_min": _inj_reunions,
    "etat_depenses_minimum": _inj_min_expenses,
    "part_public_qpv_min": _inj_public_qpv,
    "region_fonctionnement_max": _inj_region_amount,
    "region_investissement_min": _inj_region_amount,
    "region_investissement_max": _inj_region_amount,
    "qic_credits_anct": _inj_qic,
    "report_demande_date_limite": _inj_report,
}


def _target_cpo(gen: TerritoryGenerator, rule: Rule, actions: list[Action], violate: bool) -> None:
    goal = rule.number()
    free = [a for a in actions if not a.violations and not a.continuation]
    gen.rng.shuffle(free)

    def share() -> float:
        return sum(a.cpo for a in actions) / len(actions)

    for action in free:
        if violate and action.cpo and share() >= goal - TARGET_TOLERANCE:
            action.cpo, action.cpo_duree = False, None
            action.dossier = re.sub(r"-01$", "", action.dossier)
        elif not violate and not action.cpo and share() < goal + 0.05:
            action.cpo, action.cpo_duree = True, gen.rng.choice((2, 3))
            action.dossier += "-01"
    if violate:
        actions[0].violations.append(rule.label + " (total annuel)")


def _target_suivi(
    gen: TerritoryGenerator, rule: Rule, actions: list[Action], violate: bool
) -> None:
    wanted = int(rule.number()) - (1 if violate else 0)
    for action in actions:
        action.suivi_renforce = False
    for action in gen.rng.sample(actions, wanted):
        action.suivi_renforce = True
    if violate:
        actions[0].violations.append(rule.label + " (total annuel)")


def _target_region(
    gen: TerritoryGenerator, rule: Rule, actions: list[Action], violate: bool
) -> None:
    region = [f for a in actions for f in a.fundings if f.code == (rule.financeur or "REGION")]
    if not region:
        action = gen.rng.choice([a for a in actions if not a.violations])
        region = [gen.ensure_funding(action, rule.financeur or "REGION")]
    imposed_share = rule.number() + (0.25 if violate else 0.0)
    total = sum((f.accorde or f.demande or 0) for f in region)
    running = 0.0
    for f in sorted(region, key=lambda f: -(f.accorde or f.demande or 0)):
        amount = f.accorde or f.demande or 0
        if running + amount <= total * imposed_share + 1 or running == 0:
            f.volet = "Figure imposée"
            running += amount
        else:
            f.volet = "Figure libre"
    if violate:
        actions[0].violations.append(rule.label + " (total annuel)")


TARGETS: dict[str, Callable[[TerritoryGenerator, Rule, list[Action], bool], None]] = {
    "cpo_part_actions_cible": _target_cpo,
    "actions_suivi_renforce": _target_suivi,
    "region_part_figures_imposees_cible": _target_region,
}


# --------------------------------------------------------------------------------------------
# Formatting and writing
# --------------------------------------------------------------------------------------------

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


class DemoWriter:
    """Writes the files of all territories and remembers what it wrote for the READMEs."""

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

    # -- programmations ------------------------------------------------------------------------

    def qpv_cell(self, gen: TerritoryGenerator, a: Action) -> str:
        code = gen.plan.code
        if a.qic:
            return f"{a.qic} (quartier d'intérêt communautaire)"
        if a.qpv is None:
            return "Tous les QPV de l'agglomération" if code == "CAMVS" else "Tous les QPV"
        if code == "VM":
            return " ; ".join(f"{c} - {gen.qpv_names[c]}" for c in a.qpv)
        if code == "CAMVS":
            return ", ".join(a.qpv)
        return " / ".join(f"{c} {gen.qpv_names[c]}" for c in a.qpv)

    def echelle(self, a: Action) -> str:
        if a.qpv is None:
            return "Intercommunale"
        return "Communale" if len(a.qpv) <= 1 else "Regroupement de communes"

    def write_vm(self, gen: TerritoryGenerator, year: int) -> Path:
        rng = self.rng
        header = [
            "N° dossier",
            "Exercice",
            "Code SIRET",
            "Raison sociale du porteur",
            "Intitulé de l'action",
            "Orientation",
            "Objectif",
            "Quartier(s) concerné(s)",
            "Échelle d'intervention",
            "Statut de l'action",
            "Coût total de l'action",
            "Dont coûts indirects",
            "Dont achats",
            "Financeur",
            "Montant demandé",
            "Montant accordé",
            "CPO",
            "Durée CPO",
            "Marqueur égalité",
            "Part du public résidant en QPV",
            "Date de fin de l'action",
            "Date de dépôt du bilan intermédiaire",
            "Date de dépôt du bilan",
            "Nombre de réunions de suivi",
        ]
        rows: list[list[str]] = []
        for a in gen.actions[year]:
            for f in a.fundings:
                rows.append(
                    [
                        a.dossier,
                        str(year),
                        a.porteur.siret,
                        a.porteur.nom,
                        a.intitule,
                        code_label(a.levels.get(1)),
                        code_label(a.leaf),
                        self.qpv_cell(gen, a),
                        self.echelle(a),
                        (a.statut or {}).get("libelle", ""),
                        fr_amount(a.cout_total, rng),
                        fr_amount(a.couts_indirects, rng),
                        fr_amount(a.achats, rng),
                        self.refs.financeur_label("VM", f.code),
                        fr_amount(f.demande, rng),
                        fr_amount(f.accorde, rng),
                        "Oui" if a.cpo else "Non",
                        f"{a.cpo_duree} ans" if a.cpo_duree else "",
                        a.marqueur,
                        fr_percent(a.part_qpv),
                        fr_date(a.date_fin),
                        fr_date(a.date_bilan_intermediaire),
                        fr_date(a.date_bilan),
                        str(a.reunions),
                    ]
                )
        rows = self._with_duplicates(rows, 2, near_duplicate_columns=(15,))
        path = self.folder("programmations") / f"VM_programmation_{year}_{DEMO_TOKEN}.csv"
        preamble = (
            f"{MENTION} — programmation {year} du contrat de ville de Valenciennes "
            "Métropole (export de type Dauphin) — aucune donnée réelle"
        )
        _write_csv(path, preamble, header, rows, ";", bom=True, newline="\r\n")
        return path

    def write_cabbalr(self, gen: TerritoryGenerator, year: int) -> Path:
        rng = self.rng
        header = [
            "Dossier",
            "N° SIRET",
            "Porteur de projet",
            "Type de porteur",
            "Action",
            "Pilier",
            "Priorité",
            "Sous-priorité",
            "Priorité transversale",
            "Quartiers",
            "Type d'opération",
            "Année de financement",
            "Coût total",
            "Charges indirectes",
            "Achats",
            "Financeur",
            "Nature de la subvention",
            "Volet régional",
            "Montant sollicité",
            "Montant attribué",
            "CPO",
            "Durée CPO",
            "Marqueur égalité",
            "Part du public QPV",
            "Date de demande de report",
        ]
        rows: list[list[str]] = []
        for a in gen.actions[year]:
            for f in a.fundings:
                rows.append(
                    [
                        a.dossier,
                        a.porteur.siret,
                        a.porteur.nom,
                        a.porteur.type,
                        a.intitule,
                        code_label(a.levels.get(1)),
                        code_label(a.levels.get(2)),
                        code_label(a.levels.get(3)),
                        code_label(a.transversal),
                        self.qpv_cell(gen, a),
                        (a.statut or {}).get("libelle", ""),
                        f"{a.rang}e année" if a.rang > 1 else "1re année",
                        fr_amount(a.cout_total, rng, euro=False).replace(",00", ""),
                        fr_amount(a.couts_indirects, rng, euro=False),
                        fr_amount(a.achats, rng, euro=False),
                        self.refs.financeur_label("CABBALR", f.code),
                        f.nature if f.code == "REGION" else "",
                        f.volet or "",
                        _plain(f.demande),
                        _plain(f.accorde),
                        "Oui" if a.cpo else "Non",
                        str(a.cpo_duree or ""),
                        a.marqueur,
                        f"{round(a.part_qpv * 100)}%",
                        fr_date(a.date_report),
                    ]
                )
        rows = self._with_duplicates(rows, 2)
        path = self.folder("programmations") / f"CABBALR_programmation_{year}_{DEMO_TOKEN}.csv"
        preamble = (
            f"{MENTION} — appel à projets {year} du contrat de ville de la CA "
            "Béthune-Bruay Artois Lys Romane — aucune donnée réelle"
        )
        _write_csv(path, preamble, header, rows, ";", bom=False, newline="\n")
        return path

    def write_camvs(self, gen: TerritoryGenerator, year: int) -> Path:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        workbook = Workbook()
        _readme_sheet(
            workbook,
            "Lisez-moi",
            [
                f"{MENTION.upper()}",
                f"Programmation {year} du contrat de ville de la CA Maubeuge-Val de Sambre "
                "(tableau de suivi local fictif).",
                "Porteurs, SIRET, montants et dates sont inventés par le générateur de "
                "l'observatoire (pipelines/demo/synthetic.py) à partir des référentiels du projet.",
                "Une ligne par action ; une paire de colonnes « demandé / accordé » par financeur.",
                "Montant accordé vide = décision non encore prise ; 0 = refus.",
            ],
        )
        sheet = workbook.create_sheet(f"Programmation {year}")
        sheet["A1"] = f"Contrat de ville CAMVS — programmation {year} ({MENTION.lower()})"
        sheet["A1"].font = Font(bold=True, size=14)
        sheet["A2"] = "Tableau de suivi du service politique de la ville — version de travail"
        financeurs = gen.financeurs
        header = [
            "Code dossier",
            "Porteur",
            "SIRET",
            "Libellé de l'action",
            "Orientation",
            "Objectif",
            "Fil rouge",
            "QPV",
            "Statut",
            "Coût total",
            "Coûts indirects",
            "Achats",
        ]
        for code in financeurs:
            label = self.refs.financeur_label("CAMVS", code)
            header += [f"{label} - demandé", f"{label} - accordé"]
        header += [
            "CPO",
            "Durée CPO (ans)",
            "Marqueur égalité",
            "Part du public QPV",
            "Suivi renforcé",
            "Nombre de réunions de suivi",
            "Commentaire",
        ]
        header_row = 4
        for col, name in enumerate(header, start=1):
            cell = sheet.cell(row=header_row, column=col, value=name)
            cell.font = Font(bold=True)
        rows: list[list[Any]] = []
        for a in gen.actions[year]:
            row: list[Any] = [
                a.dossier,
                a.porteur.nom,
                a.porteur.siret,
                a.intitule,
                code_label(a.levels.get(1)),
                a.leaf.code,
                a.transversal.libelle if a.transversal and self.rng.random() < 0.5 else None,
                self.qpv_cell(gen, a),
                (a.statut or {}).get("libelle"),
                a.cout_total,
                a.couts_indirects,
                a.achats,
            ]
            for code in financeurs:
                f = a.funding(code)
                row += [f.demande, f.accorde] if f else [None, None]
            row += [
                "Oui" if a.cpo else "Non",
                a.cpo_duree,
                f"Niveau {a.marqueur}",
                a.part_qpv,
                "Oui" if a.suivi_renforce else "Non",
                a.reunions,
                "données fictives" if self.rng.random() < 0.1 else None,
            ]
            rows.append(row)
        rows = self._with_duplicates(rows, 1)
        for r_idx, row in enumerate(rows, start=header_row + 1):
            for c_idx, value in enumerate(row, start=1):
                cell = sheet.cell(row=r_idx, column=c_idx, value=value)
                name = header[c_idx - 1]
                if isinstance(value, float) and name.startswith("Part"):
                    cell.number_format = "0%"
                elif isinstance(value, float):
                    cell.number_format = '#,##0.00 "€"'
        path = self.folder("programmations") / f"CAMVS_programmation_{year}_{DEMO_TOKEN}.xlsx"
        _save_workbook(workbook, path)
        return path

    def _with_duplicates(
        self, rows: list[list[Any]], count: int, near_duplicate_columns: tuple[int, ...] = ()
    ) -> list[list[Any]]:
        """Repeat ``count`` lines exactly (export duplicates) and, optionally, one line with a
        different value in the given columns (same dossier × financeur, other amount)."""
        rows = list(rows)
        picks = self.rng.sample(range(len(rows)), count)
        for idx in sorted(picks, reverse=True):
            rows.insert(idx + 1 + self.rng.randint(0, 3), list(rows[idx]))
        for column in near_duplicate_columns:
            idx = self.rng.randrange(len(rows))
            copy = list(rows[idx])
            copy[column] = fr_amount(1000.0, self.rng)
            rows.append(copy)
        return rows

    # -- bilans ---------------------------------------------------------------------------------

    def bilan_rows(self, gen: TerritoryGenerator, a: Action) -> list[dict[str, Any]]:
        rng = self.rng
        if not a.realisee:
            return [{"residence": "Non renseigné", "counts": [0] * 12}]
        if a.qic:
            places: list[str] = []
        elif a.qpv is None:
            places = rng.sample([c for c, _ in gen.qpv], min(3, len(gen.qpv)))
        else:
            places = list(a.qpv)
        total = rng.randint(8, 120)
        in_qpv = round(total * a.part_qpv)
        rows = []
        shares = [rng.random() + 0.2 for _ in places]
        for place, share in zip(places, shares, strict=True):
            rows.append((place, max(1, round(in_qpv * share / sum(shares)))))
        rows.append(("Hors QPV", max(1, total - in_qpv)))
        if rng.random() < 0.3:
            rows.append(("Non renseigné", rng.randint(1, 4)))
        if rng.random() < 0.3 and rows:
            place, _ = rows[0]
            rows[0] = (place, rng.randint(1, 4))  # small count for statistical secrecy tests
        out = []
        for place, n in rows:
            sexe_nr = rng.randint(0, 1) if n > 5 else 0
            femmes = sum(rng.random() < 0.58 for _ in range(n - sexe_nr))
            hommes = n - sexe_nr - femmes
            ages = [0] * 5
            for _ in range(n):
                ages[rng.choices(range(5), weights=(3, 3, 5, 1, 0.3))[0]] += 1
            publics = [
                rng.randint(0, n // 2),
                rng.randint(0, n // 3),
                rng.randint(0, n // 3),
                rng.randint(0, max(1, n // 8)),
            ]
            out.append({"residence": place, "counts": [femmes, hommes, sexe_nr, *ages, *publics]})
        return out

    def write_bilans(self, gen: TerritoryGenerator, year: int) -> Path:
        count_headers = [
            "Femmes",
            "Hommes",
            "Sexe non renseigné",
            "Moins de 16 ans",
            "16-25 ans",
            "26-64 ans",
            "65 ans et plus",
            "Âge non renseigné",
            "Demandeurs d'emploi",
            "Bénéficiaires du RSA",
            "Familles monoparentales",
            "Personnes en situation de handicap",
        ]
        code = gen.plan.code
        records: list[tuple[Action, dict[str, Any]]] = []
        for a in gen.actions[year]:
            if a.granted and a.date_bilan is not None:
                records += [(a, row) for row in self.bilan_rows(gen, a)]
        folder = self.folder("bilans")
        if code == "CAMVS":
            from openpyxl import Workbook
            from openpyxl.styles import Font

            workbook = Workbook()
            _readme_sheet(
                workbook,
                "Lisez-moi",
                [
                    MENTION.upper(),
                    f"Bilans {year} des actions financées (CA Maubeuge-Val de Sambre, fictif).",
                    "Une ligne par action et par QPV de résidence des bénéficiaires.",
                    "Fiches de suivi-bilan à transmettre avant le 31 mars de l'année N+1.",
                ],
            )
            sheet = workbook.create_sheet(f"Bilans {year}")
            sheet["A1"] = f"Bilans {year} — {MENTION.lower()}"
            sheet["A1"].font = Font(bold=True)
            sheet["A2"] = "Source : fiches de suivi-bilan (fictives)"
            header = [
                "Code dossier",
                "Action réalisée",
                "QPV de résidence",
                *count_headers,
                "Date de dépôt du bilan",
            ]
            for col, name in enumerate(header, start=1):
                sheet.cell(row=3, column=col, value=name).font = Font(bold=True)
            for r_idx, (a, row) in enumerate(records, start=4):
                values = [
                    a.dossier,
                    "Oui" if a.realisee else "Non",
                    row["residence"],
                    *row["counts"],
                    a.date_bilan,
                ]
                for c_idx, value in enumerate(values, start=1):
                    cell = sheet.cell(row=r_idx, column=c_idx, value=value)
                    if isinstance(value, date):
                        cell.number_format = "DD/MM/YYYY"
            path = folder / f"CAMVS_bilans_{year}_{DEMO_TOKEN}.xlsx"
            _save_workbook(workbook, path)
            return path
        if code == "VM":
            header = [
                "N° dossier",
                "Intitulé de l'action",
                "Action réalisée",
                "QPV de résidence",
                *count_headers,
                "Date de dépôt du bilan",
            ]
            rows = [
                [
                    a.dossier,
                    a.intitule,
                    "Oui" if a.realisee else "Non",
                    row["residence"],
                    *map(str, row["counts"]),
                    fr_date(a.date_bilan),
                ]
                for a, row in records
            ]
            path = folder / f"VM_bilans_{year}_{DEMO_TOKEN}.csv"
            _write_csv(
                path,
                f"{MENTION} — bilans {year} Valenciennes Métropole",
                header,
                rows,
                ";",
                bom=True,
                newline="\r\n",
            )
            return path
        header = [
            "Dossier",
            "Action",
            "Action réalisée",
            "Quartier de résidence",
            *count_headers,
            "Date de dépôt du bilan",
        ]
        rows = []
        for a, row in records:
            place = row["residence"]
            if place.startswith("QP"):
                place = f"{place} - {gen.qpv_names[place]}"
            rows.append(
                [
                    a.dossier,
                    a.intitule,
                    "Oui" if a.realisee else "Non",
                    place,
                    *map(str, row["counts"]),
                    fr_date(a.date_bilan),
                ]
            )
        path = folder / f"{code}_bilans_{year}_{DEMO_TOKEN}.csv"
        _write_csv(
            path,
            f"{MENTION} — bilans {year} CA Béthune-Bruay Artois Lys Romane",
            header,
            rows,
            ",",
            bom=False,
            newline="\n",
        )
        return path

    # -- Compas ---------------------------------------------------------------------------------

    def write_compas(self, millesime: int = 2022) -> Path:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        rng = self.rng
        indicators = [
            ("Part des familles monoparentales (%)", "%", (25, 50)),
            ("Part des allocataires C2S (%)", "%", (25, 50)),
            ("Indice de fragilité", "indice base 100 = France", (110, 260)),
            ("Part des 0-17 ans (%)", "%", (22, 36)),
            ("Nombre d'allocataires CAF", "nombre", (300, 3500)),
            ("Part des ménages à bas revenus (%)", "%", (30, 60)),
            ("Part des allocataires dépendant à 50 % ou plus des prestations (%)", "%", (20, 45)),
            ("Part des 75 ans et plus (%)", "%", (4, 12)),
        ]
        workbook = Workbook()
        notes = [
            MENTION.upper(),
            f"Indicateurs d'observation sociale de type Compas — millésime {millesime} "
            "(valeurs inventées).",
            "Géographie : QPV 2024 (décret 2023-1314) des trois territoires de démonstration, "
            "et leurs EPCI (code SIREN).",
            "Secret statistique : « s » = valeur masquée (effectif trop faible).",
            "",
            "Indicateur ; unité",
            *[f"{name} ; {unit}" for name, unit, _ in indicators],
        ]
        _readme_sheet(workbook, "Notes", notes)
        sheet = workbook.create_sheet(f"Indicateurs {millesime}")
        sheet["A1"] = f"Tableau de bord social — millésime {millesime}"
        sheet["A1"].font = Font(bold=True, size=13)
        sheet["A2"] = MENTION
        sheet["A3"] = "Source : Compas (fictif), CAF (fictif)"
        header_row = 5 + rng.randint(0, 2)  # the header row moves between deliveries
        header = [
            "Code territoire",
            "Libellé territoire",
            "Type",
            "Territoire de contrat",
            *[name for name, _, _ in indicators],
        ]
        for col, name in enumerate(header, start=1):
            sheet.cell(row=header_row, column=col, value=name).font = Font(bold=True)
        r_idx = header_row + 1
        for plan in PLANS:
            units = [(c, n, "QPV", 1.0) for c, n in self.refs.qpv_list(plan.code, "2024")]
            for territory in self.refs.extra["territoires"]:
                if territory.get("territoire") == plan.code and territory.get("siren"):
                    units.append((territory["siren"], territory.get("nom", ""), "EPCI", 0.6))
            for code, name, kind, factor in units:
                values: list[Any] = [code, name, kind, plan.code]
                for _label, unit, (low, high) in indicators:
                    if kind == "QPV" and rng.random() < 0.04:
                        values.append("s")
                        continue
                    value = rng.uniform(low, high) * (factor if unit != "nombre" else 1)
                    if unit == "nombre":
                        value = round(value * (8 if kind == "EPCI" else 1))
                    else:
                        value = round(value, 1)
                    values.append(value)
                for c_idx, value in enumerate(values, start=1):
                    sheet.cell(row=r_idx, column=c_idx, value=value)
                r_idx += 1
        path = self.folder("compas") / f"COMPAS_indicateurs_{DEMO_TOKEN}.xlsx"
        _save_workbook(workbook, path)
        return path


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


def write_synthetic_demo(raw_dir: Path, referentiels_dir: Path, seed: int = 20261122) -> list[Path]:
    """Write the fictitious demo files under ``raw_dir`` and return their paths.

    Folders: ``programmations/`` (VM CSV Dauphin-like, CAMVS XLSX wide, CABBALR CSV),
    ``bilans/`` (one row per action × QPV of residence), ``compas/`` (indicator table), each
    with a README.txt. The same seed and référentiels give byte-identical files.
    """
    raw_dir = Path(raw_dir)
    refs = Referentiels(Path(referentiels_dir))
    rng = random.Random(seed)
    writer = DemoWriter(raw_dir, refs, rng)
    generators = []
    for plan in PLANS:
        gen = TerritoryGenerator(plan, refs, rng)
        gen.build()
        generators.append(gen)
    programmations: list[Path] = []
    bilans: list[Path] = []
    lines_prog: list[str] = []
    lines_bilans: list[str] = []
    for gen in generators:
        for year in gen.plan.years:
            writer_fn = {
                "VM": writer.write_vm,
                "CAMVS": writer.write_camvs,
                "CABBALR": writer.write_cabbalr,
            }[gen.plan.code]
            programmations.append(writer_fn(gen, year))
            bilans.append(writer.write_bilans(gen, year))
            actions = gen.actions[year]
            granted = sum((f.accorde or 0) for a in actions for f in a.fundings)
            lines_prog.append(
                f"- {programmations[-1].name}: {len(actions)} actions, "
                f"{sum(len(a.fundings) for a in actions)} demandes action × financeur, "
                f"{fr_total(granted)} accordés (doublons exclus)"
            )
            lines_bilans.append(f"- {bilans[-1].name}")
            rules = refs.rules_for(gen.plan.code, year)
            counts = Counter(v for a in actions for v in a.violations)
            for rule in rules:
                if rule.regle in NON_ACTION_RULES:
                    lines_prog.append(
                        f"    règle {rule.label}: non injectée ({NON_ACTION_RULES[rule.regle]})"
                    )
                elif rule.regle not in INJECTORS and rule.regle not in TARGETS:
                    lines_prog.append(
                        f"    règle {rule.label}: type de règle inconnu du "
                        "générateur, aucune violation injectée"
                    )
                elif rule.regle in TARGET_RULES:
                    broken = counts[rule.label + " (total annuel)"] > 0
                    verdict = "objectif annuel NON respecté" if broken else "objectif respecté"
                    lines_prog.append(
                        f"    règle {rule.label} (valeur {rule.valeur}): {verdict} cette année"
                    )
                else:
                    lines_prog.append(
                        f"    règle {rule.label} (valeur {rule.valeur}): "
                        f"{counts[rule.label]} action(s) en infraction"
                    )
    compas = writer.write_compas()
    folder_prog = writer.folder("programmations")
    readme_prog = _readme(
        folder_prog,
        "programmations",
        [
            "Les fichiers dont le nom contient DEMO_FICTIF sont INVENTÉS par",
            "pipelines/demo/synthetic.py (graine fixe) : porteurs « Association fictive … »,",
            "SIRET fictifs (préfixe 99, quelques clés de Luhn volontairement fausses), montants,",
            "dates. Ils imitent les formats réels : VM = export Dauphin (CSV ;, UTF-8 avec BOM,",
            "CRLF, ligne de préambule), CAMVS = tableau Excel local (une ligne par action, une",
            "paire de colonnes par financeur, en-tête en ligne 4), CABBALR = CSV ; UTF-8 sans BOM.",
            "Ils contiennent volontairement des doublons exacts, des montants accordés supérieurs",
            "aux montants demandés, des refus (0), des décisions en attente (vide) et des",
            "infractions à chaque règle de ref_regles_financement.csv :",
            *lines_prog,
        ],
    )
    readme_bilans = _readme(
        writer.folder("bilans"),
        "bilans",
        [
            "Bilans inventés des actions ayant obtenu un financement : une ligne par action et par",
            "QPV de résidence (code QPV, « Hors QPV » ou « Non renseigné »), effectifs par sexe,",
            "tranche d'âge et type de public ; quelques petits effectifs (1 à 4) pour tester le",
            "secret statistique.",
            *lines_bilans,
        ],
    )
    readme_compas = _readme(
        writer.folder("compas"),
        "indicateurs de type Compas",
        [
            "Tableau d'indicateurs inventé, au format d'une livraison Compas (onglet « Notes »,",
            "ligne d'en-tête décalée, colonnes larges), clé « Code territoire » (QPV 2024, SIREN",
            "des EPCI). Millésime indiqué dans le nom de l'onglet et dans les notes.",
            f"- {compas.name}",
        ],
    )
    return [*programmations, *bilans, compas, readme_prog, readme_bilans, readme_compas]
