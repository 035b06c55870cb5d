"""INSEE-style files whose name names no base (issue 18, item 4).

An open extract of another region's QPV, named freely (``extrait_qpv_region.csv``), in one CSV
with ``,`` separator, decimal point and lower-case variable names, beside the 2015 contours
(``code_qp, nom_qp, commune_qp``): its variables are recognised by their names against the
whole dictionary, an ambiguous name (``a``: DEMO, IPRO, REVN) is reported with its candidate
bases, a file whose values reach no indicator is a warning, and the millésime comes from a
column or from a parameter file when the name has none.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import pytest

from pipelines.lib.assets import ReadContext
from pipelines.lib.tables import IngestionError
from pipelines.sources.insee.assets import read_insee
from pipelines.sources.insee.dictionary import AMBIGUOUS, NO_INDICATOR
from pipelines.sources.insee.reader import read_insee_file
from pipelines.warehouse.publication import summary
from tests.conftest import build_direct

# Four QPV 2015 of Bourg-en-Bresse (Ain) with their IPRO 2021 / 2022 values (real files,
# ../shared/data/insee_qpv2015), written as an open-data portal would: ',' and '.'.
QPV = {
    "QP001001": ("Grande Reyssouze Terre Des Fleurs", {2021: 43.3, 2022: 44.6}),
    "QP001002": ("Croix Blanche", {2021: 43.3, 2022: 42.7}),
    "QP001003": ("Quartier Jacques Prévert", {2021: 64.4, 2022: 64.4}),
    "QP001004": ("Levant - Tattes", {2021: 52.3, 2022: 52.3}),
}


def extract(path: Path, years=(2021, 2022), year_column: bool = True) -> Path:
    """The regional extract: IPRO variables (tx_tot_empl, abc), a DEMO one (pop_mun), an
    ambiguous one (a) and one outside the dictionary (indice_local)."""
    head = ["codgeo", "libgeo"] + (["annee"] if year_column else [])
    lines = [",".join([*head, "tx_tot_empl", "abc", "pop_mun", "a", "indice_local"])]
    for year in years:
        for n, (code, (label, taux)) in enumerate(QPV.items()):
            cells = [code, f'"{label}"'] + ([str(year)] if year_column else [])
            cells += [f"{taux[year]:.1f}", str(300 + n), "4210", str(100 + n), "1.5"]
            lines.append(",".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def no_indicator_file(path: Path) -> Path:
    """A file whose values reach no indicator: its variables are not in the dictionary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{code},{label},2022,{12 + n}" for n, (code, (label, _)) in enumerate(QPV.items())]
    path.write_text("codgeo,libgeo,annee,indice_maison\n" + "\n".join(rows) + "\n")
    return path


def contours_2015(path: Path) -> Path:
    """Small squares near Bourg-en-Bresse with the attributes of the 2015 layers."""
    features = []
    for n, (code, (label, _)) in enumerate(QPV.items()):
        x, y = 5.20 + 0.01 * n, 46.19
        ring = [[x, y], [x + 0.005, y], [x + 0.005, y + 0.005], [x, y + 0.005], [x, y]]
        features.append(
            {
                "type": "Feature",
                "properties": {"code_qp": code, "nom_qp": label, "commune_qp": "Bourg-en-Bresse"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def context(raw: Path) -> ReadContext:
    return ReadContext(raw, None, None, logging.getLogger("test"))


def by_variable(result, variable: str):
    return result.values[result.values.variable == variable]


# -- the reader ---------------------------------------------------------------------------------


def test_variables_recognised_by_name_and_millesime_by_column(tmp_path):
    result = read_insee_file(extract(tmp_path / "extrait_qpv_region.csv"))
    assert result.millesimes == [2021, 2022] and result.millesime is None
    assert set(by_variable(result, "TX_TOT_EMPL").source) == {"IPRO"}
    assert set(by_variable(result, "ABC").source) == {"IPRO"}
    assert set(by_variable(result, "POP_MUN").source) == {"DEMO"}
    # ambiguous and unknown names keep the file's own name, never a guessed base
    assert set(by_variable(result, "A").source) == {"EXTRAIT"}
    assert set(by_variable(result, "INDICE_LOCAL").source) == {"EXTRAIT"}
    assert "ANNEE" not in set(result.values.variable)  # the millésime column is no variable
    taux = by_variable(result, "TX_TOT_EMPL").set_index(["code_territoire", "millesime"]).valeur
    assert taux.to_dict() == {(c, y): t for c, (_, ts) in QPV.items() for y, t in ts.items()}
    assert result.report["variables_reconnues"] == {
        "ABC": "IPRO",
        "POP_MUN": "DEMO",
        "TX_TOT_EMPL": "IPRO",
    }
    [ambiguous] = result.anomalies.to_dict("records")
    assert ambiguous["type"] == AMBIGUOUS and ambiguous["colonne"] == "a"
    assert ambiguous["valeur_brute"] == "DEMO, IPRO, REVN"
    assert "plusieurs bases INSEE (DEMO, IPRO, REVN)" in ambiguous["message"]
    # the example given is the base of the file's other variables (IPRO), with its millésime
    assert "(ex. IPRO_2022.csv)" in ambiguous["message"]
    assert "extrait_qpv_region.yml à côté du fichier (base: IPRO)" in ambiguous["message"]
    assert result.report["lignes_lues"] == 8 == result.report["lignes_chargees"]


def test_a_file_named_after_its_base_is_not_guessed(tmp_path):
    result = read_insee_file(extract(tmp_path / "IPRO_qpv.csv"))
    assert set(result.values.source) == {"IPRO"}  # A is IPRO's demandeurs_emploi_a here
    assert result.anomalies.empty


def test_unreadable_millesime_cell_rejects_its_row(tmp_path):
    path = tmp_path / "extrait.csv"
    path.write_text("codgeo,annee,tx_tot_empl\nQP001001,2022,44.6\nQP001002,2022,42.7\n")
    assert read_insee_file(path).millesimes == [2022]
    path.write_text("codgeo,annee,tx_tot_empl\nQP001001,2022,44.6\nQP001002,,42.7\n")
    result = read_insee_file(path)
    [reject] = result.rejects.to_dict("records")
    assert reject["ligne"] == 3 and reject["colonne"] == "annee" and "millésime" in reject["motif"]
    assert result.report["lignes_lues"] == 2 and result.report["lignes_rejetees"] == 1


def test_no_millesime_anywhere_says_the_three_ways(tmp_path):
    path = extract(tmp_path / "extrait_qpv_region.csv", years=(2022,), year_column=False)
    with pytest.raises(IngestionError, match="millésime introuvable") as err:
        read_insee_file(path)
    assert "colonne « millesime »" in str(err.value) and "extrait_qpv_region.yml" in str(err.value)


def test_file_reaching_no_indicator_is_an_anomaly(tmp_path):
    result = read_insee_file(no_indicator_file(tmp_path / "indicateurs_maison.csv"))
    assert len(result.values) == 8  # the values are kept
    [warning] = result.anomalies.to_dict("records")
    assert warning["type"] == NO_INDICATOR and warning["valeur_brute"] == "INDICE_MAISON"
    assert "aucune valeur n'atteint un indicateur" in warning["message"]
    # variables recognised, but not for the file's millésime (C2S split in 2022): said so
    path = tmp_path / "extrait_cnam.csv"
    path.write_text("codgeo,annee,cc2s\nQP001001,2023,120\n")
    [warning] = read_insee_file(path).anomalies.to_dict("records")
    assert "reconnues (CC2S) n'y sont pas pour le millésime 2023" in warning["message"]
    # a file named after a base, but whose variables are all unknown, is said too
    path = tmp_path / "IPRO_2030.csv"
    path.write_text("CODGEO;X_NOUVELLE\nQP001001;12\n")
    [warning] = read_insee_file(path).anomalies.to_dict("records")
    assert warning["type"] == NO_INDICATOR
    assert "base IPRO et le millésime 2030" in warning["message"]


# -- the ingestion asset: parameters, logs, several files ---------------------------------------


def test_parameter_file_gives_millesime_and_base(tmp_path):
    insee = tmp_path / "insee"
    extract(insee / "extrait_qpv_region.csv", years=(2022,), year_column=False)
    (insee / "extrait_qpv_region.yml").write_text("millesime: 2022\nbase: ipro\n")
    got = read_insee(context(tmp_path))
    assert set(got.rows.millesime) == {2022}
    assert set(got.rows.source) == {"IPRO"}  # the parameter names the base: nothing guessed
    assert got.anomalies is None
    [log] = [x for x in got.logs if x["fichier"].endswith(".csv")]
    assert "paramètres extrait_qpv_region.yml" in log["message"]
    assert not [x for x in got.logs if x["statut"] == "non_lu"]  # the .yml is not "unread"


def test_parameter_file_alone_or_invalid(tmp_path):
    insee = tmp_path / "insee"
    insee.mkdir()
    (insee / "orphelin.yml").write_text("millesime: 2022\n")
    [log] = read_insee(context(tmp_path)).logs
    assert log["statut"] == "non_lu" and "sans fichier de données" in log["message"]
    extract(insee / "extrait.csv", years=(2022,), year_column=False)
    (insee / "extrait.yml").write_text("annee: 2022\n")
    with pytest.raises(IngestionError, match=r"extrait\.yml: clé inconnue « annee »"):
        read_insee(context(tmp_path))


def test_free_extract_beside_the_national_base_is_refused(tmp_path):
    insee = tmp_path / "insee"
    extract(insee / "extrait_qpv_region.csv")
    (insee / "IPRO_2022.csv").write_text("CODGEO;TX_TOT_EMPL\nQP001001;44,6\n")
    with pytest.raises(IngestionError, match="TX_TOT_EMPL de la base IPRO, millésime 2022") as err:
        read_insee(context(tmp_path))
    assert "IPRO_2022.csv" in str(err.value) and "extrait_qpv_region.csv" in str(err.value)


def test_log_says_how_a_free_file_was_read(tmp_path):
    extract(tmp_path / "insee" / "extrait_qpv_region.csv")
    got = read_insee(context(tmp_path))
    [log] = got.logs
    assert "base non nommée : variables reconnues par leur nom (DEMO 1, IPRO 2)" in log["message"]
    assert "ambiguës : A" in log["message"] and "millésimes 2021, 2022" in log["message"]
    assert list(got.anomalies.type) == [AMBIGUOUS]


# -- a build on such inputs only (tests/conftest.py build_direct) ------------------------------


@pytest.fixture(scope="module")
def free_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("insee_libre")
    raw = root / "raw"
    extract(raw / "insee" / "extrait_qpv_region.csv")
    no_indicator_file(raw / "insee" / "indicateurs_maison.csv")
    contours_2015(raw / "sig_ville" / "qp_2015_region.geojson")
    # the marts asserted below, and the référentiels the build summary reads
    marts = ("dim_qpv", "taux_emploi_quartier", "ref_orientations", "ref_regles_financement")
    warehouse = build_direct(raw, root, *marts)
    con = duckdb.connect(str(warehouse), read_only=True)
    yield con, summary(warehouse, {})  # what a build prints from that warehouse
    con.close()


@pytest.mark.scenario
def test_build_dim_qpv_is_exactly_the_files_qpv(free_build):
    con, _ = free_build
    rows = con.execute("select code_qpv, libelle_qpv from marts.dim_qpv order by 1").fetchall()
    assert rows == [(code, label) for code, (label, _) in QPV.items()]


@pytest.mark.scenario
def test_build_taux_emploi_from_the_free_extract(free_build):
    con, _ = free_build
    got = con.execute(
        "select code_qpv, millesime, taux_emploi, source_taux_emploi "
        "from marts.taux_emploi_quartier"
    ).fetchall()
    expected = {(c, y): t for c, (_, ts) in QPV.items() for y, t in ts.items()}
    assert {(c, y): t for c, y, t, _ in got} == expected
    assert {s for *_, s in got} == {"IPRO.TX_TOT_EMPL"}


@pytest.mark.scenario
def test_build_reports_ambiguous_variable_and_file_without_indicator(free_build):
    con, stdout = free_build
    anomalies = con.execute(
        "select type, regexp_extract(fichier, '[^/]+$'), colonne, valeur_brute "
        "from raw.anomalies where source = 'insee' order by 1"
    ).fetchall()
    assert anomalies == [
        (NO_INDICATOR, "indicateurs_maison.csv", None, "INDICE_MAISON"),
        (AMBIGUOUS, "extrait_qpv_region.csv", "a", "DEMO, IPRO, REVN"),
    ]
    assert "aucune valeur n'atteint un indicateur" in stdout
    [line] = [x for x in stdout.splitlines() if NO_INDICATOR in x]
    assert line.startswith("Avertissement") and "indicateurs_maison.csv" in line
    [line] = [x for x in stdout.splitlines() if AMBIGUOUS in x]
    assert "extrait_qpv_region.csv" in line
