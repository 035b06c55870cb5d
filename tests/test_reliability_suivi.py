"""Broken programmations and bilans (issue 16): each case says what was loaded, rejected or
flagged, with the file, line and column; none leaves a wrong figure without a word."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from pipelines.sources.bilans import parse_bilans
from pipelines.sources.programmations import SuiviError, parse_programmations

HEADER = "N° dossier;Exercice;Intitulé de l'action;Quartier(s) concerné(s);Financeur;"
HEADER += "Montant demandé;Montant accordé;Date de fin de l'action"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def anomalies_of(result, kind: str):
    return result.anomalies[result.anomalies.type == kind]


def test_two_row_header_with_vertically_merged_identifiers_xlsx(tmp_path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["N° dossier", "Intitulé", "État", None, "Région", None])
    sheet.append([None, None, "Demandé", "Accordé", "Demandé", "Accordé"])
    for cells in ("A1:A2", "B1:B2", "C1:D1", "E1:F1"):
        sheet.merge_cells(cells)
    sheet.append(["D1", "Action", 1000, 800, 300, 250])
    path = tmp_path / "XYZ_programmation_2026.xlsx"
    workbook.save(path)
    result = parse_programmations([path])
    rows = result.rows.sort_values("financeur_libelle")
    assert list(rows.financeur_libelle) == ["Région", "État"]
    assert list(rows.montant_accorde) == [250.0, 800.0]
    assert list(rows.dossier) == ["D1", "D1"] and set(rows.source_ligne) == {3}
    assert set(rows.autres_colonnes) == {"{}"} and result.rejects.empty


def test_two_row_header_csv_single_financeur(tmp_path) -> None:
    path = write(
        tmp_path / "XYZ_programmation_2026.csv",
        "N° dossier;Intitulé;Ville de X;\n;;Demandé;Accordé\nD1;Action;1 000;900\n",
    )
    rows = parse_programmations([path]).rows
    assert list(rows.financeur_libelle) == ["Ville de X"]
    assert (rows.iloc[0].montant_demande, rows.iloc[0].montant_accorde) == (1000.0, 900.0)


def test_no_amount_column_is_an_error_naming_the_file(tmp_path) -> None:
    path = write(
        tmp_path / "XYZ_programmation_2026.csv",
        "N° dossier;Intitulé;Commentaire\nD1;Action;rien\n",
    )
    with pytest.raises(SuiviError, match="XYZ_programmation_2026.csv: aucune colonne de montant"):
        parse_programmations([path])


def test_same_header_twice_is_refused_with_both_positions(tmp_path) -> None:
    path = write(
        tmp_path / "XYZ_programmation_2026.csv",
        "N° dossier;Intitulé;Financeur;Montant demandé;Montant demandé\nD1;A;Etat;100;200\n",
    )
    with pytest.raises(SuiviError) as err:
        parse_programmations([path])
    message = str(err.value)
    assert "XYZ_programmation_2026.csv" in message and "Montant demandé" in message
    assert "colonnes 4 (D) et 5 (E)" in message
    wide = write(
        tmp_path / "XYZ_large_2026.csv",
        "N° dossier;Intitulé;Etat - demandé;Etat - demandé\nD1;A;100;200\n",
    )
    with pytest.raises(SuiviError, match="colonnes 3 \\(C\\) et 4 \\(D\\)"):
        parse_programmations([wide])


def test_malformed_qpv_code_is_flagged_with_file_line_column(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2026.csv",
        f"{HEADER}\nD1;2026;A;QN0592M;Etat;100;100;\nD2;2026;B;QN05920M;Etat;100;100;\n",
    )
    result = parse_programmations([path])
    assert len(result.rows) == 2 and result.rejects.empty  # lines kept, flagged
    [flag] = anomalies_of(result, "qpv_mal_forme").to_dict("records")
    assert (flag["ligne"], flag["colonne"], flag["valeur_brute"]) == (
        2,
        "Quartier(s) concerné(s)",
        "QN0592M",
    )
    assert flag["message"].startswith(
        "VM_programmation_2026.csv, ligne 2, colonne « Quartier(s) concerné(s) »: code QPV mal "
        "formé « QN0592M »"
    )


def test_qpv_of_another_territory_or_geography_is_flagged(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2026.csv",
        f"{HEADER}\nD1;2026;A;QN05920M;Etat;100;100;\nD2;2026;B;QN05999M;Etat;1;1;\n"
        "D3;2026;C;QP059020;Etat;1;1;\n",
    )
    perimetre = {"VM": {"QN05920M", "QP059020"}, "CAMVS": {"QN05999M"}}
    result = parse_programmations([path], perimetre=perimetre)
    other = anomalies_of(result, "qpv_autre_territoire")
    assert list(other.ligne) == [3] and "(CAMVS)" in other.iloc[0].message
    geo = anomalies_of(result, "qpv_geographie")
    assert list(geo.ligne) == [4] and "géographie 2015" in geo.iloc[0].message
    assert len(result.rows) == 3


def test_negative_absurd_amounts_and_bad_optional_date(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2026.csv",
        f"{HEADER}\n"
        "D1;2026;A;;Etat;(1 200,00);-500;\n"
        "D2;2026;B;;Etat;1 000 000 000 000;100;\n"
        "D3;2026;C;;Etat;100;100;31/02/2026\n"
        "D4;2026;D;;Etat;100;100;15/06/2026\n",
    )
    result = parse_programmations([path])
    rows = result.rows.set_index("dossier")
    assert sorted(rows.index) == ["D1", "D3", "D4"]
    assert rows.loc["D1", "montant_demande"] == -1200.0  # kept as written, flagged
    negative = anomalies_of(result, "montant_negatif")
    assert list(negative.colonne) == ["Montant demandé", "Montant accordé"]
    assert list(negative.valeur_brute) == ["(1 200,00)", "-500"]
    [reject] = result.rejects.to_dict("records")
    assert (reject["ligne"], reject["colonne"]) == (3, "Montant demandé")
    assert "montant aberrant" in reject["motif"] and "ligne 3" in reject["motif"]
    # the bad optional date is emptied and flagged, the line and its amounts are kept
    assert rows.loc["D3", "montant_accorde"] == 100.0
    assert rows.loc["D3", "date_fin_action"] is None or str(rows.loc["D3", "date_fin_action"]) in {
        "None",
        "NaT",
    }
    [date_flag] = anomalies_of(result, "date_illisible").to_dict("records")
    assert (date_flag["ligne"], date_flag["colonne"], date_flag["valeur_brute"]) == (
        4,
        "Date de fin de l'action",
        "31/02/2026",
    )
    assert "ligne gardée" in date_flag["message"]


def test_conflicting_repeat_keeps_the_last_line(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2026.csv",
        f"{HEADER}\n"
        "2026-00019;2026;A;;Région;5 250;5 250;\n"
        "2026-00020;2026;B;;Région;100;100;\n"
        "2026-00019;2026;A;;Région;5 250;1 000;\n"
        "2026-00020;2026;B;;Région;100;100;\n",
    )
    result = parse_programmations([path])
    rows = result.rows
    assert rows.montant_accorde.sum() == 1100.0  # never 6 350 (summed)
    assert list(rows.source_ligne) == [3, 4]
    [conflict] = anomalies_of(result, "demande_en_conflit").to_dict("records")
    assert conflict["ligne"] == 2 and conflict["dossier"] == "2026-00019"
    assert "5 250,00 €" in conflict["message"] and "1 000,00 €" in conflict["message"]
    assert "ligne 4" in conflict["message"]
    # the exact duplicate (line 5) keeps its handling: rejected
    assert list(result.rejects.ligne) == [5]


def test_bilan_total_and_huge_count(tmp_path) -> None:
    path = write(
        tmp_path / "VM_bilans_2026.csv",
        "N° dossier;QPV de résidence;Femmes;Hommes;Total\n"
        "D1;QN05920M;3;2;5\n"
        "D2;QN05920M;3;2;7\n"
        "D3;QN05920M;123456789012345678901;2;\n",
    )
    result = parse_bilans([path])
    assert list(result.rows.dossier) == ["D1", "D2"]
    [total] = anomalies_of(result, "incoherence_total").to_dict("records")
    assert total["ligne"] == 3 and total["colonne"] == "Total"
    assert "(7)" in total["message"] and "(5)" in total["message"]
    [reject] = result.rejects.to_dict("records")
    assert (reject["fichier"], reject["ligne"], reject["colonne"]) == (path.name, 4, "Femmes")
    assert "effectif aberrant" in reject["motif"]
