"""Derive the project's EPCI référentiel from Etalab's ``@etalab/decoupage-administratif``.

    python -m tools.referentiels.epci [DOSSIER]   # DOSSIER: the package's data folder
                                                  # (default ../shared/data/etalab)

Writes two seeds, committed with their source and licence (the package is MIT, its data come
from INSEE's Code officiel géographique and the BANATIC, Licence Ouverte):

- ``ref_epci.csv``: every EPCI à fiscalité propre: SIREN, name, type (CA, CC, CU, METRO, MET69),
  municipal population, département(s) of its communes;
- ``ref_epci_communes.csv``: every commune member of an EPCI: INSEE code, name, SIREN of its
  EPCI, municipal population.

They let a build with no territory folder make each EPCI holding a loaded QPV a territory (its
QPV found through the communes of the contours or of the official list).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from pipelines.publication.cells import FORMULA_STARTS
from pipelines.settings import PROJECT_ROOT, REFERENTIELS_DIR

DEFAULT_SOURCE = PROJECT_ROOT.parent / "shared" / "data" / "etalab"
PACKAGE = "@etalab/decoupage-administratif 6.0.0 (Etalab, licence MIT)"


def departement_of(code_commune: str) -> str:
    """The département of a commune code: 2 characters, 3 for the overseas ones (97x)."""
    return code_commune[:3] if code_commune.startswith("97") else code_commune[:2]


def check_cells(rows: list[dict]) -> None:
    """Refuse a text cell a spreadsheet would evaluate as a formula (``=``, ``+``, ``-``, ``@``,
    tab, CR first). The seeds are data read by dbt: prefixing the cell with ``'`` (what the
    published files do) would change the value in the warehouse, so the derivation stops and
    names the cell; no EPCI or commune name starts so."""
    for number, row in enumerate(rows, start=2):
        for column, value in row.items():
            if isinstance(value, str) and value.startswith(FORMULA_STARTS):
                raise ValueError(
                    f"ligne {number}, colonne « {column} »: valeur « {value[:40]} » lue comme une "
                    "formule par un tableur ; vérifier la source avant d'écrire la seed"
                )


def derive(source: Path, target: Path) -> tuple[int, int]:
    epcis = json.loads((source / "epci.json").read_text(encoding="utf-8"))
    epci_rows, commune_rows = [], []
    for epci in sorted(epcis, key=lambda e: e["code"]):
        members = epci.get("membres") or []
        departements = sorted({departement_of(m["code"]) for m in members})
        epci_rows.append(
            {
                "siren": epci["code"],
                "nom": epci["nom"],
                "type": epci["type"],
                "population_municipale": epci.get("populationMunicipale") or "",
                "departements": ";".join(departements),
            }
        )
        for member in members:
            commune_rows.append(
                {
                    "code_commune": member["code"],
                    "nom_commune": member["nom"],
                    "siren_epci": epci["code"],
                    "population_municipale": member.get("populationMunicipale") or "",
                }
            )
    commune_rows.sort(key=lambda r: r["code_commune"])
    for rows in (epci_rows, commune_rows):
        check_cells(rows)
    for name, rows in (("ref_epci.csv", epci_rows), ("ref_epci_communes.csv", commune_rows)):
        with (target / name).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return len(epci_rows), len(commune_rows)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else DEFAULT_SOURCE
    if not (source / "epci.json").is_file():
        print(f"epci.json introuvable dans {source} (dossier data du paquet npm {PACKAGE})")
        return 1
    n_epci, n_communes = derive(source, REFERENTIELS_DIR)
    print(f"{n_epci} EPCI, {n_communes} communes -> {REFERENTIELS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
