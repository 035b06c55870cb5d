"""Suivi marts of the demo build recomputed independently from the raw demo files.

The programmation and bilan files are read here with the csv module and openpyxl (not with the
project's parsers), the référentiels with the csv module, and the INSEE DEMO base with the csv
module; the marts of the warehouse built by ``observatoire build`` must give the same figures.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from openpyxl import load_workbook

from pipelines.settings import REFERENTIELS_DIR
from pipelines.sources.territoires.examples import SEED_FILES, referentiel_rows

YEARS = {"VM": (2026, 2027), "CAMVS": (2025, 2026), "CABBALR": (2022, 2023)}
QPV_CODE = re.compile(r"Q[PN](?:\d{3}|02[AB])\d{2}[0-9NMIC]")


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


@functools.cache
def ref(name: str) -> list[dict[str, str]]:
    if name in SEED_FILES or name == "ref_territoires.csv":
        return referentiel_rows(name)  # a territory référentiel: the example folders
    with (REFERENTIELS_DIR / name).open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def amount(cell: Any) -> float | None:
    if cell is None or str(cell).strip() == "":
        return None
    if isinstance(cell, int | float):
        return float(cell)
    return float(re.sub(r"[\s\u00a0\u202f€%]", "", str(cell)).replace(",", "."))


def financeur_code(label: str, territoire: str) -> str:
    matches = [r for r in ref("ref_financeurs_alias.csv") if fold(r["alias"]) == fold(label)]
    specific = [r for r in matches if r["territoire"] == territoire]
    generic = [r for r in matches if not r["territoire"]]
    return (specific or generic)[0]["financeur"]


def luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char) * (2 if position % 2 else 1)
        total += number - 9 if number > 9 else number
    return total % 10 == 0


def siret_valide(cell: Any) -> bool:
    text = re.sub(r"\s", "", str(cell or ""))
    return bool(re.fullmatch(r"\d{14}", text)) and luhn(text) and luhn(text[:9])


def code_of(cell: Any) -> str | None:
    """« O3 - Lutter contre... » -> « O3 »; « O2.4 » -> « O2.4 »."""
    if cell is None or str(cell).strip() == "":
        return None
    return str(cell).split(" - ", 1)[0].strip()


def objectif_n2(territoire: str, code: str | None) -> str | None:
    """The level-2 node at or above a code of the territory's hierarchy (ref_orientations)."""
    referentiel = {"VM": "VM_2024_2030", "CAMVS": "CAMVS_2024_2030", "CABBALR": "CABBALR_2022"}
    nodes = {
        r["code"]: r
        for r in ref("ref_orientations.csv")
        if r["referentiel"] == referentiel[territoire]
    }
    node = nodes.get(code or "")
    while node is not None and int(node["niveau"]) > 2:
        node = nodes.get(node["code_parent"])
    return node["code"] if node is not None and node["niveau"] == "2" else None


def qpv_cell(cell: Any) -> list[str] | str:
    """QPV codes of a cell, 'TOUS' for « tous les QPV », [] when no code is written."""
    text = str(cell or "")
    codes = list(dict.fromkeys(QPV_CODE.findall(text)))
    if codes:
        return codes
    return "TOUS" if re.search(r"\btous\b", text.lower()) else []


def _csv_lines(path: Path) -> list[dict[str, str]]:
    """Rows after the one-line preamble; exact duplicate lines (rejected by the build) once."""
    text = path.read_bytes().decode("utf-8-sig")
    lines = text.splitlines()[1:]
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    seen: set[str] = set()
    kept = []
    for line in lines[1:]:
        if line.strip() and line not in seen:
            seen.add(line)
            kept.append(line)
    return list(csv.DictReader([lines[0], *kept], delimiter=delimiter))


def _xlsx_lines(path: Path, first_header: str) -> list[dict[str, Any]]:
    rows = list(
        load_workbook(path, read_only=True, data_only=True)
        .worksheets[1]
        .iter_rows(values_only=True)
    )
    top = next(i for i, r in enumerate(rows) if r and r[0] == first_header)
    header = rows[top]
    seen: set[tuple] = set()
    out = []
    for row in rows[top + 1 :]:
        if row[0] is None or row in seen:
            continue
        seen.add(row)
        out.append(dict(zip(header, row, strict=False)))
    return out


@functools.cache
def raw_lines(raw: Path) -> list[dict[str, Any]]:
    """One dict per programmation line (action x financeur) of every demo file."""
    out: list[dict[str, Any]] = []
    folder = raw / "programmations"
    for year in YEARS["VM"]:
        for row in _csv_lines(folder / f"VM_programmation_{year}_DEMO_FICTIF.csv"):
            out.append(
                {
                    "territoire": "VM",
                    "annee": year,
                    "dossier": row["N° dossier"],
                    "siret_valide": siret_valide(row["Code SIRET"]),
                    "financeur": financeur_code(row["Financeur"], "VM"),
                    "orientation": code_of(row["Orientation"]),
                    "objectif": objectif_n2("VM", code_of(row["Objectif"])),
                    "qpv": qpv_cell(row["Quartier(s) concerné(s)"]),
                    "marqueur": row["Marqueur égalité"],
                    "demande": amount(row["Montant demandé"]),
                    "accorde": amount(row["Montant accordé"]),
                }
            )
    for year in YEARS["CABBALR"]:
        for row in _csv_lines(folder / f"CABBALR_programmation_{year}_DEMO_FICTIF.csv"):
            out.append(
                {
                    "territoire": "CABBALR",
                    "annee": year,
                    "dossier": row["Dossier"],
                    "siret_valide": siret_valide(row["N° SIRET"]),
                    "porteur_type": row["Type de porteur"],
                    "financeur": financeur_code(row["Financeur"], "CABBALR"),
                    "orientation": code_of(row["Pilier"]),
                    "objectif": code_of(row["Priorité"]),
                    "qpv": qpv_cell(row["Quartiers"]),
                    "marqueur": row["Marqueur égalité"],
                    "demande": amount(row["Montant sollicité"]),
                    "accorde": amount(row["Montant attribué"]),
                }
            )
    for year in YEARS["CAMVS"]:
        for row in _xlsx_lines(
            folder / f"CAMVS_programmation_{year}_DEMO_FICTIF.xlsx", "Code dossier"
        ):
            for column in row:
                if not (column or "").endswith(" - demandé"):
                    continue
                label = column[: -len(" - demandé")]
                demande, accorde = row[column], row[f"{label} - accordé"]
                if demande is None and accorde is None:
                    continue
                out.append(
                    {
                        "territoire": "CAMVS",
                        "annee": year,
                        "dossier": row["Code dossier"],
                        "siret_valide": siret_valide(row["SIRET"]),
                        "financeur": financeur_code(label, "CAMVS"),
                        "orientation": code_of(row["Orientation"]),
                        "objectif": objectif_n2("CAMVS", code_of(row["Objectif"])),
                        "qpv": qpv_cell(row["QPV"]),
                        "marqueur": str(row["Marqueur égalité"]).replace("Niveau ", ""),
                        "demande": amount(demande),
                        "accorde": amount(accorde),
                    }
                )
    # a dossier x financeur repeated with other values counts once: the last line of the export
    last: dict[tuple, dict[str, Any]] = {}
    for line in out:
        last[(line["territoire"], line["annee"], line["dossier"], line["financeur"])] = line
    return list(last.values())


@functools.cache
def insee(raw: Path, variable: str) -> dict[tuple[str, int], float]:
    """(QPV code, millésime) -> value of a DEMO variable, read with the csv module."""
    values = {}
    for path in sorted((raw / "insee").glob("DEMO_*.csv")):
        year = int(re.search(r"\d{4}", path.name).group())
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                cell = (row.get(variable) or "").strip().replace("\u202f", "").replace(" ", "")
                if row["CODGEO"].startswith("QP") and cell:
                    values[(row["CODGEO"], year)] = float(cell.replace(",", "."))
    return values


def insee_for_year(raw: Path, variable: str, code: str, year: int) -> tuple[float, int] | None:
    found = {m: v for (c, m), v in insee(raw, variable).items() if c == code}
    if not found:
        return None
    before = [m for m in found if m <= year]
    millesime = max(before) if before else min(found)
    return found[millesime], millesime


def population_for_year(raw: Path, code: str, year: int) -> tuple[float, int] | None:
    """POP_MUN of a code, else (a 2024 code) the sum of its 2015 predecessors' (the demo's
    crosswalk has one-to-one links and one merger, no split): int_qpv__populations' rule."""
    own = insee_for_year(raw, "POP_MUN", code, year)
    if own is not None or not code.startswith("QN"):
        return own
    with (REFERENTIELS_DIR.parent / "indicateurs" / "ref_passage_qpv_2015_2024.csv").open(
        encoding="utf-8"
    ) as fh:
        before = [r["code_qpv_2015"] for r in csv.DictReader(fh) if r["code_qpv_2024"] == code]
    found = [insee_for_year(raw, "POP_MUN", c, year) for c in before]
    if not found or not all(found):
        return None
    return sum(f[0] for f in found), found[0][1]


# -- depenses ----------------------------------------------------------------------------------


def test_depenses_objectif_equals_raw_lines(con, demo_build):
    expected: dict[tuple, list] = defaultdict(lambda: [0.0, 0.0, set()])
    for line in raw_lines(demo_build / "raw"):
        key = (
            line["territoire"],
            line["annee"],
            line["orientation"],
            line["objectif"],
            line["financeur"],
        )
        expected[key][0] += line["demande"] or 0
        expected[key][1] += line["accorde"] or 0
        expected[key][2].add(line["dossier"])
    got = {
        (t, a, o, ob, f): (d, g, n)
        for t, a, o, ob, f, d, g, n in con.execute(
            "select territoire, annee, orientation_code, objectif_code, financeur, "
            "montant_demande, montant_accorde, nb_actions from marts.depenses_objectif"
        ).fetchall()
    }
    assert set(got) == set(expected)
    for key, (demande, accorde, dossiers) in expected.items():
        assert got[key][0] == pytest.approx(demande), key
        assert got[key][1] == pytest.approx(accorde), key
        assert got[key][2] == len(dossiers), key
    shares = con.execute(
        "select territoire, annee, sum(part_accorde_annee) from marts.depenses_objectif "
        "group by 1, 2"
    ).fetchall()
    assert all(s == pytest.approx(1, abs=0.002) for _, _, s in shares)


# -- bénéficiaires -----------------------------------------------------------------------------


def test_beneficiaires_genre_compared_with_insee_part_femmes(con, demo_build):
    raw = demo_build / "raw"
    rows = con.execute(
        "select annee, qpv_residence, part_femmes, part_femmes_population_qpv, "
        "millesime_part_femmes_population, ecart_part_femmes_points "
        "from marts.beneficiaires_genre"
    ).fetchall()
    with_insee = 0
    for annee, code, part, population, millesime, ecart in rows:
        expected = insee_for_year(raw, "TX_F", code, annee) if code.startswith("QP") else None
        if expected is None:  # 2024 codes: no INSEE 2024 base here; HORS_QPV, NON_RENSEIGNE
            assert population is None and ecart is None, code
            continue
        with_insee += 1
        assert (population, millesime) == (pytest.approx(expected[0]), expected[1]), code
        if part is not None:
            assert ecart == pytest.approx(round(part - expected[0], 1), abs=0.051)
    assert with_insee > 20  # the CABBALR QPV (2015 codes) of 2022 and 2023
    assert not con.execute(
        "select count(*) from marts.beneficiaires_genre "
        "where qpv_residence like 'QN%' and part_femmes_population_qpv is not null"
    ).fetchone()[0]


# -- effort par habitant -----------------------------------------------------------------------


def test_effort_financier_qpv_equals_raw_split(con, demo_build):
    raw = demo_build / "raw"
    actions: dict[tuple, dict] = {}
    for line in raw_lines(raw):
        key = (line["territoire"], line["annee"], line["dossier"])
        action = actions.setdefault(key, {"qpv": line["qpv"], "accorde": 0.0})
        action["accorde"] += line["accorde"] or 0
    expected: dict[tuple, float] = defaultdict(float)
    equal_split: set[tuple] = set()
    for (territoire, annee, _dossier), action in actions.items():
        codes = action["qpv"]
        if codes == "TOUS":
            geographie = "2024" if annee >= 2024 else "2015"
            codes = [
                r["code_qpv"]
                for r in ref("ref_perimetre_qpv.csv")
                if r["territoire"] == territoire and r["geographie"] == geographie
            ]
        if not codes:
            expected[(territoire, annee, "SANS_QPV")] += action["accorde"]
            continue
        populations = [population_for_year(raw, c, annee) for c in codes]
        if len(codes) > 1 and all(populations):
            total = sum(p[0] for p in populations)
            weights = [p[0] / total for p in populations]
        else:
            weights = [1 / len(codes)] * len(codes)
            if len(codes) > 1:
                equal_split.update((territoire, annee, c) for c in codes)
        for code, weight in zip(codes, weights, strict=True):
            expected[(territoire, annee, code)] += action["accorde"] * weight
    rows = con.execute(
        "select territoire, annee, code_qpv, montant_accorde, population, euros_par_habitant, "
        "repartition_egale from marts.effort_financier_qpv"
    ).fetchall()
    got = {(t, a, c): (m, p, e, r) for t, a, c, m, p, e, r in rows}
    assert set(got) == set(expected)
    for key, value in expected.items():
        montant, population, par_habitant, egale = got[key]
        assert float(montant) == pytest.approx(value, abs=0.011), key
        assert egale == (key in equal_split), key
        known = population_for_year(raw, key[2], key[1]) if key[2] != "SANS_QPV" else None
        if known is None:
            assert population is None and par_habitant is None, key
        else:
            assert population == pytest.approx(known[0])
            assert par_habitant == pytest.approx(round(value / known[0], 2), abs=0.011), key
    # 2015 codes have populations, 2024 codes those carried from 2015, except the QPV that
    # entered in 2024 (QN05992N, QN05919M, QN05993N): equal split flagged for their actions only
    assert all(k[0] != "CABBALR" for k in equal_split)
    assert any(k[0] == "VM" for k in equal_split)


# -- marqueur égalité --------------------------------------------------------------------------


def test_egalite_marqueur_equals_raw_lines(con, demo_build):
    actions: dict[tuple, dict] = {}
    for line in raw_lines(demo_build / "raw"):
        key = (line["territoire"], line["annee"], line["dossier"])
        action = actions.setdefault(key, {"marqueur": line["marqueur"], "accorde": 0.0})
        action["accorde"] += line["accorde"] or 0
    expected: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
    for (territoire, annee, _), action in actions.items():
        expected[(territoire, annee, action["marqueur"])][0] += 1
        expected[(territoire, annee, action["marqueur"])][1] += action["accorde"]
    rows = con.execute(
        "select territoire, annee, echelle, niveau, nb_actions, montant_accorde, niveau_eligible "
        "from marts.egalite_marqueur"
    ).fetchall()
    scales = defaultdict(set)
    for r in ref("ref_marqueur_egalite.csv"):
        scales[r["echelle"]].add(r["niveau"])
    for territoire, annee, _echelle, niveau, nb, montant, _eligible in rows:
        count, granted = expected.get((territoire, annee, niveau), [0, 0.0])
        assert nb == count and montant == pytest.approx(granted), (territoire, annee, niveau)
    levels = defaultdict(set)
    for territoire, annee, echelle, niveau, *_ in rows:
        levels[(territoire, annee, echelle)].add(niveau)
    for (_territoire, _annee, echelle), found in levels.items():
        assert found == scales[echelle]  # every level of the scale, even with no action
        assert echelle == "2026"
    # the marqueur is VM's instrument: Maubeuge and Béthune-Bruay have no scale, hence no row
    assert {territoire for territoire, *_ in levels} == {"VM"}
    eligible = {(t, a, n): e for t, a, _, n, _, _, e in rows if t == "VM" and a == 2027}
    assert eligible == {
        ("VM", 2027, "0"): False,
        ("VM", 2027, "0+"): True,
        ("VM", 2027, "1"): True,
        ("VM", 2027, "2"): True,
    }


# -- publication SCDL --------------------------------------------------------------------------


def test_subventions_scdl_are_the_publishable_granted_lines(con, demo_build):
    """Every granted line of a financeur with an identified attributor and a porteur known to be
    a legal person (a valid SIRET, or a porteur type that is not a natural person) is published
    once, with its amount; nothing else is."""
    published_financeurs = {
        r["financeur"]
        for r in ref("ref_financeurs.csv")
        if r["nom_attribuant"] or r["nature"] == "EPCI"
    }
    expected: dict[tuple, float] = defaultdict(float)
    for line in raw_lines(demo_build / "raw"):
        key = (line["territoire"], line["annee"], line["dossier"])
        legal_person = line["siret_valide"] or line.get("porteur_type") in {
            "Association",
            "Bailleur social",
            "Établissement public",
            "Conseil citoyen",
        }
        if line["financeur"] in published_financeurs and legal_person:
            expected[(*key, line["financeur"])] += line["accorde"] or 0
    expected = {k: v for k, v in expected.items() if v > 0}
    got = {
        (t, a, d, f): m
        for t, a, d, f, m in con.execute(
            "select territoire, annee, referenceDecision, financeur, montant "
            "from marts.subventions_scdl"
        ).fetchall()
    }
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_dates_of_bilans_come_from_the_files(con, demo_build):
    """CAMVS and CABBALR give the date a bilan was handed in in the bilan files only."""
    raw = demo_build / "raw"
    expected: dict[tuple, date] = {}
    for year in YEARS["CAMVS"]:
        for row in _xlsx_lines(
            raw / "bilans" / f"CAMVS_bilans_{year}_DEMO_FICTIF.xlsx", "Code dossier"
        ):
            when = row["Date de dépôt du bilan"]
            when = when.date() if isinstance(when, datetime) else when
            key = ("CAMVS", year, row["Code dossier"])
            expected[key] = min(expected.get(key, when), when)
    got = {
        (t, a, d): b
        for t, a, d, b in con.execute(
            "select territoire, annee, dossier, date_bilan from intermediate.int_suivi__actions "
            "where territoire = 'CAMVS' and date_bilan is not null"
        ).fetchall()
    }
    assert got == expected
