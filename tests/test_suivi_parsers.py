"""Parsers of programmation and bilan files, on small hand-written files of every layout."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from pipelines.sources.bilans import parse_bilans
from pipelines.sources.programmations import SuiviError, parse_programmations
from pipelines.sources.programmations.cells import (
    check_siret,
    parse_amount,
    parse_share,
    qpv_codes,
    split_code,
    split_dossier,
)
from pipelines.sources.programmations.reader import ALIASES_FILE, header_key

LONG_HEADER = "N° dossier;Exercice;Intitulé de l'action;Financeur;Montant demandé;Montant accordé"


def write(path: Path, text: str, *, bom: bool = False, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def assert_lines_balance(result) -> None:
    for info in result.files:
        assert info["lignes_lues"] == info["lignes_chargees"] + info["lignes_rejetees"], info


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12 500,00 €", 12500.0),
        ("12500", 12500.0),
        ("12\u00a0500", 12500.0),
        ("12\u202f500,50 €", 12500.5),
        ("12.500,00", 12500.0),
        ("12.500", 12500.0),
        ("1 250 000", 1250000.0),
        ("0,5", 0.5),
        ("12500.75", 12500.75),
        ("", None),
        ("  ", None),
        (None, None),
        (7500, 7500.0),
        (7500.5, 7500.5),
    ],
)
def test_french_amounts(raw, expected) -> None:
    assert parse_amount(raw) == expected


@pytest.mark.parametrize("raw", ["douze mille", "12 5OO", "12,500,00", "€€"])
def test_unreadable_amounts_raise(raw) -> None:
    if raw == "€€":  # only a currency sign: treated as empty, not as an error
        assert parse_amount(raw) is None
        return
    with pytest.raises(ValueError):
        parse_amount(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [("75 %", 0.75), ("75%", 0.75), ("0,6", 0.6), ("60", 0.6), (0.45, 0.45)]
)
def test_shares(raw, expected) -> None:
    assert parse_share(raw) == pytest.approx(expected)


def test_siret_luhn_and_la_poste() -> None:
    assert check_siret("73282932000074") == ("73282932000074", "732829320", True)
    assert check_siret("732 829 320 00074")[2] is True
    assert check_siret("73282932000075")[2] is False
    assert check_siret("732829320") == (None, "732829320", True)
    assert check_siret("732829321")[2] is False
    # La Poste's establishments: sum of the digits divisible by 5 instead of the Luhn key (the
    # rule python-stdnum applies), except its head office 35600000000048, Luhn-valid.
    assert check_siret("35600000049837")[2] is True
    assert check_siret("35600000000014")[2] is False  # Luhn-valid, but not by La Poste's rule
    assert check_siret("35600000000048")[2] is True
    assert check_siret("1234")[2] is False
    assert check_siret("") == (None, None, None)
    assert check_siret(73282932000074.0)[0] == "73282932000074"  # an Excel number


def test_codes_and_suffixes() -> None:
    assert split_code("O2 - Accompagner la santé des habitants") == (
        "O2",
        "Accompagner la santé des habitants",
    )
    assert split_code("7.3") == ("7.3", None)
    assert split_code("O3.2 - Orienter - écouter") == ("O3.2", "Orienter - écouter")
    assert split_dossier("2026-00012-01") == ("2026-00012", True)
    assert split_dossier("2026-00012-02") == ("2026-00012", True)
    assert split_dossier("22-PV-001") == ("22-PV-001", False)
    assert split_dossier("CAMVS-2025-010") == ("CAMVS-2025-010", False)
    assert qpv_codes("QN05920M - Verrerie ; QN05923M - Centre Ville") == "QN05920M;QN05923M"
    assert qpv_codes("QP062008 Mont Liébaut / qp062010") == "QP062008;QP062010"
    assert qpv_codes("Tous les QPV de l'agglomération") == "TOUS"
    assert qpv_codes("Cité Madagascar") is None


def test_alias_file_has_no_conflicting_keys() -> None:
    import csv

    seen: dict[str, str] = {}
    with ALIASES_FILE.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = header_key(row["alias"])
            assert seen.setdefault(key, row["champ"]) == row["champ"], row


# -- files ------------------------------------------------------------------------------------


def test_long_csv_with_preamble_bom_crlf(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2027.csv",
        "Données fictives — préambule\n"
        "N° dossier;Exercice;Code SIRET;Raison sociale du porteur;Intitulé de l'action;"
        "Orientation;Objectif;Quartier(s) concerné(s);Statut de l'action;Coût total de l'action;"
        "Financeur;Montant demandé;Montant accordé;CPO;Durée CPO;Marqueur égalité;"
        "Part du public résidant en QPV;Date de dépôt du bilan;Colonne maison\n"
        "2027-00001;2027;73282932000074;Association A;Atelier;O2 - Santé;O2.3 - Femme;"
        '"QN05920M - Verrerie ; QN05923M";innovante;'
        "20 000,00 €;État;8 000,00 €;7 500,00 €;"
        "Oui;3 ans;0+;75 %;15/03/2028;note libre\n"
        "2027-00001;2027;73282932000074;Association A;Atelier;O2 - Santé;O2.3 - Femme;"
        '"QN05920M - Verrerie ; QN05923M";innovante;'
        "20 000,00 €;Valenciennes Métropole;"
        "2 000,00 €;;Oui;3 ans;0+;75 %;15/03/2028;\n",
        bom=True,
        newline="\r\n",
    )
    result = parse_programmations([path])
    assert_lines_balance(result)
    rows = result.rows
    assert len(rows) == 2 and result.rejects.empty
    first = rows.iloc[0]
    assert (first.territoire, first.annee, first.dossier) == ("VM", 2027, "2027-00001")
    assert (first.orientation_code, first.orientation_libelle) == ("O2", "Santé")
    assert first.objectif_code == "O2.3"
    assert first.qpv_codes == "QN05920M;QN05923M"
    assert first.montant_demande == 8000 and first.montant_accorde == 7500
    assert bool(first.cpo) and first.cpo_duree == 3 and first.marqueur_egalite == "0+"
    assert first.part_public_qpv == pytest.approx(0.75)
    assert first.date_bilan == date(2028, 3, 15)
    assert first.source_ligne == 3 and first.porteur_siren == "732829320"
    assert '"Colonne maison": "note libre"' in first.autres_colonnes
    second = rows.iloc[1]
    assert second.source_ligne == 4
    assert second.montant_accorde is None or str(second.montant_accorde) == "<NA>"


def test_header_row_in_row_three_of_xlsx_with_readme_sheet(tmp_path) -> None:
    workbook = Workbook()
    workbook.active.title = "Lisez-moi"
    workbook.active["A1"] = "Ce classeur contient une programmation."
    sheet = workbook.create_sheet("Programmation")
    sheet["A1"] = "Contrat de ville — programmation 2025"
    sheet["A2"] = "version de travail"
    header = ["Code dossier", "Porteur", "SIRET", "Libellé de l'action", "QPV", "Coût total"]
    header += ["État (BOP 147) - demandé", "État (BOP 147) - accordé"]
    header += ["Montant demandé Commune", "Montant accordé Commune"]
    sheet.append(header)
    sheet.append(["A-001", "Asso", 73282932000074, "Action 1", "QN05915M", 10000, 5000, 4000])
    sheet.append(["A-002", "Asso", "73282932000074", "Action 2", None, 8000, None, None, 900, 0])
    path = tmp_path / "CAMVS" / "programmation_2025.xlsx"
    path.parent.mkdir()
    workbook.save(path)

    result = parse_programmations([path])
    assert_lines_balance(result)
    assert result.files[0]["feuille"] == "Programmation"
    assert result.files[0]["ligne_entete"] == 3
    rows = result.rows.sort_values(["source_ligne", "financeur_libelle"])
    got = [
        (r.dossier, r.source_ligne, r.financeur_libelle, r.montant_demande, r.montant_accorde)
        for r in rows.itertuples()
    ]
    assert got[0] == ("A-001", 4, "État (BOP 147)", 5000.0, 4000.0)
    assert got[1][:4] == ("A-002", 5, "Commune", 900.0) and got[1][4] == 0.0
    assert len(got) == 2  # no row for a financeur with both cells empty
    assert set(rows.territoire) == {"CAMVS"}  # from the parent folder
    assert set(rows.annee) == {2025}  # from the file name
    assert rows.iloc[0].porteur_siret == "73282932000074"


def test_wide_and_long_formats_give_the_same_rows(tmp_path) -> None:
    long = write(
        tmp_path / "T1_long_2024.csv",
        "Numéro de dossier,Libellé de l'action,Financeur,Montant sollicité,Montant attribué\n"
        'D1,Action un,Etat,"1 000,00","900,00"\n'
        'D1,Action un,Région,"2 000,00",\n'
        "D2,Action deux,Etat,500,500\n",
    )
    wide = write(
        tmp_path / "T1_large_2024.csv",
        "Numéro de dossier\tLibellé de l'action\tEtat - sollicité\tEtat - attribué\t"
        "Montant demandé Région\tMontant accordé Région\n"
        "D1\tAction un\t1 000,00\t900,00\t2 000,00\t\n"
        "D2\tAction deux\t500\t500\t\t\n",
    )

    def key(path: Path) -> set[tuple]:
        rows = parse_programmations([path]).rows
        return {
            (
                r.dossier,
                r.financeur_libelle,
                r.montant_demande,
                None if str(r.montant_accorde) == "<NA>" else r.montant_accorde,
            )
            for r in rows.itertuples()
        }

    assert key(long) == key(wide)
    assert len(key(long)) == 3


def test_unparseable_amount_is_rejected_with_file_line_and_column(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2026.csv",
        f"{LONG_HEADER}\n"
        "D1;2026;Action;Etat;1 000,00 €;900,00 €\n"
        "D2;2026;Action;Etat;mille euros;900,00 €\n"
        "\n"
        "D3;2026;Action;Etat;500;500\n",
    )
    result = parse_programmations([path])
    assert_lines_balance(result)
    assert result.files[0]["lignes_lues"] == 3
    assert list(result.rows.dossier) == ["D1", "D3"]
    assert list(result.rows.source_ligne) == [2, 5]  # blank line 4 is not data
    reject = result.rejects.iloc[0]
    assert (reject.fichier, reject.ligne, reject.colonne) == (path.name, 3, "Montant demandé")
    assert reject.valeur_brute == "mille euros"
    assert (
        path.name in reject.motif
        and "ligne 3" in reject.motif
        and "Montant demandé" in reject.motif
    )


def test_duplicates_and_anomalies(tmp_path) -> None:
    path = write(
        tmp_path / "VM_programmation_2027.csv",
        "N° dossier;Code SIRET;Intitulé de l'action;Financeur;Montant demandé;Montant accordé\n"
        "2026-00012-02;73282932000074;A;Etat;1000;1000\n"
        "2026-00012-02;73282932000074;A;Etat;1000;1000\n"
        "2026-00012-02;73282932000074;A;Etat;1000;800\n"
        "2027-00005;73282932000075;B;Commune;1000;1200\n",
    )
    earlier = write(
        tmp_path / "VM_programmation_2026.csv",
        "N° dossier;Intitulé de l'action;Financeur;Montant demandé;Montant accordé\n"
        "2026-00012-01;A;Etat;1000;1000\n",
    )
    result = parse_programmations([earlier, path])
    assert_lines_balance(result)
    rejects = result.rejects
    assert list(rejects.ligne) == [3] and "doublon de la ligne 2" in rejects.iloc[0].motif
    types = result.anomalies.groupby("type").ligne.apply(list).to_dict()
    # same dossier × financeur with other amounts: the last line (4) wins, line 2 is left out
    assert types["demande_en_conflit"] == [2]
    assert "doublon_dossier" not in types
    assert types["accorde_superieur_demande"] == [5]
    assert types["siret_invalide"] == [5]
    assert types["serie_pluriannuelle"] == [2]
    serie = result.anomalies[result.anomalies.type == "serie_pluriannuelle"].iloc[0]
    assert serie.dossier == "2026-00012" and "2026-00012-02 (2027)" in serie.message
    rows = result.rows
    assert set(rows[rows.dossier.str.startswith("2026-00012")].dossier_base) == {"2026-00012"}
    assert rows.set_index("dossier").loc["2027-00005"].serie_pluriannuelle == False  # noqa: E712


def test_territory_and_year_columns_win_over_the_file_name(tmp_path) -> None:
    path = write(
        tmp_path / "export_dauphin.csv",
        "Contrat de ville;Année;Dossier;Action;Financeur;Montant demandé\n"
        "ABC;2031;X1;Action;Etat;100\n"
        "ABC;;X2;Action;Etat;100\n",
    )
    rows = parse_programmations([path]).rows
    assert list(rows.territoire) == ["ABC", "ABC"]
    assert list(rows.annee.astype("object").where(rows.annee.notna(), None)) == [2031, None]


def test_transversal_theme_projet_de_quartier_and_scale_are_read(tmp_path) -> None:
    path = write(
        tmp_path / "CABBALR_programmation_2022.csv",
        "Dossier;Action;Priorité transversale;Échelle;Projets de Quartier;Financeur;"
        "Montant sollicité\n"
        "D1;Action;T2 - La lutte contre les discriminations;Communale;Oui;Etat;100\n"
        "D2;Action;Aller-vers;Intercommunale;Non;Etat;100\n"
        "D3;Action;;;;Etat;100\n",
    )
    result = parse_programmations([path])
    assert result.rejects.empty
    rows = result.rows
    assert list(rows.thematique_transversale_code) == ["T2", "Aller-vers", None]
    assert list(rows.thematique_transversale_libelle) == [
        "La lutte contre les discriminations",
        None,
        None,
    ]
    assert list(rows.echelle) == ["Communale", "Intercommunale", None]
    assert [None if pd.isna(v) else bool(v) for v in rows.projet_quartier] == [True, False, None]


def test_empty_and_headerless_files_raise(tmp_path) -> None:
    empty = write(tmp_path / "VM_vide_2027.csv", "")
    with pytest.raises(SuiviError, match="VM_vide_2027.csv.*vide"):
        parse_programmations([empty])
    blank = write(tmp_path / "VM_blanc_2027.csv", "\n\n  \n")
    with pytest.raises(SuiviError, match="vide"):
        parse_programmations([blank])
    headerless = write(
        tmp_path / "VM_sans_entete_2027.csv",
        "2027-001;Association A;12 500,00 €;Oui\n2027-002;Association B;900;Non\n",
    )
    with pytest.raises(SuiviError, match="VM_sans_entete_2027.csv.*en-tête"):
        parse_programmations([headerless])
    workbook = Workbook()
    empty_xlsx = tmp_path / "VM_vide_2027.xlsx"
    workbook.save(empty_xlsx)
    with pytest.raises(SuiviError, match="VM_vide_2027.xlsx"):
        parse_programmations([empty_xlsx])
    with pytest.raises(SuiviError, match="introuvable"):
        parse_programmations([tmp_path / "absent.csv"])
    latin = tmp_path / "VM_latin1_2027.csv"
    latin.write_bytes(f"{LONG_HEADER}\nD1;2027;Qualité;Etat;1;1\n".encode("cp1252"))
    with pytest.raises(SuiviError, match="VM_latin1_2027.csv"):
        parse_programmations([latin])


def test_multiline_cell_keeps_physical_line_numbers(tmp_path) -> None:
    path = write(
        tmp_path / "VM_2027.csv",
        f"{LONG_HEADER}\n"
        'D1;2027;"Action sur\ndeux lignes";Etat;100;100\n'
        "D2;2027;Action;Etat;abc;100\n",
    )
    result = parse_programmations([path])
    assert list(result.rows.source_ligne) == [2]
    assert list(result.rejects.ligne) == [4]


def test_extra_aliases(tmp_path) -> None:
    extra = write(
        tmp_path / "alias.csv", "alias,champ\nRéf. interne,dossier\nSubv. votée,montant_accorde\n"
    )
    path = write(
        tmp_path / "VM_2027.csv",
        "Réf. interne;Intitulé;Financeur;Subv. votée\nR1;Action;Etat;1 500\n",
    )
    with pytest.raises(SuiviError, match="VM_2027.csv: aucune colonne de montant reconnue"):
        parse_programmations([path])  # « Subv. votée » is no known amount header
    rows = parse_programmations([path], extra_aliases=extra).rows
    assert rows.iloc[0].dossier == "R1" and rows.iloc[0].montant_accorde == 1500


def test_total_line_is_rejected_not_loaded(tmp_path) -> None:
    path = write(
        tmp_path / "VM_2027.csv",
        f"{LONG_HEADER}\nD1;2027;Action;Etat;100;100\n;;;TOTAL;100;100\n",
    )
    result = parse_programmations([path])
    assert_lines_balance(result)
    assert len(result.rows) == 1 and list(result.rejects.ligne) == [3]


# -- bilans -----------------------------------------------------------------------------------

BILAN_HEADER = (
    "N° dossier;Action réalisée;QPV de résidence;Femmes;Hommes;Sexe non renseigné;"
    "Moins de 16 ans;16-25 ans;26-64 ans;65 ans et plus;Âge non renseigné;"
    "Demandeurs d'emploi;Bénéficiaires du RSA;Familles monoparentales;"
    "Personnes en situation de handicap;Date de dépôt du bilan"
)


def test_bilans_counts_residence_and_coherence(tmp_path) -> None:
    path = write(
        tmp_path / "VM_bilans_2026.csv",
        f"Données fictives\n{BILAN_HEADER}\n"
        "D1;Oui;QN05920M;3;2;0;1;1;3;0;0;1;0;1;0;20/03/2027\n"
        "D1;Oui;Hors QPV;1;1;0;0;1;1;0;0;0;0;0;0;20/03/2027\n"
        "D2;Oui;Non renseigné;4;4;0;1;1;1;1;1;0;0;0;0;20/03/2027\n"
        "D3;Oui;QN05921M;-1;2;0;0;0;1;0;0;0;0;0;0;20/03/2027\n"
        "D4;Oui;QN05921M;2,5;2;0;0;0;1;0;0;0;0;0;0;20/03/2027\n"
        "D5;Non;;0;0;0;0;0;0;0;0;0;0;0;0;\n",
        bom=True,
        newline="\r\n",
    )
    result = parse_bilans([path])
    assert_lines_balance(result)
    rows = result.rows.set_index("source_ligne")
    assert rows.loc[3, "qpv_residence"] == "QN05920M"
    assert rows.loc[4, "qpv_residence"] == "HORS_QPV"
    assert rows.loc[5, "qpv_residence"] == "NON_RENSEIGNE"
    assert rows.loc[8, "qpv_residence"] == "NON_RENSEIGNE"
    assert not rows.loc[8, "action_realisee"]
    assert rows.loc[3, "femmes"] == 3 and rows.loc[3, "date_bilan"] == date(2027, 3, 20)
    rejects = result.rejects.set_index("ligne")
    assert rejects.loc[6, "colonne"] == "Femmes" and rejects.loc[6, "valeur_brute"] == "-1"
    assert rejects.loc[7, "colonne"] == "Femmes" and rejects.loc[7, "valeur_brute"] == "2,5"
    incoherent = result.anomalies[result.anomalies.type == "incoherence_totaux"]
    assert list(incoherent.ligne) == [5]  # 8 by sex, 5 by age
    assert "(5)" in incoherent.iloc[0].message and "(8)" in incoherent.iloc[0].message


def test_bilans_xlsx_header_not_on_first_row(tmp_path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Bilans"
    sheet["A1"] = "Bilans 2025 — titre"
    sheet.append([])
    sheet.append(["Code dossier", "Action réalisée", "QPV de résidence", "Femmes", "Hommes"])
    sheet.append(["C-1", "Oui", "QN05915M", 2, 3])
    sheet.append(["C-1", "Oui", "Hors QPV", 1, None])
    path = tmp_path / "CAMVS_bilans_2025.xlsx"
    workbook.save(path)
    result = parse_bilans([path])
    assert_lines_balance(result)
    assert list(result.rows.source_ligne) == [4, 5]
    assert list(result.rows.territoire) == ["CAMVS", "CAMVS"]
    assert result.rows.iloc[1].hommes is None or str(result.rows.iloc[1].hommes) == "<NA>"


def test_two_row_header_with_merged_financeur_cells(tmp_path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Programmation 2026"])
    sheet.append([None, None, "État", None, "Département", None])
    sheet.merge_cells("C2:D2")
    sheet.merge_cells("E2:F2")
    sheet.append(["N° dossier", "Intitulé", "Demandé", "Accordé", "Demandé", "Accordé"])
    sheet.append(["D1", "Action", 1000, 800, 300, None])
    path = tmp_path / "XYZ_programmation_2026.xlsx"
    workbook.save(path)
    rows = parse_programmations([path]).rows.sort_values("financeur_libelle")
    assert list(rows.financeur_libelle) == ["Département", "État"]
    assert list(rows.montant_demande) == [300.0, 1000.0]
    assert list(rows.source_ligne) == [4, 4] and set(rows.territoire) == {"XYZ"}
