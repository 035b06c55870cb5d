"""Territory folders of the national benchmark: one per EPCI holding a QPV, with the
référentiels a user would give (``territoires/E<SIREN>/``: ``territoire.yml``, its QPV
perimeter, orientation hierarchy, action statuses and funding rules), so that the rule models
are evaluated at national volume. FICTITIOUS rules: one of each kind the engine evaluates on
the generated programmations, thresholds drawn per territory from the seed and its SIREN.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

ORIENTATIONS = (
    "Cohésion sociale",
    "Cadre de vie et renouvellement urbain",
    "Emploi et développement économique",
    "Valeurs de la République et citoyenneté",
)
#: the themes of the actions' intitulés, each the level-2 objectif of one orientation
#: (index in ORIENTATIONS): a programmation line names its objectif (« O1.2 - Médiation
#: sociale »), which the territory's hierarchy (orientations.csv) rolls up to the orientation
THEMES = (
    "Accompagnement à la scolarité",
    "Médiation sociale",
    "Accès aux droits",
    "Insertion professionnelle des jeunes",
    "Santé et prévention",
    "Sport et citoyenneté",
    "Culture dans les quartiers",
    "Gestion urbaine de proximité",
)
THEME_ORIENTATION = (0, 1, 0, 2, 0, 3, 3, 1)
#: action statuses of every bench territory (statuts_action.csv): code, label written in the
#: programmations' « Statut de l'action », category
STATUTS = (
    ("nouvelle", "Nouvelle action", "nouvelle"),
    ("reconduite", "Reconduction", "reconduite"),
)


@dataclass
class Territory:
    siren: str
    name: str
    qpv: list[tuple[str, str]] = field(default_factory=list)  # (code, name)

    @property
    def code(self) -> str:
        """Code of its territory folder (a letter first: ``E`` + SIREN)."""
        return f"E{self.siren}"


def objectif_codes() -> list[str]:
    """Code of each theme's objectif in the bench hierarchy (``O1.2``: 2nd objectif of the 1st
    orientation), in the order of :data:`THEMES`."""
    seen = [0] * len(ORIENTATIONS)
    codes = []
    for orientation in THEME_ORIENTATION:
        seen[orientation] += 1
        codes.append(f"O{orientation + 1}.{seen[orientation]}")
    return codes


BENCH_SOURCE = "banc d'essai (fictif)"
#: The columns of a territory's regles_financement.csv, in the order of the worked examples
#: (exemples/territoires/*/regles_financement.csv), so that the bench writes the shape users copy.
EXAMPLES = Path(__file__).resolve().parents[2] / "exemples" / "territoires"
EXAMPLE_RULES = EXAMPLES / "VM" / "regles_financement.csv"
with EXAMPLE_RULES.open(encoding="utf-8", newline="") as _fh:
    RULE_COLUMNS = next(csv.reader(_fh))


def territory_rules(territory: Territory, seed: int, first_year: int) -> list[dict[str, str]]:
    """The funding rules of one bench territory (``regles_financement.csv``): one rule of each
    kind the engine evaluates on these programmations (minimum request and maximum share of the
    État, maximum share of the EPCI, cap on the Région's grant, minimum cost with a porteur
    exemption, bilan deadline, previous year's bilan of a reconduction, CPO duration, Région
    droit commun, share of actions under CPO) and one it cannot check, with thresholds drawn
    per territory (a generator seeded by the seed and the SIREN: the same for the same seed,
    whatever the other territories); some territories change a threshold during the period."""
    rng = random.Random(f"{seed}:{territory.siren}")
    start = first_year + rng.choice((0, 0, 0, 1))
    rows: list[dict[str, str]] = []

    def rule(regle, financeur, controle, sens, valeur, unite, description, **extra) -> None:
        rows.append(
            {
                "regle": regle,
                "financeur": financeur,
                "annee_debut": str(extra.pop("annee_debut", start)),
                "annee_fin": str(extra.pop("annee_fin", "")),
                "valeur": str(valeur),
                "unite": unite,
                "controle": controle,
                "sens": sens,
                "description": f"Règle fictive du banc d'essai : {description}",
                "source_seed": BENCH_SOURCE,
                "source_libelle": "banc d'essai national",
                "citation": "règle inventée pour le banc d'essai (aucun document source)",
                **extra,
            }
        )

    minimum = rng.choice((1000, 1500, 2000, 2500, 3000, 5000))
    if rng.random() < 0.35:  # the threshold changes after two years
        change = start + 2
        rule(
            "etat_demande_minimum", "ETAT_BOP147", "montant_demande", "min", minimum, "EUR",
            f"demande à l'État d'au moins {minimum} € jusqu'en {change - 1}.",
            annee_fin=change - 1,
        )  # fmt: skip
        minimum = rng.choice((1500, 2500, 4000, 5000))
        rule(
            "etat_demande_minimum", "ETAT_BOP147", "montant_demande", "min", minimum, "EUR",
            f"demande à l'État d'au moins {minimum} € à partir de {change}.",
            annee_debut=change,
        )  # fmt: skip
    else:
        rule(
            "etat_demande_minimum", "ETAT_BOP147", "montant_demande", "min", minimum, "EUR",
            f"demande à l'État d'au moins {minimum} €.",
        )  # fmt: skip
    for code, shares in (("nouvelle", (0.5, 0.6, 0.7, 0.8)), ("reconduite", (0.3, 0.4, 0.5))):
        share = rng.choice(shares)
        rule(
            "etat_part_max_cout", "ETAT_BOP147", "part_demande_cout", "max", share, "part",
            f"part de l'État dans le coût d'une action ({code}) d'au plus {share:.0%}.",
            condition_statut=code,
        )  # fmt: skip
    share = rng.choice((0.3, 0.4, 0.5))
    rule(
        "epci_part_max_cout", "EPCI", "part_demande_cout", "max", share, "part",
        f"part de l'EPCI dans le coût d'une action d'au plus {share:.0%}.",
    )  # fmt: skip
    cap = rng.choice((10000, 15000, 20000, 30000))
    rule(
        "region_accorde_max", "REGION", "montant_accorde", "max", cap, "EUR",
        f"subvention accordée par la Région d'au plus {cap} €.",
    )  # fmt: skip
    cost = rng.choice((1500, 2000, 2500, 3000))
    rule(
        "depenses_minimum", "", "cout_total", "min", cost, "EUR",
        f"coût d'une action d'au moins {cost} €, sauf pour un conseil citoyen.",
        exception_porteur="Conseil citoyen",
    )  # fmt: skip
    deadline = rng.choice(("03-31", "04-30", "05-31", "06-30"))
    rule(
        "bilan_date_limite", "", "date_bilan", "max", deadline, "date_n_plus_1",
        f"bilan d'une action financée remis au plus tard le {deadline} (MM-JJ) de l'année "
        "suivante.",
    )  # fmt: skip
    rule(
        "bilan_annee_precedente_reconduction", "", "bilan_annee_precedente", "min", "final",
        "bilan", "une reconduction a le bilan final de l'action de l'année précédente.",
        condition_statut="reconduite",
    )  # fmt: skip
    rule(
        "cpo_duree_min", "", "cpo_duree", "min", 2, "annees",
        "convention pluriannuelle de 2 ans au moins.",
    )  # fmt: skip
    rule(
        "cpo_duree_max", "", "cpo_duree", "max", 3, "annees",
        "convention pluriannuelle de 3 ans au plus.",
    )  # fmt: skip
    if rng.random() < 0.5:
        rule(
            "region_specifiques_exclus_si_droit_commun", "REGION",
            "montant_droit_commun_meme_financeur", "max", 0, "EUR",
            "pas de crédits spécifiques de la Région avec ses crédits de droit commun.",
        )  # fmt: skip
    target = rng.choice((0.1, 0.15, 0.2, 0.25))
    rule(
        "cpo_part_actions_min", "", "part_actions_cpo", "min", target, "part",
        f"au moins {target:.0%} des actions de l'année sous convention pluriannuelle.",
    )  # fmt: skip
    rule(
        "evaluation_copil_par_an", "", "aucun", "", 1, "nombre",
        "une évaluation présentée chaque année au comité de pilotage.",
    )  # fmt: skip
    return [{column: row.get(column, "") for column in RULE_COLUMNS} for row in rows]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> int:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def write_territories(
    raw_dir: Path, territories: list[Territory], seed: int = 20261202, first_year: int = 2024
) -> int:
    """One territory folder per EPCI (``territoires/E<SIREN>/``): its name and SIREN, its QPV
    listed (each QPV in one perimeter), its orientation hierarchy (the 4 orientations and 8
    objectifs of the generated programmations), its action statuses and its funding rules
    (:func:`territory_rules`); returns the number of data lines written."""
    lines = 0
    last_year = first_year + 11
    for territory in territories:
        folder = raw_dir / "territoires" / territory.code
        folder.mkdir(parents=True)
        name = territory.name.replace('"', "'")
        (folder / "territoire.yml").write_text(
            f'nom: "{name}"\nsiren: "{territory.siren}"\nperimetre: liste\n'
            f'annee_debut: "{first_year}"\nannee_fin: "{last_year}"\n'
            f'source: "{BENCH_SOURCE}"\n',
            encoding="utf-8",
        )
        lines += 1
        lines += _write_csv(
            folder / "perimetre_qpv.csv",
            ["code_qpv", "geographie", "libelle_qpv", "note"],
            [[code, "2024", label, ""] for code, label in territory.qpv],
        )
        referentiel = f"{territory.code}_{first_year}_{last_year}"
        period = [referentiel, str(first_year), str(last_year)]
        nodes = [
            [*period, "1", "orientation", f"O{i + 1}", label, "", "false", BENCH_SOURCE]
            for i, label in enumerate(ORIENTATIONS)
        ]
        for code, theme, orientation in zip(
            objectif_codes(), THEMES, THEME_ORIENTATION, strict=True
        ):
            parent = f"O{orientation + 1}"
            nodes.append([*period, "2", "objectif", code, theme, parent, "false", BENCH_SOURCE])
        lines += _write_csv(
            folder / "orientations.csv",
            ["referentiel", "annee_debut", "annee_fin", "niveau", "type_niveau", "code",
             "libelle", "code_parent", "transversal", "source_seed"],
            sorted(nodes, key=lambda row: row[5]),
        )  # fmt: skip
        lines += _write_csv(
            folder / "statuts_action.csv",
            ["statut_code", "libelle", "categorie", "source_seed"],
            [[code, label, category, BENCH_SOURCE] for code, label, category in STATUTS],
        )
        rules = territory_rules(territory, seed, first_year)
        lines += _write_csv(
            folder / "regles_financement.csv",
            RULE_COLUMNS,
            [[row[c] for c in RULE_COLUMNS] for row in rules],
        )
    return lines
