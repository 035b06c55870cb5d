"""The shared library of the readers: numbers, cells, codes, files, encoding, header detection."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from pipelines.lib.cells import (
    cell_str,
    cell_text,
    decimal_mark,
    is_empty,
    parse_amount,
    parse_bool,
    parse_count,
    parse_date,
    parse_number,
    parse_small_int,
)
from pipelines.lib.codes import (
    QPV_LIKE_IN_TEXT,
    geographie_of,
    normalise_departement,
    siren_valid,
    siret_digits,
    siret_valid,
    split_codes,
    unescape_excel,
)
from pipelines.lib.files import list_files, sha256_bytes, sha256_file, years_in_name
from pipelines.lib.raw_schemas import RAW_TABLES, REJECT_COLUMNS
from pipelines.lib.tables import (
    IngestionError,
    decode_text,
    find_header,
    named_header,
    read_tables,
    text_encoding,
)

# -- numbers ------------------------------------------------------------------------------------

FRENCH = ","
ENGLISH = "."


@pytest.mark.parametrize(
    ("raw", "decimal", "expected"),
    [
        # the ambiguous "1.075": a thousands group in a French file, a decimal in an English one
        ("1.075", FRENCH, 1075.0),
        ("1.075", ENGLISH, 1.075),
        ("1,075", FRENCH, 1.075),
        ("1,075", ENGLISH, 1075.0),
        # spaces of every kind group thousands
        ("1 075", FRENCH, 1075.0),
        ("1\u202f075", FRENCH, 1075.0),
        ("1\u00a0075", ENGLISH, 1075.0),
        ("1 075,50", FRENCH, 1075.5),
        ("12\u202f500,50 €", FRENCH, 12500.5),
        # both marks: the last one is the decimal mark, whatever the convention
        ("1.075,5", FRENCH, 1075.5),
        ("1.075,5", ENGLISH, 1075.5),
        ("1,075.50", FRENCH, 1075.5),
        ("1.234.567", FRENCH, 1234567.0),
        ("1,234,567", ENGLISH, 1234567.0),
        # a mark of the other convention that cannot group thousands is a decimal mark
        ("44.6", FRENCH, 44.6),
        ("44,6", ENGLISH, 44.6),
        ("12500.75", FRENCH, 12500.75),
        # percent, parentheses, signs
        ("12,5 %", FRENCH, 12.5),
        ("(12)", FRENCH, -12.0),
        ("-9,2", FRENCH, -9.2),
        ("\u22129,2", FRENCH, -9.2),
        ("+3", FRENCH, 3.0),
        (",5", FRENCH, 0.5),
        ("0", FRENCH, 0.0),
        # no value
        ("", FRENCH, None),
        ("  ", FRENCH, None),
        (None, FRENCH, None),
        ("€", FRENCH, None),
    ],
)
def test_parse_number(raw, decimal, expected):
    assert parse_number(raw, decimal) == expected


@pytest.mark.parametrize(
    "raw", ["-", "douze", "12 5OO", "12,500,00", "1.5.3", "5,", "5.", "1e5", "nan", "1,2.3,4"]
)
def test_parse_number_refuses(raw):
    with pytest.raises(ValueError):
        parse_number(raw, FRENCH)


def test_decimal_mark_from_unambiguous_cells():
    assert decimal_mark(["44,6", "1 075", "1.075", "s"]) == ","
    assert decimal_mark(["41.5", "1,075", "45.2", "nd"]) == "."
    assert decimal_mark(["1.075", "1,075", "12"]) == ","  # nothing tells: French
    assert decimal_mark([], default=".") == "."


def test_amounts_counts_and_other_cells():
    assert parse_amount("12 500,00 €") == 12500.0
    assert parse_amount("12.500") == 12500.0
    assert parse_amount("-") is None and parse_amount("nc") is None
    assert parse_amount(7500.5) == 7500.5
    with pytest.raises(ValueError, match="montant"):
        parse_amount("12 %")
    assert parse_count("1 250") == 1250 and parse_count("12,0") == 12
    assert parse_count("1.250") == 1250  # a French thousands group, not 1.25
    for bad in ("-3", "2,5", "12 %", True):
        with pytest.raises(ValueError, match="effectif"):
            parse_count(bad)
    assert parse_date("31/12/2027") == date(2027, 12, 31)
    assert parse_date("2027-06-30T00:00:00") == date(2027, 6, 30)
    assert parse_date(datetime(2026, 1, 2, 10, 0)) == date(2026, 1, 2)
    assert parse_date(46022) == date(2025, 12, 31)  # an Excel serial number
    with pytest.raises(ValueError, match="date"):
        parse_date("32/13/2027")
    assert parse_bool("Oui") is True and parse_bool("non") is False and parse_bool("") is None
    assert parse_small_int("2e année") == 2 and parse_small_int("deuxième année") == 2
    assert is_empty("sans objet") and is_empty(None) and not is_empty("0")


def test_cell_text_forms():
    assert cell_str(1075.0) == "1075" and cell_str(None) == "" and cell_str(float("nan")) == ""
    assert cell_str(" a ") == "a" and cell_str(" a ", strip=False) == " a "
    assert cell_str('"=""60057"""', unescape=True) == "60057"
    assert cell_text("  Cité\u00a0 Thiers ") == "Cité Thiers" and cell_text("") is None
    assert cell_text(datetime(2027, 1, 1, 12)) == "2027-01-01"


# -- codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "geographie"),
    [
        ("QP059020", "2015"),
        ("QP02A001", "2015"),
        ("QN05920M", "2024"),
        ("QN02B01C", "2024"),
        ("QN97402I", "2024"),
        ("QN05920X", None),  # letter outside N, M, I, C
        ("QP05920M", None),  # 2015 prefix, 2024 ending
        ("QN059020", None),
        ("Q059021", None),
        ("", None),
        (None, None),
    ],
)
def test_qpv_codes_of_both_geographies(code, geographie):
    assert geographie_of(code) == geographie


def test_qpv_codes_found_in_text():
    text = "QN05922M - Cité Thiers, QP059999;XQN05920M"
    assert QPV_LIKE_IN_TEXT.findall(text) == ["QN05922M", "QP059999"]


def test_siret_and_siren_with_stdnum():
    assert siret_valid("73282932000074") and not siret_valid("73282932000075")
    assert siren_valid("732829320") and not siren_valid("732829321")
    assert siret_valid("35600000049837")  # La Poste: sum of digits divisible by 5
    assert not siret_valid("35600000000014")  # Luhn-valid, but La Poste's rule fails
    assert siret_digits("732 829 320 00074") == "73282932000074"
    assert siret_digits(73282932000074.0) == "73282932000074"
    assert siret_digits(32829320) == "032829320"  # a SIREN read as a number


def test_insee_codes_restored():
    assert unescape_excel('="60057"') == "60057"
    assert split_codes("1234; 59014", 5) == ["01234", "59014"]
    assert split_codes("200041960.0", 9) == ["200041960"]
    assert normalise_departement("1;2a;971") == "01;2A;971"


# -- files --------------------------------------------------------------------------------------


def test_source_folder_listing_years_and_hashes(tmp_path):
    for name in (
        "IPRO_2022.csv",
        "b/DEMO_2021.xlsx",
        ".cache.csv",
        "~$IPRO.xlsx",
        "README.txt",
        "lisez-moi.csv",
        "notes.pdf",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path)] == [
        "IPRO_2022.csv",
        "b/DEMO_2021.xlsx",
    ]
    assert list_files(tmp_path / "absent") == []
    assert years_in_name("base-ipro-qpv-2023-geo2024.xlsx") == [2023, 2024]
    assert years_in_name("VM_programmation_20270.csv") == []
    assert sha256_file(tmp_path / "IPRO_2022.csv") == sha256_bytes(b"x")


def test_raw_schemas_declared_once():
    assert REJECT_COLUMNS == [
        "source",
        "fichier",
        "feuille",
        "ligne",
        "colonne",
        "valeur_brute",
        "motif",
    ]
    for table in (
        "insee_valeurs",
        "qpv_contours",
        "liste_qpv",
        "programmations",
        "bilans",
        "indicateurs_locaux",
        "valeurs_reference",
        "passage_qpv_2015_2024",
        "lieux",
        "rejets",
        "ingestion_log",
        "anomalies",
    ):
        assert table in RAW_TABLES


# -- encoding -----------------------------------------------------------------------------------


def test_encoding_utf8_with_or_without_bom_utf16_refused_otherwise(tmp_path):
    text = "CODGEO;LIBGEO\nQP059020;Cité Thiers\n"
    plain, bom, utf16, latin = (tmp_path / n for n in ("a.csv", "b.csv", "c.csv", "d.csv"))
    plain.write_bytes(text.encode("utf-8"))
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    utf16.write_bytes(text.encode("utf-16"))
    latin.write_bytes(text.encode("latin-1"))
    assert decode_text(plain) == decode_text(bom) == decode_text(utf16) == text
    with pytest.raises(IngestionError, match=r"d\.csv: ligne 2: encodage non UTF-8 \(octet 0xe9"):
        decode_text(latin)
    with pytest.raises(IngestionError, match="fichier vide"):
        (tmp_path / "e.csv").write_bytes(b" \n")
        decode_text(tmp_path / "e.csv")
    # the same policy for the files DuckDB reads (places), checked by blocks
    assert [text_encoding(p) for p in (plain, bom, utf16)] == ["utf-8", "utf-8", "utf-16"]
    with pytest.raises(IngestionError, match=r"d\.csv: ligne 2: encodage non UTF-8 \(octet 0xe9"):
        text_encoding(latin)
    big = tmp_path / "big.csv"  # the bad byte in the third block, on line 3,001
    big.write_bytes(("x;y\n" * 3000).encode() + "é\n".encode("latin-1"))
    with pytest.raises(IngestionError, match=r"ligne 3001: .* position 12000\)"):
        text_encoding(big, block=4096)
    cut = tmp_path / "cut.csv"  # a multi-byte character cut at a block boundary is fine
    cut.write_bytes(b"a" * 4095 + "é;1\n".encode())
    assert text_encoding(cut, block=4096) == "utf-8"


# -- header detection ---------------------------------------------------------------------------

SCORE = named_header({"code", "libelle", "valeur"}, str.lower)


def test_find_header_best_score_first_on_tie():
    rows = [["Titre"], [], ["code", "libelle"], ["code", "libelle", "valeur"], ["code", "x"]]
    assert find_header(rows, SCORE, scan=10) == (3, 3)
    assert find_header(rows, SCORE, scan=3) == (2, 2)  # only the first rows are looked at
    assert find_header([["a"], ["b"]], SCORE, scan=10) is None
    tie = [["code", "x"], ["libelle", "y"]]
    assert find_header(tie, SCORE, scan=10) == (0, 1)


@pytest.mark.parametrize(
    ("separator", "newline"), [(";", "\r\n"), (",", "\n"), ("\t", "\r"), ("|", "\n")]
)
def test_csv_dialects_and_header_below_a_title(tmp_path, separator, newline):
    lines = [
        "Données fictives",
        "",
        separator.join(["code", "libelle", "valeur"]),
        separator.join(["QP059020", '"Cité\nThiers"', "1"]),
        separator.join(["QP059021", "Rives", "2"]),
    ]
    path = tmp_path / "t.csv"
    path.write_text(newline.join(lines) + newline, encoding="utf-8")
    [table] = read_tables(path, SCORE, scan=20)
    assert table.delimiter == separator and table.header == ["code", "libelle", "valeur"]
    assert table.header_line == 3
    assert [(r.line, r.cells[0]) for r in table.data] == [(4, "QP059020"), (6, "QP059021")]
    assert table.data[0].cells[1] == "Cité\nThiers"


def test_xlsx_sheets_header_anywhere_and_formats(tmp_path):
    workbook = Workbook()
    notes = workbook.active
    notes.title = "Notes"
    notes.append(["Une note"])
    data = workbook.create_sheet("Données")
    data.append(["Source : démonstration"])
    data.append([])
    data.append(["code", "libelle", "valeur"])
    data.append(["QP059020", "Verrerie", 0.35])
    data["C4"].number_format = "0%"
    path = tmp_path / "t.xlsx"
    workbook.save(path)
    notes_table, table = read_tables(path, SCORE, scan=20, formats=True)
    assert notes_table.header_index is None
    assert table.sheet == "Données" and table.header_line == 3
    [row] = table.data
    assert row.line == 4 and row.cells == ["QP059020", "Verrerie", 0.35]
    assert "%" in row.formats[2]
    only = read_tables(path, SCORE, scan=20, sheets=lambda title: title != "Notes")
    assert [t.sheet for t in only] == ["Données"]


def test_unreadable_tables_named(tmp_path):
    with pytest.raises(IngestionError, match="introuvable"):
        read_tables(tmp_path / "absent.csv", SCORE, scan=5)
    (tmp_path / "vide.xlsx").write_bytes(b"")
    with pytest.raises(IngestionError, match=r"vide\.xlsx: fichier vide"):
        read_tables(tmp_path / "vide.xlsx", SCORE, scan=5)
    (tmp_path / "corrompu.xlsx").write_bytes(b"PK\x03\x04 pas un classeur")
    with pytest.raises(IngestionError, match="classeur illisible"):
        read_tables(tmp_path / "corrompu.xlsx", SCORE, scan=5)
    (tmp_path / "t.xls").write_bytes(b"x")
    with pytest.raises(IngestionError, match=r"t\.xls: format « \.xls » non pris en charge"):
        read_tables(Path(tmp_path / "t.xls"), SCORE, scan=5, label="t.xls")
