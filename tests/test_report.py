"""The rapport annuel (issue #8): one self-contained HTML per territory, figures from the marts.

The HTML checks run everywhere; the browser checks need Debian's ``chromium`` (``make test``
installs it when the machine allows): they skip with a message elsewhere, and fail in CI
(``CI`` set), where the browser must be there. Screenshots of the first pages are written to
``test-artifacts/rapport/`` for a person to look at.
"""

from __future__ import annotations

import os
import re
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, run_cli

ARTIFACTS = ROOT / "test-artifacts" / "rapport"
SECTIONS = ["territoire", "observation", "suivi", "egalite", "controles", "methodologie"]
# latest programmation year of each demo territory (tools/demo/synthetic/plans.py)
DERNIERE_ANNEE = {"VM": 2027, "CAMVS": 2026, "CABBALR": 2023}


class Tables(HTMLParser):
    """Rows of every ``<table id=...>``: per row, data-cle and {data-colonne: (valeur, texte)}."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self.marts: dict[str, str] = {}
        self.ids: set[str] = set()
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table" and "id" in a:
            self._table = a["id"]
            self.tables[self._table] = []
            self.marts[self._table] = a.get("data-mart")
        elif tag == "tr" and self._table:
            self._row = {"_cle": a.get("data-cle"), "_cells": {}}
        elif tag == "td" and self._row is not None and "data-colonne" in a:
            self._cell = [a["data-colonne"], a.get("data-valeur", ""), ""]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[2] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            col, valeur, texte = self._cell
            self._row["_cells"][col] = (valeur, texte.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row["_cells"]:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


def parse(path: Path) -> Tables:
    parser = Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def rapports(demo_build, tmp_path_factory) -> dict[str, Path]:
    """The demo reports of the three territories, HTML only (the PDF has its own test)."""
    out = tmp_path_factory.mktemp("rapport")
    result = run_cli(
        "report",
        "--warehouse",
        str(demo_build / "warehouse.duckdb"),
        "--marts-dir",
        str(out),
        "--no-pdf",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = {p.stem.split("_")[1]: p for p in (out / "rapport").glob("rapport_*.html")}
    assert sorted(files) == sorted(DERNIERE_ANNEE)
    for code, annee in DERNIERE_ANNEE.items():
        assert files[code].name == f"rapport_{code}_{annee}.html"
    return files


@pytest.fixture(scope="module")
def warehouse(demo_build):
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_the_build_writes_the_reports_with_the_marts(demo_build):
    """The last asset of a build writes each territory's report into <marts>/rapport/."""
    written = sorted(p.name for p in (demo_build / "marts" / "rapport").glob("*.html"))
    assert written == [f"rapport_{c}_{a}.html" for c, a in sorted(DERNIERE_ANNEE.items())]
    assert "Rapports annuels (3 HTML" in (demo_build / "build.log").read_text()


def test_every_section_and_the_demo_warning(rapports):
    for code, path in rapports.items():
        page = parse(path)
        assert set(SECTIONS) <= page.ids, (code, set(SECTIONS) - page.ids)
        assert "avertissement-demo" in page.ids, code
        # maps of the territory, of the taux d'emploi gap and of the effort, drawn on the 2024
        # contours of the demo through the 2015 <-> 2024 crosswalk where needed
        assert {"carte-territoire", "carte-passage", "carte-emploi", "carte-effort"} <= page.ids
        html = path.read_text(encoding="utf-8")
        assert "DEMO_FICTIF" in html
        # one fiche quartier per QPV observed in the latest millésime, charts and maps inline
        assert html.count('class="fiche"') >= 9
        assert html.count("<svg") >= 5, code


def test_self_contained_no_network_resource(rapports):
    for path in rapports.values():
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["'](?!#|data:)""", html), path
        assert "<script" not in html and "@import" not in html and "url(" not in html


def test_sample_tables_equal_the_marts(rapports, warehouse, demo_build):
    """Financeurs, synthèse and taux d'emploi tables: every figure is the mart's value."""
    page = parse(rapports["VM"])
    assert page.marts["table-financeurs"] == "depenses_financeur"
    rows = warehouse.execute(
        "select financeur, type_credit, montant_accorde, montant_demande, nb_actions "
        "from marts.depenses_financeur where territoire = 'VM' and annee = 2027"
    ).fetchall()
    html_rows = {r["_cle"]: r["_cells"] for r in page.tables["table-financeurs"]}
    assert len(html_rows) == len(rows) > 1
    for financeur, credit, accorde, demande, nb in rows:
        cells = html_rows[f"{financeur}|{credit}"]
        assert float(cells["montant_accorde"][0]) == pytest.approx(accorde)
        assert float(cells["montant_demande"][0]) == pytest.approx(demande)
        assert int(cells["nb_actions"][0]) == nb
        # the printed text is the same number in French format
        shown = cells["montant_accorde"][1].replace("\u202f", "").replace("\xa0€", "")
        # rounded half up, as a reader rounds (959 098,5 € is printed 959 099 €)
        assert Decimal(shown.replace(",", ".")) == Decimal(str(accorde)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )

    synthese = {r["_cle"]: r["_cells"] for r in page.tables["table-synthese"]}
    total = warehouse.execute(
        "select montant_accorde, nb_actions from marts.synthese_programmation "
        "where territoire = 'VM' and annee = 2027"
    ).fetchone()
    assert float(synthese["2027"]["montant_accorde"][0]) == pytest.approx(total[0])
    assert int(synthese["2027"]["nb_actions"][0]) == total[1]
    # the same total as the one recomputed from the raw files by test_build_demo
    from tests.test_build_demo import _raw_granted

    assert total[0] == pytest.approx(_raw_granted(demo_build / "raw")[("VM", 2027)])

    taux = {r["_cle"]: r["_cells"] for r in page.tables["table-taux-emploi"]}
    expected = warehouse.execute(
        "select code_qpv, taux_emploi, ecart_epci_points from marts.taux_emploi_quartier "
        "where territoire = 'VM' and millesime = 2022"
    ).fetchall()
    assert len(taux) == len(expected) == 14  # the 14 QPV 2015 of Valenciennes Métropole
    for code, te, ecart in expected:
        assert float(taux[code]["taux_emploi"][0]) == pytest.approx(te)
        assert float(taux[code]["ecart_epci_points"][0]) == pytest.approx(ecart)


def test_effort_map_equals_its_mart(rapports, warehouse):
    """CABBALR 2023 programmes in 2015 codes: its 2024 contours carry the 1:1 linked QPV's
    euros per inhabitant, as the mart carte_effort_qpv says."""
    page = parse(rapports["CABBALR"])
    rows = {r["_cells"]["code_qpv"][0]: r["_cells"] for r in page.tables["table-carte-effort"]}
    expected = warehouse.execute(
        "select code_qpv, code_qpv_effort, euros_par_habitant from marts.carte_effort_qpv "
        "where territoire = 'CABBALR' and annee = 2023 and contour_retenu"
    ).fetchall()
    assert len(rows) == len(expected) == 16
    for code, source, eur in expected:
        assert code.startswith("QN") and source.startswith("QP")
        assert rows[code]["code_qpv_effort"][0] == source
        assert float(rows[code]["euros_par_habitant"][0]) == pytest.approx(eur)


def test_small_counts_are_masked(rapports, warehouse):
    """A count of beneficiaries under the threshold is printed 's', never its value."""
    page = parse(rapports["VM"])
    small = warehouse.execute(
        "select orientation_code, qpv_residence, femmes from marts.beneficiaires_genre "
        "where territoire = 'VM' and annee = 2027 and femmes between 1 and 4"
    ).fetchall()
    assert small, "la démo doit contenir de petits effectifs"
    cells = {
        (r["_cells"]["orientation_code"][0], r["_cells"]["qpv_residence"][0]): r["_cells"]
        for r in page.tables["table-beneficiaires"]
    }
    for orientation, qpv, _femmes in small:
        valeur, texte = cells[(orientation, qpv)]["femmes"]
        assert (valeur, texte) == ("", "s"), (orientation, qpv)


def test_croisement_table_equals_its_mart_with_small_counts_masked(rapports, warehouse):
    """« Financements et réalités des quartiers »: one row per QPV of the mart, its figures, the
    beneficiaries under the threshold printed 's'."""
    page = parse(rapports["CAMVS"])
    assert page.marts["table-croisement"] == "croisement_qpv_annee"
    cells = {r["_cle"]: r["_cells"] for r in page.tables["table-croisement"]}
    rows = warehouse.execute(
        "select code_qpv, montant_accorde, euros_par_habitant, beneficiaires, taux_emploi, "
        "ecart_part_familles_monoparentales_epci from marts.croisement_qpv_annee "
        "where territoire = 'CAMVS' and annee = 2026"
    ).fetchall()
    assert len(cells) == len(rows) == 11
    for code, accorde, par_habitant, beneficiaires, taux, ecart in rows:
        row = cells[code]
        assert float(row["montant_accorde"][0]) == pytest.approx(float(accorde))
        if par_habitant is not None:
            assert float(row["euros_par_habitant"][0]) == pytest.approx(par_habitant)
        if taux is not None:
            assert float(row["taux_emploi"][0]) == pytest.approx(taux)
        if ecart is not None:
            assert float(row["ecart_part_familles_monoparentales_epci"][0]) == pytest.approx(ecart)
        if 0 < beneficiaires < 5:
            assert row["beneficiaires"] == ("", "s"), code
        else:
            assert int(row["beneficiaires"][0]) == beneficiaires, code


def test_cli_errors_name_what_is_known(demo_build, tmp_path):
    wh = str(demo_build / "warehouse.duckdb")
    unknown = run_cli("report", "--territoire", "Lille", "--warehouse", wh, "--no-pdf")
    assert unknown.returncode == 1
    assert "'Lille' inconnu" in unknown.stderr and "VM (245901160" in unknown.stderr
    no_year = run_cli(
        "report", "--territoire", "200043396", "--annee", "2019", "--warehouse", wh, "--no-pdf"
    )
    assert no_year.returncode == 1
    assert "aucune programmation pour 2019" in no_year.stderr and "2025, 2026" in no_year.stderr
    missing = run_cli("report", "--warehouse", str(tmp_path / "absent.duckdb"), "--no-pdf")
    assert missing.returncode == 1 and "entrepôt introuvable" in missing.stderr
    # by SIREN, an explicit year and output file
    out = tmp_path / "camvs.html"
    ok = run_cli(
        "report",
        "--territoire",
        "200043396",
        "--annee",
        "2025",
        "--out",
        str(out),
        "--warehouse",
        wh,
        "--no-pdf",
    )
    assert ok.returncode == 0, ok.stderr
    assert "Rapport annuel 2025" in out.read_text(encoding="utf-8")


# --- in the browser ------------------------------------------------------------------------


def _chromium() -> str:
    from pipelines.report.render import chromium

    exe = chromium()
    if exe is None:
        message = (
            "chromium absent : test du rendu navigateur sauté (installer le paquet Debian "
            "`chromium`, ce que fait `make install-chromium` en root)"
        )
        if os.environ.get("CI"):
            pytest.fail(message + " ; en CI il doit être installé")
        pytest.skip(message)
    return exe


def test_renders_in_headless_chromium_with_no_failed_resource(rapports, warehouse):
    exe = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            for code, path in sorted(rapports.items()):
                page = browser.new_page(viewport={"width": 1000, "height": 1400})
                requests, failed, errors = [], [], []
                page.on("request", lambda r, acc=requests: acc.append(r.url))
                page.on("requestfailed", lambda r, acc=failed: acc.append(r.url))
                page.on("pageerror", lambda e, acc=errors: acc.append(str(e)))
                page.on(
                    "console",
                    lambda m, acc=errors: acc.append(m.text) if m.type == "error" else None,
                )
                page.goto(path.as_uri(), wait_until="load")
                assert failed == [] and errors == [], (code, failed, errors)
                assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
                for section in SECTIONS:
                    assert page.locator(f"section#{section} h2").is_visible(), (code, section)
                # every chart and map is drawn with a size
                sizes = page.eval_on_selector_all(
                    "figure svg", "els => els.map(e => e.getBoundingClientRect().height)"
                )
                assert sizes and min(sizes) > 50, (code, sizes)
                # the sample table as the browser shows it equals the mart
                shown = page.eval_on_selector_all(
                    "#table-synthese tbody tr",
                    "rows => rows.map(r => [r.dataset.cle, "
                    "r.querySelector('[data-colonne=montant_accorde]').dataset.valeur])",
                )
                expected = warehouse.execute(
                    "select annee, montant_accorde from marts.synthese_programmation "
                    "where territoire = ? and annee <= ? order by annee",
                    [code, DERNIERE_ANNEE[code]],
                ).fetchall()
                assert [(int(a), pytest.approx(float(m))) for a, m in shown] == expected
                height = page.evaluate("document.body.scrollHeight")
                for i in range(min(3, height // 1400 + 1)):
                    page.screenshot(
                        path=str(ARTIFACTS / f"{code}_page{i + 1}.png"),
                        clip={"x": 0, "y": i * 1400, "width": 1000, "height": 1400},
                        full_page=True,
                    )
                page.close()
        finally:
            browser.close()
    assert len(list(ARTIFACTS.glob("*_page1.png"))) == 3


@pytest.fixture(scope="module")
def pdfs(demo_build, tmp_path_factory) -> dict[str, Path]:
    """The three demo reports printed once for the module's PDF checks (HTML beside each)."""
    _chromium()
    out = tmp_path_factory.mktemp("rapport_pdf")
    result = run_cli(
        "report", "--warehouse", str(demo_build / "warehouse.duckdb"), "--marts-dir", str(out)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = {p.stem.split("_")[1]: p for p in (out / "rapport").glob("rapport_*.pdf")}
    assert sorted(files) == sorted(DERNIERE_ANNEE)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for code, pdf in files.items():
        (ARTIFACTS / f"rapport_{code}.pdf").write_bytes(pdf.read_bytes())
    return files


def _pdf_pages(pdf: Path) -> list[str]:
    from pipelines.report.render import pdf_pages_text

    pages = pdf_pages_text(pdf)
    if pages is None:
        pytest.skip("pdftotext (poppler-utils) absent : texte du PDF non lisible")
    return [p for p in pages if p.strip()]


def test_pdf_is_printed(pdfs):
    for pdf in pdfs.values():
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-")
        pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
        assert pages >= 6, pages  # one chapter per page at least


def test_realisation_and_age_public_sections(rapports, warehouse):
    """The bilans read in full: realisation by orientation as in bilans_realisation, and the
    age/public breakdown with its small counts masked ('s')."""
    page = parse(rapports["CABBALR"])
    rows = {r["_cle"]: r["_cells"] for r in page.tables["table-realisation"]}
    expected = warehouse.execute(
        "select orientation_code, nb_realisees, taux_realisation from marts.bilans_realisation "
        "where territoire = 'CABBALR' and annee = 2023"
    ).fetchall()
    assert expected and len(rows) == len(expected)
    for code, realisees, taux in expected:
        assert int(rows[code]["nb_realisees"][0]) == realisees
        assert float(rows[code]["taux_realisation"][0]) == pytest.approx(taux)
    cells = {
        tuple(r["_cle"].split("|")[i] for i in (0, 3)): r["_cells"]
        for r in page.tables["table-age-public"]
    }
    small = warehouse.execute(
        "select orientation_code, modalite_libelle from marts.beneficiaires_age_public_orientation "
        "where territoire = 'CABBALR' and annee = 2023 and effectif between 1 and 4"
    ).fetchall()
    assert any(label == "Jeunes NEET" for _, label in small)  # the planted unknown value
    for key in small:
        assert cells[key]["effectif"] == ("", "s"), key
    orientation, demandeurs = warehouse.execute(
        "select orientation_code, effectif from marts.beneficiaires_age_public_orientation "
        "where territoire = 'CABBALR' and annee = 2023 and modalite_code = 'demandeurs_emploi' "
        "and effectif >= 5 limit 1"
    ).fetchone()
    assert int(cells[(orientation, "Demandeurs d'emploi")]["effectif"][0]) == demandeurs


def test_rules_not_verifiable_listed_apart(rapports, warehouse):
    """The VM 2027 report lists the rules the loaded data cannot check, with the mart's counts,
    named by their French description (never counted among the respected rules)."""
    page = parse(rapports["VM"])
    assert page.marts["table-regles-non-verifiables"] == "regles_non_verifiables"
    expected = warehouse.execute(
        "select description, nb_actions_non_verifiables from marts.regles_non_verifiables "
        "where territoire = 'VM' and annee = 2027 order by all"
    ).fetchall()
    shown = sorted(
        (r["_cells"]["description"][1], int(r["_cells"]["nb_actions_non_verifiables"][0]))
        for r in page.tables["table-regles-non-verifiables"]
    )
    assert shown == sorted(expected) and expected


def test_a_report_that_fails_does_not_stop_the_others(demo_build, tmp_path, monkeypatch):
    """One territory's report failing (a geometry GEOS refuses, say) leaves the others written
    and says which one failed and why (the build prints it: AVERTISSEMENT)."""
    import pipelines.report as report_module
    from pipelines.report import connect, latest_reports

    real_load = report_module.load

    def load(con, territory, year):
        if territory.code == "CAMVS":
            raise RuntimeError("TopologyException: side location conflict")
        return real_load(con, territory, year)

    monkeypatch.setattr(report_module, "load", load)
    con = connect(demo_build / "warehouse.duckdb")
    try:
        reports = latest_reports(con, tmp_path, pdf=False)
    finally:
        con.close()
    failed = {r.territory: r.error for r in reports if r.error}
    assert failed == {"CAMVS": "RuntimeError: TopologyException: side location conflict"}
    written = sorted(p.name for p in tmp_path.glob("rapport_*.html"))
    assert written == sorted(r.html.name for r in reports if not r.error) and len(written) == 2


def test_a_national_build_leaves_the_reports_to_the_command(demo_build, tmp_path, monkeypatch):
    """Beyond OBSERVATOIRE_RAPPORTS_MAX territories a build writes no report (344 PDFs at 8 s
    each would double a national build) and says which command writes them."""
    import shutil

    from pipelines.report.assets import rapports_annuels
    from tests.conftest import materialize_direct

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_build / "warehouse.duckdb", warehouse)
    monkeypatch.setenv("OBSERVATOIRE_RAPPORTS_MAX", "2")
    monkeypatch.setenv("OBSERVATOIRE_RAPPORT_PDF", "0")
    result = materialize_direct([rapports_annuels], tmp_path / "raw", warehouse)
    [event] = result.get_asset_materialization_events()
    reason = event.materialization.metadata["erreur"].value
    assert reason.startswith("3 territoires (plus de 2, OBSERVATOIRE_RAPPORTS_MAX)")
    assert "observatoire report --territoire" in reason
    assert not (tmp_path / "m" / "rapport").exists()


class VisibleCells(HTMLParser):
    """The visible text of every table cell, without the secondary code (``class="code"``)
    that follows a name; and the whole visible text of the page (no ``<style>``)."""

    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._hidden = 0  # depth inside a code span or a style element
        self._stack: list[bool] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        hidden = tag == "style" or "code" in (a.get("class") or "").split()
        if tag in {"td", "th"}:
            self._cell = []
        if tag not in {"br", "meta", "rect", "path", "circle"}:
            self._stack.append(hidden)
            self._hidden += hidden

    def handle_endtag(self, tag):
        if tag in {"td", "th"} and self._cell is not None:
            self.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag not in {"br", "meta", "rect", "path", "circle"} and self._stack:
            self._hidden -= self._stack.pop()

    def handle_data(self, data):
        if self._hidden:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def test_no_visible_code_where_the_referentiel_has_a_label(rapports, warehouse):
    """A person reads names and French labels: no cell shows only a QPV code whose name is
    known, a residence, credit, link or rule code, an orientation code, a hashed file name; no
    caption speaks of « mart » or « seed »; territories by their names."""
    names = dict(warehouse.execute("select code_qpv, libelle_qpv from marts.dim_qpv").fetchall())
    rules = {
        r[0]
        for r in warehouse.execute(
            "select distinct regle from referentiels.ref_regles_financement"
        ).fetchall()
    }
    orientations = {
        r[0]
        for r in warehouse.execute(
            "select distinct orientation_code from marts.depenses_orientation"
        ).fetchall()
    }
    fixed = {
        "HORS_QPV",
        "NON_RENSEIGNE",
        "SANS_QPV",
        "credits_specifiques",
        "droit_commun",
        "non_renseigne",
        "un_pour_un",
        "fusion",
        "entre_ou_non_relie",
        "tranche_age",
        "non_verifiable",
        "partiellement_verifiable",
        "non_controlable",
    }
    for code, path in rapports.items():
        page = VisibleCells()
        page.feed(path.read_text(encoding="utf-8"))
        for cell in page.cells:
            assert not (cell in names and names[cell]), (code, cell)
            assert cell not in fixed | rules | orientations, (code, cell)
            assert not re.fullmatch(r"(QP|QN)\d{3}\w+ .*", cell), (code, cell)
            assert not re.fullmatch(r"[0-9a-f]{12,64}", cell), (code, cell)
        text = " ".join(" ".join(page.text).split())
        provenance_free = re.sub(r"Table de l'entrepôt : [^.]*\.", "", text)
        assert not re.search(r"\bmarts? [a-z_]+_[a-z_]+", provenance_free), code
        assert not re.search(r"\bseed\b", provenance_free, re.IGNORECASE), code
        assert "epci 2" not in text and "france FRANCE" not in text, code
        assert "Sommaire" in text, code


def test_orientation_financeur_grid_totals_equal_the_marts(rapports, warehouse):
    """The grid's cells are the mart's orientation x financeur amounts, its column totals the
    financeurs' amounts of depenses_financeur, its grand total the year's montant accordé."""
    for code, year in DERNIERE_ANNEE.items():
        page = parse(rapports[code])
        rows = {r["_cle"]: r["_cells"] for r in page.tables["table-orientations"]}
        cells = warehouse.execute(
            "select orientation_code, financeur, sum(montant_accorde) "
            "from marts.depenses_orientation where territoire = ? and annee = ? group by all",
            [code, year],
        ).fetchall()
        for orientation, funder, amount in cells:
            assert float(rows[orientation][funder][0]) == pytest.approx(float(amount))
        by_funder = warehouse.execute(
            "select financeur, sum(montant_accorde) from marts.depenses_financeur "
            "where territoire = ? and annee = ? group by all",
            [code, year],
        ).fetchall()
        for funder, amount in by_funder:
            assert float(rows["total"][funder][0]) == pytest.approx(float(amount)), funder
        total = warehouse.execute(
            "select montant_accorde from marts.synthese_programmation "
            "where territoire = ? and annee = ?",
            [code, year],
        ).fetchone()[0]
        assert float(rows["total"]["total"][0]) == pytest.approx(float(total))
        assert rows["total"]["total"][1].replace("\u202f", "") == (
            f"{Decimal(str(total)).quantize(Decimal(1), rounding=ROUND_HALF_UP)}\xa0€"
        )


def test_objectives_without_target_counted_by_orientation_and_porteur(rapports, warehouse):
    """The CAMVS communes' engagements (issue #15): too many to list, those without a numeric
    target are counted by priorité x porteur, each count the mart's; the numeric ones are listed
    with the commune that carries them."""
    page = parse(rapports["CAMVS"])
    table = {r["_cle"]: r["_cells"] for r in page.tables["table-objectifs-sans-cible"]}
    expected = warehouse.execute(
        "select priorite, operateur, count(*) from marts.tableau_bord_objectifs "
        "where territoire = 'CAMVS' and annee = 2026 and cible is null group by all"
    ).fetchall()
    assert len(expected) > 30
    for priorite, operateur, count in expected:
        assert table[priorite][f"nb_objectifs|{operateur}"] == (str(count), str(count))
    total = sum(count for *_, count in expected)
    assert table["total"]["nb_objectifs"][0] == str(total)
    assert sum(int(cells["nb_objectifs"][0]) for k, cells in table.items() if k != "total") == total
    html = rapports["CAMVS"].read_text(encoding="utf-8")
    listed = re.findall(r'<tr data-cle="(ENG_[A-Z_0-9]+)"', html)
    assert sorted(listed) == sorted(
        r[0]
        for r in warehouse.execute(
            "select code_objectif from marts.tableau_bord_objectifs where territoire = 'CAMVS' "
            "and annee = 2026 and code_objectif like 'ENG%' and cible is not null"
        ).fetchall()
    )
    assert re.search(
        r'data-cle="ENG_HAUTMONT_O3_1">.*?data-colonne="operateur"[^>]*>Hautmont<', html, re.S
    )


def test_zonages_and_result_indicators_equal_their_marts(rapports, warehouse):
    """Issue #15's marts in the report: depenses_zonage and indicateurs_resultat."""
    page = parse(rapports["VM"])
    zonages = {r["_cle"]: r["_cells"] for r in page.tables["table-zonages"]}
    expected = warehouse.execute(
        "select code_zonage, orientation_code, nb_actions, montant_accorde_zonage "
        "from marts.depenses_zonage where territoire = 'VM' and annee = 2027"
    ).fetchall()
    assert len(zonages) == len(expected) > 0
    for zonage, orientation, nb, amount in expected:
        row = zonages[f"{zonage}|{orientation}"]
        assert int(row["nb_actions"][0]) == nb
        assert float(row["montant_accorde_zonage"][0]) == pytest.approx(float(amount))
        assert row["orientation_code"][1] != orientation  # its libellé is shown
    names = warehouse.execute(
        "select distinct code_zonage, nom_zonage from marts.depenses_zonage "
        "where territoire = 'VM' and annee = 2027"
    ).fetchall()
    html = rapports["VM"].read_text(encoding="utf-8")
    for zonage, name in names:
        assert re.search(rf'data-zonage="{zonage}"><th colspan="6">{re.escape(name)} ', html)
    results = {r["_cle"]: r["_cells"] for r in page.tables["table-indicateurs-resultat"]}
    expected = warehouse.execute(
        "select code_indicateur, valeur, statut, effectif_secret from marts.indicateurs_resultat "
        "where territoire = 'VM' and annee = 2027"
    ).fetchall()
    assert len(results) == len(expected) > 5
    for indicator, value, status, smallest in expected:
        row = results[indicator]
        assert row["statut"][0] == status
        if value is not None and not (smallest is not None and smallest < 5):
            assert float(row["valeur"][0]) == pytest.approx(float(value)), indicator


def test_pdf_has_page_numbers_running_headers_and_a_numbered_contents(pdfs):
    """The PDF (Chromium, @page margin boxes) numbers its pages « page n / N », repeats the
    territory's name at the top of each page but the first, and its contents on page 1 give the
    page where each chapter starts."""
    pdf = pdfs["CABBALR"]
    pages = _pdf_pages(pdf)
    pages = [p for p in pages if p.strip()]
    total = len(pages)
    assert total >= 8
    header = "Artois Lys Romane – contrat de ville"  # the territory's name, every page but 1
    for number, text in enumerate(pages, start=1):
        assert f"page {number} / {total}" in text, number
        assert (header in " ".join(text.split())) == (number > 1), number
    import shutil
    import subprocess

    layout = subprocess.run(
        [
            shutil.which("pdftotext"),
            "-layout",
            "-f",
            "1",
            "-l",
            "1",
            str(pdf),
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    contents = " ".join(layout.split())
    assert "Sommaire" in contents
    for title in ("4. Égalité femmes-hommes", "6. Méthodologie et sources"):
        found = re.search(re.escape(title) + r"\s+(\d+)", contents)
        assert found, title
        page = int(found.group(1))
        assert title in " ".join(pages[page - 1].split()), (title, page)


def _flat(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def _row_texts(table: str) -> list[str]:
    """The text of each body row of a table of the report's HTML, cells in order."""
    from pipelines.report.render import _ROW, _cell_text

    body = table[table.index("<tbody") :]
    cells = re.compile(r"<t([dh])\b[^>]*>.*?</t\1>", re.S)
    return [
        _flat(" ".join(_cell_text(c.group(0)) for c in cells.finditer(row)))
        for row in _ROW.findall(body)
    ]


def test_pdf_pages_keep_rows_headings_and_fiches_together(pdfs):
    """Looked at page by page (issue #17), the printed report has no orphan rows: a long table
    never leaves fewer than its first three rows under its header, nor its last one or two rows
    alone on the next page; no chapter or section title ends a page; no page but the last is
    nearly empty; the fiches quartier hold three rows of three a page. Rows are found in each
    page's text (pdftotext) by the text of their cells."""
    from pipelines.report.render import _TABLE, HEAD_ROWS, SHORT_TABLE_ROWS, TAIL_ROWS, TOC_ENTRY

    for code, pdf in pdfs.items():
        html = pdf.with_suffix(".html").read_text(encoding="utf-8")
        raw_pages = _pdf_pages(pdf)
        pages = [_flat(p) for p in raw_pages]
        assert 12 <= len(pages) <= 30, (code, len(pages))
        # page 1: the cover, the key figures and the whole contents, not a half-empty page
        assert len(pages[0]) > 1200, (code, len(pages[0]))
        for number, text in enumerate(pages[:-1], start=1):
            assert len(text) > 1200, f"{code} : page {number} presque vide ({len(text)} car.)"
        # the last page has more than its running header and footer (no blank page at the end)
        assert len(pages[-1]) > 400, (code, pages[-1])
        located = total = 0
        for match in _TABLE.finditer(html):
            table = match.group(0)
            if "<tbody" not in table:
                continue
            texts = _row_texts(table)
            if len(texts) < SHORT_TABLE_ROWS:
                continue
            where = []
            for text in texts:
                # a row is placed only by a text of its own (not repeated, not inside another)
                own = text and sum(text in other for other in texts) == 1
                hits = [n for n, page in enumerate(pages, start=1) if own and text in page]
                where.append(hits[0] if len(hits) == 1 else None)
            total += len(texts)
            located += sum(w is not None for w in where)
            name = re.search(r'(?:id|data-mart)="([^"]+)"', table).group(1)
            head = {w for w in where[:HEAD_ROWS] if w}
            tail = {w for w in where[-TAIL_ROWS:] if w}
            assert len(head) <= 1, f"{code} {name} : premières lignes coupées {where}"
            assert len(tail) <= 1, f"{code} {name} : dernières lignes seules sur une page {where}"
        assert located > 0.6 * total, (code, located, total)  # the check saw most rows
        # a chapter or section title is followed on its page by what it introduces
        titles = {_flat(t) for _, t in TOC_ENTRY.findall(html)}
        footer = re.compile(r"^(page \d+ / \d+|Données de démonstration \(suivi fictif\))$")
        for number, page in enumerate(raw_pages[1:], start=2):
            lines = [_flat(line) for line in page.splitlines() if _flat(line)]
            lines = [line for line in lines if not footer.match(line)]
            for i, line in enumerate(lines):
                if line in titles:
                    after = sum(len(rest) for rest in lines[i + 1 :])
                    assert after > 150, f"{code} : « {line} » en bas de la page {number}"
        # fiches quartier: compact, nine a page (three rows of three)
        fiches = html.count('class="fiche"')
        fiche_pages = {
            n
            for n, page in enumerate(pages, start=1)
            if "indicateurs publiés" in page and "sous secret ; sources" in page
        }
        assert len(fiche_pages) <= -(-fiches // 9) + 1, (code, fiches, sorted(fiche_pages))


def test_long_tables_are_printed_in_blocks_kept_whole():
    """keep_rows_together: the first and last three rows of a long table, and a heading row
    with the two rows after it, are each a <tbody class="lie"> (not broken by the print)."""
    from pipelines.report.render import keep_rows_together

    rows = "".join(f"<tr><td>{i}</td></tr>" for i in range(10))
    rows = rows.replace("<tr><td>5</td></tr>", '<tr><th colspan="2">Rubrique</th></tr>')
    out = keep_rows_together(
        f"<table><thead><tr><th>n</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    blocks = re.findall(r'<tbody( class="lie")?>(.*?)</tbody>', out, re.S)
    kept = [(bool(lie), re.findall(r"<t[dh][^>]*>([^<]*)<", body)) for lie, body in blocks]
    # the heading row's block (rows 5-7) overlaps the last rows (7-9): one block
    assert kept == [
        (True, ["0", "1", "2"]),
        (False, ["3", "4"]),
        (True, ["Rubrique", "6", "7", "8", "9"]),
    ]
    short = "<table><tbody><tr><td>1</td></tr><tr><td>2</td></tr></tbody></table>"
    assert keep_rows_together(short) == short


def test_french_rounding_and_communes():
    """Amounts are rounded half up as a reader does (not to the even neighbour); a mart's list
    of communes reads « Anzin, Raismes »; a decimal in a definition has a comma."""
    from pipelines.report import formats, labels

    assert formats.currency(959098.5) == "959\u202f099\xa0€"
    assert formats.currency(772549.5) == "772\u202f550\xa0€"
    assert formats.number(2.5) == "3"
    assert formats.percent(40.05) == "40,1\xa0%"
    assert formats.number(float("inf")) == formats.MISSING
    assert labels.communes("Anzin;Raismes") == "Anzin, Raismes"
    assert (
        labels.clean_text("en % (40.0 = 40 %), version 6.0.0")
        == "en % (40,0 = 40 %), version 6.0.0"
    )


def _squares(values: list[float | None]):
    """Four 1 km squares side by side (projected metres, y negated as ST_AsSVG writes it)."""
    from pipelines.report.charts import Area

    areas = [
        Area(
            code=f"Q{i}",
            path=f"M {i * 2000} 0 L {i * 2000 + 1000} 0 L {i * 2000 + 1000} -1000 "
            f"L {i * 2000} -1000 Z",
            value=value,
            info=f"quartier {i}",
            label=str(i + 1),
            x=i * 2000 + 500,
            y=500,
        )
        for i, value in enumerate(values)
    ]
    return areas, (0.0, 0.0, 2000.0 * len(values), 1000.0)


def test_maps_scale_bar_one_signed_classes_and_proportional_symbols():
    """Every map has a scale bar; values of one sign get sequential classes (no empty positive
    class for gaps that are all negative); amounts are circles whose area is proportional to
    the value, on grey contours."""
    from pipelines.report import charts

    areas, extent = _squares([-20.0, -12.5, -5.0, -1.0])
    svg = charts.choropleth(areas, extent, "écart", "points", palette="diverging")
    assert "class='echelle'" in svg and " km</text>" in svg
    legend = re.findall(r"<text[^>]*>(-?[\d,\u202f]+ à -?[\d,\u202f]+)</text>", svg)
    assert legend and all(text.count("-") == 2 for text in legend), legend
    assert not set(charts.DIVERGING) & set(re.findall(r"fill='(#[0-9a-f]{6})'", svg))

    both = charts.choropleth(*_squares([-3.0, 4.0]), "écart", "points", palette="diverging")
    assert charts.DIVERGING[0] in both and charts.DIVERGING[-1] in both

    areas, extent = _squares([400.0, 100.0, None, 25.0])
    svg = charts.choropleth(areas, extent, "montants", "€ accordés", symbols=True, unit_symbol="€")
    map_part = svg.split("class='echelle'")[0]
    radii = [
        float(r) for r in re.findall(r"<circle cx='[-\d.]+' cy='[-\d.]+' r='([\d.]+)'", map_part)
    ]
    assert len(radii) == 3  # the area without value has no circle
    # areas proportional to the values 400, 100, 25: radii in the ratio 4 : 2 : 1
    assert radii[0] / radii[1] == pytest.approx(2, rel=0.02)
    assert radii[1] / radii[2] == pytest.approx(2, rel=0.05)
    assert "fill='#f2f2f2'" in map_part  # contours in grey, no choropleth of amounts


def test_labels_of_the_report():
    from pipelines.report import labels

    assert labels.french_date("2026-09-01") == "1er septembre 2026"
    assert labels.french_date("2027-12-13") == "13 décembre 2027"
    assert labels.residence("HORS_QPV", {}) == "hors QPV"
    assert labels.residence("QN05901M", {"QN05901M": "Chasse Royale"}) == "Chasse Royale (QN05901M)"
    assert labels.clean_text("instruction, partie III (seed 004, annexe 8)") == (
        "instruction, partie III (annexe 8)"
    )
    assert "pop_municipale" not in labels.clean_text("moyenne pondérée par pop_municipale")
    assert labels.source_name("insee", "IPRO_2022.csv") == (
        "INSEE, base activité-emploi (IPRO) des QPV, millésime 2022"
    )
