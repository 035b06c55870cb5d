"""The INSEE reader on the real physical format and on the other dialects of the family."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook

from pipelines.lib.cells import parse_number
from pipelines.lib.tables import IngestionError
from pipelines.sources.insee.reader import millesime_from_name, read_insee_file, source_of
from tests.conftest import DEMO_DIR, shared_data


def independent_read(path: Path) -> tuple[list[str], list[list[str]]]:
    """Read a real INSEE CSV with the csv module only (BOM, ';', CRLF)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    return rows[0], rows[1:]


def to_float(cell: str) -> float:
    return float(cell.replace("\u202f", "").replace(" ", "").replace(",", "."))


def value(result, code: str, variable: str):
    frame = result.values
    row = frame[(frame.code_territoire == code) & (frame.variable == variable)]
    assert len(row) == 1, (code, variable, len(row))
    return row.iloc[0]


@pytest.mark.parametrize(
    "number, expected",
    [
        ("44,6", 44.6),
        ("1\u202f075", 1075.0),
        ("1 075", 1075.0),
        ("1\u00a0075", 1075.0),
        ("-9,2", -9.2),
        ("12 500,00 €", 12500.0),
        ("1.075,5", 1075.5),
        ("44.6", 44.6),
        ("75 %", 75.0),
        ("", None),
    ],
)
def test_parse_number_french_and_english(number, expected):
    assert parse_number(number) == expected


def test_parse_number_rejects_text():
    with pytest.raises(ValueError):
        parse_number("douze")


def test_millesime_and_source_from_file_name():
    assert millesime_from_name("IPRO_2022.csv") == 2022
    assert millesime_from_name("base-ipro-qpv-2024-geo2024.xlsx") == 2024
    assert source_of(Path("IPRO_2022.csv")) == "IPRO"
    assert source_of(Path("REVN_2021.csv")) == "REVN"


def test_demo_extract_real_format_values():
    """The committed extract is the real physical format: values match an independent read."""
    path = DEMO_DIR / "insee" / "IPRO_2022.csv"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and "\u202f".encode() in raw
    result = read_insee_file(path)
    header, rows = independent_read(path)
    assert result.report["lignes_lues"] == len(rows) == 40
    assert result.report["lignes_rejetees"] == 0
    named = [(j, h.strip()) for j, h in enumerate(header) if h.strip()]
    # every named column except the code is a value (LIBGEO as text); trailing ';;;' dropped
    assert set(result.values.variable) == {h for _, h in named if h != "CODGEO"}
    assert "EVOL_CA_N_E" in set(result.values.variable)  # header "EVOL_CA_N_E " stripped
    checked = 0
    for row in rows:
        code = row[0]
        for j, name in named[2:]:
            got = value(result, code, name)
            if row[j].strip() == "":
                assert got.secret and pd_isnull(got.valeur)
            else:
                assert got.valeur == pytest.approx(to_float(row[j]))
                assert not got.secret
            checked += 1
    assert checked == 40 * (len(named) - 2)
    assert value(result, "QP059020", "TX_TOT_EMPL").valeur == 40.0


def pd_isnull(x) -> bool:
    return x is None or x != x


@pytest.mark.scenario
def test_real_national_files_all_rows_and_columns():
    """Every cell of the six real national files: read = loaded, values equal the file."""
    folder = shared_data("insee_qpv2015")
    for path in sorted(folder.glob("*.csv")):
        result = read_insee_file(path)
        header, rows = independent_read(path)
        assert result.report["lignes_lues"] == len(rows)
        assert result.report["lignes_chargees"] == len(rows)
        assert len(result.rejects) == 0
        named = [(j, h.strip()) for j, h in enumerate(header) if h.strip()]
        expected_values = len(rows) * (len(named) - 1)
        assert len(result.values) == expected_values, path.name
        v = result.values
        cells = dict(
            zip(
                zip(v.code_territoire, v.variable, strict=True),
                zip(v.valeur, v.valeur_texte, v.secret, strict=True),
                strict=True,
            )
        )
        for row in rows:
            for j, name in named[1:]:
                number, text, secret = cells[(row[0], name)]
                cell = row[j].strip()
                if text is not None:
                    assert text == cell
                elif cell:
                    assert number == pytest.approx(to_float(cell)), (path.name, row[0], name)
                else:
                    assert secret and pd_isnull(number)
    ipro = read_insee_file(folder / "IPRO_2021.csv").values
    # pandas' C engine leaves 41 IPRO_2021 columns as strings; here all numeric columns parse
    numeric = ipro[ipro.valeur_texte.isna()]
    assert numeric.variable.nunique() == 59


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_other_dialect_comma_point_lf_lowercase_quoted_aggregate(tmp_path):
    path = _write(
        tmp_path / "ipro_qpv_2024.csv",
        "codgeo,libgeo,tx_tot_empl,abcde\n"
        '"QN05920M","Faubourg, Anzin",41.5,"1,075"\n'
        "QN05921M,Rives,s,12\n"
        ',"Ensemble des quartiers prioritaires",45.2,"800000"\n'
        "QN05922M,Bas,nd,\n",
    )
    result = read_insee_file(path)
    assert result.millesime == 2024 and result.source == "IPRO"
    assert value(result, "QN05920M", "TX_TOT_EMPL").valeur == 41.5
    assert value(result, "QN05920M", "TX_TOT_EMPL").geographie == "2024"
    assert value(result, "QN05920M", "LIBGEO").valeur_texte == "Faubourg, Anzin"
    secret = value(result, "QN05921M", "TX_TOT_EMPL")
    assert secret.secret and secret.marqueur_secret == "s" and pd_isnull(secret.valeur)
    assert value(result, "QN05922M", "TX_TOT_EMPL").marqueur_secret == "nd"
    assert value(result, "QN05922M", "ABCDE").marqueur_secret == "vide"
    aggregate = value(result, "ENSEMBLE_QPV", "TX_TOT_EMPL")
    assert aggregate.type_territoire == "ensemble_qpv" and aggregate.valeur == 45.2
    assert result.report["lignes_lues"] == 4 and result.report["lignes_chargees"] == 4


def test_code_column_found_by_values_and_unknown_code_rejected(tmp_path):
    path = _write(
        tmp_path / "DEMO_2022.csv",
        "\ufeffnom;quartier_code;POP_MUN\r\nA;QP059020;1 200\r\nB;XX123;50\r\nC;QP059021;abc\r\n",
    )
    result = read_insee_file(path)
    assert value(result, "QP059020", "POP_MUN").valeur == 1200
    assert result.report == result.report | {
        "lignes_lues": 3,
        "lignes_chargees": 2,
        "lignes_rejetees": 1,
    }
    rejects = result.rejects.sort_values("ligne").to_dict("records")
    assert rejects[0]["ligne"] == 3 and rejects[0]["valeur_brute"] == "XX123"
    assert rejects[1] | {} == rejects[1] and rejects[1]["ligne"] == 4
    assert rejects[1]["colonne"] == "POP_MUN" and rejects[1]["valeur_brute"] == "abc"
    assert "numérique" in rejects[1]["motif"]


def test_latin1_file_refused_with_line(tmp_path):
    path = _write(
        tmp_path / "DEMO_2022.csv",
        "CODGEO;LIBGEO\nQP059020;Quartier\nQP059021;Cité Thiers\n",
        encoding="latin-1",
    )
    with pytest.raises(IngestionError, match=r"DEMO_2022\.csv: ligne 3: encodage non UTF-8"):
        read_insee_file(path)


def test_empty_file_and_missing_year(tmp_path):
    with pytest.raises(IngestionError, match="vide"):
        read_insee_file(_write(tmp_path / "IPRO_2022.csv", ""))
    with pytest.raises(IngestionError, match="millésime"):
        read_insee_file(_write(tmp_path / "IPRO.csv", "CODGEO;A\nQP059020;1\n"))


def test_xlsx_with_documentation_sheet_and_moving_header(tmp_path):
    wb = Workbook()
    doc = wb.active
    doc.title = "Documentation"
    doc.append(["Base IPRO 2023, géographie 2024"])
    doc.append(["TX_TOT_EMPL: taux d'emploi"])
    data = wb.create_sheet("Données")
    data.append(["Source: INSEE"])
    data.append([])
    data.append(["CODGEO", "LIBGEO", "TX_TOT_EMPL", "ABCDE"])
    data.append(["QN05920M", "Faubourg", 41.5, 1075])
    data.append(["QN05921M", "Rives", None, "s"])
    path = tmp_path / "IPRO_2023.xlsx"
    wb.save(path)
    result = read_insee_file(path)
    assert value(result, "QN05920M", "TX_TOT_EMPL").valeur == 41.5
    assert value(result, "QN05920M", "ABCDE").valeur == 1075
    assert value(result, "QN05920M", "ABCDE").ligne == 4
    assert value(result, "QN05921M", "ABCDE").secret
    assert result.values.feuille.unique().tolist() == ["Données"]
