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
    rows = con.execute(
        "select coalesce(dossier, cast(annee as varchar)) from marts.controles_programmation "
        "where regle_cle = ? and annee = ? and resultat = 'infraction'",
        [key, year],
    ).fetchall()
    return {r[0] for r in rows}


def test_every_rule_of_the_demo_years_has_failures(con):
    """Each controllable rule in force in a demo year is broken by the demo, and is listed."""
    checked = set()
    for rule in rules():
        if rule["controle"] == "aucun" or not demo_years(rule):
            continue
        count = con.execute(
            "select count(*) from marts.controles_programmation where regle_cle = ?",
            [rule_key(rule)],
        ).fetchone()[0]
        assert count > 0, rule_key(rule)
        checked.add(rule["controle"])
    # every kind of control in force in a demo year appears in the mart (the Béthune-Bruay
    # report deadline concerns 2021 programmations, which the demo does not have)
    kinds = {r["controle"] for r in rules() if demo_years(r)} - {"aucun"}
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
        for year in demo_years(rule):
            acts = actions(raw, rule["territoire"], year)
            expected = set(violations(rule, rule["territoire"], acts, year))
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
            "where resultat = 'non_remis'"
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
