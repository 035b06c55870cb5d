"""Broken programmations and bilans (issue 16): each case says what was loaded, rejected or
flagged, with the file, line and column; none leaves a wrong figure without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.sources.bilans import parse_bilans
from pipelines.sources.programmations import SuiviError, parse_programmations

# the inputs: tests/corpus/VM_programmation_2026_*.csv|xlsx and VM_bilans_2026_*.csv, listed
# in tests/corpus/README.md
CORPUS = Path(__file__).with_name("corpus")


def anomalies_of(result, kind: str):
    return result.anomalies[result.anomalies.type == kind]


def test_two_row_header_with_vertically_merged_identifiers_xlsx() -> None:
    """Row 1: N° dossier, Intitulé (merged down A1:A2, B1:B2), État (C1:D1), Région (E1:F1);
    row 2: Demandé / Accordé under each financeur; row 3: D1, Action, 1000, 800, 300, 250."""
    from openpyxl import load_workbook

    path = CORPUS / "VM_programmation_2026_entetes_fusionnes.xlsx"
    workbook = load_workbook(path)
    assert sorted(map(str, workbook.active.merged_cells.ranges)) == [
        "A1:A2",
        "B1:B2",
        "C1:D1",
        "E1:F1",
    ]
    workbook.close()
    result = parse_programmations([path])
    rows = result.rows.sort_values("financeur_libelle")
    assert list(rows.financeur_libelle) == ["Région", "État"]
    assert list(rows.montant_accorde) == [250.0, 800.0]
    assert list(rows.dossier) == ["D1", "D1"] and set(rows.source_ligne) == {3}
    assert set(rows.autres_colonnes) == {"{}"} and result.rejects.empty


def test_two_row_header_csv_single_financeur() -> None:
    result = parse_programmations([CORPUS / "VM_programmation_2026_entete_deux_lignes.csv"])
    rows = result.rows
    assert result.rejects.empty and list(rows.source_ligne) == [3]
    assert list(rows.financeur_libelle) == ["Ville de X"]
    assert (rows.iloc[0].montant_demande, rows.iloc[0].montant_accorde) == (1000.0, 900.0)


def test_no_amount_column_is_an_error_naming_the_file() -> None:
    path = CORPUS / "XYZ_programmation_2026_sans_montant.csv"
    with pytest.raises(
        SuiviError, match=r"XYZ_programmation_2026_sans_montant\.csv: aucune colonne de montant"
    ):
        parse_programmations([path])


def test_same_header_twice_is_refused_with_both_positions() -> None:
    path = CORPUS / "XYZ_programmation_2026_montant_double.csv"
    with pytest.raises(SuiviError) as err:
        parse_programmations([path])
    message = str(err.value)
    assert "XYZ_programmation_2026_montant_double.csv" in message and "Montant demandé" in message
    assert "colonnes 4 (D) et 5 (E)" in message
    wide = CORPUS / "XYZ_programmation_2026_financeur_double.csv"  # « Etat - demandé » twice
    with pytest.raises(
        SuiviError,
        match=r"XYZ_programmation_2026_financeur_double\.csv.*colonnes 3 \(C\) et 4 \(D\)",
    ):
        parse_programmations([wide])


def test_malformed_qpv_code_is_flagged_with_file_line_column() -> None:
    result = parse_programmations([CORPUS / "VM_programmation_2026_qpv_mal_forme.csv"])
    assert len(result.rows) == 2 and result.rejects.empty  # lines kept, flagged
    assert result.rows.montant_accorde.sum() == 200
    [flag] = anomalies_of(result, "qpv_mal_forme").to_dict("records")
    assert (flag["ligne"], flag["colonne"], flag["valeur_brute"]) == (
        2,
        "Quartier(s) concerné(s)",
        "QN0592M",
    )
    assert flag["message"].startswith(
        "VM_programmation_2026_qpv_mal_forme.csv, ligne 2, colonne « Quartier(s) concerné(s) »: "
        "code QPV mal "
        "formé « QN0592M »"
    )


def test_qpv_of_another_territory_or_geography_is_flagged() -> None:
    path = CORPUS / "VM_programmation_2026_qpv_autre_territoire.csv"
    perimetre = {"VM": {"QN05920M", "QP059020"}, "CAMVS": {"QN05999M"}}
    result = parse_programmations([path], perimetre=perimetre)
    other = anomalies_of(result, "qpv_autre_territoire")
    assert list(other.ligne) == [3] and "(CAMVS)" in other.iloc[0].message
    geo = anomalies_of(result, "qpv_geographie")
    assert list(geo.ligne) == [4] and "géographie 2015" in geo.iloc[0].message
    assert len(result.rows) == 3 and result.rejects.empty
    assert result.rows.montant_accorde.sum() == 102


def test_negative_absurd_amounts_and_bad_optional_date() -> None:
    path = CORPUS / "VM_programmation_2026_montants_aberrants.csv"
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


def test_conflicting_repeat_keeps_the_last_line() -> None:
    path = CORPUS / "VM_programmation_2026_demande_en_conflit.csv"
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


def test_bilan_total_and_huge_count() -> None:
    path = CORPUS / "VM_bilans_2026_total_incoherent.csv"
    result = parse_bilans([path])
    assert list(result.rows.dossier) == ["D1", "D2"]
    [total] = anomalies_of(result, "incoherence_total").to_dict("records")
    assert total["ligne"] == 3 and total["colonne"] == "Total"
    assert "(7)" in total["message"] and "(5)" in total["message"]
    [reject] = result.rejects.to_dict("records")
    assert (reject["fichier"], reject["ligne"], reject["colonne"]) == (path.name, 4, "Femmes")
    assert "effectif aberrant" in reject["motif"]
