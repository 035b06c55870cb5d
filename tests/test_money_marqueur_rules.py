"""Money to the cent, repeated requests counted, the marqueur égalité as a territory's
instrument, and the funding rules as the seeds write them (issue 15).

The first tests need no build (reader, territory folders, build summary, report helpers); the
last ones read the demo build of the session and recompute a sample from the raw demo files.
"""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.lib.raw_schemas import RAW_TABLES, replace_source_rows, replace_table
from pipelines.report.render import _ineligible
from pipelines.settings import EXAMPLES_TERRITORIES_DIR
from pipelines.sources.programmations.rules import parse_programmations
from pipelines.sources.territoires.reader import verify
from pipelines.warehouse.publication import summary

MONEY = "DECIMAL(18,2)"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- money ---------------------------------------------------------------------------------------


def test_raw_amounts_are_decimals_exact_to_the_cent(tmp_path) -> None:
    amounts = {c: k for c, k in RAW_TABLES["programmations"]}
    for column in ("montant_demande", "montant_accorde", "cout_total", "couts_indirects", "achats"):
        assert amounts[column] == MONEY
    path = write(
        tmp_path / "VM_programmation_2027.csv",
        "N° dossier;Intitulé de l'action;Financeur;Montant demandé;Montant accordé;Coût total\n"
        + "".join(f"2027-{k:05d};A{k};Etat;0,10 €;0,10;1 000,30\n" for k in range(1, 11))
        + "2027-00011;B;Etat;496 748,99;496 748,99;496 748,99\n",
    )
    result = parse_programmations([path])
    con = duckdb.connect()
    replace_table(con, "programmations", result.rows)
    total, kind, cost = con.execute(
        "select sum(montant_accorde), typeof(montant_accorde), sum(cout_total) "
        "from raw.programmations group by all"
    ).fetchone()
    # ten times 0,10 € is exactly 1 €: with DOUBLE it would not be
    assert kind == MONEY and total == Decimal("496749.99")
    assert cost == Decimal("10003.00") + Decimal("496748.99")


# -- repeated requests ---------------------------------------------------------------------------


def test_conflicting_requests_keep_the_last_line_and_say_where(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2026.csv",
        "N° dossier;Intitulé de l'action;Financeur;Montant demandé;Montant accordé\n"
        "2026-00019;A;Région;5250;5250\n"
        "2026-00020;B;Etat;3000;3000\n"
        "2026-00019;A;Région;1000;1000\n",
    )
    result = parse_programmations([path])
    kept = result.rows[result.rows.dossier == "2026-00019"]
    assert list(kept.montant_accorde) == [1000]  # the last line, never 6 250
    [conflict] = result.anomalies[result.anomalies.type == "demande_en_conflit"].itertuples()
    assert (conflict.ligne, conflict.territoire, conflict.annee) == (2, "VM", 2026)
    assert "5 250,00 €" in conflict.valeur_brute and "1 000,00 €" in conflict.valeur_brute


def test_build_summary_counts_the_conflicts(tmp_path) -> None:
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    log = [
        {
            "fichier": "VM_programmation_2026.csv",
            "lignes_lues": 3,
            "lignes_chargees": 3,
            "lignes_rejetees": 0,
        }
    ]
    replace_source_rows(con, "ingestion_log", "programmations", pd.DataFrame(log))
    anomalies = [
        {"type": "demande_en_conflit", "fichier": "f.csv", "ligne": n, "territoire": "VM"}
        for n in (2, 7)
    ] + [{"type": "doublon_dossier", "fichier": "f.csv", "ligne": 9}]
    replace_source_rows(con, "anomalies", "programmations", pd.DataFrame(anomalies))
    con.close()
    text = summary(warehouse, {})
    [line] = [line for line in text.splitlines() if line.startswith("Demandes en conflit")]
    assert ": 2 (détail dans raw.anomalies, type demande_en_conflit)" in line


# -- marqueur scales in the territory folders ----------------------------------------------------


def test_vm_example_declares_its_two_scales_with_their_periods() -> None:
    territories, errors = verify(EXAMPLES_TERRITORIES_DIR)
    assert errors == []
    scales = {
        t.code: t.tables.get("territoires_marqueur_egalite")
        for t in territories
        if "territoires_marqueur_egalite" in t.tables
    }
    assert set(scales) == {"VM"}  # Maubeuge and Béthune-Bruay have no marqueur
    periods = {
        (r.echelle, r.annee_debut, r.annee_fin, r.niveau, r.rang) for r in scales["VM"].itertuples()
    }
    assert ("2019", "2019", "2025", "2", "3") in periods
    assert ("2026", "2026", None, "0+", "2") in periods


def test_overlapping_or_inconsistent_scales_are_refused(tmp_path) -> None:
    folder = tmp_path / "territoires" / "VM"
    shutil.copytree(EXAMPLES_TERRITORIES_DIR / "VM", folder)
    write(
        folder / "marqueur_egalite.csv",
        "echelle,annee_debut,annee_fin,niveau,rang\n"
        "2019,2019,,0,1\n"
        "2019,2019,,1,2\n"
        "2026,2026,,0,1\n"
        "2026,2027,,1,1\n",
    )
    _, errors = verify(tmp_path)
    text = "\n".join(errors)
    assert "échelle « 2026 »: plusieurs périodes" in text
    write(
        folder / "marqueur_egalite.csv",
        "echelle,annee_debut,annee_fin,niveau,rang\n2019,2019,,0,1\n2026,2026,,0,1\n",
    )
    _, errors = verify(tmp_path)
    assert any("toutes deux en vigueur en 2026" in e for e in errors)


def test_no_minimum_means_nothing_said_of_eligibility() -> None:
    assert _ineligible(False)
    assert not _ineligible(True)
    assert not _ineligible(None)
    assert not _ineligible(float("nan"))


# -- on the demo build ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def test_money_columns_of_the_suivi_marts_are_decimals(con) -> None:
    rows = con.execute(
        """
        select table_name, column_name, data_type from information_schema.columns
        where table_schema = 'marts' and column_name like 'montant%'
        """
    ).fetchall()
    assert len(rows) > 20
    assert {(t, c) for t, c, kind in rows if kind != MONEY} == set()


def test_synthese_counts_conflicts_and_the_totals_are_the_raw_lines(con, demo_build) -> None:
    conflicts = dict(
        con.execute(
            "select territoire || ' ' || annee, nb_demandes_en_conflit "
            "from marts.synthese_programmation where nb_demandes_en_conflit > 0"
        ).fetchall()
    )
    raw = con.execute(
        "select territoire || ' ' || annee, count(*) from raw.anomalies "
        "where type = 'demande_en_conflit' group by 1"
    ).fetchall()
    assert conflicts == dict(raw) and sum(conflicts.values()) >= 1
    # the granted total of each year is the exact sum of the loaded lines, to the cent
    for territoire, annee, total in con.execute(
        "select territoire, annee, montant_accorde from marts.synthese_programmation"
    ).fetchall():
        lines = con.execute(
            "select coalesce(sum(montant_accorde), 0) from raw.programmations "
            "where upper(territoire) = ? and annee = ?",
            [territoire, annee],
        ).fetchone()[0]
        assert total == lines and total == total.quantize(Decimal("0.01"))


def test_marqueur_only_where_the_territory_has_a_scale(con) -> None:
    territories = {
        r[0] for r in con.execute("select territoire from marts.egalite_marqueur").fetchall()
    }
    assert territories == {"VM"}
    levels = con.execute(
        "select count(*) from intermediate.int_suivi__actions "
        "where territoire <> 'VM' and (echelle_marqueur is not null or marqueur_rang is not null)"
    ).fetchone()[0]
    assert levels == 0
    controls = con.execute(
        "select distinct territoire from intermediate.int_suivi__controles_actions "
        "where controle = 'niveau_marqueur'"
    ).fetchall()
    assert controls == [("VM",)]
    # VM 2026 has no minimum: eligibility is not said
    assert (
        con.execute(
            "select count(*) from marts.egalite_marqueur where annee = 2026 "
            "and (niveau_minimum is not null or niveau_eligible is not null)"
        ).fetchone()[0]
        == 0
    )


def test_reports_call_no_level_ineligible_without_a_minimum(demo_build) -> None:
    reports = {
        p.name: p.read_text(encoding="utf-8")
        for p in (demo_build / "marts" / "rapport").glob("*.html")
    }
    for name, html in reports.items():
        if not name.startswith("rapport_VM"):
            assert "non éligible" not in html and 'id="marqueur-sans-echelle"' in html, name
        assert 'id="controles-conflits"' in html, name
    # Béthune-Bruay's rules are those of the 2022 call for projects: none for 2023
    assert 'id="controles-aucune-regle"' in reports["rapport_CABBALR_2023.html"]


def test_rules_as_the_seeds_write_them(con, demo_build) -> None:
    regles = {
        (r["regle"], r["condition_statut"])
        for r in csv.DictReader(
            (EXAMPLES_TERRITORIES_DIR / "VM" / "regles_financement.csv").open(encoding="utf-8")
        )
    }
    # the bilan intermédiaire is owed by every reconduction, « à réorienter » ones included
    assert ("bilan_intermediaire_date_limite", "reconduite_reorientation_droit_commun") in regles
    judged = con.execute(
        """
        select count(*) from intermediate.int_suivi__controles_actions as c
        inner join intermediate.int_suivi__actions as a
            on c.territoire = a.territoire and c.annee = a.annee and c.dossier = a.dossier
        where c.regle = 'bilan_intermediaire_date_limite'
            and a.statut_code = 'reconduite_reorientation_droit_commun'
        """
    ).fetchone()[0]
    assert judged > 0
    # the 30/11/2021 deadline concerns 2021 subsidies carried into 2022, not 2022 actions
    assert (
        con.execute(
            "select count(*) from intermediate.int_suivi__controles_actions "
            "where regle = 'report_demande_date_limite'"
        ).fetchone()[0]
        == 0
    )
    # the Région caps are on the subsidy granted: each judged value is the granted amount
    for dossier, annee, observed in con.execute(
        "select dossier, annee, valeur_nombre from intermediate.int_suivi__controles_actions "
        "where regle like 'region_%' and controle = 'montant_accorde'"
    ).fetchall():
        granted = con.execute(
            "select montant_accorde from intermediate.int_suivi__actions_financeurs "
            "where territoire = 'CABBALR' and annee = ? and dossier = ? and financeur = 'REGION'",
            [annee, dossier],
        ).fetchone()[0]
        assert Decimal(str(observed)) == granted
    # Maubeuge's « 3 actions en suivi renforcé » have no periodicity: counted over the period
    rows = con.execute(
        "select annee, valeur_nombre, resultat from intermediate.int_suivi__controles_territoire "
        "where territoire = 'CAMVS' and regle = 'actions_suivi_renforce' order by annee"
    ).fetchall()
    assert [r[0] for r in rows] == [2025, 2026]
    assert rows[1][1] >= rows[0][1]  # a running count, never reset to a yearly one
    for _annee, count, resultat in rows:
        expected = "infraction" if count > 3 else ("conforme" if count == 3 else "a_venir")
        assert resultat == expected
