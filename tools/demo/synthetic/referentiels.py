"""The référentiels the generator reads (orientations, QPV, statuses, marqueur scales,
financeur aliases, funding rules): nothing about the contracts is hard-coded. The territories'
ones come from the example territory folders (``exemples/territoires/``), the national ones
from the dbt seeds.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import EXAMPLES_TERRITORIES_DIR
from pipelines.sources.territoires.examples import referentiel_rows

from .plans import FINANCEUR_LABELS

REQUIRED_FILES = ("ref_financeurs_alias_communs.csv",)


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

    def __init__(self, folder: Path, territories: Path = EXAMPLES_TERRITORIES_DIR) -> None:
        missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"référentiels introuvables dans {folder}: {', '.join(missing)} "
                "(générer ou copier les seeds dbt avant la démo)"
            )
        self.folder = folder
        self.territories = territories

        def read(name: str) -> list[dict[str, str]]:
            return [
                {k: (v or "").strip() for k, v in row.items()}
                for row in referentiel_rows(name, territories)
            ]

        self.orientations = read("ref_orientations.csv")
        self.qpv = read("ref_perimetre_qpv.csv")
        self.aliases = read("ref_financeurs_alias.csv")
        self.statuts = read("ref_statuts_action.csv")
        # the scales of the territory folders (only VM declares some): the demo exports carry a
        # marqueur column for every territory, read on the scale of the same name
        self.marqueurs = read("ref_marqueur_egalite.csv")
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
            for r in read("ref_regles_financement.csv")
        ]
        self.extra: dict[str, list[dict[str, str]]] = {
            "qic": read("ref_quartiers_interet_communautaire.csv"),
            "territoires": read("ref_territoires.csv"),
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
        return list(dict.fromkeys(r["niveau"] for r in rows))

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
