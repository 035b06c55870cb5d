"""The fast paths of the programmation and bilan readers give what the slow ones give.

Each fast path (Python factorisation of a short text column, accent folding of the usual
accents by one pattern, amounts read by one compiled pattern, the header scorer's early
refusal of a data line, consecutive files of the same header read as one group) is compared
with the general code it stands for, on values chosen to reach its edges: repeated texts and
Nones, a grapheme joiner (U+034F, not a combining mark), letters without a decomposition,
spaces of every kind in amounts, a duplicate line in each of two files of one group.
"""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.lib.amounts import parse_amounts
from pipelines.lib.cells import fold, parse_amount
from pipelines.sources.programmations import columns
from pipelines.sources.programmations.columns import Distinct
from pipelines.sources.programmations.reader import (
    _header_scorer,
    load_aliases,
    map_columns,
)
from pipelines.sources.programmations.rules import PROGRAMMATION_FIELDS


def reference_fold(text: str) -> str:
    """fold as it was written before its fast paths."""
    import re

    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@pytest.mark.parametrize(
    "text",
    [
        "Numéro de dossier",
        "ÉTAT (BOP 147) - Demandé",
        "Réussite éducative",
        "Cœur de ville",
        "x\u034fy",  # grapheme joiner: kept as a separator, not dropped as an accent
        "e\u0301te\u0301",  # already decomposed
        "Łódź Ørsted straße",
        "ﬁnanceur ½",
        "Ελληνικά ά",
        "  ",
        "",
        "a\u0483b",  # a combining mark outside U+0300-U+036F
    ],
)
def test_fold_is_the_reference_fold(text):
    assert fold(text) == reference_fold(text)


def test_fold_of_random_texts_is_the_reference_fold():
    """Texts mixing ASCII, the usual accents, € and characters of every plane (marks of other
    scripts are dropped through the one character class built from unicodedata)."""
    rng = random.Random(20261203)
    for _ in range(3000):
        text = "".join(
            chr(
                rng.choice(
                    [
                        rng.randint(32, 126),
                        rng.randint(0x80, 0x2FFF),
                        rng.randint(0x300, 0x36F),
                        rng.randint(0, 0x10FFFF),
                    ]
                )
            )
            for _ in range(rng.randint(1, 12))
        )
        assert fold.__wrapped__(text) == reference_fold(text), repr(text)
    assert fold("28 500,00 €") == "28 500 00"


def _pandas_distinct(values: list) -> Distinct:
    """Distinct through pandas' factorize (the path of long or mixed columns)."""
    saved = columns._SMALL
    columns._SMALL = -1
    try:
        return Distinct(values)
    finally:
        columns._SMALL = saved


def test_short_text_columns_are_factorised_as_pandas_does():
    rng = random.Random(3)
    words = ["Ville", "Région", "État", "", " État", None]
    for _ in range(200):
        values = [rng.choice(words) for _ in range(rng.randint(0, 40))]
        fast, slow = Distinct(values), _pandas_distinct(values)
        assert list(fast.values) == list(slow.values)
        assert fast.index.tolist() == slow.index.tolist()
        assert [fast.values[i] for i in fast.index] == values


def test_a_column_with_numbers_takes_the_typed_path():
    values = ["1", 1, 1.0, True, None, "1"]
    distinct = Distinct(values)
    assert [distinct.values[i] for i in distinct.index] == values
    assert [type(distinct.values[i]) for i in distinct.index] == [type(v) for v in values]
    assert len(set(distinct.index[[0, 1, 2, 3]].tolist())) == 4  # "1", 1, 1.0, True kept apart


def test_amounts_are_read_as_parse_amount_reads_them():
    cells = np.array(
        [
            "12500",
            "12 500",
            "12\u00a0500,50 €",
            "12\u202f500,5€",
            " 1 234 567,89 ",
            "1 23",
            "12,500.00",
            "-500",
            "(1 200,00)",
            "abc",
            "",
            None,
            12500.0,
            7,
        ],
        dtype=object,
    )
    amounts, reasons = parse_amounts(cells)
    for cell, amount, reason in zip(cells, amounts, reasons, strict=True):
        try:
            expected, why = parse_amount(cell), None
        except ValueError as err:
            expected, why = None, str(err)
        assert (amount, reason) == (expected, why), cell


def test_the_header_scorer_refuses_only_rows_that_could_not_be_the_header():
    aliases = load_aliases()
    score = _header_scorer(aliases, PROGRAMMATION_FIELDS)
    rows = [
        ["Programmation 2024", None, None],
        ["N° dossier", "Intitulé de l'action", "Montant demandé", "Financeur"],
        ["2024-001", "Atelier", "1 000", "État"],
        ["Montant demandé", "Financeur", "Porteur"],  # no dossier nor action: not a header
    ]
    for k in range(len(rows)):
        cmap = map_columns(rows[k], aliases, PROGRAMMATION_FIELDS)
        identified = "dossier" in cmap.fields or "intitule" in cmap.fields
        ok = identified and len(cmap.fields) + (1 if cmap.wide else 0) >= 2
        assert score(rows, k) == (cmap.score if ok else None)
    assert score(rows, 1) is not None


def test_distinct_of_a_pandas_series():
    series = pd.Series(["a", None, "a", "b"], dtype=object)
    distinct = Distinct(series)
    assert [distinct.values[i] for i in distinct.index] == ["a", None, "a", "b"]


def test_compare_suivi_reads_and_compares(tmp_path, capsys):
    import shutil

    from tools.compare_suivi import compare, read

    corpus = Path(__file__).parent / "corpus"
    for source, pattern in (("programmations", "VM_programmation_*"), ("bilans", "VM_bilans_*")):
        (tmp_path / "raw" / source).mkdir(parents=True)
        for path in corpus.glob(pattern):
            shutil.copy(path, tmp_path / "raw" / source / path.name)
    read(tmp_path / "raw", tmp_path / "a.pkl", None)
    read(tmp_path / "raw", tmp_path / "b.pkl", None)
    assert compare(tmp_path / "a.pkl", tmp_path / "b.pkl")
    assert "identiques" in capsys.readouterr().out


def _same_results(a, b) -> None:
    for part in ("rows", "rejects", "anomalies"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part), check_exact=True)
    assert a.files == b.files


def test_files_of_one_header_read_together_give_what_each_file_read_alone_gives(
    tmp_path, monkeypatch
):
    """Three programmations of one header and one of another: a duplicate line in two of them
    (a duplicate is of the same file only), an unreadable amount, a line without dossier, the
    territory and year of each file from its name; and the corpus' programmations and bilans
    (other headers, sheets, wide layouts, long bilans)."""
    from pipelines.sources.bilans.reader import parse_bilans
    from pipelines.sources.programmations.rules import parse_programmations

    header = "N° dossier;Intitulé de l'action;Quartier(s) concerné(s);Financeur;Montant demandé\n"
    files = {
        "VM_programmation_2026.csv": header
        + "D1;Atelier;QN05920M;Etat;100\nD1;Atelier;QN05920M;Etat;100\nD2;Sport;;Ville;x\n",
        "CAMVS_programmation_2026.csv": header
        + ";;;;\nD1;Atelier;QN05920M;Etat;100\nD3;Lecture;QP059020;Etat;5\n"
        + "D3;Lecture;QP059020;Etat;5\n",
        "VM_programmation_2027.csv": header + ";;;Etat;7\nD9;Jardin;QN05920M;Région;1 000,50\n",
        "VM_programmation_2028.csv": "N° dossier;Intitulé;Montant accordé\nD1;A;3\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    corpus = Path(__file__).parent / "corpus"
    programmations = [tmp_path / name for name in files] + sorted(
        p
        for p in corpus.glob("*_programmation_*")
        if not p.name.startswith("XYZ_")  # those fail on purpose (two amount columns...)
    )
    bilans = sorted(corpus.glob("*_bilans_*"))
    perimetre = {"VM": {"QN05920M"}, "CAMVS": {"QP059020"}}
    grouped = parse_programmations(programmations, perimetre=perimetre)
    bilans_grouped = parse_bilans(bilans)
    assert [f["lignes_rejetees"] for f in grouped.files[:4]] == [2, 1, 1, 0]
    mine = grouped.rejects[grouped.rejects.fichier.isin(list(files))]
    doublons = mine[mine.motif.str.contains("doublon de la ligne")]
    assert list(zip(doublons.fichier, doublons.ligne, strict=True)) == [
        ("VM_programmation_2026.csv", 3),
        ("CAMVS_programmation_2026.csv", 5),
    ]
    monkeypatch.setattr(columns, "GROUP_LINES", 1)  # every table alone
    _same_results(grouped, parse_programmations(programmations, perimetre=perimetre))
    _same_results(bilans_grouped, parse_bilans(bilans))


def test_a_long_cell_is_not_folded_while_the_header_is_looked_for():
    """Cells longer than HEADER_CELL_MAX (a whole line read with another separator) are no
    header alias for the scorer; the header row itself is mapped as before."""
    from pipelines.sources.programmations.reader import HEADER_CELL_MAX, _scan_key

    line = "E200000172;2019-00001;" + "x" * HEADER_CELL_MAX
    assert _scan_key(line) == ""
    assert _scan_key("N° dossier") == "n dossier"
    aliases = load_aliases()
    score = _header_scorer(aliases, PROGRAMMATION_FIELDS)
    rows = [[line], ["N° dossier", "Intitulé de l'action", "Montant demandé"]]
    assert score(rows, 0) is None
    assert score(rows, 1) == map_columns(rows[1], aliases, PROGRAMMATION_FIELDS).score
