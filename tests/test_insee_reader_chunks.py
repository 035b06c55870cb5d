"""The INSEE reader works by chunks of rows, column by column: a chunk boundary anywhere gives
the same values, rejects, anomalies and counts as one chunk for the whole file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.lib import spill
from pipelines.sources.insee import reader
from tests.conftest import DEMO_DIR

CORPUS = Path(__file__).parent / "corpus"

# a CSV of the real physical format with every case a chunk could cut through: a label, a
# secret marker, a blank cell, a number with a thousands separator, a text in a number column,
# a repeated row, an unknown code, a row with one field too many, trailing empty columns
MIXED = (
    "\ufeffCODGEO;LIBGEO;POP_MUN;TX_TOT_EMPL;;;\r\n"
    "QP059020;Verrerie;2\u202f214;40,5;;;\r\n"
    "QP059021;Rives;s;;;;\r\n"
    "QP059022;Thiers;abc;38,0;;;\r\n"
    "QP059020;Verrerie;2\u202f214;40,5;;;\r\n"
    "XX;Inconnu;12;1,0;;;\r\n"
    "QP059023;Faubourg;1 075;37,5;;;;\r\n"
    "QP059024;Gare;980;nd;;;\r\n"
    "QP059025;Centre;1 500;douze;;;\r\n"
)


def read_all(path: Path) -> dict:
    got = reader.read_insee_file(path)
    return {
        "valeurs": got.values.reset_index(drop=True),
        "rejets": got.rejects.reset_index(drop=True),
        "anomalies": got.anomalies.reset_index(drop=True),
        "combinaisons": got.combos.reset_index(drop=True),
        "rapport": got.report,
    }


def assert_same(first: dict, second: dict, check_dtype: bool = True) -> None:
    """Equal frames (values exactly; read back from Parquet, a column that is NULL throughout,
    ``feuille`` of a CSV, has another pandas type: ``check_dtype=False``), equal report."""
    assert first["rapport"] == second["rapport"]
    for key in ("valeurs", "rejets", "anomalies", "combinaisons"):
        pd.testing.assert_frame_equal(
            first[key], second[key], check_exact=True, check_dtype=check_dtype
        )


def chunks_written(monkeypatch) -> list[int]:
    """The number of rows of each chunk turned into values (recorded as the reader runs)."""
    sizes: list[int] = []
    write = reader._Chunk.write

    def counting(self, *args):
        if self.rows:
            sizes.append(len(self.rows))
        return write(self, *args)

    monkeypatch.setattr(reader._Chunk, "write", counting)
    return sizes


@pytest.mark.parametrize("cells", [1, 5, 7])
def test_chunk_boundaries_give_the_rows_of_one_chunk(tmp_path, monkeypatch, cells):
    path = tmp_path / "DEMO_2022.csv"
    path.write_bytes(MIXED.encode("utf-8"))
    whole = read_all(path)
    sizes = chunks_written(monkeypatch)
    monkeypatch.setattr(reader, "CHUNK_CELLS", cells)
    cut = read_all(path)
    assert len(sizes) > 1 and max(sizes) < 6  # several chunks, each smaller than the file
    assert_same(whole, cut)
    # what a reader of the file checks by eye: 6 rows kept, 2 rejected (the repeat, the code)
    # and the one with a field too many; 2 cells not numeric (« abc », « douze »)
    report = cut["rapport"]
    assert (report["lignes_lues"], report["lignes_chargees"], report["lignes_rejetees"]) == (
        8,
        5,
        3,
    )
    refused = cut["rejets"].query("motif == 'valeur non numérique'")
    assert sorted(refused["valeur_brute"]) == ["abc", "douze"]
    assert sorted(refused["ligne"]) == [4, 9]
    values = cut["valeurs"].set_index(["code_territoire", "variable"])
    assert values.loc[("QP059020", "POP_MUN"), "valeur"] == 2214.0
    assert values.loc[("QP059021", "POP_MUN"), "marqueur_secret"] == "s"
    assert values.loc[("QP059021", "TX_TOT_EMPL"), "marqueur_secret"] == "vide"
    assert values.loc[("QP059024", "TX_TOT_EMPL"), "marqueur_secret"] == "nd"
    assert values.loc[("QP059025", "LIBGEO"), "valeur_texte"] == "Centre"
    assert "QP059023" not in set(cut["valeurs"].code_territoire)  # one field too many


@pytest.mark.parametrize(
    "path",
    [
        DEMO_DIR / "insee" / "IPRO_2022.csv",
        DEMO_DIR / "insee" / "REVN_2022.csv",
        CORPUS / "IPRO_2022_ligne_repetee.csv",
        CORPUS / "DEMO_2031_inconnus.csv",
        CORPUS / "IPRO_2022_dimension_A1.xlsx",
    ],
    ids=lambda p: p.name,
)
def test_small_chunks_and_spilled_batches_give_the_same_file(path, monkeypatch):
    """Chunks of a few cells, values and keys written to disk by batches of 3 rows: the same
    result as one chunk kept in memory (real-format extract, repeated row, unknown codes,
    workbook)."""
    whole = read_all(path)
    monkeypatch.setattr(reader, "CHUNK_CELLS", 9)
    monkeypatch.setattr(spill, "BATCH_ROWS", 3)
    assert_same(whole, read_all(path), check_dtype=False)


def test_millesime_column_read_in_its_own_pass_by_chunks(tmp_path, monkeypatch):
    """A file with a millésime column (its rows' keys read after the scan): same by chunks."""
    path = tmp_path / "base_ipro.csv"
    rows = ["CODGEO;ANNEE;LIBGEO;TX_TOT_EMPL"]
    rows += [f"QP05902{k};{2020 + k % 3};Quartier {k};{40 + k},5" for k in range(8)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    whole = read_all(path)
    sizes = chunks_written(monkeypatch)
    monkeypatch.setattr(reader, "CHUNK_CELLS", 4)
    cut = read_all(path)
    assert len(sizes) > 1
    assert_same(whole, cut)
    assert cut["rapport"]["millesimes"] == [2020, 2021, 2022]


def test_compare_insee_reads_twice_the_same(tmp_path, capsys):
    """``python -m tools.compare_insee``: two readings of the same folder (with the raw tables
    of a warehouse) compare as identical; a changed value is found."""
    import pickle
    import shutil

    from tools import compare_insee

    (tmp_path / "raw" / "insee").mkdir(parents=True)
    shutil.copy(DEMO_DIR / "insee" / "IPRO_2022.csv", tmp_path / "raw" / "insee")
    first, second = tmp_path / "a.pkl", tmp_path / "b.pkl"
    for out in (first, second):
        assert compare_insee.main(["lire", str(tmp_path / "raw"), str(out), "--entrepot"]) == 0
    assert compare_insee.main(["comparer", str(first), str(second)]) == 0
    assert "identiques" in capsys.readouterr().out
    got = pickle.loads(second.read_bytes())
    got["dossier"]["raw.insee_valeurs"].loc[0, "variable"] = "AUTRE"
    second.write_bytes(pickle.dumps(got))
    assert compare_insee.main(["comparer", str(first), str(second)]) == 1
    assert "DIFFÉRENTES" in capsys.readouterr().out
