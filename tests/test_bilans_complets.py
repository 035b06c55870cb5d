"""Bilans read in full (issue 15): age bands as declared, types of public, realisation and its
reason, planned vs actual beneficiaries, results, residents' participation, in the wide and long
layouts (unit tests on small files), and the marts recomputed from the demo's raw bilan files."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from pipelines.publication.secret import load_specs, mask_counts
from pipelines.sources.bilans import parse_bilans
from pipelines.sources.bilans.contenu import (
    canonical_band,
    parse_band,
    parse_realisation,
    participation_forms,
)


def write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


# -- parsers of the référentiels ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bounds", "code"),
    [
        ("0-5 ans", (0, 5), "moins_16"),
        ("De 6 à 15 ans", (6, 15), "moins_16"),
        ("Moins de 16 ans", (0, 15), "moins_16"),
        ("16 - 25 ans", (16, 25), "16_25"),
        ("Nombre de bénéficiaires 18-25 ans", (18, 25), "16_25"),
        ("26-59 ans", (26, 59), "26_64"),
        ("60 ans et plus", (60, None), None),  # straddles 26-64 and 65+
        ("65 ANS ET PLUS", (65, None), "65_plus"),
        ("+ de 65 ans", (65, None), "65_plus"),
        ("Femmes", None, None),
        ("Demandeurs d'emploi", None, None),
    ],
)
def test_age_bands_declared_and_canonical(text, bounds, code) -> None:
    assert parse_band(text) == bounds
    if bounds is not None:
        band = canonical_band(bounds)
        assert (band.code if band else None) == code


def test_realisation_and_participation_words() -> None:
    assert [
        parse_realisation(v) for v in ("Oui", "non", "Partiellement", "En partie", "Annulée", "")
    ] == ["oui", "non", "partiellement", "partiellement", "non", None]
    with pytest.raises(ValueError, match="oui, non ou partiellement"):
        parse_realisation("peut-être")
    assert participation_forms("Co-construction et comité de suivi") == [
        "co_construction",
        "suivi",
    ]
    assert participation_forms("Évaluation par questionnaire") == ["evaluation"]
    assert participation_forms("Habitants bénévoles") == ["autre"]
    assert participation_forms("") == []


# -- the wide layout ------------------------------------------------------------------------------

WIDE = (
    "Bilans 2026 (fictif)\n"
    "N° DOSSIER;réalisation de l'action;Motif de non réalisation;qpv de residence;FEMMES;Hommes;"
    "0-5 ans;De 6 à 15 ans;16-25 ans;26-59 ans;60 ans et plus;Dont demandeurs d'emploi;"
    "Allocataires du RSA;Total;Bénéficiaires prévus;Résultat attendu;Résultat obtenu;"
    "Participation des habitants;Modalités de participation\n"
    "D1;Oui;;QN05920M;3;2;1;1;1;1;1;2;0;5;20;10;8;Oui;Co-construction et comité de suivi\n"
    "D1;Oui;;Hors QPV;1;1;0;0;1;1;0;9;0;2;20;10;8;Oui;Co-construction et comité de suivi\n"
    "D2;Partiellement;Public non mobilisé;QN05921M;2;2;0;0;3;3;0;0;0;4;une trentaine;5;2;"
    "peut-être;\n"
    "D3;Non;Porteur en liquidation;;0;0;0;0;0;0;0;0;0;0;15;;;Non;\n"
    "D4;Oui;;QN05921M;2;x;0;0;1;1;0;0;0;;;;;;\n"
)


def test_wide_bilan_read_in_full(tmp_path) -> None:
    path = write(tmp_path / "VM_bilans_2026.csv", WIDE, bom=True)
    result = parse_bilans([path])
    rows = result.rows.set_index("source_ligne")
    # every line loaded or rejected: line 7 has « x » men, rejected with its column
    assert sorted(rows.index) == [3, 4, 5, 6]
    [reject] = result.rejects.to_dict("records")
    assert (reject["ligne"], reject["colonne"], reject["valeur_brute"]) == (7, "Hommes", "x")
    assert "VM_bilans_2026.csv, ligne 7, colonne « Hommes »" in reject["motif"]
    # declared bands added to the canonical band that contains them: 0-5 + 6-15 = moins de 16
    assert rows.loc[3, "age_moins_16"] == 2 and rows.loc[3, "age_26_64"] == 1
    declared = json.loads(rows.loc[3, "effectifs_declares"])
    sixty = [d for d in declared if d["libelle_fichier"] == "60 ans et plus"]
    assert sixty == [
        {
            "dimension": "tranche_age",
            "code": None,
            "libelle": "60 ans et plus",
            "libelle_fichier": "60 ans et plus",
            "effectif": 1,
        }
    ]
    rsa = [d for d in declared if d["code"] == "beneficiaires_rsa"]
    assert rsa[0]["libelle"] == "Bénéficiaires du RSA"
    assert rsa[0]["libelle_fichier"] == "Allocataires du RSA"
    # the action's answers
    assert list(rows.realisation) == ["oui", "oui", "partiellement", "non"]
    assert list(rows.action_realisee) == [True, True, True, False]
    assert rows.loc[5, "motif_non_realisation"] == "Public non mobilisé"
    assert rows.loc[3, "beneficiaires_prevus"] == 20 and pd.isna(
        rows.loc[5, "beneficiaires_prevus"]
    )
    assert (rows.loc[3, "resultat_attendu"], rows.loc[3, "resultat_obtenu"]) == (10, 8)
    assert rows.loc[3, "participation_habitants"] and not rows.loc[6, "participation_habitants"]
    assert rows.loc[3, "participation_formes"] == "co_construction;suivi"
    anomalies = result.anomalies
    by_type = {t: g for t, g in anomalies.groupby("type")}
    # unreadable optional cells: emptied, line kept, reported with file, line and column
    [prevus] = by_type["effectif_illisible"].to_dict("records")
    assert (prevus["ligne"], prevus["colonne"], prevus["valeur_brute"]) == (
        5,
        "Bénéficiaires prévus",
        "une trentaine",
    )
    assert list(by_type["participation_illisible"].ligne) == [5]
    # the straddling band reported once, on the header line
    [outside] = by_type["tranche_age_hors_referentiel"].to_dict("records")
    assert (outside["ligne"], outside["colonne"]) == (2, "60 ans et plus")
    # bands 6 > stated total 4 (line 5); 9 job seekers for a total of 2 (line 4)
    over = by_type["effectif_superieur_total"].set_index("ligne")
    assert "(6)" in over.loc[5, "message"] and "(4)" in over.loc[5, "message"]
    assert over.loc[4, "colonne"] == "Demandeurs d'emploi" and "(9)" in over.loc[4, "message"]
    assert list(by_type["incoherence_totaux"].ligne) == [5]
    assert "supérieur" in by_type["incoherence_totaux"].iloc[0].message
    assert "incoherence_action" not in by_type  # D1's two lines agree


def test_action_answers_that_disagree_between_lines(tmp_path) -> None:
    path = write(
        tmp_path / "VM_bilans_2026.csv",
        "N° dossier;Action réalisée;QPV de résidence;Femmes;Bénéficiaires prévus\n"
        "D1;Oui;QN05920M;3;20\n"
        "D1;Non;Hors QPV;1;20\n"
        "D2;Oui;QN05920M;3;20\n"
        "D2;Oui;Hors QPV;1;25\n",
    )
    found = parse_bilans([path]).anomalies
    found = found[found.type == "incoherence_action"].set_index("dossier")
    assert found.loc["D1", "colonne"] == "réalisation"
    assert found.loc["D1", "valeur_brute"] == "oui, non"
    assert "lignes 2, 3" in found.loc["D1", "message"]
    assert found.loc["D2", "colonne"] == "bénéficiaires prévus"
    assert found.loc["D2", "valeur_brute"] == "20, 25"


# -- the long layout ------------------------------------------------------------------------------


def test_long_bilan_xlsx_grouped_by_action_and_residence(tmp_path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Bilans"
    sheet.append(["Bilans 2023 — fictif"])
    sheet.append(
        [
            "Dossier",
            "Action réalisée",
            "Quartier de résidence",
            "Tranche d'âge / public",
            "Effectif",
            "Nombre de bénéficiaires attendus",
        ]
    )
    lines = [
        ("X1", "Oui", "QP062004", "Femmes", 4),
        ("X1", "Oui", "QP062004", "Hommes", 3),
        ("X1", "Oui", "QP062004", "Moins de 6 ans", 2),
        ("X1", "Oui", "QP062004", "6-15 ans", 1),
        ("X1", "Oui", "QP062004", "16-25 ans", 4),
        ("X1", "Oui", "QP062004", "Demandeurs d'emploi", 3),
        ("X1", "Oui", "QP062004", "Jeunes NEET", 2),
        ("X1", "Oui", "Hors QPV", "Femmes", 1),
        ("X1", "Oui", "Hors QPV", "60 ans et plus", 1),
        ("X1", "Oui", "Hors QPV", "Bénéficiaires du RSA", "trois"),
    ]
    for line in lines:
        sheet.append([*line, 12])
    path = tmp_path / "CABBALR_bilans_2023.xlsx"
    workbook.save(path)
    result = parse_bilans([path])
    rows = result.rows.set_index("qpv_residence")
    assert list(rows.index) == ["QP062004", "HORS_QPV"]
    assert list(rows.source_ligne) == [3, 10]  # first line of each action × residence
    qpv = rows.loc["QP062004"]
    assert (qpv.femmes, qpv.hommes, qpv.age_moins_16, qpv.age_16_25) == (4, 3, 3, 4)
    assert qpv.demandeurs_emploi == 3 and qpv.beneficiaires_prevus == 12
    assert pd.isna(rows.loc["HORS_QPV", "beneficiaires_rsa"])  # its only line was rejected
    [reject] = result.rejects.to_dict("records")
    assert (reject["ligne"], reject["colonne"], reject["valeur_brute"]) == (12, "Effectif", "trois")
    assert "feuille « Bilans », ligne 12" in reject["motif"]
    kinds = dict(zip(result.anomalies.ligne, result.anomalies.type, strict=True))
    assert kinds == {9: "modalite_inconnue", 11: "tranche_age_hors_referentiel"}
    declared = json.loads(qpv.effectifs_declares)
    assert {"dimension": "inconnue", "code": None, "libelle": "Jeunes NEET"}.items() <= next(
        d for d in declared if d["libelle_fichier"] == "Jeunes NEET"
    ).items()
    assert result.files[0]["lignes_lues"] == 10 and result.files[0]["lignes_rejetees"] == 1


# -- statistical secrecy across the bands of a cell ---------------------------------------------


def test_age_bands_masked_with_a_complement() -> None:
    spec = load_specs()["beneficiaires_age_public"]
    cell = {"territoire": "VM", "annee": 2026, "orientation_code": "O1", "qpv_residence": "Q"}
    frame = pd.DataFrame(
        [
            {**cell, "dimension": "tranche_age", "effectif": 3, "part_pct": 10.0},
            {**cell, "dimension": "tranche_age", "effectif": 12, "part_pct": 40.0},
            {**cell, "dimension": "tranche_age", "effectif": 15, "part_pct": 50.0},
            {**cell, "dimension": "public", "effectif": 20, "part_pct": 66.7},
        ]
    )
    masked = mask_counts(frame, spec, seuil=5)
    # 3 is masked; the bands add up to the cell's total (published by beneficiaires_genre), so
    # the smallest other band (12) is masked too; the public is another group
    assert masked.effectif.tolist() == [None, None, 15, 20]
    assert masked.part_pct.tolist()[:2] == [None, None]
    assert masked.secret_statistique.tolist() == [True, True, False, False]


# -- the marts on the demo ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def _csv(path: Path) -> list[dict[str, str]]:
    """The rows of a demo CSV below its one-line preamble."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    delimiter = ";" if lines[1].count(";") > lines[1].count(",") else ","
    return list(csv.DictReader(lines[1:], delimiter=delimiter))


def _xlsx(path: Path) -> list[dict]:
    sheet = load_workbook(path, read_only=True, data_only=True).worksheets[1]
    rows = list(sheet.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Code dossier")
    return [dict(zip(rows[start], r, strict=False)) for r in rows[start + 1 :] if any(r)]


def _mart(con, territoire: str, annee: int) -> dict[str, int]:
    return dict(
        con.execute(
            "select modalite_libelle, sum(effectif) from marts.beneficiaires_age_public "
            "where territoire = ? and annee = ? group by 1",
            [territoire, annee],
        ).fetchall()
    )


def test_age_public_recomputed_from_the_raw_files(con, demo_build) -> None:
    raw = demo_build / "raw" / "bilans"
    # VM: wide CSV with finer declared bands
    vm = _csv(raw / "VM_bilans_2027_DEMO_FICTIF.csv")
    got = _mart(con, "VM", 2027)
    assert got["Moins de 16 ans"] == sum(int(r["0-5 ans"]) + int(r["6-15 ans"]) for r in vm)
    assert got["26-64 ans"] == sum(int(r["26-59 ans"]) for r in vm)
    assert got["60 ans et plus"] == sum(int(r["60 ans et plus"]) for r in vm)
    assert got["Bénéficiaires du RSA"] == sum(int(r["Bénéficiaires du RSA"]) for r in vm)
    # CAMVS: wide XLSX with the canonical bands
    camvs = _xlsx(raw / "CAMVS_bilans_2026_DEMO_FICTIF.xlsx")
    got = _mart(con, "CAMVS", 2026)
    assert got["16-25 ans"] == sum(r["16-25 ans"] for r in camvs)
    assert got["Familles monoparentales"] == sum(r["Familles monoparentales"] for r in camvs)
    # CABBALR: long CSV, one line per band or public (the « trois » line is rejected)
    cab = _csv(raw / "CABBALR_bilans_2023_DEMO_FICTIF.csv")
    got = _mart(con, "CABBALR", 2023)
    for label in ("Demandeurs d'emploi", "65 ans et plus", "Bénéficiaires du RSA"):
        expected = sum(
            int(r["Effectif"])
            for r in cab
            if r["Tranche d'âge ou public"] == label and r["Effectif"].isdigit()
        )
        assert got[label] == expected, label
    assert got["Jeunes NEET"] == 2  # unknown value kept as declared
    hors = con.execute(
        "select bool_and(hors_referentiel) from marts.beneficiaires_age_public "
        "where modalite_libelle in ('Jeunes NEET', '60 ans et plus')"
    ).fetchone()
    assert hors == (True,)


def test_realisation_recomputed_from_the_raw_files(con, demo_build) -> None:
    camvs = _xlsx(demo_build / "raw" / "bilans" / "CAMVS_bilans_2026_DEMO_FICTIF.xlsx")
    answers = {r["Code dossier"]: r for r in camvs}
    expected = Counter(r["Action réalisée"] for r in answers.values())
    got = con.execute(
        "select sum(nb_realisees), sum(nb_partiellement_realisees), sum(nb_non_realisees), "
        "sum(nb_bilans), sum(beneficiaires_realises) "
        "from marts.bilans_realisation where territoire = 'CAMVS' and annee = 2026"
    ).fetchone()
    assert got[:4] == (
        expected["Oui"],
        expected["Partiellement"],
        expected["Non"],
        len(answers),
    )
    assert got[4] == sum(r["Femmes"] + r["Hommes"] + r["Sexe non renseigné"] for r in camvs)
    # planned beneficiaries: once per action, the planted « une trentaine » left out
    prevus = {
        r["Code dossier"]: r["Nombre de bénéficiaires prévus"]
        for r in camvs
        if isinstance(r["Nombre de bénéficiaires prévus"], int)
    }
    assert con.execute(
        "select sum(beneficiaires_prevus) from marts.bilans_realisation "
        "where territoire = 'CAMVS' and annee = 2026"
    ).fetchone() == (sum(prevus.values()),)
    # a rate on a row, recomputed
    row = con.execute(
        "select nb_realisees, nb_partiellement_realisees, nb_non_realisees, taux_realisation "
        "from marts.bilans_realisation where nb_bilans > 3 order by territoire, annee limit 1"
    ).fetchone()
    assert row[3] == round(100 * row[0] / (row[0] + row[1] + row[2]), 1)
    # the most frequent reason of an orientation comes first
    reasons = defaultdict(Counter)
    vm = _csv(demo_build / "raw" / "bilans" / "VM_bilans_2027_DEMO_FICTIF.csv")
    for r in {r["N° dossier"]: r for r in vm}.values():
        if r["Réalisation de l'action"] != "Oui" and r["Motif de non réalisation"]:
            reasons["VM"][r["Motif de non réalisation"]] += 1
    listed = con.execute(
        "select string_agg(motifs_non_realisation_principaux, ' ; ') "
        "from marts.bilans_realisation where territoire = 'VM' and annee = 2027"
    ).fetchone()[0]
    for motif in reasons["VM"]:
        if reasons["VM"][motif] >= 2:
            assert motif in listed


def test_participation_recomputed_from_the_raw_files(con, demo_build) -> None:
    vm = _csv(demo_build / "raw" / "bilans" / "VM_bilans_2026_DEMO_FICTIF.csv")
    actions = {r["N° dossier"]: r for r in vm}
    got = con.execute(
        "select sum(nb_avec_participation), sum(nb_sans_participation), sum(nb_co_construction) "
        "from marts.participation_habitants where territoire = 'VM' and annee = 2026"
    ).fetchone()
    yes = [r for r in actions.values() if r["Les habitants ont-ils participé"] == "Oui"]
    no = [r for r in actions.values() if r["Les habitants ont-ils participé"] == "Non"]
    co = [r for r in yes if "co-construction" in r["Forme de la participation"].lower()]
    assert got == (len(yes), len(no), len(co))


def test_planted_broken_cells_reported(con) -> None:
    anomalies = con.execute(
        "select type, count(*) from raw.anomalies where source = 'bilans' group by 1"
    ).fetchall()
    assert dict(anomalies).keys() >= {
        "effectif_illisible",
        "participation_illisible",
        "effectif_superieur_total",
        "tranche_age_hors_referentiel",
        "modalite_inconnue",
    }
    rejets = con.execute(
        "select fichier, ligne, colonne, valeur_brute from raw.rejets where source = 'bilans'"
    ).fetchall()
    assert {(Path(f).name.split("_")[0], c, v) for f, _, c, v in rejets} == {
        ("CABBALR", "Effectif", "trois")
    }
