"""Funding-rule controls on the demo build, and rules as data.

The failures listed by ``marts.controles_programmation`` are compared, rule by rule, with the
violations recomputed from the raw demo files by the independent checker of
``tests/test_synthetic_demo.py`` (csv module and openpyxl, parameters read from
``ref_regles_financement.csv``). Then a threshold is changed and a year added in the rules table
of a copy of the warehouse, and only dbt is re-run: the failures follow, no SQL is touched.
"""

from __future__ import annotations

import re
import shutil
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.sources.territoires.examples import referentiel_rows
from tests.conftest import run_dbt
from tests.test_synthetic_demo import YEARS, actions, deadline, violations

ROOT = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).parent / "dbt"


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def rules() -> list[dict[str, str]]:
    return referentiel_rows("ref_regles_financement.csv")


def rule_key(rule: dict[str, str]) -> str:
    return "|".join(
        (
            rule["territoire"],
            rule["regle"],
            rule["financeur"],
            rule["annee_debut"],
            rule["condition_statut"],
        )
    )


def demo_years(rule: dict[str, str]) -> list[int]:
    start = int(rule["annee_debut"])
    end = int(rule["annee_fin"]) if rule["annee_fin"] else 9999
    return [y for y in YEARS.get(rule["territoire"], ()) if start <= y <= end]


def failures(con, key: str, year: int) -> set[str]:
    # a missing bilan of the previous year is « non remis », a marqueur under the level the
    # year before is « à examiner »: both are what these rules find
    rows = con.execute(
        "select coalesce(dossier, cast(annee as varchar)) from marts.controles_programmation "
        "where regle_cle = ? and annee = ? and (resultat = 'infraction' or controle in "
        "('bilan_annee_precedente', 'marqueur_annee_precedente'))",
        [key, year],
    ).fetchall()
    return {r[0] for r in rows}


def test_every_rule_of_the_demo_years_has_failures(con):
    """Each controllable rule in force in a demo year is broken by the demo, and is listed."""
    checked = set()
    unverifiable = {
        (r[0], r[1])
        for r in con.execute(
            "select regle_cle, annee from marts.regles_non_verifiables "
            "where statut = 'non_verifiable'"
        ).fetchall()
    }
    for rule in rules():
        if rule["controle"] == "aucun" or not demo_years(rule):
            continue
        if all((rule_key(rule), y) in unverifiable for y in demo_years(rule)):
            continue  # reported apart (test_rules_the_data_cannot_check_are_listed)
        count = con.execute(
            "select count(*) from marts.controles_programmation where regle_cle = ?",
            [rule_key(rule)],
        ).fetchone()[0]
        assert count > 0, rule_key(rule)
        checked.add(rule["controle"])
    # every kind of control in force in a demo year appears in the mart (the Béthune-Bruay
    # report deadline concerns 2021 programmations, which the demo does not have)
    kinds = {r["controle"] for r in rules() if demo_years(r)} - {"aucun"}
    # (bilan_annee_precedente of Béthune-Bruay is not verifiable, but VM's is broken)
    assert checked == kinds
    levels = {
        r[0]
        for r in con.execute("select niveau_controle from marts.controles_programmation").fetchall()
    }
    assert levels == {"action", "territoire"}


def test_failures_equal_the_independent_recomputation(con, demo_build):
    raw = demo_build / "raw"
    for rule in rules():
        if rule["controle"] == "aucun":
            continue
        if rule["regle"] == "bilan_2021_renouvellement":
            continue  # no 2021 programmation in the demo: non vérifiable
        for year in demo_years(rule):
            acts = actions(raw, rule["territoire"], year)
            previous = (
                actions(raw, rule["territoire"], year - 1)
                if year - 1 in YEARS[rule["territoire"]]
                else None
            )
            expected = set(violations(rule, rule["territoire"], acts, year, previous))
            if rule["regle"] == "cpo_part_actions_cible":  # the mart has no tolerance
                share = sum(a["cpo"] for a in acts.values()) / len(acts)
                expected = {str(year)} if share < float(rule["valeur"]) else set()
            assert failures(con, rule_key(rule), year) == expected, (rule_key(rule), year)


def test_missing_bilans_after_their_deadline(con, demo_build):
    """A bilan owed (granted subsidy) and still missing once its deadline has passed is listed as
    non remis; before the deadline it is not a failure."""
    raw = demo_build / "raw"
    today = date.today()
    got = {
        (k, d)
        for k, d in con.execute(
            "select regle_cle, dossier from marts.controles_programmation "
            "where resultat = 'non_remis' and controle = 'date_bilan'"
        ).fetchall()
    }
    expected = set()
    for rule in rules():
        if rule["controle"] != "date_bilan":
            continue
        for year in demo_years(rule):
            for dossier, act in actions(raw, rule["territoire"], year).items():
                fin = rule["financeur"] or None
                granted = [v[1] or 0 for code, v in act["fundings"].items() if fin in (None, code)]
                if (
                    sum(granted) > 0
                    and act.get("date_bilan") is None
                    and deadline(rule, year) < today
                ):
                    expected.add((rule_key(rule), dossier))
    assert got == expected


def test_messages_an_instructor_can_act_on(con):
    rows = con.execute(
        "select regle, controle, seuil, valeur_observee, message from marts.controles_programmation"
    ).fetchall()
    assert rows
    for _regle, _controle, _seuil, _valeur, message in rows:
        assert message.endswith(")") and "(" in message, message
        assert "None" not in message and "null" not in message, message
    minimum = [m for r, _, _, _, m in rows if r == "etat_demande_minimum"]
    assert minimum and all(
        re.fullmatch(
            r"Demande État \(BOP 147\) de \d{1,3}( \d{3})* € inférieure au minimum de 5 000 € "
            r"\(note de cadrage AMI 2027\)",
            m,
        )
        for m in minimum
    ), minimum
    shares = [m for r, _, _, _, m in rows if r == "etat_part_max_cout"]
    assert all(
        " % du coût total supérieure au maximum de " in m and "action « " in m for m in shares
    )
    late = [m for _, c, _, _, m in rows if c == "date_bilan"]
    assert all(
        re.search(r"(remis le \d\d/\d\d/\d{4} après|non remis à) la date limite du", m)
        for m in late
    )
    territory = con.execute(
        "select count(*) from marts.controles_programmation "
        "where niveau_controle = 'territoire' and dossier is null and message like '%objectif%'"
    ).fetchone()[0]
    assert territory >= 2  # CPO share (CAMVS 2025), suivi renforcé (CAMVS 2026)


def test_threshold_and_year_are_data(con, demo_build, tmp_path):
    """Lower the VM State minimum request to 4 000 € and extend it to 2026 in the territory's
    rules (raw table of a copy of the warehouse), re-run dbt from the rules on: the failures
    follow the raw amounts."""
    if not DBT.exists():
        pytest.skip("dbt absent de l'environnement")
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_build / "warehouse.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as copy:
        copy.execute(
            "update raw.territoires_regles_financement set valeur = '4000', annee_debut = '2026' "
            "where territoire = 'VM' and regle = 'etat_demande_minimum'"
        )
    # what a user does: edit regles_financement.csv of the territory folder and rebuild
    done = run_dbt(warehouse, tmp_path, "run", "-s", "ref_regles_financement+")
    assert done.returncode == 0, done.stdout[-3000:]
    raw = demo_build / "raw"
    expected = set()
    for year in (2026, 2027):
        for dossier, act in actions(raw, "VM", year).items():
            demande = act["fundings"].get("ETAT_BOP147", (None,))[0]
            if demande is not None and demande < 4000:
                expected.add((year, dossier))
    with duckdb.connect(str(warehouse), read_only=True) as copy:
        got = set(
            copy.execute(
                "select annee, dossier from marts.controles_programmation "
                "where regle = 'etat_demande_minimum'"
            ).fetchall()
        )
        message = copy.execute(
            "select any_value(message) from marts.controles_programmation "
            "where regle = 'etat_demande_minimum'"
        ).fetchone()[0]
    assert got == expected
    assert {y for y, _ in got} <= {2026, 2027}
    assert message is None or "minimum de 4 000 €" in message
    before = failures(con, "VM|etat_demande_minimum|ETAT_BOP147|2027|", 2027)
    assert {d for y, d in got if y == 2027} <= before  # a lower threshold: fewer failures


def test_rules_the_data_cannot_check_are_listed(con, demo_build):
    """Béthune-Bruay's 2021 bilan rule: every 2022 renewal is « non vérifiable » (no 2021
    programmation loaded), none counted as conforming; rules no programmation shows are listed
    for each loaded year; VM's prorogation requests are checkable (the column is in its files)."""
    raw = demo_build / "raw"
    renewals = {
        d for d, a in actions(raw, "CABBALR", 2022).items() if a["statut"] == "renouvellement"
    }
    assert renewals
    rows = con.execute(
        "select dossier, resultat, motif_non_verifiable"
        " from intermediate.int_suivi__controles_actions where regle = 'bilan_2021_renouvellement'"
    ).fetchall()
    assert {r[0] for r in rows} == renewals
    assert {r[1] for r in rows} == {"non_verifiable"}
    assert {r[2] for r in rows} == {"programmation de l'année précédente non chargée"}
    listed = con.execute(
        "select territoire, annee, regle, statut, nb_actions_non_verifiables, citation"
        " from marts.regles_non_verifiables order by all"
    ).fetchall()
    assert ("CABBALR", 2022, "bilan_2021_renouvellement", "non_verifiable", len(renewals)) in {
        r[:5] for r in listed
    }
    aucun = {(r["territoire"], r["regle"]) for r in rules() if r["controle"] == "aucun"}
    for territoire, regle in aucun:
        for rule in rules():
            if (rule["territoire"], rule["regle"]) == (territoire, regle):
                for year in demo_years(rule):
                    assert (territoire, year, regle, "non_controlable") in {r[:4] for r in listed}
    assert not [r for r in listed if r[2].startswith("prorogation_demande")]
    assert all(r[5] for r in listed)
