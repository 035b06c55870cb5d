"""Zonings and contract targets as data: zonages.csv and objectifs.csv of the territory folders
(reader errors, transcriptions checked against the seeds), and the marts depenses_zonage,
tableau_bord_objectifs and indicateurs_resultat recomputed from the demo's raw files."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.settings import EXAMPLES_TERRITORIES_DIR
from pipelines.sources.territoires.reader import MESURES, ZONAGE_TYPES, verify
from pipelines.warehouse.exports import RESULT_FOLDER

SEEDS = Path("/work/shared/seeds")
YML = 'nom: "Test"\nsiren: "200000001"\n'
ZONAGES_HEADER = (
    "type_zonage,nom,code_zonage,code_qpv,code_commune,annee_debut,annee_fin,population,"
    "source_seed\n"
)
OBJECTIFS_HEADER = (
    "code,libelle,cible,sens,annee_debut,annee_cible,mesure,orientation_code,source_seed,citation\n"
)


def _verify(tmp_path: Path, **files: str) -> list[str]:
    folder = tmp_path / "territoires" / "T"
    folder.mkdir(parents=True)
    (folder / "territoire.yml").write_text(YML, encoding="utf-8")
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return verify(tmp_path)[1]


# -- reader ------------------------------------------------------------------------------------


def test_zonages_errors_name_file_line_and_column(tmp_path):
    errors = _verify(
        tmp_path,
        zonages=ZONAGES_HEADER
        + "qpv,Un QPV,Z1,QN05920M,,,,,seed\n"  # line 2: the QPV are not a zoning type
        + "cite_educative,Cité,CE,QN0592M,,,,,seed\n"  # line 3: malformed QPV code
        + "cite_educative,Cité,CE,,5939,,,,seed\n"  # line 4: malformed commune code
        + "site_renouvellement_urbain,Site,S,,,2020,2019,12a,seed\n"  # line 5
        + "site_renouvellement_urbain,Autre nom,S,QN05920M,,2020,2019,,seed\n",  # line 6
    )
    label = "territoires/T/zonages.csv"
    assert any(e.startswith(f"{label}: ligne 2, colonne type_zonage: « qpv »") for e in errors)
    assert (
        f"{label}: ligne 3, colonne code_qpv: « QN0592M » au lieu de un code QPV "
        "(QP059020, QN05920M)"
    ) in errors
    assert any(e.startswith(f"{label}: ligne 4, colonne code_commune: « 5939 »") for e in errors)
    assert f"{label}: ligne 5, colonne population: « 12a » au lieu de un nombre entier" in errors
    assert any(e.startswith(f"{label}: ligne 5, colonnes code_qpv et code_commune") for e in errors)
    assert f"{label}: ligne 5, colonne annee_fin: 2019 avant annee_debut 2020" in errors
    assert any(
        e.startswith(f"{label}: zonage « Site »: colonne nom: valeurs différentes")
        and "lignes 5, 6" in e
        for e in errors
    )


def test_objectifs_errors_name_file_line_and_column(tmp_path):
    errors = _verify(
        tmp_path,
        objectifs=OBJECTIFS_HEADER
        + "A,Objectif A,20 %,au_moins,2024,2027,,,seed,« cite »\n"  # line 2: target not a number
        + "B,Objectif B,20,,2024,2027,,,seed,« cite »\n"  # line 3: target without direction
        + "C,Objectif C,,,,,,,seed,« cite »\n"  # line 4: no year
        + "D,Objectif D,5,au_moins,2024,,taux_magique,,seed,« cite »\n"  # line 5: unknown measure
        + "E,Objectif E,5,au_moins,2024,,,O9,seed,« cite »\n"  # line 6: unknown orientation
        + "A,Objectif A bis,5,au_moins,2024,,nb_actions,,seed,\n"  # line 7: twice, no quote
        + "F,Objectif F,,,2024,,,O1,seed,« cite »\n",  # line 8: an orientation without measure
        orientations="referentiel,annee_debut,annee_fin,niveau,type_niveau,code,libelle\n"
        + "R,2024,2030,1,orientation,O1,Orientation 1\n"
        + "R,2024,2030,2,objectif,O1.1,Objectif 1.1\n",
    )
    label = "territoires/T/objectifs.csv"
    for start in (
        "ligne 2, colonne cible: « 20 % » au lieu de un nombre",
        "ligne 3, colonne sens: valeur manquante",
        "ligne 4, colonnes annee_debut et annee_cible",
        "ligne 5, colonne mesure: « taux_magique »",
        "ligne 6, colonne orientation_code: « O9 » n'est pas un code de niveau 1 de "
        "orientations.csv (codes possibles: O1)",
    ):
        assert any(e.startswith(f"{label}: {start}") for e in errors), start
    assert f"{label}: ligne 7, colonne code: « A » en double" in errors
    assert f"{label}: ligne 7, colonne citation: valeur manquante" in errors
    # an objective belongs to an orientation even when no measure of the warehouse observes it
    assert not any(e.startswith(f"{label}: ligne 8") for e in errors), errors


def test_quartiers_interet_communautaire_file_still_read(tmp_path):
    errors = _verify(
        tmp_path,
        quartiers_interet_communautaire="nom,commune,population\nCité X,Divion,741\n",
    )
    assert errors == []


def test_mesures_of_the_reader_are_those_of_the_warehouse():
    """The reader's list of measures, the SQL that computes them and the accepted values of
    ref_objectifs.mesure name the same measures."""
    root = Path(__file__).parents[1] / "dbt_project" / "models"
    sql = (root / "intermediate" / "int_objectifs__mesures.sql").read_text()
    computed = set(re.findall(r"\bas (\w+)", sql))
    assert set(MESURES) <= computed
    ref_sql = (root / "referentiels" / "ref_objectifs.sql").read_text()
    assert set(re.findall(r"when '(\w+)'\s+then", ref_sql)) >= set(MESURES)
    ref_zonages = (root / "referentiels" / "ref_zonages.sql").read_text()
    assert set(re.findall(r"when '(\w+)' then", ref_zonages)) | {"autre"} == set(ZONAGE_TYPES)


# -- transcriptions from the seeds ---------------------------------------------------------------


def _rows(code: str, name: str) -> list[dict[str, str]]:
    with (EXAMPLES_TERRITORIES_DIR / code / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _squash(text: str) -> str:
    text = text.replace("’", "'").replace("**", "")
    return re.sub(r"\s+", " ", text).strip().lower()


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seeds absentes")
@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("CAMVS", "objectifs.csv"),
        ("CABBALR", "objectifs.csv"),
        ("CAMVS", "zonages.csv"),
        ("CABBALR", "zonages.csv"),
    ],
)
def test_every_quote_is_in_its_seed(code, name):
    for row in _rows(code, name):
        if row["source_seed"] == "fictif":
            continue
        seed = _squash((SEEDS / row["source_seed"]).read_text(encoding="utf-8"))
        quote = _squash(row["citation"])
        if "[...]" in quote:
            parts = [p.strip() for p in quote.split("[...]")]
            assert all(p in seed for p in parts[:1]), (code, row["nom"], parts)
        else:
            assert quote in seed, (code, row.get("code") or row.get("nom"), quote)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seeds absentes")
def test_bethune_bruay_37_indicators_10_priorities():
    rows = _rows("CABBALR", "objectifs.csv")
    assert len(rows) == 37
    assert len({r["priorite"] for r in rows}) == 10
    seed = (SEEDS / "003_c5652a90ee1a608a.txt").read_text(encoding="utf-8")
    # the indicator lists of the seed: bullets between « Indicateurs d'évaluation » and the next
    # priority (or part 4)
    count = 0
    for block in re.split(r"Indicateurs d.évaluation", seed)[1:]:
        block = re.split(r"\n## ", block)[0]
        count += len(re.findall(r"^- ", block, flags=re.M))
    assert count == 37


#: a target of 1 written in words in its quote (« au moins un job dating »)
SPELLED = {"1": re.compile(r"\b(?:au moins|au minimum) une?\b")}


def test_maubeuge_targets_carry_the_numbers_of_their_quote():
    for row in _rows("CAMVS", "objectifs.csv"):
        quote = row["citation"].replace(",", ".")
        if row["cible"] == "100" and re.search(r"tous les QPV|chaque quartier", quote):
            continue  # « couvrir tous les QPV », « connecter chaque quartier »: 100 % of them
        if row["cible"] and row["cible"] != "0":
            spelled = SPELLED.get(row["cible"])
            assert row["cible"] in quote or (spelled and spelled.search(quote)), row["code"]
        if row["valeur_reference"]:
            assert row["valeur_reference"] in quote, row["code"]


#: the communes of the « projets de quartier » of seed 004, in the order of their parts (each
#: opens with « Présentation de la commune et de ses QPV »); Neuf-Mesnil's part never names it
PROJETS_DE_QUARTIER = (
    "Feignies",
    "Ferrière-la-Grande",
    "Hautmont",
    "Jeumont",
    "Louvroil",
    "Maubeuge",
    "Neuf-Mesnil",
    "Aulnoye-Aymeries",
)


def _engagements() -> list[dict[str, str]]:
    return [r for r in _rows("CAMVS", "objectifs.csv") if r["code"].startswith("ENG_")]


def _commune_parts() -> dict[str, str]:
    """Each commune's part of « Les projets de quartier » (seed 004), squashed."""
    seed = (SEEDS / "004_9f9696ea86a045e2.txt").read_text(encoding="utf-8")
    seed = seed[seed.index("Les projets de quartier") : seed.index("Les fils rouges du Contrat")]
    parts = re.split(r"Présentation de la commune et de (?:ses|son) QPV", seed)[1:]
    assert len(parts) == len(PROJETS_DE_QUARTIER)
    return {c: _squash(p) for c, p in zip(PROJETS_DE_QUARTIER, parts, strict=True)}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seeds absentes")
def test_each_engagement_is_quoted_from_its_own_commune_part():
    parts = _commune_parts()
    for commune, part in parts.items():
        if commune != "Neuf-Mesnil":  # every other part names its commune
            assert commune.split("-")[0].lower() in part, commune
    rows = _engagements()
    assert {r["operateur"] for r in rows} == set(PROJETS_DE_QUARTIER)
    for row in rows:
        assert _squash(row["citation"]) in parts[row["operateur"]], row["code"]
        assert row["source_libelle"] == f"Projets de quartier, {row['operateur']}"
    # Aulnoye-Aymeries lists its engagements as plain bullets: one row per bullet
    aulnoye = parts["Aulnoye-Aymeries"].split("les engagements de la commune pour les quartiers")
    bullets = re.findall(r"(?:^| )- [a-zéêà]", aulnoye[1])
    assert len([r for r in rows if r["operateur"] == "Aulnoye-Aymeries"]) == len(bullets) == 23


def test_engagements_codes_orientations_and_figures():
    """ENG_<COMMUNE>_<orientation>_<n>: the orientation of the code is the row's
    orientation_code (LCD, the discriminations theme, is not in orientations.csv); a figure only
    where the quote has one."""
    level_1 = {
        r["code"]: r["libelle"] for r in _rows("CAMVS", "orientations.csv") if r["niveau"] == "1"
    }
    for row in _engagements():
        orientation = row["code"].split("_")[-2]
        expected = {"PART": "T2", "LCD": ""}.get(orientation, orientation)
        assert row["orientation_code"] == expected, row["code"]
        if expected.startswith("O"):
            assert row["priorite"] == level_1[expected], row["code"]
        assert row["mesure"] == "" and row["annee_debut"] == "2024", row["code"]
    with_target = {r["code"]: r["cible"] for r in _engagements() if r["cible"]}
    assert with_target == {
        "ENG_FEIGNIES_O4_3": "45",  # « une économie de 45% sur les factures énergétiques »
        "ENG_HAUTMONT_O3_1": "1",  # « au moins un job dating dans le quartier »
        "ENG_MAUBEUGE_O4_6": "3",  # « se réunira 3 fois par an dans chaque quartier »
        "ENG_MAUBEUGE_O5_4": "100",  # « connecter chaque quartier [...] d'ici à 2030 »
        "ENG_MAUBEUGE_LCD_3": "1",  # « au minimum une journée dédiée »
    }


# -- marts on the demo ----------------------------------------------------------------------------


def _raw_vm(raw: Path, year: int) -> dict[str, dict]:
    """VM's programmation of ``year`` read from the raw CSV: per dossier its quartier cell and
    granted amount per financeur (the last line of a dossier x financeur, as the reader keeps)."""
    text = (raw / "programmations" / f"VM_programmation_{year}_DEMO_FICTIF.csv").read_bytes()
    lines = list(csv.reader(io.StringIO(text.decode("utf-8-sig"), newline=""), delimiter=";"))
    header = lines[1]
    out: dict[str, dict] = defaultdict(lambda: {"quartiers": "", "accorde": {}})
    for cells in lines[2:]:
        row = dict(zip(header, cells, strict=True))
        action = out[row["N° dossier"]]
        action["quartiers"] = row["Quartier(s) concerné(s)"]
        amount = re.sub(r"[\s\u00a0\u202f€]", "", row["Montant accordé"]).replace(",", ".")
        action["accorde"][row["Financeur"]] = Decimal(amount or "0")
    return out


@pytest.fixture(scope="module")
def warehouse(demo_build):
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


@pytest.mark.parametrize("year", [2026, 2027])
def test_depenses_zonage_recomputed_from_the_raw_programmation(demo_build, warehouse, year):
    """VM's fictitious cité éducative covers QN05926M and QN05927M (zonages.csv): its actions
    are those whose quartier cell names one of them or says « Tous les QPV »."""
    zonage = [r for r in _rows("VM", "zonages.csv") if r["code_zonage"] == "CE_FICTIVE_VM"]
    codes = {r["code_qpv"] for r in zonage}
    actions = {
        dossier: a
        for dossier, a in _raw_vm(demo_build / "raw", year).items()
        if a["quartiers"] == "Tous les QPV" or any(c in a["quartiers"] for c in codes)
    }
    nb, montant = warehouse.execute(
        "select sum(nb_actions), sum(montant_accorde_actions) from marts.depenses_zonage "
        "where territoire = 'VM' and code_zonage = 'CE_FICTIVE_VM' and annee = ?",
        [year],
    ).fetchone()
    assert nb == len(actions) > 0
    assert montant == sum(sum(a["accorde"].values()) for a in actions.values())
    # the zoning's share never exceeds the actions' whole amounts
    share = warehouse.execute(
        "select sum(montant_accorde_zonage) from marts.depenses_zonage "
        "where territoire = 'VM' and code_zonage = 'CE_FICTIVE_VM' and annee = ?",
        [year],
    ).fetchone()[0]
    assert 0 < share < montant


def test_every_demo_zoning_type_has_spending(warehouse):
    sql = "select distinct type_zonage from marts.depenses_zonage"
    types = {r[0] for r in warehouse.execute(sql).fetchall()}
    assert {"cite_educative", "site_renouvellement_urbain", "quartier_interet_communautaire"} <= (
        types
    )


def test_tableau_bord_objectifs_from_the_raw_programmation(demo_build, warehouse):
    """F_ACTIONS (VM, fictitious): at least 40 actions a year from 2026 to 2030."""
    target = next(r for r in _rows("VM", "objectifs.csv") if r["code"] == "F_ACTIONS")
    rows = warehouse.execute(
        "select annee, cible, valeur_observee, ecart, statut, motif_non_renseigne "
        "from marts.tableau_bord_objectifs where territoire = 'VM' and code_objectif = 'F_ACTIONS' "
        "order by annee"
    ).fetchall()
    years = [r[0] for r in rows]
    assert years == [2026, 2027, int(target["annee_cible"])]
    for annee, cible, observed, ecart, statut, _motif in rows[:2]:
        expected = len(_raw_vm(demo_build / "raw", annee))
        assert cible == Decimal(target["cible"])
        assert observed == expected
        assert ecart == expected - cible
        assert statut == ("atteint" if expected >= cible else "en cours")
    assert rows[2][2] is None and rows[2][4] == "non renseigné"
    # a target the warehouse does not observe: every year « non renseigné », with its reason
    statuts = warehouse.execute(
        "select distinct statut, motif_non_renseigne from marts.tableau_bord_objectifs "
        "where territoire = 'CAMVS' and code_objectif = 'A7_SNU'"
    ).fetchall()
    assert statuts == [("non renseigné", "pas de mesure de l'entrepôt pour cet objectif")]
    counts = dict(
        warehouse.execute(
            "select territoire, count(distinct code_objectif) from marts.tableau_bord_objectifs "
            "group by territoire"
        ).fetchall()
    )
    assert counts == {
        code: len(_rows(code, "objectifs.csv")) for code in ("CABBALR", "CAMVS", "VM")
    }


def test_communes_engagements_in_the_tableau_de_bord(demo_build, warehouse):
    """The CAMVS communes' engagements (objectifs.csv, ENG_ rows): as many per commune in the
    mart as in the file, each year « non renseigné » (no measure of the warehouse observes
    them), and a sample row with its target as transcribed."""
    expected = defaultdict(int)
    for row in _engagements():
        expected[row["operateur"]] += 1
    counts = dict(
        warehouse.execute(
            "select operateur, count(distinct code_objectif) from marts.tableau_bord_objectifs "
            "where territoire = 'CAMVS' and code_objectif like 'ENG\\_%' escape '\\' "
            "group by operateur"
        ).fetchall()
    )
    assert counts == expected
    assert sum(counts.values()) == 197 and counts["Maubeuge"] == 67
    statuts = warehouse.execute(
        "select distinct statut, motif_non_renseigne from marts.tableau_bord_objectifs "
        "where territoire = 'CAMVS' and code_objectif like 'ENG%'"
    ).fetchall()
    assert statuts == [("non renseigné", "pas de mesure de l'entrepôt pour cet objectif")]
    sample = next(r for r in _engagements() if r["code"] == "ENG_MAUBEUGE_O4_6")
    rows = warehouse.execute(
        "select annee, cible, unite, sens, orientation_code, operateur, priorite, citation "
        "from marts.tableau_bord_objectifs where territoire = 'CAMVS' "
        "and code_objectif = 'ENG_MAUBEUGE_O4_6' order by annee"
    ).fetchall()
    # its years: annee_debut (2024) and every later year of CAMVS programmation loaded
    loaded = {
        int(re.search(r"_(\d{4})_", p.name).group(1))
        for p in (demo_build / "raw" / "programmations").glob("CAMVS_programmation_*")
    }
    assert [r[0] for r in rows] == sorted({2024} | {y for y in loaded if y >= 2024})
    for _annee, cible, unite, sens, orientation, operateur, priorite, citation in rows:
        assert cible == Decimal(sample["cible"]) == 3
        assert (unite, sens, orientation, operateur) == (
            "réunions par an dans chaque quartier",
            "au moins",
            "O4",
            "Maubeuge",
        )
        assert priorite == sample["priorite"] and citation == sample["citation"]


def test_indicateurs_resultat_and_their_export(demo_build, warehouse):
    for year in (2026, 2027):
        value = warehouse.execute(
            "select valeur from marts.indicateurs_resultat where territoire = 'VM' and annee = ? "
            "and code_indicateur = 'actions_programmees'",
            [year],
        ).fetchone()[0]
        assert value == len(_raw_vm(demo_build / "raw", year))
    missing = warehouse.execute(
        "select distinct code_indicateur from marts.indicateurs_resultat "
        "where statut = 'non renseigné' and valeur is null"
    ).fetchall()
    assert {("avancement_renouvellement_urbain",), ("actions_tfpb",)} <= set(missing)
    folder = demo_build / "marts" / RESULT_FOLDER
    files = sorted(p.name for p in folder.glob("*.csv"))
    expected = warehouse.execute(
        "select distinct territoire || '_' || annee || '.csv' from marts.indicateurs_resultat "
        "order by 1"
    ).fetchall()
    assert files == [r[0] for r in expected]
    text = (folder / "VM_2026.csv").read_text(encoding="utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert len(lines) == 13
    first = lines[0]
    assert first["libelle_indicateur"] == "Actions programmées"
    assert first["valeur"].replace(",", ".").rstrip("0").rstrip(".") == str(
        len(_raw_vm(demo_build / "raw", 2026))
    )


def test_result_indicator_files_of_unchanged_years_are_linked(demo_build, tmp_path):
    """A build of some years links the published file of a territory and year whose rows did
    not change (same inode), and writes the others; the files are those of a full export."""
    import shutil

    from pipelines.warehouse.exports import export_result_indicators

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_build / "warehouse.duckdb", warehouse)
    con = duckdb.connect(str(warehouse))
    published = tmp_path / "publie"
    first = export_result_indicators(con, published)
    assert (published / RESULT_FOLDER / ".empreintes.json").is_file()
    con.execute(
        "update marts.indicateurs_resultat set valeur = valeur + 1 "
        "where territoire = 'VM' and annee = 2026 and code_indicateur = 'actions_programmees'"
    )
    second = export_result_indicators(con, tmp_path / "annee", published)
    scratch = export_result_indicators(con, tmp_path / "complet")
    con.close()
    assert [p.name for p in second] == [p.name for p in first] == [p.name for p in scratch]
    old, new = published / RESULT_FOLDER, tmp_path / "annee" / RESULT_FOLDER
    relinked = {p.name for p in second if p.stat().st_ino == (old / p.name).stat().st_ino}
    assert relinked == {p.name for p in first} - {"VM_2026.csv"}
    for path in scratch:
        assert (new / path.name).read_bytes() == path.read_bytes()
    assert (new / "VM_2026.csv").read_bytes() != (old / "VM_2026.csv").read_bytes()
