"""What the demo generates per territory: the plans, how each export names the financeurs,
the funding odds and the fictitious names of porteurs and actions. Also the constants
shared by the other modules (demo token, mention, rule families).
"""

from __future__ import annotations

from dataclasses import dataclass

DEMO_TOKEN = "DEMO_FICTIF"
MENTION = "Données fictives de démonstration"
FIXED_TIMESTAMP = (2026, 1, 1, 0, 0, 0)

# Rules that cannot be broken by an action row: a permission (CAF bonus) or a contract-level duty
# (yearly evaluation to the COPIL). They are listed in the README, not injected.
NON_ACTION_RULES = {
    "caf_majoration_investissement_qpv": "majoration possible (pas une contrainte sur une action)",
    "evaluation_copil_par_an": "obligation du contrat, pas d'une action",
    "bilan_2021_renouvellement": (
        "porte sur les actions 2021, année hors de la démonstration : règle non vérifiable "
        "(programmation de l'année précédente non chargée)"
    ),
}
# Year-level targets: judged on all the actions of a year, not on one action.
TARGET_RULES = {
    "cpo_part_actions_cible",
    "actions_suivi_renforce",
    "region_part_figures_imposees_cible",
}
TARGET_TOLERANCE = 0.10
CONSEIL_CITOYEN = "Conseil citoyen"


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
        # only on the actions that break the Région's exclusion rule (violations.py)
        "REGION_DROIT_COMMUN": ("Région droit commun",),
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
