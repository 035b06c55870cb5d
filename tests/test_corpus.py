"""The corpus of broken files: each gives a clear message (file, row, column), nothing else lost."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipelines.lib.tables import IngestionError
from pipelines.sources.insee.reader import read_insee_file
from pipelines.sources.programmations import parse_programmations
from pipelines.sources.sig_ville.reader import read_contours

CORPUS = Path(__file__).with_name("corpus")
TESTS = Path(__file__).parent


def _table_rows(section: str) -> list[list[str]]:
    """The cells of the rows of the Markdown table under ``## <section>`` of the README
    (header and separator left out; ``\\|`` inside a cell is no separator)."""
    text = (CORPUS / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def test_every_corpus_file_is_in_the_table():
    """The corpus and its README cannot drift: every entry of tests/corpus/ is in the table of
    its files, every file of the table exists, and every test either table names exists."""
    rows = _table_rows("Fichiers du corpus")
    assert rows and all(len(r) == 4 for r in rows)
    listed = [name for r in rows for name in re.findall(r"`([^`]+)`", r[0])]
    missing = [n for n in listed if not os.path.lexists(CORPUS / n.rstrip("/"))]
    assert missing == [], f"dans le tableau, absents du corpus : {missing}"
    tops = {n.rstrip("/").split("/")[0] for n in listed}
    entries = {p.name for p in CORPUS.iterdir()} - {"README.md"}
    assert sorted(entries - tops) == [], "fichiers du corpus absents du tableau"
    assert len(listed) == len(set(listed)), "un fichier a deux lignes"
    fabricated = _table_rows("Cas de l'issue fabriqués par leur test (et pourquoi)")
    named = {t for r in rows + fabricated for t in re.findall(r"`(test_\w+\.py::test_\w+)`", r[-1])}
    assert len(named) > 40
    unknown = [
        t
        for t in sorted(named)
        if f"def {t.split('::')[1]}(" not in (TESTS / t.split("::")[0]).read_text("utf-8")
    ]
    assert unknown == [], f"tests nommés par le README introuvables : {unknown}"
    assert all(r[-1] for r in rows), "une ligne sans test"


@pytest.mark.parametrize(
    "name, message",
    [
        ("IPRO_2022_latin1.csv", r"IPRO_2022_latin1\.csv: ligne 3: encodage non UTF-8"),
        ("REVN_2022_vide.csv", r"REVN_2022_vide\.csv: fichier vide"),
        ("IPRO_2023_illisible.xlsx", r"IPRO_2023_illisible\.xlsx: classeur illisible"),
    ],
)
def test_unreadable_files_refused_with_file_and_line(name, message):
    with pytest.raises(IngestionError, match=message):
        read_insee_file(CORPUS / name)


def test_truncated_file_rejects_only_the_cut_line():
    result = read_insee_file(CORPUS / "IPRO_2022_tronque.csv")
    assert result.report["lignes_lues"] == 3
    assert result.report["lignes_chargees"] == 2 and result.report["lignes_rejetees"] == 1
    reject = result.rejects.iloc[0]
    assert (
        reject.ligne == 4
        and "tronquée" in reject.motif
        and reject.fichier.endswith("IPRO_2022_tronque.csv")
    )
    values = result.values.set_index(["code_territoire", "variable"]).valeur
    assert values[("QP059020", "ABCDE")] == 1075 and values[("QP059021", "TX_TOT_EMPL")] == 42.2


def test_unknown_variable_kept_bad_code_and_bad_value_rejected():
    result = read_insee_file(CORPUS / "DEMO_2031_inconnus.csv")
    values = result.values.set_index(["code_territoire", "variable"]).valeur
    assert values[("QP059020", "NOUVELLE_VARIABLE_2031")] == 12.5  # never seen: kept
    assert values[("QP059022", "NOUVELLE_VARIABLE_2031")] == 4  # the rest of the row kept
    rejects = result.rejects.sort_values("ligne").to_dict("records")
    assert [(r["ligne"], r["colonne"], r["valeur_brute"]) for r in rejects] == [
        (3, "CODGEO", "Q059021"),
        (4, "POP_MUN", "abc"),
    ]
    assert result.report["lignes_lues"] == 3 and result.report["lignes_chargees"] == 2


def test_unparseable_amount_rejected_with_line_and_column():
    result = parse_programmations([CORPUS / "VM_programmation_2026_montant_illisible.csv"])
    assert sorted(result.rows.dossier) == ["2026-001", "2026-003"]
    assert result.rows.montant_accorde.sum() == 14000
    reject = result.rejects.iloc[0]
    assert reject.ligne == 3 and reject.colonne == "Montant demandé"
    assert reject.valeur_brute == "douze mille"
    assert result.files[0]["lignes_lues"] == 3
    assert result.files[0]["lignes_chargees"] + result.files[0]["lignes_rejetees"] == 3


def test_unrepairable_geometry_rejected_others_loaded():
    result = read_contours(CORPUS / "contours_geometrie_irreparable.geojson")
    assert sorted(result.qpv.code_qpv) == ["QN05920M", "QN05922M"]
    assert result.qpv.geometry.is_valid.all()
    assert bool(result.qpv.set_index("code_qpv").geometrie_reparee["QN05922M"])
    reject = result.rejects.iloc[0]
    assert reject.ligne == 2 and "QN05921M" in str(reject.valeur_brute) + str(reject.motif)


def test_unknown_qpv_code_reported_with_file_line_column_and_row_kept():
    from pipelines.sources.bilans import parse_bilans
    from pipelines.sources.territoires.examples import referentiel_rows

    # the perimeters of the example territory folders (no raw reference loaded)
    known = {r["code_qpv"] for r in referentiel_rows("ref_perimetre_qpv.csv")}
    prog = parse_programmations([CORPUS / "VM_programmation_2027_qpv_inconnu.csv"], known_qpv=known)
    assert sorted(prog.rows.dossier) == ["2027-001", "2027-002", "2027-003", "2027-004"]
    assert prog.rejects.empty  # nothing lost: the lines are kept, and reported
    found = prog.anomalies[prog.anomalies.type == "qpv_inconnu"].to_dict("records")
    assert [(a["ligne"], a["colonne"], a["valeur_brute"]) for a in found] == [
        (3, "Quartier(s) concerné(s)", "QN05999M - Quartier inexistant"),
        (4, "Quartier(s) concerné(s)", "QN05922M, QP059999"),  # only QP059999 is unknown
    ]
    assert found[0]["message"].startswith(
        "VM_programmation_2027_qpv_inconnu.csv, ligne 3, colonne « Quartier(s) concerné(s) »: "
        "code QPV inconnu « QN05999M »"
    )
    assert "« QP059999 »" in found[1]["message"] and "QN05922M »" not in found[1]["message"]

    bilans = parse_bilans([CORPUS / "VM_bilans_2027_qpv_inconnu.csv"], known_qpv=known)
    assert len(bilans.rows) == 3 and bilans.rejects.empty
    [anomaly] = bilans.anomalies.to_dict("records")
    assert (anomaly["type"], anomaly["ligne"], anomaly["colonne"]) == (
        "qpv_inconnu",
        3,
        "QPV de résidence",
    )
    assert "VM_bilans_2027_qpv_inconnu.csv, ligne 3" in anomaly["message"]
    # without a reference set, nothing is reported (the parsers stay usable alone)
    assert parse_bilans([CORPUS / "VM_bilans_2027_qpv_inconnu.csv"]).anomalies.empty


def test_programmation_workbook_with_a_stale_dimension_tag_loads_every_action():
    """The sheet's <dimension> tag says A1:AE6 (openpyxl alone would stop at row 6: 5 actions);
    the 40 actions written are all loaded, with their amounts."""
    from openpyxl import load_workbook

    path = CORPUS / "VM_programmation_2027_dimension_perimee.xlsx"
    workbook = load_workbook(path, read_only=True)
    assert workbook.active.max_row == 6  # what the tag announces
    workbook.close()
    result = parse_programmations([path])
    assert len(result.rows) == 40 and result.rejects.empty
    assert sorted(result.rows.dossier) == [f"2027-{k:03d}" for k in range(1, 41)]
    # 1,000 € x k granted and 1,000 € x k + 500 € requested for action k = 1..40
    assert result.rows.montant_accorde.sum() == sum(1000 * k for k in range(1, 41)) == 820_000
    assert result.rows.montant_demande.sum() == 840_000
    assert result.files[0]["lignes_lues"] == result.files[0]["lignes_chargees"] == 40


@pytest.mark.parametrize(
    "name",
    [
        "VM_bilans_2027_dimension_perimee.xlsx",
        "ref_valeurs_dimension_perimee.xlsx",
        "caf_2023_dimension_perimee.xlsx",
    ],
)
def test_other_xlsx_readers_read_every_row_whatever_the_dimension_tag(name):
    """Bilans (tag A1:E3, 20 actions: k women, 1 man, total k + 1 for k = 1..20), reference
    values (tag A1:C2, 10 communes 59001..59010 at 50 + k) and a local indicator table (tag
    A1:C2, 10 QPV QN05920M..QN05929M with 100 x k allocataires for k = 20..29): every row."""
    from pipelines.sources.bilans import parse_bilans
    from pipelines.sources.indicateurs.mapping import load_mapping
    from pipelines.sources.indicateurs.reader import read_local_table
    from pipelines.sources.referentiels.reader import read_reference_file

    path = CORPUS / name
    if name.startswith("VM_bilans"):
        result = parse_bilans([path])
        assert len(result.rows) == 20 and result.rejects.empty and result.anomalies.empty
        assert result.rows.femmes.sum() == sum(range(1, 21)) == 210
        assert result.rows.total_beneficiaires.sum() == 230
        assert list(result.rows.source_ligne) == list(range(2, 22))
    elif name.startswith("ref_"):
        result = read_reference_file(path)
        assert result.report == {"lignes_lues": 10, "lignes_chargees": 10, "lignes_rejetees": 0}
        assert dict(zip(result.rows.territoire_code, result.rows.valeur, strict=True)) == {
            f"59{k:03d}": 50 + k for k in range(1, 11)
        }
    else:
        table = read_local_table(path, load_mapping(CORPUS / "caf.mapping.yml"))
        allocataires = table.values[table.values.indicateur == "allocataires_caf"]
        assert table.rejects.empty
        assert dict(zip(allocataires.code_territoire, allocataires.valeur, strict=True)) == {
            f"QN059{k:02d}M": 100 * k for k in range(20, 30)
        }


# -- through the ingestion asset: what a build does with the same files ---------------------------


def test_refused_raw_folder_fails_the_asset_naming_both_files(tmp_path):
    """brut_millesime_double/insee holds IPRO_2022.csv and IPRO_2022_v2.csv: the build's INSEE
    step fails (a build exits 1) naming both files, and loads nothing."""
    from pipelines.sources.insee.assets import insee_valeurs
    from tests.conftest import failure_of, materialize_direct

    warehouse = tmp_path / "warehouse.duckdb"
    result = materialize_direct(
        [insee_valeurs], CORPUS / "brut_millesime_double", warehouse, raise_on_error=False
    )
    assert not result.success
    message = failure_of(result)
    assert "IPRO_2022_v2.csv: même base IPRO et même millésime 2022 que" in message
    assert "brut_millesime_double/insee/IPRO_2022.csv" in message
    assert not warehouse.exists()  # nothing loaded: the warehouse is not even created


def test_files_not_read_reach_the_ingestion_log(tmp_path):
    """brut_non_lus/insee: the one CSV is loaded into raw.insee_valeurs; the .xls and the PDF
    are in raw.ingestion_log with the reason; hidden and lock files are not."""
    import duckdb

    from pipelines.sources.insee.assets import insee_valeurs
    from tests.conftest import materialize_direct

    warehouse = tmp_path / "warehouse.duckdb"
    assert materialize_direct([insee_valeurs], CORPUS / "brut_non_lus", warehouse).success
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        values = con.execute(
            "select code_territoire, variable, valeur from raw.insee_valeurs"
        ).fetchall()
        log = con.execute(
            "select fichier, statut, message from raw.ingestion_log where source = 'insee' "
            "order by fichier"
        ).fetchall()
    finally:
        con.close()
    assert values == [("QN05920M", "TX", 40)]
    by_name = {Path(f).name: (statut, message) for f, statut, message in log}
    assert set(by_name) == {"IPRO_2022.csv", "DEMO_2022.xls", "notice.pdf"}
    assert by_name["DEMO_2022.xls"] == (
        "non_lu",
        "format .xls (Excel 97-2003) non lu : enregistrer en .xlsx ou .csv",
    )
    assert by_name["IPRO_2022.csv"][0] == "charge"


def test_lower_case_territory_prefix_attaches_the_lines_to_the_territory():
    """vm_programmation_2028_prefixe_minuscule.csv: no « Territoire » column, a lower-case
    prefix (once a dbt not_null failure naming no file): its two lines go to VM, the territory
    folder's code, whatever the prefix's case; a prefix no territory has stops the build naming
    the file and its first line."""
    from pipelines.lib.tables import IngestionError
    from pipelines.sources.territoires.attach import TerritoryIndex, attach_territories

    result = parse_programmations([CORPUS / "vm_programmation_2028_prefixe_minuscule.csv"])
    assert result.rejects.empty and result.rows.territoire.isna().all()
    index = TerritoryIndex(declared={"VM": "VM"})
    attached = attach_territories(result.rows, index)
    assert list(attached.territoire) == ["VM", "VM"]
    assert attached.montant_accorde.sum() == 1300
    with pytest.raises(
        IngestionError,
        match=r"^vm_programmation_2028_prefixe_minuscule\.csv, ligne 2: territoire « vm » inconnu"
        r" \(2 ligne\(s\)\)",
    ):
        attach_territories(result.rows, TerritoryIndex(declared={"CAMVS": "CAMVS"}))


def test_polygon_outside_the_surface_projection_rejected_not_crashing():
    """A QPV of the Nord (surfaces in Lambert-93) whose polygon has a corner on the South Pole:
    it has no finite Lambert-93 area or centroid. It once crashed the reader with
    « GEOSException: getX called on empty Point », naming no file (found by the fuzz test);
    it is rejected with its line and the projection, the other QPV loaded and measured."""
    import math

    result = read_contours(CORPUS / "contours_hors_projection.geojson")
    assert list(result.qpv.code_qpv) == ["QN05921M"]
    surface = result.qpv.surface_km2.iloc[0]
    # 0.01° x 0.01° at 50.27° N: about 1.112 km x 0.711 km = 0.79 km²
    assert 0.78 < surface < 0.80 and math.isfinite(result.qpv.centroide_lon.iloc[0])
    [reject] = result.rejects.to_dict("records")
    assert (reject["fichier"], reject["ligne"], reject["colonne"]) == (
        "contours_hors_projection.geojson",
        1,
        "geometry",
    )
    assert reject["motif"] == (
        "QN05920M : coordonnées hors du domaine de la projection EPSG:2154 (surface incalculable)"
    )


def test_unknown_indicators_fail_the_blocking_check_naming_file_and_lines(tmp_path):
    """brut_indicateurs_inconnus/referentiels/valeurs_reference.csv: two indicators the
    dictionary does not know (lines 3 and 4). The reader loads them as written; dbt's blocking
    check on stg_references__valeurs fails (once only its dbt test name,
    relationships_stg_references__valeurs…), and what the CLI prints says in French which file,
    lines and values. Only the seed and the staging view are built (about 20 s of CPU)."""
    import duckdb

    from pipelines.settings import Paths
    from pipelines.sources.referentiels.assets import valeurs_reference
    from pipelines.warehouse.dbt import BUILD_ARGS
    from pipelines.warehouse.failures import explain_test_failures
    from tests.conftest import materialize_direct, run_dbt

    raw = CORPUS / "brut_indicateurs_inconnus"
    paths = Paths(raw, tmp_path / "warehouse.duckdb", tmp_path / "marts").resolved()
    paths.staging_dir.mkdir(parents=True)
    assert materialize_direct([valeurs_reference], raw, paths.staging_warehouse).success
    con = duckdb.connect(str(paths.staging_warehouse), read_only=True)
    loaded = con.execute("select indicateur from raw.valeurs_reference order by ligne").fetchall()
    con.close()
    assert loaded == [("taux_emploi",), ("taux_chomage_inconnu",), ("indicateur_fantome",)]
    selection = ["--select", "ref_indicateurs", "stg_references__valeurs"]
    done = run_dbt(
        paths.staging_warehouse,
        paths.staging_dir / "dbt",
        *BUILD_ARGS,
        *selection,
        "--indirect-selection",
        "cautious",
    )
    assert done.returncode == 1, done.stdout[-3000:]
    [line] = explain_test_failures(paths)
    assert line.startswith(
        "stg_references__valeurs: « indicateur » absent de ref_indicateurs (colonne indicateur)"
        " — indicateur inconnu du dictionnaire ref_indicateurs"
    )
    assert line.endswith(
        "(2 ligne(s)): referentiels/valeurs_reference.csv lignes 3, 4 (« taux_chomage_inconnu »,"
        " « indicateur_fantome »)"
    )
    assert "relationships_" not in line
