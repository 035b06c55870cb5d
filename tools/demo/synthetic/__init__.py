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

Modules: :mod:`.plans` (per-territory plans, financeur labels, fictitious names),
:mod:`.referentiels` (reading the référentiel CSVs), :mod:`.actions` (porteurs, fundings,
actions, fictitious SIRET), :mod:`.generator` (TerritoryGenerator: the two years of a
territory), :mod:`.violations` (how to break each kind of rule, yearly targets),
:mod:`.formats` (French formatting, CSV/XLSX/README writing), :mod:`.programmations`,
:mod:`.bilans` and :mod:`.compas` (one file writer each), :mod:`.lieux` (places geocoded by the
BAN); this module assembles them.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from .bilans import BilanWriter
from .compas import CompasWriter
from .formats import _readme, fr_total
from .generator import TerritoryGenerator
from .lieux import write_lieux_ban
from .plans import NON_ACTION_RULES, PLANS, TARGET_RULES
from .programmations import ProgrammationWriter
from .referentiels import Referentiels
from .violations import INJECTORS, TARGETS

__all__ = ["DemoWriter", "write_synthetic_demo"]


class DemoWriter(ProgrammationWriter, BilanWriter, CompasWriter):
    """Writes the files of all territories and remembers what it wrote for the READMEs."""


def write_synthetic_demo(raw_dir: Path, referentiels_dir: Path, seed: int = 20261122) -> list[Path]:
    """Write the fictitious demo files under ``raw_dir`` and return their paths.

    Folders: ``programmations/`` (VM CSV Dauphin-like, CAMVS XLSX wide, CABBALR CSV),
    ``bilans/`` (one row per action × QPV of residence), ``compas/`` (indicator table),
    ``lieux/`` (places geocoded by the BAN, :mod:`.lieux`), each with a README.txt. The same
    seed and référentiels give byte-identical files.
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
                elif rule.regle == "marqueur_precedent_examen":
                    lines_prog.append(
                        f"    règle {rule.label} (valeur {rule.valeur}): {counts[rule.label]} "
                        "projet(s) à examiner planté(s), plus ceux que le tirage des marqueurs "
                        "de l'année précédente donne (à examiner, pas des infractions)"
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
            "tools/demo/synthetic/ (graine fixe) : porteurs « Association fictive … »,",
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
            "secret statistique. Chaque action dit aussi si elle a été réalisée (oui, non,",
            "partiellement) et pourquoi, ses bénéficiaires prévus, un résultat attendu et obtenu,",
            "la participation des habitants et la mobilisation des publics. Trois formats : CAMVS",
            "en XLSX large, VM en CSV large avec des tranches d'âge plus fines (« 0-5 ans »,",
            "« 60 ans et plus » à cheval sur deux tranches canoniques), CABBALR en CSV long (une",
            "ligne par sexe, tranche ou public). Cellules volontairement fautives, que le lecteur",
            "signale : « une trentaine » bénéficiaires prévus, participation « En cours », un",
            "total inférieur aux tranches, un public plus nombreux que le total, un effectif",
            "« trois », une modalité « Jeunes NEET » hors référentiel.",
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
    # their own sequence of draws: the other files stay byte-identical
    lieux = write_lieux_ban(raw_dir, random.Random(seed + 1))
    return [*programmations, *bilans, compas, readme_prog, readme_bilans, readme_compas, *lieux]
