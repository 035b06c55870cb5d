"""TerritoryGenerator: the two demo years of one territory, built from its référentiels, with
the rule violations of :mod:`.violations` injected into a few actions.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from .actions import Action, Funding, Porteur, _round, fictitious_siret
from .plans import (
    ACTIONS,
    ASSOCIATIONS,
    CONSEIL_CITOYEN,
    FINANCEUR_LABELS,
    FREE_FINANCEURS,
    FUNDING_ODDS,
    FUNDING_SHARE,
    NON_ACTION_RULES,
    OTHER_PORTEURS,
    PLACE_WORDS,
    TARGET_RULES,
    TerritoryPlan,
)
from .referentiels import Node, Referentiels, Rule
from .violations import INJECTORS, TARGETS, _statut_by_code


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
        self.financeurs = [
            c for c in FINANCEUR_LABELS[plan.code] if not c.endswith("_DROIT_COMMUN")
        ]
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
            # its request for the extension, on time (before 15/11; no draw: same demo)
            action.date_report = date(year, 11, 1 + int(action.cout_total) % 13)
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
            previous=previous,
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
