"""Excel-FR outputs (pipelines/publication/tableurs.py): CSV with ``;``, BOM and decimal comma
for every mart, one workbook per territory and year, formulas never evaluated, statistical
secrecy as in the Parquet exports."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import duckdb
import pandas as pd
import pytest
from openpyxl import load_workbook

from pipelines.publication.libelles import column_label, sheet_title
from pipelines.publication.tableurs import (
    MONEY_FORMAT,
    PERCENT_FORMAT,
    PERCENT_POINTS_FORMAT,
    export_spreadsheets,
)
from tests.conftest import run_cli

HOSTILE = '=HYPERLINK("http://x","y")'


@pytest.fixture
def small(tmp_path):
    """A warehouse of two marts, two territories, one hostile porteur."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts; create schema referentiels")
    con.execute(
        "create table referentiels.ref_territoires as select * from (values "
        "('VM', 'Valenciennes Métropole'), ('CAMVS', 'Maubeuge-Val de Sambre')) t(territoire, nom)"
    )
    con.execute(
        "create table referentiels.ref_perimetre_qpv as select * from (values "
        "('VM', 'QN05920M'), ('CAMVS', 'QN05912M')) t(territoire, code_qpv)"
    )
    con.execute(
        "create table marts.porteurs_programmation as select * from (values "
        f"('VM', 2027, '{HOSTILE.replace(chr(39), chr(39) * 2)}', 1200.5::decimal(18,2), "
        "0.25, true, date '2027-03-01'), "
        "('VM', 2026, 'Asso B', 10::decimal(18,2), 0.5, false, null), "
        "('CAMVS', 2026, '-Asso moins', 99.99::decimal(18,2), 1.0, null, null)) "
        "t(territoire, annee, porteur_nom, montant_accorde, part_montant_accorde, cpo, "
        "date_decision)"
    )
    con.execute(
        "create table marts.taux_emploi_quartier as select * from (values "
        "('QN05920M', 2022, 44.6), ('QN05912M', 2022, 51.0)) t(code_qpv, millesime, taux_emploi)"
    )
    yield con
    con.close()


def test_csv_for_excel_fr(small, tmp_path):
    result = export_spreadsheets(small, tmp_path / "out")
    assert sorted(p.name for p in result.csv_files) == [
        "porteurs_programmation.csv",
        "taux_emploi_quartier.csv",
    ]
    raw = (tmp_path / "out" / "csv" / "porteurs_programmation.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel-FR reads UTF-8
    rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8")), delimiter=";"))
    assert rows[0] == [
        "Territoire (code)",
        "Année",
        "Porteur nom",
        "Montant accordé",
        "Part montant accordé",
        "CPO",
        "Date décision",
    ]
    by_porteur = {r[2]: r for r in rows[1:]}
    # a text a spreadsheet would evaluate is prefixed with ', numbers are numbers
    assert by_porteur["'" + HOSTILE] == ["VM", "2027", "'" + HOSTILE, "1200,50", "0,25", "oui",
                                        "01/03/2027"]  # fmt: skip
    assert by_porteur["'-Asso moins"][3] == "99,99"
    assert by_porteur["Asso B"][5] == "non"


def test_csv_first_header_quoted_keeps_the_bom_first(tmp_path):
    """The BOM rides on the first column's name (one pass); a first name the CSV quotes puts
    the quote before it, so that file is written then copied behind the BOM."""
    from pipelines.publication.tableurs import column_label, write_csv_fr

    con = duckdb.connect()
    con.execute("""create table t as select 'a;b' as "code;bizarre", 1.5 as montant""")
    path = write_csv_fr(con, "t", tmp_path / "t.csv")
    raw = path.read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf"')
    rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8")), delimiter=";"))
    assert rows == [[column_label("code;bizarre"), column_label("montant")], ["a;b", "1,5"]]
    assert not (tmp_path / "t.csv.tmp").exists()
    con.execute("create table u as select 'x' as territoire")
    raw = write_csv_fr(con, "u", tmp_path / "u.csv").read_bytes()
    assert raw == b"\xef\xbb\xbf" + f"{column_label('territoire')}\nx\n".encode()


def test_one_workbook_per_territory_and_year(small, tmp_path):
    result = export_spreadsheets(small, tmp_path / "out")
    assert sorted(p.name for p in result.workbooks) == [
        "CAMVS_2026.xlsx",
        "VM_2026.xlsx",
        "VM_2027.xlsx",
    ]
    book = load_workbook(tmp_path / "out" / "tableurs" / "VM_2027.xlsx")
    assert book.sheetnames == ["Lisez-moi", "Colonnes", "Porteurs", "Taux d'emploi par quartier"]
    sheet = book["Porteurs"]
    assert [c.value for c in sheet[1]] == [
        column_label(n)
        for n in ("territoire", "annee", "porteur_nom", "montant_accorde", "part_montant_accorde",
                  "cpo", "date_decision")
    ]  # fmt: skip
    assert sheet.max_row == 2  # VM 2027 only
    porteur = sheet["C2"]
    assert porteur.value == "'" + HOSTILE and porteur.data_type == "s"  # text, not a formula
    assert sheet["D2"].value == pytest.approx(1200.5) and sheet["D2"].number_format == MONEY_FORMAT
    assert sheet["E2"].number_format == PERCENT_FORMAT  # a share in [0, 1]
    assert sheet["F2"].value == "oui"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:G2"
    emploi = book["Taux d'emploi par quartier"]  # by the territory's QPV, every millésime
    assert [c.value for c in emploi[2]] == ["QN05920M", 2022, 44.6]
    assert emploi["C2"].number_format == PERCENT_POINTS_FORMAT  # a rate in percent
    readme = [r[0] for r in book["Lisez-moi"].iter_rows(values_only=True) if r[0]]
    assert "Territoire : Valenciennes Métropole (code VM)" in readme
    assert any(line.startswith("Secret statistique") for line in readme)
    columns = {r[2]: r for r in book["Colonnes"].iter_rows(values_only=True)}
    row = columns["porteurs_programmation.montant_accorde"]
    assert row[:2] == ("Porteurs", "Montant accordé") and row[3]  # described in the marts' YAML


def test_a_build_leaves_the_workbooks_of_many_territories_to_the_command(small, tmp_path):
    result = export_spreadsheets(small, tmp_path / "out", latest_only=True, max_territories=1)
    assert result.workbooks == [] and "2 territoires (plus de 1)" in result.skipped
    assert len(result.csv_files) == 2  # the CSV files are always written
    latest = export_spreadsheets(small, tmp_path / "o2", latest_only=True, csv=False)
    assert sorted(p.name for p in latest.workbooks) == ["CAMVS_2026.xlsx", "VM_2027.xlsx"]


def test_cli_export_excel(small, tmp_path):
    small.close()
    out = tmp_path / "xl"
    done = run_cli(
        "export", "excel", "--warehouse", str(tmp_path / "w.duckdb"), "--dossier", str(out),
        "--territoire", "CAMVS",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "tableurs").iterdir()) == ["CAMVS_2026.xlsx"]
    missing = run_cli(
        "export", "excel", "--warehouse", str(tmp_path / "w.duckdb"), "--dossier", str(out),
        "--territoire", "XX",
    )  # fmt: skip
    assert missing.returncode == 1 and "XX" in missing.stderr


def test_demo_outputs_every_mart_and_the_secrecy_of_the_parquet(demo_build):
    """In the demo build's marts folder: a CSV per mart, a workbook per territory for its latest
    programmation year, and the masked counts of beneficiaires_genre identical in the Parquet
    export, the CSV and the workbooks."""
    marts = demo_build / "marts"
    parquets = {p.stem for p in marts.glob("*.parquet")}
    assert {p.stem for p in (marts / "csv").glob("*.csv")} == parquets
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    years = con.execute(
        "select distinct territoire, annee from marts.depenses_orientation order by 1, 2"
    ).fetchall()
    total = {
        (t, y): v
        for t, y, v in con.execute(
            "select territoire, annee, sum(montant_accorde) from marts.depenses_orientation "
            "group by 1, 2"
        ).fetchall()
    }
    con.close()
    books = {p.name for p in (marts / "tableurs").glob("*.xlsx")}
    latest = {t: y for t, y in years}  # a build writes the latest year of each territory
    assert books == {f"{t}_{y}.xlsx" for t, y in latest.items()}
    total = {k: v for k, v in total.items() if latest[k[0]] == k[1]}
    published = pd.read_parquet(marts / "beneficiaires_genre.parquet")
    masked = published[published["secret_statistique"]]
    assert len(masked) > 0
    text = (marts / "csv" / "beneficiaires_genre.csv").read_bytes()[3:].decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert sum(r[column_label("secret_statistique")] == "oui" for r in rows) == len(masked)
    women = column_label("femmes")
    assert sorted(r[women] for r in rows if r[women] == "") == [""] * int(
        published["femmes"].isna().sum()
    )
    for (territory, year), amount in total.items():
        book = load_workbook(marts / "tableurs" / f"{territory}_{year}.xlsx", read_only=True)
        sheet = book[sheet_title("depenses_orientation")]
        header = next(sheet.iter_rows(values_only=True))
        j = header.index(column_label("montant_accorde"))
        cells = [r[j] for r in sheet.iter_rows(min_row=2, values_only=True)]
        assert Decimal(str(round(sum(cells), 2))) == amount
        sheet = book[sheet_title("beneficiaires_genre")]
        header = next(sheet.iter_rows(values_only=True))
        j = header.index(column_label("femmes"))
        k = header.index(column_label("secret_statistique"))
        values = [(r[j], r[k]) for r in sheet.iter_rows(min_row=2, values_only=True)]
        assert all(v is None or v == 0 or v >= 5 for v, _ in values)


def test_masked_marts_keep_their_types_in_every_export(demo_build):
    """Masking goes through pandas; the published relation casts back to the mart's types:
    amounts DECIMAL(18,2) (never 496748.99999999994), counts integers, in the Parquet export."""
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    mart = {r[0]: r[1] for r in con.execute("describe marts.croisement_qpv_annee").fetchall()}
    total = con.execute("select sum(montant_accorde) from marts.croisement_qpv_annee").fetchone()
    con.close()
    assert mart["montant_accorde"] == "DECIMAL(18,2)"
    marts = demo_build / "marts"
    parquet = duckdb.connect()
    types = {
        r[0]: r[1]
        for r in parquet.execute(
            "describe select * from read_parquet(?)", [str(marts / "croisement_qpv_annee.parquet")]
        ).fetchall()
    }
    assert types["montant_accorde"] == "DECIMAL(18,2)"
    assert types["secret_statistique"] == "BOOLEAN"
    assert (
        parquet.execute(
            "select sum(montant_accorde) from read_parquet(?)",
            [str(marts / "croisement_qpv_annee.parquet")],
        ).fetchone()
        == total
    )
    counts = {
        r[0]: r[1]
        for r in parquet.execute(
            "describe select * from read_parquet(?)", [str(marts / "beneficiaires_genre.parquet")]
        ).fetchall()
    }
    assert counts["femmes"] == counts["total"] == "BIGINT"
