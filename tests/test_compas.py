"""Local indicator tables (Compas-style) read through a declarative mapping."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from pipelines.lib.tables import IngestionError
from pipelines.settings import DEMO_DIR, REFERENTIELS_DIR
from pipelines.sources.indicateurs.assets import dictionary_units, read_local_indicators
from pipelines.sources.indicateurs.mapping import check_mapping, find_mappings, load_mapping
from pipelines.sources.indicateurs.reader import read_local_table

DEMO_MAPPING = DEMO_DIR / "compas" / "COMPAS_indicateurs.mapping.yml"


@pytest.fixture(scope="module")
def demo_compas(tmp_path_factory) -> Path:
    """The demo's fictitious Compas workbook, written by the project's generator, + mapping."""
    from tools.demo.synthetic import write_synthetic_demo

    raw = tmp_path_factory.mktemp("raw")
    write_synthetic_demo(raw, REFERENTIELS_DIR)
    shutil.copy(DEMO_MAPPING, raw / "compas")
    return raw / "compas"


def _write_mapping(folder: Path, text: str, name: str = "local.mapping.yml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_mapping_matches_the_dictionary():
    mapping = load_mapping(DEMO_MAPPING)
    assert mapping.fournisseur == "COMPAS"
    assert check_mapping(mapping, dictionary_units()) == []


def test_demo_workbook_through_its_mapping(demo_compas):
    [mapping_path] = find_mappings(demo_compas)
    mapping = load_mapping(mapping_path)
    [path] = mapping.files()
    table = read_local_table(path, mapping)

    # independent read of the workbook
    book = load_workbook(path, read_only=True, data_only=True)
    sheet = next(ws for ws in book.worksheets if ws.title.startswith("Indicateurs"))
    rows = list(sheet.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Code territoire")
    header = rows[start]
    expected = {}
    for row in rows[start + 1 :]:
        if not row or not row[0]:
            continue
        for j, name in enumerate(header[4:], start=4):
            expected[(row[0], name)] = row[j]
    year = int(re.search(r"\d{4}", sheet.title).group())

    values = table.values
    assert len(values) == len(expected) and table.rejects.empty
    assert set(values.millesime) == {year}
    assert set(values.source) == {"COMPAS"}
    for rec in values.itertuples():
        cell = expected[(rec.code_territoire, rec.variable)]
        if cell == "s":
            assert rec.secret and rec.marqueur_secret == "s" and rec.valeur != rec.valeur
        else:
            assert not rec.secret and rec.valeur == pytest.approx(float(cell))
    assert values.secret.any()
    kinds = values.groupby("type_territoire").code_territoire.nunique().to_dict()
    assert kinds["epci"] == 3 and kinds["qpv"] == 42
    assert set(values[values.type_territoire == "qpv"].geographie) == {"2024"}
    assert values.indicateur.notna().all()
    assert "Territoire de contrat" not in set(values.variable)  # ignored column


CSV = (
    "\ufeffTableau de bord CAF — fichier de test\n"
    "Source : CAF (fictif)\n"
    "\n"
    "Code;Nom;Type;Allocataires;Part monoparentales;Colonne nouvelle;Commentaire\n"
    "QN05920M;Verrerie;Quartier;1 234;41,5;7;ok\n"
    "QN05921M;Rives;Quartier;s;38,0;8;ok\n"
    "59178;Maubeuge;Commune;5 678;30,1;9;ok\n"
    "1053;Bourg;Commune;100;20;1;zéro perdu\n"
    ";Ensemble des QPV;Ensemble des QPV;99 999;35,0;;\n"
    # an exact repeat of the first values (a different value is refused: test_reliability_readers)
    "QN05920M;Verrerie (doublon);Quartier;1 234;41,5;7;\n"
    "QN05922M;Cité Thiers;Quartier;n/a;12;;\n"
    "XX;Inconnu;Planète;1;1;1;\n"
    "Note : données fictives;;;;;;\n"
)

MAPPING = """
fournisseur: caf_test
fichiers: ["caf_*.csv"]
millesime: 2023
territoire:
  code: Code
  libelle: Nom
  type: Type
  types: {Quartier: qpv}
ignorer: [Commentaire]
colonnes:
  Allocataires: {indicateur: allocataires_caf, unite: nombre}
  "part monoparentales":
    indicateur: part_familles_monoparentales
    unite: "%"
    millesime: 2022
  Colonne absente: allocataires_aah
"""


def test_csv_with_preamble_types_rejects_and_unmapped_columns(tmp_path):
    (tmp_path / "caf_2023.csv").write_text(CSV, encoding="utf-8")
    mapping = load_mapping(_write_mapping(tmp_path, MAPPING))
    table = read_local_table(tmp_path / "caf_2023.csv", mapping)
    v = table.values
    by = {(r.code_territoire, r.variable): r for r in v.itertuples()}

    assert by[("QN05920M", "Allocataires")].valeur == 1234.0
    assert by[("QN05920M", "Allocataires")].ligne == 5
    assert by[("QN05920M", "Part monoparentales")].valeur == 41.5
    assert by[("QN05920M", "Part monoparentales")].millesime == 2022  # column millésime
    assert by[("QN05920M", "Allocataires")].millesime == 2023
    assert by[("QN05921M", "Allocataires")].secret
    assert by[("59178", "Allocataires")].type_territoire == "commune"
    assert by[("01053", "Allocataires")].type_territoire == "commune"  # leading zero restored
    ensemble = by[("ENSEMBLE_QPV", "Allocataires")]
    assert ensemble.type_territoire == "ensemble_qpv" and ensemble.valeur == 99999.0
    # a column the mapping does not describe is kept, without indicator
    assert by[("QN05920M", "Colonne nouvelle")].indicateur is None
    assert "Colonne nouvelle" in table.report["colonnes_hors_mapping"]
    assert "Commentaire" not in set(v.variable)
    assert by[("QN05920M", "Allocataires")].libelle_territoire == "Verrerie"  # first kept

    motifs = list(table.rejects.motif)
    assert any("doublon" in m for m in motifs)
    assert any("non numérique" in m for m in motifs)  # n/a
    assert any("Planète" in m for m in motifs)
    assert table.rejects.valeur_brute.str.contains("Note", na=False).any()  # the note line
    assert any("absente du fichier" in m for m in motifs)  # mapped column missing
    assert (
        table.report["lignes_lues"]
        == table.report["lignes_chargees"] + table.report["lignes_rejetees"]
    )


def test_xlsx_percent_cells_moving_header_and_iris(tmp_path):
    book = Workbook()
    book.active.title = "Lisez-moi"
    book.active["A1"] = "Documentation de la livraison"
    book.active["A2"] = "Part 0-17 ans"  # a notes sheet quoting a column name is not a table
    book.active["B2"] = "part des moins de 18 ans"
    ws = book.create_sheet("Données 2021")
    ws["A1"] = "Titre"
    ws.append([])
    ws.append(["IRIS", "Part 0-17 ans", "Indice"])
    ws.append(["591780101", 0.254, 140])
    ws.append(["591780102", 0.3, 150])
    ws["B4"].number_format = "0.0%"
    ws["B5"].number_format = "0.0%"
    path = tmp_path / "ars_extrait.xlsx"
    book.save(path)
    mapping = load_mapping(
        _write_mapping(
            tmp_path,
            """
fournisseur: ARS
territoire: {code: IRIS, code_9_chiffres: iris}
colonnes:
  Part 0-17 ans: part_0_17
  Indice: {indicateur: indice_fragilite, facteur: 1}
""",
            "ars.mapping.yml",
        )
    )
    assert mapping.files() == [path]
    values = read_local_table(path, mapping).values
    assert set(values.type_territoire) == {"iris"} and set(values.millesime) == {2021}
    part = values[values.indicateur == "part_0_17"].set_index("code_territoire")
    assert part.loc["591780101", "valeur"] == pytest.approx(25.4)  # 0.254 shown as 25,4 %
    assert part.loc["591780101", "valeur_fichier"] == pytest.approx(0.254)
    assert part.loc["591780101", "facteur"] == 100
    assert set(values[values.indicateur == "indice_fragilite"].valeur) == {140.0, 150.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colonnes: {A: x}", "fournisseur"),
        ("fournisseur: X", "colonnes"),
        ("fournisseur: X\ncolones: {A: x}", "clé(s) inconnue(s)"),
        ("fournisseur: X\nmillesime: vingt\ncolonnes: {A: x}", "année"),
        ("fournisseur: X\ncolonnes: {A: {indicateur: x, facteur: cent}}", "facteur"),
        ("fournisseur: X\nterritoire: {types: {Q: planete}}\ncolonnes: {A: x}", "planete"),
        ("fournisseur: [", "illisible"),
    ],
)
def test_bad_mappings_are_refused_with_the_file_name(tmp_path, text, message):
    path = _write_mapping(tmp_path, text)
    with pytest.raises(IngestionError, match=re.escape(message)) as err:
        load_mapping(path)
    assert str(path) in str(err.value)


def test_mapping_checked_against_the_dictionary(tmp_path):
    mapping = load_mapping(
        _write_mapping(
            tmp_path,
            "fournisseur: X\ncolonnes:\n  A: pas_au_dictionnaire\n"
            "  B: {indicateur: taux_emploi, unite: euros}\n  C: {indicateur: indice_fragilite, "
            "unite: indice base 100}\n",
        )
    )
    problems = check_mapping(mapping, dictionary_units())
    assert len(problems) == 2
    assert "pas_au_dictionnaire" in problems[0] and "euros" in problems[1]


def test_header_or_millesime_not_found(tmp_path):
    (tmp_path / "x_sans_annee.csv").write_text("Code;Autre\nQN05920M;1\n", encoding="utf-8")
    mapping = load_mapping(
        _write_mapping(
            tmp_path, "fournisseur: X\ncolonnes: {Valeur: allocataires_caf}\n", "x.mapping.yml"
        )
    )
    with pytest.raises(IngestionError, match="en-têtes du mapping"):
        read_local_table(tmp_path / "x_sans_annee.csv", mapping)
    (tmp_path / "x_sans_annee.csv").write_text("Code;Valeur\nQN05920M;1\n", encoding="utf-8")
    with pytest.raises(IngestionError, match="millésime introuvable"):
        read_local_table(tmp_path / "x_sans_annee.csv", mapping)


def test_provider_folders_unmapped_files_are_reported(tmp_path, demo_compas):
    raw = tmp_path / "raw"
    shutil.copytree(demo_compas, raw / "compas")
    (raw / "indicateurs").mkdir()
    (raw / "indicateurs" / "france_travail_2023.csv").write_text("a;b\n1;2\n", encoding="utf-8")
    frame, rejects, logs = read_local_indicators(raw)
    assert set(frame.source) == {"COMPAS"} and len(frame) == 360
    statuts = {Path(x["fichier"]).name: x["statut"] for x in logs}
    assert statuts == {
        "COMPAS_indicateurs_DEMO_FICTIF.xlsx": "charge",
        "france_travail_2023.csv": "sans_mapping",
    }
    assert rejects.motif.str.contains("sans mapping").sum() == 1

    bad = raw / "compas" / "COMPAS_indicateurs.mapping.yml"
    bad.write_text(bad.read_text().replace("part_75_plus", "part_75_ans"), encoding="utf-8")
    with pytest.raises(IngestionError, match="part_75_ans"):
        read_local_indicators(raw)
