"""Populations of the 2024 QPV codes, reference values and the report's references, on the demo.

Figures are recomputed from the raw files the demo build read (INSEE DEMO bases, the crosswalk
seed, the territory folders) and from the Etalab référentiel; the report is read as printed.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from pipelines.settings import DBT_PROJECT_DIR, EXAMPLES_TERRITORIES_DIR
from tests.conftest import shared_data

SEEDS = DBT_PROJECT_DIR / "seeds"
TERRITORIES = ("VM", "CAMVS", "CABBALR")
SIREN = {"VM": "245901160", "CAMVS": "200043396", "CABBALR": "200072460"}


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def _number(cell: str) -> float:
    return float(re.sub(r"[\s\u00a0\u202f]", "", cell).replace(",", "."))


def pop_mun(raw: Path) -> dict[str, tuple[int, float]]:
    """POP_MUN of each QPV of the raw DEMO bases, latest millésime: {code: (millésime, value)}."""
    found: dict[str, tuple[int, float]] = {}
    for path in sorted((raw / "insee").glob("DEMO_*.csv")):
        millesime = int(re.search(r"(\d{4})", path.name).group(1))
        text = path.read_bytes().decode("utf-8-sig")
        for row in csv.DictReader(text.splitlines(), delimiter=";"):
            if row.get("POP_MUN", "").strip() and row["CODGEO"].startswith("Q"):
                if millesime >= found.get(row["CODGEO"], (0, 0))[0]:
                    found[row["CODGEO"]] = (millesime, _number(row["POP_MUN"]))
    return found


def crosswalk() -> dict[str, list[str]]:
    """2024 code -> its 2015 predecessors (the demo has no official file: the seed)."""
    links: dict[str, list[str]] = defaultdict(list)
    with (SEEDS / "indicateurs" / "ref_passage_qpv_2015_2024.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            links[row["code_qpv_2024"]].append(row["code_qpv_2015"])
    return links


def perimeter(territory: str, geographie: str) -> list[str]:
    with (EXAMPLES_TERRITORIES_DIR / territory / "perimetre_qpv.csv").open(encoding="utf-8") as fh:
        return [r["code_qpv"] for r in csv.DictReader(fh) if r["geographie"] == geographie]


def test_2024_populations_carried_through_the_crosswalk(con, demo_build):
    raw = pop_mun(demo_build / "raw")
    links = crosswalk()
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select code_qpv, population, millesime_population, methode_population, "
            "densite_hab_km2, surface_km2 from marts.dim_qpv where geographie = '2024' "
            "and territoire is not null"
        ).fetchall()
    }
    assert len(rows) == 42
    for code, (population, millesime, methode, densite, surface) in rows.items():
        before = links.get(code, [])
        if not before:  # entered the geography in 2024: no source without a 2024 base
            assert population is None and methode is None, code
            continue
        assert population == sum(raw[c][1] for c in before), code
        assert millesime == raw[before[0]][0], code
        assert methode == ("passage_fusion" if len(before) > 1 else "passage_un_pour_un"), code
        assert densite == pytest.approx(population / surface), code
    assert rows["QN05922M"][0] == raw["QP059022"][1] + raw["QP059056"][1]  # Brunehaut merged
    assert rows["QN05922M"][2] == "passage_fusion"
    entered = {c for c in rows if not links.get(c)}
    assert entered == {"QN05992N", "QN05919M", "QN05993N"}
    # 2015 codes: the published value
    published = con.execute(
        "select code_qpv, population, methode_population from marts.dim_qpv "
        "where geographie = '2015' and territoire is not null"
    ).fetchall()
    assert published and all(p == raw[c][1] and m == "publiee" for c, p, m in published)


def test_euros_per_inhabitant_known_for_every_qpv_with_a_population(con, demo_build):
    raw = pop_mun(demo_build / "raw")
    links = crosswalk()
    rows = con.execute(
        "select territoire, annee, code_qpv, montant_accorde, population, methode_population, "
        "euros_par_habitant from marts.effort_financier_qpv where code_qpv <> 'SANS_QPV'"
    ).fetchall()
    assert {r[0] for r in rows} == set(TERRITORIES)
    for territoire, annee, code, montant, population, methode, par_habitant in rows:
        if code.startswith("QP"):
            want, want_methode = raw[code][1], "publiee"
        elif links.get(code):
            want = sum(raw[c][1] for c in links[code])
            want_methode = "passage_fusion" if len(links[code]) > 1 else "passage_un_pour_un"
        else:
            assert population is None and par_habitant is None, (territoire, annee, code)
            continue
        assert (population, methode) == (want, want_methode), (territoire, annee, code)
        assert float(par_habitant) == pytest.approx(round(float(montant) / want, 2), abs=0.011)
    known = [r for r in rows if r[0] in ("VM", "CAMVS") and r[6] is not None]
    # 2 years x 1 entered QPV (VM) + 2 years x 2 entered QPV (CAMVS) without a population
    assert len(known) == len([r for r in rows if r[0] in ("VM", "CAMVS")]) - 2 - 4


def test_valenciennes_2015_perimeter_is_fourteen_qpv(con, demo_build):
    codes = perimeter("VM", "2015")
    assert len(codes) == 14 and "QP059056" not in codes
    raw = pop_mun(demo_build / "raw")
    assert sum(raw[c][1] for c in codes) == 34_078
    total = con.execute(
        "select valeur, nb_qpv from marts.agregats_qpv where niveau = 'territoire_contrat' "
        "and code_territoire = 'VM' and indicateur = 'pop_municipale' and millesime = 2022"
    ).fetchone()
    assert total == (34_078, 14)


def test_every_reference_has_a_level_a_millesime_and_a_source(con):
    rows = con.execute(
        "select territoire_type, territoire_code, libelle_territoire, millesime, "
        "millesime_libelle, nature, source, document, siren_document "
        "from marts.indicateurs_references"
    ).fetchall()
    assert rows
    for level, _code, name, millesime, label, nature, source, document, siren in rows:
        assert level and name and label and source, (level, name)
        assert not re.search(r"\.(txt|csv|xlsx)\b", source), source  # no internal file name
        if millesime is not None:
            assert label == str(millesime)
        if nature == "citee":
            assert document and siren and source.startswith(document)
            assert millesime is None and label.startswith("non indiqué (document de ")
        else:
            assert document is None
    # the two France values of the seeds stay apart, each with its own document
    france = {
        r[0]: r[1]
        for r in con.execute(
            "select siren_document, valeur from marts.indicateurs_references "
            "where territoire_type = 'france' and indicateur = 'taux_emploi'"
        ).fetchall()
    }
    assert france == {SIREN["VM"]: 64.3, SIREN["CAMVS"]: 65.0}


def test_epci_populations_from_the_etalab_referentiel(con):
    got = dict(
        con.execute(
            "select territoire_code, valeur from marts.indicateurs_references "
            "where territoire_type = 'epci' and indicateur = 'pop_municipale' and millesime = 2023"
        ).fetchall()
    )
    assert len(got) == 1255
    etalab = shared_data("etalab")  # the package's own file, when present
    epci = {e["code"]: e for e in json.loads((etalab / "epci.json").read_text(encoding="utf-8"))}
    for siren in SIREN.values():
        assert got[siren] == epci[siren]["populationMunicipale"], siren
    communes = dict(
        con.execute(
            "select territoire_code, valeur from marts.indicateurs_references "
            "where territoire_type = 'commune' and territoire_code in ('59606', '59392', '62119')"
        ).fetchall()
    )
    members = {m["code"]: m for e in epci.values() for m in e["membres"]}
    assert communes == {c: members[c]["populationMunicipale"] for c in communes} and communes


def test_gaps_use_only_the_territorys_own_quoted_values(con):
    rows = con.execute(
        "select q.territoire, t.taux_emploi, t.taux_emploi_france, t.nature_reference_france, "
        "t.comparabilite_ecart_france, t.taux_emploi_epci, t.ecart_epci_points "
        "from marts.taux_emploi_quartier as t join marts.dim_qpv as q using (code_qpv) "
        "where q.territoire is not null"
    ).fetchall()
    by_territory = defaultdict(set)
    for territoire, taux, france, nature, comparabilite, epci, ecart in rows:
        by_territory[territoire].add((france, nature, epci))
        if taux is not None and epci is not None:
            assert ecart == round(taux - epci, 1)
        if france is not None:
            assert comparabilite == "millesime_reference_non_indique"
    assert by_territory["VM"] == {(64.3, "citee", 53.8)}
    assert by_territory["CAMVS"] == {(65.0, "citee", 51.0)}
    # Béthune-Bruay's documents quote no rate: never one from another territory's document
    assert by_territory["CABBALR"] == {(None, None, None)}


def _reference_rows(page: str) -> list[tuple[str, list[str]]]:
    start = page.index('id="table-references"')
    table = page[start : page.index("</table>", start)]
    return [
        (key, [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
        for key, row in re.findall(r'<tr data-cle="([^"]+)">(.*?)</tr>', table, re.S)
        for cells in [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    ]


@pytest.mark.parametrize("territory", TERRITORIES)
def test_report_prints_one_reference_per_level(demo_build, territory):
    (page_path,) = (demo_build / "marts" / "rapport").glob(f"rapport_{territory}_*.html")
    page = page_path.read_text(encoding="utf-8")
    rows = _reference_rows(page)
    keys = [k for k, _ in rows]
    assert rows and len(keys) == len(set(keys)), keys
    for _key, (name, _indicator, millesime, _value, nature, source) in rows:
        assert name and millesime and nature in {"publiée", "valeur citée"} and source
        assert not re.search(r"\d{3}_[0-9a-f]{16}|\.txt\b", source), source
    printed = {k: cells for k, cells in rows}
    france = printed.get("france|taux_emploi")
    if territory == "CABBALR":
        assert france is None  # no value quoted by its own documents
    else:
        assert france[3] == {"VM": "64,3\xa0%", "CAMVS": "65,0\xa0%"}[territory]
        assert france[4] == "valeur citée" and france[2].startswith("non indiqué")
    assert printed["epci|pop_municipale"][2] == "2023"
