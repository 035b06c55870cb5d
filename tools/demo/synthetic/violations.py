"""Rule kinds: how to break one (parameters come from ref_regles_financement.csv).

``INJECTORS`` break an action-level rule on one action; ``TARGETS`` set a yearly target
(share of CPO, count of actions under suivi renforcé, regional volets) on all the actions
of a year, met or missed on purpose.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Protocol

from .actions import Action, Funding, _round
from .plans import TARGET_TOLERANCE
from .referentiels import Rule


class TerritoryGeneratorLike(Protocol):
    """What the injectors use of :class:`.generator.TerritoryGenerator` (which imports this
    module: a protocol rather than an import keeps the modules free of cycles)."""

    rng: random.Random
    actions: dict[int, list[Action]]
    statuts: list[dict[str, str]]
    qic: list[dict[str, str]]
    levels_marqueur: list[str]
    epci_code: str

    def set_statut(self, action: Action, code: str | None = None) -> None: ...

    def ensure_funding(self, action: Action, code: str, share: float = 0.2) -> Funding: ...

    def set_state_share(self, action: Action, code: str, share: float) -> None: ...


def _deadline(rule: Rule, year: int) -> date:
    if rule.unite in ("date_n", "date_n_plus_1"):
        month, day = (int(x) for x in rule.valeur.split("-"))
        return date(year + (rule.unite == "date_n_plus_1"), month, day)
    return date.fromisoformat(rule.valeur)


def _statut_by_code(gen: TerritoryGeneratorLike, code: str | None) -> dict[str, str] | None:
    return next((s for s in gen.statuts if s["statut_code"] == code), None)


def _inj_min_request(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    funding = gen.ensure_funding(a, rule.financeur or "ETAT_BOP147")
    funding.demande = funding.accorde = _round(rule.number() - gen.rng.uniform(800, 2500), 100)


def _inj_share_cap(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    if rule.condition_statut:
        gen.set_statut(a, rule.condition_statut)
    if rule.regle.startswith("anct_part_max_annee_"):
        a.rang = int(rule.regle.rsplit("_", 1)[1])
        gen.set_statut(a)
    gen.set_state_share(a, rule.financeur or "ETAT_BOP147", rule.number() + 0.12)


def _inj_indirect(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    a.couts_indirects = round(a.cout_total * (rule.number() + 0.05), 2)


def _inj_purchases(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    a.achats = round(a.cout_total * (rule.number() + 0.08), 2)


def _inj_marqueur(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    levels = gen.levels_marqueur
    below = levels[: levels.index(rule.valeur)] if rule.valeur in levels else levels[:1]
    a.marqueur = below[0]


def _inj_cpo_min(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or gen.epci_code)
    a.cpo, a.cpo_duree = True, int(rule.number()) - 1
    if not re.search(r"-0\d$", a.dossier):
        a.dossier += "-01"


def _inj_cpo_max(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or gen.epci_code)
    a.cpo, a.cpo_duree = True, int(rule.number()) + 1
    if not re.search(r"-0\d$", a.dossier):
        a.dossier += "-01"


def _inj_bilan_late(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    else:
        a.fundings[0].accorde = a.fundings[0].demande
    a.realisee = True
    a.date_bilan = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(4, 25))


def _inj_bilan_intermediaire(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    if rule.condition_statut:
        gen.set_statut(a, rule.condition_statut)
    a.date_bilan_intermediaire = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(5, 20))


def _inj_prorogation(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    a.date_fin = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(15, 60))
    a.date_report = date(a.annee, 11, 3)  # the request itself on time


def _inj_prorogation_request(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    """A prorogation into N+1 asked after the day before 15/11 of year N."""
    if rule.financeur:
        gen.ensure_funding(a, rule.financeur)
    a.date_fin = date(a.annee + 1, 3, 31)
    a.date_report = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(3, 30))


def _previous_of(gen: TerritoryGeneratorLike, a: Action) -> Action | None:
    """The action of the previous year ``a`` continues: its own, else one made so (same porteur
    and intitulé as a previous-year action no other action continues)."""
    if a.previous is not None:
        return a.previous
    earlier = gen.actions.get(a.annee - 1, [])
    taken = {id(x.previous) for year in gen.actions.values() for x in year if x.previous}
    free = [p for p in earlier if id(p) not in taken and not p.cpo]
    if not free:
        return None
    prev = gen.rng.choice(free)
    a.porteur, a.intitule, a.previous = prev.porteur, prev.intitule, prev
    return prev


def _inj_bilan_previous(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    """A reconducted action whose previous-year action has no final bilan."""
    prev = _previous_of(gen, a)
    gen.set_statut(a, rule.condition_statut)
    if prev is not None:
        prev.date_bilan = None


def _inj_marqueur_previous(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    """A project whose previous-year action had a marqueur below the level (to review)."""
    prev = _previous_of(gen, a)
    gen.set_statut(a)
    levels = gen.levels_marqueur
    if prev is not None and rule.valeur in levels:
        prev.marqueur = levels[0]


def _inj_droit_commun(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    """Crédits spécifiques of a financeur on a project its droit commun also funds."""
    funding = gen.ensure_funding(a, rule.financeur or "REGION", 0.15)
    funding.nature = "Fonctionnement"
    if a.funding(f"{funding.code}_DROIT_COMMUN") is None:
        amount = _round(a.cout_total * 0.1)
        a.fundings.append(Funding(f"{funding.code}_DROIT_COMMUN", amount, amount))


def _inj_reunions(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    a.reunions = max(0, int(rule.number()) - gen.rng.randint(1, 2))


def _inj_min_expenses(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or "ETAT_BOP147")
    a.rescale(_round(rule.number() - gen.rng.uniform(400, 1200), 100))


def _inj_public_qpv(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    a.part_qpv = round(rule.number() - gen.rng.uniform(0.12, 0.25), 2)


def _inj_region_amount(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
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


def _inj_qic(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    if gen.qic:
        a.qpv, a.qic = [], gen.rng.choice(gen.qic)["nom"]
    gen.ensure_funding(a, rule.financeur or "ETAT_BOP147", 0.2)


def _inj_report(gen: TerritoryGeneratorLike, rule: Rule, a: Action) -> None:
    gen.ensure_funding(a, rule.financeur or "ETAT_BOP147")
    a.date_report = _deadline(rule, a.annee) + timedelta(days=gen.rng.randint(5, 15))


INJECTORS: dict[str, Callable[[TerritoryGeneratorLike, Rule, Action], None]] = {
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
    "prorogation_demande_date_limite": _inj_prorogation_request,
    "bilan_annee_precedente_reconduction": _inj_bilan_previous,
    "marqueur_precedent_examen": _inj_marqueur_previous,
    "region_specifiques_exclus_si_droit_commun": _inj_droit_commun,
}


def _target_cpo(
    gen: TerritoryGeneratorLike, rule: Rule, actions: list[Action], violate: bool
) -> None:
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
    gen: TerritoryGeneratorLike, rule: Rule, actions: list[Action], violate: bool
) -> None:
    wanted = int(rule.number()) - (1 if violate else 0)
    for action in actions:
        action.suivi_renforce = False
    for action in gen.rng.sample(actions, wanted):
        action.suivi_renforce = True
    if violate:
        actions[0].violations.append(rule.label + " (total annuel)")


def _target_region(
    gen: TerritoryGeneratorLike, rule: Rule, actions: list[Action], violate: bool
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


TARGETS: dict[str, Callable[[TerritoryGeneratorLike, Rule, list[Action], bool], None]] = {
    "cpo_part_actions_cible": _target_cpo,
    "actions_suivi_renforce": _target_suivi,
    "region_part_figures_imposees_cible": _target_region,
}
