"""Indicator marts on the six real INSEE files plus other vintages, dialects and providers.

One build reads, together: the six real national files of ../shared/data/insee_qpv2015 (skipped
when absent), an older vintage in another dialect with the "Ensemble des quartiers prioritaires"
row (IPRO 2019: lower-case names, ``,`` separator, quoted fields, decimal point, ``s`` markers,
the old name TX_TOT_EPREC), a 2024-geography XLSX (documentation sheet, moving header), the
demo's Compas-style workbook with its mapping, a reference-value file and an official-format
2015 <-> 2024 correspondence file. The marts are compared with an independent read of the files,
all rows and all columns (one build per module, source assets and dbt: tests/conftest.py
``build_direct``; pytest-xdist runs a module in one worker).
"""

from __future__ import annotations

import csv
import re
import shutil
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook, load_workbook

from pipelines.settings import (
    DBT_PROJECT_DIR,
    DEMO_DIR,
    EXAMPLES_TERRITORIES_DIR,
    REFERENTIELS_DIR,
)
from pipelines.sources.referentiels.reader import read_reference_file
from pipelines.sources.territoires.examples import referentiel_rows
from tests.conftest import build_direct, shared_data

SEEDS = DBT_PROJECT_DIR / "seeds"
QPV = re.compile(r"^Q[PN](\d{3}|02[AB])\d{2}[0-9NMIC]$")
SECRET = {"", "s", "nd", "ns", "nc"}
KEYS = {"CODGEO", "LIBGEO"}
TEXT = {"LIB_COM"}

IPRO_2019 = (
    '"codgeo","libgeo","tx_tot_empl","tx_f_empl","tx_tot_eprec","abcde"\n'
    '"QP059020","Verrerie - Square République","42.0","36.1","20.5","1 300"\n'
    '"QP059021","Zone Intercommunale Rives De L\'Escaut","s","s","nd","2 100"\n'
    '"QP059011","Les Explorateurs","35.0","30.0","22.0","900"\n'
    '"","Ensemble des quartiers prioritaires","45.5","40.2","25.1","1 000 000"\n'
)


def _write_xlsx_2024(path: Path) -> None:
    book = Workbook()
    book.active.title = "Documentation"
    book.active["A1"] = "Base fictive de test, géographie 2024"
    sheet = book.create_sheet("IPRO_2024")
    sheet["A1"] = "Activité - QPV 2024 (fictif)"
    sheet.append([])
    sheet.append([])
    sheet.append(["CODGEO", "LIBGEO", "TX_TOT_EMPL", "TX_F_EMPL", "ABCDE"])
    sheet.append(["QN05920M", "Verrerie - Square République", 39.0, 33.0, 310])
    sheet.append(["QN05922M", "Cité Thiers - Cité Du Rivage - Brunehaut", "s", "s", 500])
    sheet.append(["QN05923M", "Centre Ville - Le Jard", 30.0, 28.0, 450])
    book.save(path)


PASSAGE = (
    "QP2024;Label_QP2024;Statut;QP2015_1;QP2015_2\n"
    "QN05920M;Verrerie - Square République;Modifié;QP059020;\n"
    "QN05922M;Cité Thiers - Cité Du Rivage - Brunehaut;Fusion;QP059022;QP059056\n"
    "QN05992N;Bruay Centre - Pont de Bruay;Nouveau;;\n"
)
REFERENCES = (
    "territoire_type;territoire_code;millesime;indicateur;valeur;source\n"
    "france;FRANCE;2022;taux_emploi;66,0;INSEE RP 2019 (fichier de test)\n"
    "commune;59153;2024;taux_emploi;45,0;INSEE RP 2021 (fichier de test)\n"
)
# an extract of the official list of QPV 2024: gives the commune code of a single-commune QPV
LISTE = (
    "\ufeffcode_qp;lib_qp;insee_reg;lib_reg;insee_dep;lib_dep;insee_com;lib_com;siren_epci;"
    "lib_epci\n"
    "QN05923M;Centre Ville - Le Jard;32;Hauts-de-France;59;Nord;59153;Condé-sur-l'Escaut;"
    "245901160;CA Valenciennes Métropole\n"
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    real = shared_data("insee_qpv2015")
    base = tmp_path_factory.mktemp("indicateurs")
    raw = base / "raw"
    (raw / "insee").mkdir(parents=True)
    for path in real.glob("*.csv"):
        shutil.copy(path, raw / "insee")
    (raw / "insee" / "IPRO_2019_autre_dialecte.csv").write_text(IPRO_2019, encoding="utf-8")
    _write_xlsx_2024(raw / "insee" / "IPRO_2024_geographie_2024.xlsx")
    from tools.demo.synthetic import write_synthetic_demo

    demo = base / "demo"
    write_synthetic_demo(demo, REFERENTIELS_DIR)
    (raw / "compas").mkdir()
    shutil.copy(next((demo / "compas").glob("*.xlsx")), raw / "compas")
    shutil.copy(DEMO_DIR / "compas" / "COMPAS_indicateurs.mapping.yml", raw / "compas")
    (raw / "sig_ville").mkdir()
    (raw / "sig_ville" / "listeqp2024-cog2024.csv").write_text(LISTE, encoding="utf-8")
    # the example territory folders (perimeters, hierarchies...), as a user declares them
    shutil.copytree(EXAMPLES_TERRITORIES_DIR, raw / "territoires")
    (raw / "referentiels").mkdir()
    (raw / "referentiels" / "passage_qp2015_qp2024.csv").write_text(PASSAGE, encoding="utf-8")
    (raw / "referentiels" / "valeurs_reference.csv").write_text(REFERENCES, encoding="utf-8")
    marts = (
        "indicateurs_qpv",
        "taux_emploi_quartier",
        "fiche_quartier",
        "agregats_qpv",
        "indicateurs_references",
        "dim_qpv",
    )
    con = duckdb.connect(str(build_direct(raw, base, *marts)), read_only=True)
    yield {"con": con, "raw": raw, "real": real, "base": base}
    con.close()


# -- independent read of the INSEE-style files -----------------------------------------------


def _number(cell: str) -> float:
    text = re.sub(r"[\s\u00a0\u202f]", "", cell)
    return float(text.replace(",", ".")) if "," in text and "." not in text else float(text)


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if path.suffix == ".xlsx":
        sheet = load_workbook(path, read_only=True).worksheets[1]
        rows = [["" if v is None else str(v) for v in r] for r in sheet.iter_rows(values_only=True)]
        start = next(i for i, r in enumerate(rows) if r and r[0] == "CODGEO")
        return rows[start], [r for r in rows[start + 1 :] if any(r)]
    text = path.read_bytes().decode("utf-8-sig")
    first = text.splitlines()[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    return rows[0], rows[1:]


def independent_read(folder: Path) -> tuple[dict, dict, dict, dict]:
    """{(code, millésime, base, variable): (valeur, secret)} for QPV rows; labels; aggregates."""
    values, labels, text_cols, ensemble = {}, {}, {}, {}
    for path in sorted(folder.iterdir()):
        base = path.name.split("_")[0].upper()
        year = int(re.search(r"(19|20)\d\d", path.name).group())
        header, rows = _rows(path)
        names = [h.strip().upper() for h in header]
        for row in rows:
            code = row[0].strip().upper()
            is_qpv = bool(QPV.match(code))
            if is_qpv:
                labels[(code, year, base)] = row[1]
            for name, cell in zip(names, row, strict=False):
                if not name or name in KEYS:
                    continue
                if name in TEXT:
                    text_cols[(code, year, base, name)] = cell
                    continue
                secret = cell.strip().lower() in SECRET
                value = None if secret else _number(cell)
                if is_qpv:
                    values[(code, year, base, name)] = (value, secret)
                elif "ensemble" in row[1].lower() and not secret:
                    ensemble[(year, base, name)] = value
    return values, labels, text_cols, ensemble


@pytest.mark.scenario
def test_indicateurs_qpv_reproduces_every_published_value(warehouse):
    con, raw = warehouse["con"], warehouse["raw"]
    expected, labels, _, _ = independent_read(raw / "insee")
    rows = con.execute(
        "select code_qpv, millesime, source, variable, valeur, secret, libelle_qpv, "
        "indicateur, unite from marts.indicateurs_qpv where origine = 'INSEE'"
    ).fetchall()
    got = {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in rows}
    assert len(got) == len(rows)  # one row per QPV x millésime x base x variable
    assert got == expected
    real = {k: v for k, v in got.items() if k[1] in (2021, 2022)}
    assert len(real) == 325_278  # the six real files: every cell of every QPV row
    assert sum(1 for v in real.values() if v[1]) > 0
    # secret cells: NULL with their flag, never a number
    assert all((v is None) == s for v, s in got.values())
    assert {(r[0], r[1], r[2]): r[6] for r in rows} == labels
    # every variable of the six real files maps to an indicator of the dictionary, with its unit
    unmapped = {(r[2], r[3]) for r in rows if r[7] is None}
    assert unmapped == set()
    assert {r[8] for r in rows} <= {"%", "nombre", "euros", "indice", "code"}


@pytest.mark.scenario
def test_text_columns_and_old_names(warehouse):
    con, raw = warehouse["con"], warehouse["raw"]
    _, _, text_cols, _ = independent_read(raw / "insee")
    got = {
        (r[0], r[1], r[2], r[3]): r[4]
        for r in con.execute(
            "select code_territoire, millesime, source, variable, valeur_texte "
            "from staging.stg_insee__valeurs "
            "where variable <> 'LIBGEO' and (valeur_texte is not null or variable = 'LIB_COM')"
        ).fetchall()
    }
    assert {k: (v or None) for k, v in text_cols.items()} == got
    old = con.execute(
        "select indicateur from marts.indicateurs_qpv where variable = 'TX_TOT_EPREC'"
    ).fetchall()
    assert {r[0] for r in old} == {"part_emplois_precaires"}


@pytest.mark.scenario
def test_national_aggregate_row_is_a_reference_never_a_qpv(warehouse):
    con, raw = warehouse["con"], warehouse["raw"]
    _, _, _, ensemble = independent_read(raw / "insee")
    assert ensemble  # the IPRO 2019 test file has the row
    n = con.execute(
        "select count(*) from marts.indicateurs_qpv where code_qpv = 'ENSEMBLE_QPV' "
        "or libelle_qpv ilike 'ensemble%'"
    ).fetchone()[0]
    assert n == 0
    refs = dict(
        con.execute(
            "select indicateur, valeur from marts.indicateurs_references "
            "where territoire_type = 'ensemble_qpv' and millesime = 2019 and origine = 'INSEE'"
        ).fetchall()
    )
    assert refs == {
        "taux_emploi": 45.5,
        "taux_emploi_femmes": 40.2,
        "part_emplois_precaires": 25.1,
        "demandeurs_emploi_abcde": 1_000_000.0,
    }
    row = con.execute(
        "select taux_emploi_ensemble_qpv, millesime_reference_ensemble_qpv, "
        "ecart_ensemble_qpv_points from marts.taux_emploi_quartier "
        "where code_qpv = 'QP059020' and millesime = 2022"
    ).fetchone()
    assert row == (45.5, 2019, round(40.0 - 45.5, 1))


@pytest.mark.scenario
def test_taux_emploi_evolution_and_comparability(warehouse):
    con = warehouse["con"]
    rows = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "select code_qpv, millesime, code_qpv_precedent, millesime_precedent, "
            "taux_emploi_precedent, evolution_points, comparabilite_evolution, "
            "taux_emploi_france, source_reference_france, taux_emploi_commune "
            "from marts.taux_emploi_quartier"
        ).fetchall()
    }
    assert len(rows) == 2 * 1345 + 3 + 3
    # 2019 -> 2022 (3 years, same code): published; 2021 -> 2022 would be consecutive
    assert rows[("QP059020", 2022)][:5] == ("QP059020", 2019, 42.0, -2.0, "comparable")
    assert rows[("QP059020", 2021)][:5] == (
        "QP059020",
        2019,
        42.0,
        round(40.9 - 42.0, 1),
        "comparable",
    )
    # no 2019 value: the consecutive millésime is shown, no evolution
    flag = rows[("QP001001", 2022)]
    assert flag[1] == 2021 and flag[3] is None and flag[4] == "ecart_millesimes_insuffisant"
    # QP059021 is under secret in 2019: the previous comparable value is the last published one
    assert rows[("QP059021", 2022)][4] == "ecart_millesimes_insuffisant"
    # 2024 geography: the predecessor of the official crosswalk, never an evolution
    assert rows[("QN05920M", 2024)][:5] == ("QP059020", 2022, 40.0, None, "autre_geographie")
    assert rows[("QN05922M", 2024)][4] == "sans_millesime_precedent"  # a merger: no value
    counts = defaultdict(int)
    for key, value in rows.items():
        counts[(key[1], value[4])] += 1
    assert counts[(2021, "sans_millesime_precedent")] == 1345 - 2
    # the user's reference file: same millésime preferred to the undated seed values
    assert rows[("QP059020", 2022)][5:7] == (66.0, "INSEE RP 2019 (fichier de test)")
    assert rows[("QN05923M", 2024)][7] == 45.0  # a single-commune QPV (official list)
    assert rows[("QN05920M", 2024)][7] is None  # no commune code known


@pytest.mark.scenario
def test_crosswalk_official_file_then_seed(warehouse):
    con = warehouse["con"]
    rows = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "select code_qpv_2015, code_qpv_2024, type_lien, origine "
            "from intermediate.int_qpv__passage_2015_2024"
        ).fetchall()
    }
    assert rows[("QP059020", "QN05920M")][0] == "un_pour_un"
    assert rows[("QP059020", "QN05920M")][1].startswith("fichier officiel")
    assert rows[("QP059056", "QN05922M")][0] == "fusion"
    assert rows[(None, "QN05992N")][0] == "entree"
    seed = rows[("QP059011", "QN05910M")]
    assert seed == ("un_pour_un", "seed (nom et numéro, à confirmer par le fichier officiel)")


@pytest.mark.scenario
def test_compas_rows_flow_through_their_mapping(warehouse):
    con, raw = warehouse["con"], warehouse["raw"]
    rows = con.execute(
        "select code_qpv, millesime, variable, indicateur, unite, valeur, secret "
        "from marts.indicateurs_qpv where source = 'COMPAS'"
    ).fetchall()
    book = load_workbook(next((raw / "compas").glob("*.xlsx")), read_only=True)
    sheet = book.worksheets[1]
    cells = list(sheet.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(cells) if r and r[0] == "Code territoire")
    expected = {}
    for r in cells[start + 1 :]:
        if r and r[0] and r[2] == "QPV":
            for name, cell in zip(cells[start][4:], r[4:], strict=True):
                expected[(r[0], name)] = None if cell == "s" else float(cell)
    assert {(r[0], r[2]): r[5] for r in rows} == expected
    assert all(r[3] is not None and r[1] == 2022 for r in rows)
    assert all((r[5] is None) == r[6] for r in rows)
    units = {r[3]: r[4] for r in rows}
    assert units["indice_fragilite"] == "indice" and units["allocataires_caf"] == "nombre"
    # the EPCI rows of the workbook are reference values, not QPV rows
    epci = con.execute(
        "select count(*) from marts.indicateurs_references "
        "where origine = 'fournisseur local' and territoire_type = 'epci'"
    ).fetchone()[0]
    assert epci == 3 * 8
    fiche = con.execute(
        "select indice_fragilite, sources from marts.fiche_quartier "
        "where code_qpv = 'QN05921M' and millesime = 2022"
    ).fetchone()
    assert fiche[0] == expected[("QN05921M", "Indice de fragilité")] and "COMPAS" in fiche[1]


def _dictionary_variables() -> dict[tuple[str, str], str]:
    with (SEEDS / "indicateurs" / "ref_indicateurs_variables.csv").open(encoding="utf-8") as fh:
        return {(r["source"], r["variable"]): r["indicateur"] for r in csv.DictReader(fh)}


@pytest.mark.scenario
def test_fiche_quartier_one_row_per_qpv_and_millesime(warehouse):
    con, raw = warehouse["con"], warehouse["raw"]
    expected, _, _, _ = independent_read(raw / "insee")
    variables = _dictionary_variables()
    # the project's rule, recomputed: published before secret, then bases in alphabetical order
    chosen: dict[tuple, tuple] = {}
    for (code, year, base, name), (value, secret) in sorted(expected.items()):
        indicateur = variables.get((base, name))
        if indicateur is None:
            continue
        key = (code, year, indicateur)
        if key not in chosen or (chosen[key][1] and not secret):
            chosen[key] = (value, secret)
    columns = [
        c[0]
        for c in con.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'fiche_quartier' order by ordinal_position"
        ).fetchall()
    ]
    # beneficiaires_c2s is CC2S until 2021, C_C2SNP + C_C2SP from 2022: checked below
    indicators = [c for c in columns if c != "beneficiaires_c2s" and any(k[2] == c for k in chosen)]
    assert {
        "pop_municipale",
        "taux_emploi",
        "demandeurs_emploi_abc_femmes",
        "revenu_disponible_median_uc",
        "allocataires_caf",
        "part_0_24",
    } <= set(indicators)
    rows = con.execute(
        f"select code_qpv, millesime, {', '.join(indicators)} from marts.fiche_quartier "
        "where code_qpv like 'QP%'"
    ).fetchall()
    assert len(rows) == len({(k[0], k[1]) for k in expected if k[0].startswith("QP")})
    for row in rows:
        for name, value in zip(indicators, row[2:], strict=True):
            want = chosen.get((row[0], row[1], name), (None, True))[0]
            assert value == want, (row[0], row[1], name)
    c2s = dict(
        ((r[0], r[1]), r[2])
        for r in con.execute(
            "select code_qpv, millesime, beneficiaires_c2s from marts.fiche_quartier "
            "where code_qpv like 'QP%' and millesime in (2021, 2022)"
        ).fetchall()
    )
    for (code, year), value in c2s.items():
        if year == 2021:
            want = (
                expected[(code, 2021, "REVN", "CC2S")][0]
                if (code, 2021, "REVN", "CC2S") in expected
                else None
            )
        else:
            parts = [
                expected.get((code, 2022, "REVN", v), (None, True))[0]
                for v in ("C_C2SNP", "C_C2SP")
            ]
            want = None if None in parts else sum(parts)
        assert value == want, (code, year)


@pytest.mark.scenario
def test_aggregates_recomputed_from_counts_or_weighted(warehouse):
    con, raw = warehouse["con"], warehouse["raw"]
    expected, _, _, _ = independent_read(raw / "insee")
    vm = [
        r["code_qpv"]
        for r in referentiel_rows("ref_perimetre_qpv.csv")
        if r["territoire"] == "VM" and r["geographie"] == "2015"
    ]
    pop = {c: expected[(c, 2022, "DEMO", "POP_MUN")][0] for c in vm}
    taux = {c: expected[(c, 2022, "IPRO", "TX_TOT_EMPL")][0] for c in vm}
    assert None not in pop.values() and None not in taux.values()  # all published for VM
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select indicateur, valeur, complet, methode, nb_qpv from marts.agregats_qpv "
            "where niveau = 'territoire_contrat' and code_territoire = 'VM' "
            "and geographie = '2015' and millesime = 2022"
        ).fetchall()
    }
    assert rows["pop_municipale"][:2] == (sum(pop.values()), True)
    assert rows["pop_municipale"][3] == len(vm)
    weighted = sum(taux[c] * pop[c] for c in vm) / sum(pop.values())
    assert rows["taux_emploi"][0] == pytest.approx(weighted, abs=1e-6)
    assert "pondérée par pop_municipale" in rows["taux_emploi"][2]
    assert "approximation" in rows["taux_emploi"][2]
    assert "revenu_disponible_median_uc" not in rows  # a median is never aggregated
    assert "taux_emploi_femmes" not in rows  # no weight published for its denominator
    incomplete = con.execute(
        "select count(*) from marts.agregats_qpv where not complet and valeur is not null"
    ).fetchone()[0]
    assert incomplete == 0


# -- readers of raw/referentiels (pure functions) --------------------------------------------


def test_reference_readers(tmp_path):
    path = tmp_path / "passage.csv"
    path.write_text(PASSAGE, encoding="utf-8")
    passage = read_reference_file(path)
    assert passage.kind == "passage_qpv"
    pairs = {(r.code_qpv_2015, r.code_qpv_2024, r.statut) for r in passage.rows.itertuples()}
    assert pairs == {
        ("QP059020", "QN05920M", "Modifié"),
        ("QP059022", "QN05922M", "Fusion"),
        ("QP059056", "QN05922M", "Fusion"),
        (None, "QN05992N", "Nouveau"),
    }
    # the reverse file (one row per QPV 2015) gives the same pairs
    reverse = tmp_path / "reverse.csv"
    reverse.write_text(
        "QP2015;Nom;QP2024_1;QP2024_2\nQP059020;Verrerie;QN05920M;\nQP059099;Sorti;;\n",
        encoding="utf-8",
    )
    rows = read_reference_file(reverse).rows
    assert {(r.code_qpv_2015, r.code_qpv_2024) for r in rows.itertuples()} == {
        ("QP059020", "QN05920M"),
        ("QP059099", None),
    }

    values = tmp_path / "refs.csv"
    values.write_text(
        REFERENCES + "epci;245901160;;taux_emploi;53,8;seed\n;FR;2022;taux_emploi;abc;x\n"
        "commune;1053;2021;pop_municipale;41 248;RP\n",
        encoding="utf-8",
    )
    ref = read_reference_file(values)
    assert ref.kind == "valeurs_reference"
    got = {
        (r.territoire_type, r.territoire_code, r.millesime): r.valeur for r in ref.rows.itertuples()
    }
    assert got[("france", "FRANCE", 2022)] == 66.0
    assert got[("commune", "01053", 2021)] == 41248.0  # leading zero restored
    assert len(ref.rejects) == 1 and "non numérique" in ref.rejects.motif.iloc[0]
    assert ref.report == {"lignes_lues": 5, "lignes_chargees": 4, "lignes_rejetees": 1}

    alias = tmp_path / "entetes_alias.csv"
    alias.write_text("colonne,alias\nmontant_demande,Montant sollicité\n", encoding="utf-8")
    assert read_reference_file(alias) is None  # another reader's file


@pytest.mark.scenario
def test_taux_emploi_quartier_on_real_files(warehouse):
    """Every QPV of the two real IPRO files, exact values, secret where the cell is blank."""
    folder = warehouse["real"]
    expected = {}
    for millesime in (2021, 2022):
        with (folder / f"IPRO_{millesime}.csv").open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                cells = [row["TX_TOT_EMPL"], row["TX_F_EMPL"], row["TX_ET_EMPL"]]
                expected[(row["CODGEO"], millesime)] = [
                    float(c.replace(",", ".")) if c.strip() else None for c in cells
                ]
    rows = (
        warehouse["con"]
        .execute(
            "select code_qpv, millesime, taux_emploi, taux_emploi_femmes, taux_emploi_etrangers, "
            "secret_taux_emploi from marts.taux_emploi_quartier where millesime in (2021, 2022)"
        )
        .fetchall()
    )
    got = {(r[0], r[1]): list(r[2:5]) for r in rows}
    assert len(got) == len(rows) == len(expected) == 2 * 1345
    assert got == expected
    assert got[("QP059020", 2022)][0] == pytest.approx(40.0)
    secret = {(r[0], r[1]) for r in rows if r[5]}
    assert secret == {k for k, v in expected.items() if v[0] is None}
    con = warehouse["con"]
    n = con.execute("select count(*) from marts.dim_qpv where geographie = '2015'").fetchone()[0]
    assert n == 1400  # every QPV of the DEMO files (IPRO has 1,345)
