"""Notes focus (issue #15, « Focus Osé » of seed 001): ``observatoire report --focus <thème>``.

On the session's demo warehouse: each theme writes its note (HTML; the PDF in one test only,
when Chromium is there), its figures are the marts' values (recomputed here in SQL), counts of
people respect statistical secrecy, a theme without data says so in one line, and an unknown
theme or QPV is a usage error (exit code 2) that lists the valid ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, run_cli

ARTIFACTS = ROOT / "test-artifacts" / "focus"
# latest programmation year of VM in the demo (tools/demo/synthetic/plans.py)
VM_YEAR = 2027
QPV = "QN05933M"  # La Solitude Hermitage, 2024 code; its 2015 predecessor is QP059033


class Note(HTMLParser):
    """Key figures, tables (rows: data-cle -> {data-colonne: (data-valeur, text)}) and ids."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.figures: list[dict] = []
        self.tables: dict[str, dict[str, dict]] = {}
        self.text = ""
        self._table = self._row = self._cell = self._figure = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "div" and a.get("class") == "chiffre":
            self._figure = {**a, "text": ""}
        elif tag == "table" and "id" in a:
            self._table = self.tables.setdefault(a["id"], {})
        elif tag == "tr" and self._table is not None and "data-cle" in a:
            self._row = self._table.setdefault(a["data-cle"], {})
        elif tag == "td" and self._row is not None:
            self._cell = [a["data-colonne"], a.get("data-valeur", ""), ""]

    def handle_data(self, data):
        self.text += data
        if self._cell is not None:
            self._cell[2] += data
        if self._figure is not None:
            self._figure["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row[self._cell[0]] = (self._cell[1], self._cell[2].strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "div" and self._figure is not None:
            self.figures.append(self._figure)
            self._figure = None


def parse(path: Path) -> Note:
    note = Note()
    note.feed(path.read_text(encoding="utf-8"))
    return note


def figure(note: Note, mart: str, column: str) -> float:
    found = [f for f in note.figures if (f["data-mart"], f["data-colonne"]) == (mart, column)]
    assert found, (mart, column, [f["text"] for f in note.figures])
    return float(found[0]["data-valeur"])


def focus(demo_build: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(
        "report",
        "--warehouse",
        str(demo_build / "warehouse.duckdb"),
        "--marts-dir",
        str(out),
        "--no-pdf",
        *args,
    )


@pytest.fixture(scope="module")
def notes(demo_build, tmp_path_factory) -> dict[str, Path]:
    """The three notes of the demo (VM, its latest year), HTML only."""
    out = tmp_path_factory.mktemp("focus")
    for args in (
        ("--focus", "emploi", "--territoire", "VM"),
        ("--focus", "Égalité", "--territoire", "VM"),  # accents and case are accepted
        ("--focus", "quartier", "--qpv", QPV.lower()),
        ("--focus", "egalite", "--territoire", "CAMVS"),
    ):
        result = focus(demo_build, out, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "note focus" in result.stdout
    folder = out / "rapport"
    return {
        "emploi": folder / f"focus_emploi_VM_{VM_YEAR}.html",
        "egalite": folder / f"focus_egalite_VM_{VM_YEAR}.html",
        "quartier": folder / f"focus_quartier_{QPV}_{VM_YEAR}.html",
        "egalite_camvs": folder / "focus_egalite_CAMVS_2026.html",
    }


@pytest.fixture(scope="module")
def warehouse(demo_build):
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_each_theme_writes_a_note_in_the_report_style(notes):
    for theme, path in notes.items():
        assert path.exists(), theme
        note = parse(path)
        html = path.read_text(encoding="utf-8")
        # cover block, 3 to 6 key figures, the text that states them, sources
        assert {"couverture", "chiffres-cles", "essentiel", "sources"} <= note.ids, theme
        assert 3 <= len(note.figures) <= 6, (theme, [f["text"] for f in note.figures])
        assert "avertissement-demo" in note.ids  # the demo's suivi is fictitious: said
        # self-contained like the report: no script, no resource fetched
        assert "<script" not in html and not re.search(r"""(src|href)\s*=\s*["'](?!#)""", html)
        # public names of the sources, never file paths or internal codes in the text
        assert "INSEE, base IPRO 2022" in note.text, theme
        for internal in ("/raw/", "credits_specifiques", "pop_municipale", "territoire_contrat"):
            assert internal not in note.text, (theme, internal)
        # 2 to 4 tables or charts per theme at least
        assert len(note.tables) + html.count("<figure") >= 3, theme


def test_emploi_figures_equal_the_marts(notes, warehouse):
    note = parse(notes["emploi"])
    (millesime, rate, nb_qpv), *_ = warehouse.execute(
        """
        select millesime, valeur, nb_qpv from marts.agregats_qpv
        where niveau = 'territoire_contrat' and code_territoire = 'VM'
          and indicateur = 'taux_emploi'
        order by millesime desc limit 1
        """
    ).fetchall()
    assert figure(note, "agregats_qpv", "valeur") == pytest.approx(rate)
    assert f"ensemble des {nb_qpv} QPV" in note.text
    # money of the orientation whose label speaks of employment: O1 « insertion sociale et
    # professionnelle » (seed 000), summed over its financeurs
    (granted,) = warehouse.execute(
        """
        select sum(montant_accorde) from marts.depenses_orientation
        where territoire = 'VM' and annee = ? and orientation_code = 'O1'
        """,
        [VM_YEAR],
    ).fetchone()
    assert figure(note, "depenses_orientation", "montant_accorde") == pytest.approx(float(granted))
    assert "O1 « Favoriser l'insertion sociale et professionnelle »" in note.text
    # the rate of Lecocq in every millésime, as in taux_emploi_quartier
    rows = dict(
        warehouse.execute(
            "select millesime, taux_emploi from marts.taux_emploi_quartier "
            "where code_qpv = 'QP059024'"
        ).fetchall()
    )
    table = note.tables["table-taux-emploi"]
    lecocq = next(cells for cle, cells in table.items() if cle.startswith("QP059024"))
    for m, value in rows.items():
        assert float(lecocq[f"taux_{m}"][0]) == pytest.approx(value)
    assert millesime in rows


def test_egalite_figures_equal_the_marts(notes, warehouse):
    note = parse(notes["egalite"])
    femmes, total = warehouse.execute(
        "select sum(femmes), sum(total) from marts.beneficiaires_genre_orientation "
        "where territoire = 'VM' and annee = ?",
        [VM_YEAR],
    ).fetchone()
    assert figure(note, "beneficiaires_genre_orientation", "femmes") == femmes
    share = f"{100 * femmes / total:.1f}".replace(".", ",")
    assert f"{share}\u00a0%" in note.text
    marker = dict(
        warehouse.execute(
            "select niveau, nb_actions from marts.egalite_marqueur "
            "where territoire = 'VM' and annee = ?",
            [VM_YEAR],
        ).fetchall()
    )
    rows = note.tables["table-marqueur"]
    assert {cle.split()[-1]: int(c["nb_actions"][0]) for cle, c in rows.items()} == marker


def test_quartier_figures_equal_the_marts(notes, warehouse):
    note = parse(notes["quartier"])
    population, granted = warehouse.execute(
        """
        select d.population, e.montant_accorde
        from marts.dim_qpv d join marts.effort_financier_qpv e using (code_qpv)
        where d.code_qpv = ? and e.annee = ?
        """,
        [QPV, VM_YEAR],
    ).fetchone()
    assert figure(note, "dim_qpv", "population") == population
    assert figure(note, "effort_financier_qpv", "montant_accorde") == pytest.approx(float(granted))
    # INSEE indicators of its 2015 predecessor (the note says so), beside its own local ones
    (rate,) = warehouse.execute(
        "select taux_emploi from marts.fiche_quartier where code_qpv = 'QP059033' "
        "and millesime = (select max(millesime) from marts.fiche_quartier "
        "where code_qpv = 'QP059033')"
    ).fetchone()
    assert figure(note, "fiche_quartier", "taux_emploi") == pytest.approx(rate)
    assert "QP059033" in note.text and "géographie 2015" in note.text
    indicators = note.tables["table-indicateurs-quartier"]
    assert float(indicators["Taux d'emploi 15-64 ans"]["QP059033"][0]) == pytest.approx(rate)
    # a section without data says so in one line instead of an empty table
    assert "Aucun zonage du territoire" in note.text or "table-zonages" in note.tables


def test_counts_of_people_respect_statistical_secrecy(notes):
    counts = {"femmes", "hommes", "sexe_non_renseigne", "total", "beneficiaires"}
    counts |= {"beneficiaires_femmes", "beneficiaires_hommes"}
    seen_secret = False
    for theme, path in notes.items():
        for rows in parse(path).tables.values():
            for cells in rows.values():
                for column, (raw, text) in cells.items():
                    if column in counts:
                        assert raw == "" or not 0 < float(raw) < 5, (theme, column, raw)
                        seen_secret |= text == "s"
    assert seen_secret  # the demo has small counts: some are masked


def test_a_theme_without_data_says_so_in_one_line(notes):
    """CAMVS has no marqueur égalité scale (the marqueur is Valenciennes' instrument) and no
    « égalité » transversal theme: one line, no empty table."""
    note = parse(notes["egalite_camvs"])
    assert "marqueur-egalite-vide" in note.ids
    assert "table-marqueur" not in note.tables
    assert "n'a ni échelle du marqueur égalité" in note.text


def test_unknown_theme_or_qpv_is_a_usage_error(demo_build, tmp_path):
    result = focus(demo_build, tmp_path, "--focus", "logement", "--territoire", "VM")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "thème de note focus inconnu 'logement'" in result.stderr
    assert "emploi" in result.stderr and "egalite" in result.stderr
    result = focus(demo_build, tmp_path, "--focus", "quartier", "--qpv", "QN99999X")
    assert result.returncode == 2
    assert "QPV 'QN99999X' inconnu" in result.stderr and QPV in result.stderr
    result = focus(demo_build, tmp_path, "--focus", "quartier", "--territoire", "VM")
    assert result.returncode == 2 and "demande --qpv" in result.stderr
    assert not (tmp_path / "rapport").exists()


def test_the_pdf_is_printed_by_chromium(demo_build, tmp_path):
    """The PDF of one note (same printing path as the report), looked at as PNG pages."""
    from pipelines.report.render import chromium

    if chromium() is None:
        pytest.skip("chromium absent : PDF non vérifié (make install-chromium)")
    out = tmp_path / "quartier.html"
    result = run_cli(
        "report",
        "--warehouse",
        str(demo_build / "warehouse.duckdb"),
        "--focus",
        "quartier",
        "--qpv",
        QPV,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pdf = out.with_suffix(".pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
        assert 2 <= pages <= 8, pages
    if shutil.which("pdftoppm"):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["pdftoppm", "-r", "50", "-png", str(pdf), str(ARTIFACTS / "focus_quartier")],
            check=True,
        )


# -- the note's model, without a warehouse ----------------------------------------------------


def test_a_sum_over_a_masked_count_is_withheld():
    import pandas as pd

    from pipelines.report.focus_model import masked_sum

    published = pd.DataFrame(
        {"femmes": [12.0, None], "total": [20.0, 9.0], "secret_statistique": [False, True]}
    )
    assert masked_sum(published, "femmes") == (None, True)  # 12 + s would give s away
    assert masked_sum(published, "total") == (29.0, False)
    assert masked_sum(pd.DataFrame(), "total") == (None, False)


def test_theme_names_and_empty_columns():
    from pipelines.report.focus_model import (
        Column,
        FocusUsageError,
        Table,
        shown_columns,
        theme_code,
    )

    assert theme_code(" Égalité ") == "egalite" and theme_code("EMPLOI") == "emploi"
    with pytest.raises(FocusUsageError, match="thèmes disponibles : emploi"):
        theme_code("logement")
    table = Table(
        "t",
        "taux_emploi_quartier",
        [Column("qpv", "QPV"), Column("ecart_commune_points", "Écart commune", "points")],
        [{"qpv": "QP059024 Lecocq", "ecart_commune_points": None}],
    )
    assert [c.key for c in shown_columns(table)] == ["qpv"]  # no commune value: no column
