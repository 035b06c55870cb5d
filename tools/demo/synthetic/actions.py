"""The fictitious actions and their parts: porteurs (with Luhn-valid fictitious SIRET),
funding requests, and the action rows the file writers turn into exports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

from stdnum import luhn

from .referentiels import Node


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
    previous: Action | None = None  # the action of the previous year it continues
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
