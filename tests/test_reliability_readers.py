"""Broken and hostile inputs of the readers of pipelines/lib and of the insee, indicateurs,
sig_ville, referentiels and lieux sources (issue 16): every case is refused or rejected with the
file, line and column, never loaded shifted, picked silently or crashing without a name."""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from openpyxl import Workbook

from pipelines.lib import tables
from pipelines.lib.assets import ReadContext
from pipelines.lib.files import FileNameError, list_files, unread_files
from pipelines.lib.raw_schemas import unread_logs
from pipelines.lib.tables import IngestionError, read_tables
from pipelines.sources.insee.assets import read_insee
from pipelines.sources.insee.reader import read_insee_file
from pipelines.sources.referentiels.assets import read_references
from pipelines.sources.referentiels.reader import read_reference_file

CORPUS = Path(__file__).with_name("corpus")
HEADER = ["CODGEO", "LIBGEO", "TX_TOT_EMPL", "TX_EMPL_F"]


def context(raw: Path) -> ReadContext:
    return ReadContext(raw, None, None, logging.getLogger("test"))


def write_csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- XLSX: the real cells, whatever the <dimension> tag says ----------------------------------


def workbook_with_dimension(path: Path, rows: list[list], ref: str | None) -> Path:
    """A workbook written by openpyxl whose sheet's <dimension> tag is then replaced by ``ref``
    (a stale or absurd tag, as some exporters write)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Données"
    for row in rows:
        ws.append(row)
    built = path.with_suffix(".tmp.xlsx")
    wb.save(built)
    with zipfile.ZipFile(built) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml" and ref is not None:
                text = data.decode("utf-8")
                text, n = re.subn(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{ref}"/>', text)
                assert n == 1
                data = text.encode("utf-8")
            dst.writestr(item, data)
    built.unlink()
    return path


def insee_rows(n: int) -> list[list]:
    return [HEADER] + [
        [f"QN059{k:02d}M", f"Quartier {k}", 40 + k / 10, 30 + k / 10] for k in range(n)
    ]


@pytest.mark.parametrize(
    "name, ref",
    [("perimee", "A1:AE6"), ("A1", "A1"), ("absurde", "A1:XFD1048576"), ("decalee", "B3:C4")],
)
def test_xlsx_reads_every_real_row_whatever_the_dimension_tag(name, ref):
    """The corpus workbooks IPRO_2022_dimension_*.xlsx: 40 QPV rows written by openpyxl, the
    sheet's <dimension> tag then replaced by ``ref`` (workbook_with_dimension)."""
    path = CORPUS / f"IPRO_2022_dimension_{name}.xlsx"
    with zipfile.ZipFile(path) as archive:  # the tag the file announces
        sheet = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert f'<dimension ref="{ref}"/>' in sheet
    result = read_insee_file(path)
    assert result.report["lignes_lues"] == 40 and result.report["lignes_chargees"] == 40
    taux = result.values[result.values.variable == "TX_TOT_EMPL"]
    assert len(taux) == 40 and taux.valeur.sum() == pytest.approx(
        sum(40 + k / 10 for k in range(40))
    )
    row = taux[taux.code_territoire == "QN05939M"].iloc[0]
    assert row.ligne == 41 and row.valeur == pytest.approx(43.9)


def test_xlsx_absurd_dimension_does_not_pad_rows(tmp_path):
    """A 6 KB workbook announcing A1:XFD1048576 (17 billion cells) is read as its real cells:
    41 rows of 4 cells, nothing padded (the issue's one drove memory past 4 GiB)."""
    path = CORPUS / "IPRO_2022_dimension_absurde.xlsx"
    assert path.stat().st_size < 10_000
    [table] = read_tables(path, lambda rows, k: 1 if k == 0 else None, 5)
    assert [r.cells for r in table.rows[:2]] == [HEADER, ["QN05900M", "Quartier 0", 40, 30]]
    assert len(table.rows) == 41 and {len(r.cells) for r in table.rows} == {4}


def test_xlsx_too_many_cells_is_refused_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "MAX_XLSX_CELLS", 100)
    path = workbook_with_dimension(tmp_path / "IPRO_2022.xlsx", insee_rows(40), None)
    with pytest.raises(IngestionError, match=r"IPRO_2022\.xlsx \[Données\]: classeur trop grand"):
        read_insee_file(path)


def test_xlsx_shared_strings_bomb_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "MAX_SHARED_STRINGS_BYTES", 1000)
    path = workbook_with_dimension(tmp_path / "IPRO_2022.xlsx", insee_rows(3), None)
    with zipfile.ZipFile(path, "a") as archive:  # 2 KB of text once decompressed
        archive.writestr("xl/sharedStrings.xml", "<sst>" + "x" * 2000 + "</sst>")
    with pytest.raises(IngestionError, match=r"IPRO_2022\.xlsx: classeur trop grand"):
        read_insee_file(path)


def test_csv_too_large_for_the_memory_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr(tables, "available_memory", lambda: 100 * 2**20)
    with pytest.raises(
        IngestionError,
        match=r"IPRO_2022_tronque\.csv: fichier trop grand pour la mémoire disponible .* 0\.1 Go",
    ):
        read_insee_file(CORPUS / "IPRO_2022_tronque.csv")


def test_available_memory_is_known_here():
    free = tables.available_memory()
    assert free is None or free > 0


# -- CSV rows of the wrong field count ---------------------------------------------------------


def test_insee_row_with_extra_field_is_rejected_not_shifted():
    result = read_insee_file(CORPUS / "IPRO_2022_champs_en_trop.csv")
    assert result.report["lignes_lues"] == 3
    assert result.report["lignes_chargees"] == 2 and result.report["lignes_rejetees"] == 1
    reject = result.rejects.iloc[0]
    assert reject.ligne == 3 and reject.fichier.endswith("IPRO_2022_champs_en_trop.csv")
    assert "6 champs au lieu de 5" in reject.motif and "champs en trop" in reject.motif
    assert "QN05921M" not in set(result.values.code_territoire)
    femmes = result.values[result.values.variable == "TX_EMPL_F"]
    assert sorted(femmes.valeur) == [36.0, 38.5]
    # the rejected row's extra field makes no column of its own (no COLONNE_6 variable)
    assert set(result.values.variable) == {"LIBGEO", "TX_TOT_EMPL", "TX_EMPL_F", "TX_EMPL_H"}


def test_field_count_rejects_in_reference_values_and_list():
    result = read_reference_file(CORPUS / "ref_valeurs_champs_en_trop.csv")
    assert list(result.rows.indicateur) == ["taux_emploi"]
    motifs = dict(zip(result.rejects.ligne, result.rejects.motif, strict=True))
    assert "4 champs au lieu de 3" in motifs[3] and "2 champs au lieu de 3" in motifs[4]
    assert result.report == {"lignes_lues": 3, "lignes_chargees": 1, "lignes_rejetees": 2}

    from pipelines.sources.sig_ville.reader import read_liste_qpv

    frame = read_liste_qpv(CORPUS / "listeqp2024_champs_en_trop.csv")
    assert list(frame.code_qpv) == ["QN05920M"]
    rejects = frame.attrs["rejets"]
    assert list(rejects.ligne) == [3] and "5 champs au lieu de 4" in rejects.motif.iloc[0]


def test_field_count_rejects_in_local_indicator_tables():
    from pipelines.sources.indicateurs.mapping import load_mapping
    from pipelines.sources.indicateurs.reader import read_local_table

    data = CORPUS / "caf_2023_champs_en_trop.csv"
    table = read_local_table(data, load_mapping(CORPUS / "caf.mapping.yml"))
    assert sorted(set(table.values.code_territoire)) == ["QN05920M", "QN05922M"]
    mapped = table.values[table.values.indicateur == "allocataires_caf"]
    allocataires = mapped.set_index("code_territoire").valeur
    assert (allocataires["QN05920M"], allocataires["QN05922M"]) == (10, 12)
    reject = table.rejects[table.rejects.ligne == 3].iloc[0]
    assert "4 champs au lieu de 3" in reject.motif
    assert str(reject.fichier).endswith("caf_2023_champs_en_trop.csv")
    assert set(table.values.variable) == {"Allocataires", "Part"}  # no COLONNE_4


def test_places_file_with_wrong_field_count_is_refused_naming_the_lines():
    from geo.points import PointsError
    from pipelines.sources.lieux.reader import read_points

    with pytest.raises(PointsError) as err:
        read_points(duckdb.connect(), CORPUS / "lieux_champs_en_trop.csv")
    message = str(err.value)
    assert message.startswith(
        "lieux_champs_en_trop.csv: ligne 3 : 4 champs au lieu de 3 ; ligne 4 : 2 champs"
    )
    assert "(2 lignes en tout)" in message


def test_places_file_separator_is_the_librarys(tmp_path):
    from pipelines.sources.lieux.reader import read_points

    path = write_csv(tmp_path / "lieux.csv", ["id;lon;lat", "1;2,35;48,85", "2;2,36;48,86"])
    source = read_points(duckdb.connect(), path)
    assert (source.x, source.y, source.identifiant) == ("lon", "lat", "id")


# -- a second column with the same header --------------------------------------------------------


def test_duplicate_header_refused_naming_file_and_positions():
    with pytest.raises(IngestionError, match=r"IPRO_2022_colonne_double\.csv: colonnes 3 et 4"):
        read_insee_file(CORPUS / "IPRO_2022_colonne_double.csv")
    with pytest.raises(
        IngestionError, match=r"ref_valeurs_colonne_double\.csv: colonnes 3 et 4 de même en-tête"
    ):
        read_reference_file(CORPUS / "ref_valeurs_colonne_double.csv")


def test_duplicate_header_in_xlsx_names_the_sheet():
    """Headers TX_TOT_EMPL and « tx_tot_empl  » (case and spaces aside, the same)."""
    with pytest.raises(
        IngestionError, match=r"IPRO_2022_colonne_double\.xlsx \[Données\]: colonnes 3 et 5"
    ):
        read_insee_file(CORPUS / "IPRO_2022_colonne_double.xlsx")


def test_duplicate_header_with_a_line_break_is_named_on_one_line():
    """Header cells typed with Alt+Entrée (« Montant⏎demandé ») twice: the message, printed by
    the CLI as its first line, holds the header on one line (found by the XLSX fuzz test)."""
    with pytest.raises(IngestionError) as err:
        tables.check_unique_header(["Code", "Montant\ndemandé", "Montant\ndemandé"], str, "f.xlsx")
    assert str(err.value).startswith("f.xlsx: colonnes 2 et 3 de même en-tête « Montant demandé »")
    assert "\n" not in str(err.value)


# -- competing inputs, never a silent pick ------------------------------------------------------


def test_two_rows_for_one_qpv_with_different_values_are_refused():
    with pytest.raises(
        IngestionError,
        match=r"IPRO_2022_qpv_en_double\.csv: QN05920M a deux lignes aux valeurs différentes :"
        r" ligne 2 et ligne 4",
    ):
        read_insee_file(CORPUS / "IPRO_2022_qpv_en_double.csv")


def test_an_exact_repeated_row_is_rejected_as_duplicate():
    result = read_insee_file(CORPUS / "IPRO_2022_ligne_repetee.csv")
    taux = result.values[result.values.variable == "TX"]
    assert list(taux.valeur) == [40.0] and list(taux.ligne) == [2]
    assert result.rejects.iloc[0].ligne == 3 and "doublon" in result.rejects.iloc[0].motif
    assert result.report["lignes_chargees"] == 1 and result.report["lignes_rejetees"] == 1


def test_two_sheets_disagreeing_on_one_variable_are_refused():
    """Sheets A and B both give QN05920M's TX: 40 and 41."""
    with pytest.raises(IngestionError, match=r"QN05920M, TX : deux valeurs différentes") as err:
        read_insee_file(CORPUS / "IPRO_2022_feuilles_en_desaccord.xlsx")
    assert "IPRO_2022_feuilles_en_desaccord.xlsx" in str(err.value)


def test_two_files_of_one_base_and_millesime_are_refused():
    raw = CORPUS / "brut_millesime_double"
    with pytest.raises(IngestionError) as err:
        read_insee(context(raw))
    assert "IPRO_2022_v2.csv: même base IPRO et même millésime 2022 que" in str(err.value)
    assert str(raw / "insee" / "IPRO_2022.csv") in str(err.value)


def test_old_contour_file_beside_the_new_one_is_refused(tmp_path):
    from pipelines.sources.sig_ville.assets import check_one_file_per_code, read_qpv_contours

    raw = CORPUS / "brut_contours_concurrents"
    with pytest.raises(
        IngestionError,
        match=r"qpv_2024\.geojson et .*qpv_2024_ancien\.geojson : 1 code\(s\) QPV .*QN05920M",
    ):
        read_qpv_contours(context(raw))
    # the new file alone loads both QPV (the old label never wins)
    shutil.copytree(raw, tmp_path / "raw", ignore=shutil.ignore_patterns("*_ancien*"))
    alone = read_qpv_contours(context(tmp_path / "raw"))
    assert sorted(alone.rows.code_qpv) == ["QN05920M", "QN05921M"]
    assert "Ancien libellé" not in set(alone.rows.libelle_qpv)

    frame = pd.DataFrame(
        {
            "code_qpv": ["QN05920M", "QN05921M", "QN05920M"],
            "source_fichier": ["qpv_2024.geojson", "qpv_2024.geojson", "qpv_2024_ancien.geojson"],
        }
    )
    with pytest.raises(
        IngestionError,
        match=r"qpv_2024\.geojson et qpv_2024_ancien\.geojson : 1 code\(s\) QPV .*QN05920M",
    ):
        check_one_file_per_code(frame, "source_fichier", "contours")
    check_one_file_per_code(frame.iloc[:2], "source_fichier", "contours")  # one file: fine


def test_two_lists_of_qpv_with_the_same_codes_are_refused(tmp_path):
    from pipelines.sources.sig_ville.assets import read_listes_qpv

    raw = CORPUS / "brut_listes_concurrentes"
    with pytest.raises(IngestionError, match=r"listeqp2024-ancienne\.csv et .*cog2024\.csv"):
        read_listes_qpv(context(raw))
    shutil.copytree(raw, tmp_path / "raw", ignore=shutil.ignore_patterns("*ancienne*"))
    got = read_listes_qpv(context(tmp_path / "raw"))
    assert list(got.rows.columns)[0] == "code_qpv" and "_fichier" not in got.rows
    assert list(got.rows.code_qpv) == ["QN05920M"]


def test_two_reference_values_for_one_key_are_refused_naming_both(tmp_path):
    shutil.copytree(CORPUS / "brut_references_concurrentes", tmp_path, dirs_exist_ok=True)
    folder = tmp_path / "referentiels"
    with pytest.raises(IngestionError) as err:
        read_references(tmp_path)
    message = str(err.value)
    assert "a.csv, ligne 2 et " in message and "b.csv, ligne 2" in message
    assert "taux_emploi, france FRANCE (65.1 et 66)" in message
    (folder / "b.csv").write_text(
        "territoire_code;indicateur;valeur\nFRANCE;taux_emploi;65,1\n", encoding="utf-8"
    )
    rows, _, _ = read_references(tmp_path)["valeurs_reference"]
    assert len(rows) == 2  # an exact repeat is harmless


# -- files not read are listed with the reason ----------------------------------------------------


def test_unread_files_are_logged_with_the_reason():
    """brut_non_lus/insee: one CSV read, a .xls and a PDF listed as not read; the hidden
    .DS_Store, the office lock file ~$… and README.txt left out of the log."""
    got = read_insee(context(CORPUS / "brut_non_lus"))
    logs = {Path(x["fichier"]).name: x for x in got.logs}
    assert set(logs) == {"IPRO_2022.csv", "DEMO_2022.xls", "notice.pdf"}
    assert logs["DEMO_2022.xls"]["statut"] == "non_lu"
    assert logs["DEMO_2022.xls"]["message"] == (
        "format .xls (Excel 97-2003) non lu : enregistrer en .xlsx ou .csv"
    )
    assert "extension « .pdf » non lue" in logs["notice.pdf"]["message"]
    assert logs["notice.pdf"]["lignes_lues"] == 0 and logs["notice.pdf"]["empreinte_sha256"]
    assert logs["IPRO_2022.csv"]["statut"] == "charge"
    loaded = got.rows.to_pandas()
    assert list(zip(loaded.code_territoire, loaded.variable, loaded.valeur, strict=True)) == [
        ("QN05920M", "TX", 40)
    ]


def test_unrecognised_reference_file_is_logged():
    _, _, logs = read_references(CORPUS / "brut_non_lus")["valeurs_reference"]
    assert [(Path(x["fichier"]).name, x["statut"]) for x in logs] == [("valeurs.csv", "non_lu")]
    assert "colonnes non reconnues" in logs[0]["message"]


def test_sig_ville_shapefile_parts_are_not_reported():
    from pipelines.sources.sig_ville.reader import CONTOURS_SUFFIXES, SHAPEFILE_PARTS

    folder = CORPUS / "brut_non_lus" / "sig_ville"
    logs = unread_logs("sig_ville", folder, CONTOURS_SUFFIXES | SHAPEFILE_PARTS | {".csv"})
    assert [Path(x["fichier"]).name for x in logs] == ["ancien.xls"]


# -- names and links ---------------------------------------------------------------------------


def test_non_utf8_file_name_gives_one_error_naming_the_file(tmp_path):
    folder = tmp_path / "insee"
    folder.mkdir()
    try:
        fd = os.open(os.fsencode(folder) + b"/IPRO_2022_caf\xe9.csv", os.O_CREAT | os.O_WRONLY)
    except OSError:  # a file system that refuses such names cannot hold the case
        pytest.skip("nom non UTF-8 refusé par le système de fichiers")
    os.write(fd, b"CODGEO;TX\nQN05920M;40\n")
    os.close(fd)
    with pytest.raises(FileNameError, match=r"IPRO_2022_caf\ufffd\.csv: nom de fichier non UTF-8"):
        list_files(folder)
    with pytest.raises(IngestionError, match="nom de fichier non UTF-8"):
        read_insee(context(tmp_path))


def test_links_leaving_the_raw_directory_are_refused(tmp_path):
    outside = write_csv(tmp_path / "ailleurs" / "passwd.csv", ["CODGEO;TX", "QN05920M;40"])
    raw = tmp_path / "raw"
    (raw / "insee").mkdir(parents=True)
    os.symlink(outside, raw / "insee" / "IPRO_2022.csv")
    with pytest.raises(FileNameError, match=r"insee/IPRO_2022\.csv: lien symbolique vers .*"):
        list_files(raw / "insee")
    (raw / "insee" / "IPRO_2022.csv").unlink()
    inside = write_csv(raw / "partage" / "IPRO_2022.csv", ["CODGEO;TX", "QN05920M;40"])
    os.symlink(inside, raw / "insee" / "IPRO_2022.csv")
    assert list_files(raw / "insee") == [raw / "insee" / "IPRO_2022.csv"]
    os.symlink(raw / "partage", raw / "insee" / "dossier")
    assert unread_files(raw / "insee") == [
        (raw / "insee" / "dossier", "lien vers un dossier : non suivi (y copier les fichiers)")
    ]
    shutil.rmtree(raw / "partage")


# -- fuzzing: whatever the bytes, a reader loads or names the file in its own error -----------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# about 15 s for the four fuzz tests on one core (every reader of the scope, each example)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CELL = st.one_of(
    st.sampled_from(["QN05920M", "QP059020", "59392", "FRANCE", "s", "", "1 075,5", "12,5 %"]),
    # the values: a 21-digit count, an amount in parentheses, an impossible date...
    st.sampled_from(["123456789012345678901", "(1 200,00)", "1e400", "-0", "31/02/2026", "=1+1"]),
    st.text(alphabet=st.sampled_from(list('ab;,\t|"\r\n 0123456789é.-QN')), max_size=8),
)


# header rows a fuzzed table may start with: none, INSEE and reference values, a
# programmation (one row or two: financeur above Demandé / Accordé), a bilan, the list of QPV,
# places
HEADERS = [
    None,
    ["CODGEO", "LIBGEO", "TX", "territoire_code", "indicateur", "valeur"],
    ["N° dossier", "Intitulé", "Quartier(s) concerné(s)", "Financeur", "Montant demandé"],
    ["N° dossier", "Intitulé", "État", "", "Région", ""],
    ["N° dossier", "QPV de résidence", "Femmes", "Hommes", "Total"],
    ["code_qp", "lib_qp", "insee_com", "lib_com"],
    ["id", "lon", "lat"],
]


def _readers(tmp_path: Path, name: str):
    """Every reader of the scope on one table file: (label, call, the error naming the file).
    GeoJSON contours have their own fuzz test (test_fuzz_random_geojson)."""
    from geo.points import PointsError
    from pipelines.sources.bilans import parse_bilans
    from pipelines.sources.indicateurs.mapping import load_mapping
    from pipelines.sources.indicateurs.reader import read_local_table
    from pipelines.sources.lieux.reader import read_points
    from pipelines.sources.programmations import SuiviError, parse_programmations
    from pipelines.sources.sig_ville.reader import read_liste_qpv

    mapping = tmp_path / "fuzz.mapping.yml"
    if not mapping.exists():
        mapping.write_text(
            "fournisseur: fuzz\nfichiers: ['*']\nmillesime: 2022\nterritoire: {code: CODGEO}\n"
            "colonnes:\n  TX: {indicateur: allocataires_caf, unite: nombre}\n",
            encoding="utf-8",
        )
    path = tmp_path / name
    yield "insee", lambda: read_insee_file(path), IngestionError
    yield "referentiels", lambda: read_reference_file(path), IngestionError
    yield "indicateurs", lambda: read_local_table(path, load_mapping(mapping)), IngestionError
    yield "programmations", lambda: parse_programmations([path]), SuiviError
    yield "bilans", lambda: parse_bilans([path]), SuiviError
    if path.suffix == ".csv":
        yield "liste", lambda: read_liste_qpv(path), IngestionError
        yield "lieux", lambda: read_points(duckdb.connect(), path), PointsError


def _peak_reset() -> bool:
    """Set this process's peak memory (VmHWM) to its current memory; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _assert_named_or_loaded(tmp_path: Path, name: str, readers=None) -> None:
    """Every reader either loads the file or fails naming it in one line, and its peak memory
    rises by no more than the bound of docs/donnees-brutes.md (5 x the file size + the
    constant; where the peak can be reset: Linux). Any other exception fails the test."""
    size = (tmp_path / name).stat().st_size
    for label, call, error in readers or _readers(tmp_path, name):
        measured = _peak_reset()
        before = _status_bytes("VmRSS")
        try:
            call()
        except error as err:
            assert name in str(err), (label, str(err))
            assert "\n" not in str(err).strip() or label == "lieux", (label, str(err))
        if measured:
            rise = _status_bytes("VmHWM") - before
            assert rise <= 5 * size + tables.MEMORY_CONSTANT, (label, rise)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path, data):
    (tmp_path / "IPRO_2022.csv").write_bytes(data)
    _assert_named_or_loaded(tmp_path, "IPRO_2022.csv")


@FUZZ
@given(
    rows=st.lists(st.lists(CELL, min_size=1, max_size=6), min_size=1, max_size=12),
    delimiter=st.sampled_from([";", ",", "\t", "|"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    header=st.sampled_from(HEADERS),
    two_rows=st.booleans(),
)
def test_fuzz_random_csv_dialects(tmp_path, rows, delimiter, newline, encoding, header, two_rows):
    if header:
        below = [["", "", "Demandé", "Accordé", "Demandé", "Accordé"]] if two_rows else []
        rows = [header, *below, *rows]
    text = newline.join(delimiter.join(cells) for cells in rows) + newline
    (tmp_path / "IPRO_2022.csv").write_bytes(text.encode(encoding))
    _assert_named_or_loaded(tmp_path, "IPRO_2022.csv")


@settings(FUZZ, max_examples=30)
@given(
    rows=st.lists(
        st.lists(
            st.one_of(
                CELL,
                st.integers(-(10**6), 10**6),
                st.integers(-(10**22), 10**22),
                st.floats(-1e6, 1e6),
                st.sampled_from([1e300, -1e-300, 1e21]),
                st.none(),
            ),
            max_size=6,
        ),
        max_size=10,
    ),
    ref=st.sampled_from([None, "A1", "A1:AE6", "A1:XFD1048576", "C3:D4"]),
    header=st.sampled_from(HEADERS),
)
def test_fuzz_random_xlsx_shapes(tmp_path, rows, ref, header):
    if header:
        rows = [header, *rows]
    clean = [[c.replace("\r", "") if isinstance(c, str) else c for c in r] for r in rows]
    workbook_with_dimension(tmp_path / "IPRO_2022.xlsx", clean or [[None]], ref)
    _assert_named_or_loaded(tmp_path, "IPRO_2022.xlsx")


COORD = st.one_of(
    st.floats(-200, 200, allow_nan=False),
    st.sampled_from([3.5, 50.3, 700000.0, 7000000.0]),
    st.just(float("nan")),
    st.text(max_size=3),
    st.none(),
)
RING = st.lists(st.lists(COORD, min_size=0, max_size=3), max_size=6)
GEOMETRY = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "Truc"]),
            "coordinates": st.one_of(
                st.lists(RING, max_size=2), st.lists(st.lists(RING, max_size=2), max_size=2)
            ),
        }
    ),
)
SQUARE = st.builds(
    lambda code, x, y, side: {
        "type": "Feature",
        "properties": {"code_qp": code, "lib_qp": "Q", "insee_com": "59392", "lib_com": "M"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]],
        },
    },
    code=st.one_of(st.sampled_from(["QN05920M", "QN05921M", "QP059020", "QN97401M"]), CELL),
    x=st.floats(-180, 180),
    y=st.floats(-90, 90),
    side=st.floats(0, 1),
)
FEATURE = st.one_of(
    SQUARE,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Feature", "Feature", "X"]),
            "properties": st.one_of(
                st.none(),
                st.dictionaries(
                    st.sampled_from(["code_qp", "lib_qp", "insee_com", "CODE_QP", "nom"]),
                    st.one_of(CELL, st.integers(), st.none()),
                ),
            ),
            "geometry": GEOMETRY,
        }
    ),
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # GDAL's notes on the odd coordinates
@settings(FUZZ, max_examples=25)
@given(
    features=st.lists(FEATURE, max_size=5),
    crs=st.sampled_from([None, "urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:2154", "EPSG:99999"]),
    cut=st.one_of(st.none(), st.integers(0, 400)),
)
def test_fuzz_random_geojson(tmp_path, features, crs, cut):
    """Random GeoJSON contours (odd types, properties, rings, coordinates, CRS, or the text
    cut anywhere): read_contours loads them or fails naming the file, within the bound."""
    import json

    from pipelines.sources.sig_ville.reader import ContoursError, read_contours

    document = {"type": "FeatureCollection", "features": features}
    if crs:
        document["crs"] = {"type": "name", "properties": {"name": crs}}
    text = json.dumps(document, allow_nan=True)
    path = tmp_path / "qpv_2024.geojson"
    path.write_text(text if cut is None else text[:cut], encoding="utf-8")
    reader = [("contours", lambda: read_contours(path), ContoursError)]
    _assert_named_or_loaded(tmp_path, path.name, reader)


# -- memory: the INSEE reader spills its values to disk, with the same result -----------------


def _read_all(path: Path):
    try:
        got = read_insee_file(path)
    except IngestionError as err:
        return str(err)
    return got.values, got.rejects, got.report, got.anomalies


@pytest.mark.parametrize(
    "name",
    [
        "IPRO_2022_tronque.csv",
        "IPRO_2022_champs_en_trop.csv",
        "DEMO_2031_inconnus.csv",
        "IPRO_2022_qpv_en_double.csv",
        "repetee",
        "classeur",
        "sans_base",
    ],
)
def test_insee_values_spilled_to_disk_are_those_kept_in_memory(name, tmp_path, monkeypatch):
    """A file read with batches of 3 rows (every value, reject and row key goes through the
    spill database, as for a file of hundreds of MB) gives the same values, rejects (file,
    line, column, reason), counts and messages, in the same order, as one read in memory."""
    from pipelines.lib import spill

    if name == "repetee":  # exact repetitions (rejected as duplicates) and a bad cell
        path = write_csv(
            tmp_path / "IPRO_2022.csv",
            [
                ";".join(HEADER),
                "QN05920M;A;50,1;40",
                "QN05921M;B;51,2;abc",
                "QN05920M;A;50,1;40",
                "XX;C;1;2",
                "QN05922M;C;;s",
                "QN05920M;A;50,1;40",
            ],
        )
    elif name == "classeur":
        path = workbook_with_dimension(tmp_path / "IPRO_2022.xlsx", insee_rows(9), None)
    elif name == "sans_base":  # no base in the name: each variable's base by its name
        path = tmp_path / "extrait_qpv_2022.csv"
        shutil.copy(CORPUS / "IPRO_2022_tronque.csv", path)
    else:
        path = CORPUS / name
    in_memory = _read_all(path)
    monkeypatch.setattr(spill, "BATCH_ROWS", 3)
    on_disk = _read_all(path)
    if isinstance(in_memory, str):
        assert on_disk == in_memory
        return
    for before, after in zip(in_memory[:2], on_disk[:2], strict=True):
        pd.testing.assert_frame_equal(
            before.reset_index(drop=True), after.reset_index(drop=True), check_dtype=False
        )
    assert on_disk[2] == in_memory[2]
    pd.testing.assert_frame_equal(in_memory[3], on_disk[3])
    if name == "sans_base":
        assert set(on_disk[0].source) == {"IPRO", "EXTRAIT"}
    if name == "repetee":
        motifs = list(on_disk[1].motif)
        assert motifs.count("doublon : même ligne que la ligne 2 (ignorée)") == 2
        assert on_disk[2]["lignes_lues"] == 6 and on_disk[2]["lignes_chargees"] == 3


def test_insee_values_on_disk_reach_the_raw_table(tmp_path, monkeypatch):
    """The spilled values are inserted into raw.insee_valeurs from their Parquet file."""
    from pipelines.lib import spill
    from pipelines.lib.raw_schemas import replace_table

    monkeypatch.setattr(spill, "BATCH_ROWS", 3)
    (tmp_path / "insee").mkdir()
    shutil.copy(CORPUS / "DEMO_2031_inconnus.csv", tmp_path / "insee" / "DEMO_2031.csv")
    got = read_insee(context(tmp_path))
    assert isinstance(got.rows, spill.SpilledTable) and got.rows.parts
    assert all(isinstance(p.data, Path) for p in got.rows.parts)
    con = duckdb.connect()
    try:
        assert replace_table(con, "insee_valeurs", got.rows) == len(got.rows)
        table = con.execute("select * from raw.insee_valeurs").df()
    finally:
        con.close()
    expected = got.rows.to_pandas()
    assert len(table) == len(expected) > 0
    pd.testing.assert_frame_equal(
        table[list(expected.columns)], expected, check_dtype=False, check_exact=True
    )
