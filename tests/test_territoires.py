"""Territories as the user's data: the territory folders (reader, `observatoire territoire
verifier`), the example folders the demo copies, and a build without any folder, where every
EPCI holding a loaded QPV is a territory named from the Etalab référentiel."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.settings import EXAMPLES_TERRITORIES_DIR, REFERENTIELS_DIR
from pipelines.sources.territoires.assets import territoires
from pipelines.sources.territoires.examples import referentiel_rows
from pipelines.sources.territoires.reader import verify
from tests.conftest import build_direct, materialize_direct, run_cli


def _folder(root: Path, code: str, yml: str, **files: str) -> Path:
    folder = root / "territoires" / code
    folder.mkdir(parents=True)
    (folder / "territoire.yml").write_text(yml, encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_examples_are_valid_and_keep_every_row_of_their_files():
    territories, errors = verify(EXAMPLES_TERRITORIES_DIR)
    assert errors == []
    assert [t.code for t in territories] == ["CABBALR", "CAMVS", "VM"]
    for name in ("perimetre_qpv.csv", "orientations.csv", "regles_financement.csv"):
        in_files = 0
        for folder in EXAMPLES_TERRITORIES_DIR.iterdir():
            if (folder / name).is_file():
                with (folder / name).open(encoding="utf-8") as fh:
                    in_files += sum(1 for _ in csv.DictReader(fh))
        assert len(referentiel_rows(f"ref_{name}")) == in_files
    vm = [r for r in referentiel_rows("ref_perimetre_qpv.csv") if r["territoire"] == "VM"]
    assert len(vm) == 29 and {r["geographie"] for r in vm} == {"2015", "2024"}


def test_every_error_named_with_file_line_and_column(tmp_path):
    _folder(
        tmp_path,
        "X1",
        'nom: Test\nsiren: "12345"\nfoo: 1\nperimetre: liste\n',
        **{
            "perimetre_qpv.csv": "code_qpv;geographie\nQN05920M;2024\n;2024\nQN0592M;2030\n"
            "QN05921M;2024;de trop\n",
            "regles_financement.csv": "regle,annee_debut,valeur,unite,controle,tolerance\n"
            "r1,2024,5000,EUR,montant_demande,dix\n",
            "notes.txt": "hors format\n",
        },
    )
    _folder(tmp_path, "x2", "nom: Autre\n")
    territories, errors = verify(tmp_path)
    text = "\n".join(errors)
    expected = [
        "territoires/X1/territoire.yml: clé(s) inconnue(s) foo",
        "territoires/X1/territoire.yml: siren « 12345 » invalide",
        "territoires/X1/perimetre_qpv.csv: ligne 3, colonne code_qpv: valeur manquante",
        "territoires/X1/perimetre_qpv.csv: ligne 4, colonne code_qpv: « QN0592M » au lieu de",
        "territoires/X1/perimetre_qpv.csv: ligne 4, colonne geographie: « 2030 » au lieu de",
        "territoires/X1/perimetre_qpv.csv: ligne 5: 3 champs, l'en-tête en a 2",
        "territoires/X1/regles_financement.csv: ligne 2, colonne tolerance: « dix »",
        "territoires/X1/notes.txt: fichier inconnu",
        "territoires/x2: nom de dossier invalide",
        "territoires/x2/territoire.yml: clé « siren » manquante ou vide",
    ]
    for message in expected:
        assert message in text, message
    assert len(errors) == len(expected)


def test_a_folder_must_be_its_own_territory(tmp_path):
    _folder(
        tmp_path,
        "VM",
        'nom: Valenciennes Métropole\nsiren: "245901160"\n',
        **{"statuts_action.csv": "territoire;statut_code;libelle;categorie\nCAMVS;a;a;nouvelle\n"},
    )
    _folder(tmp_path, "VM2", 'nom: Copie\nsiren: "245901160"\n')
    _, errors = verify(tmp_path)
    assert errors == [
        "territoires/VM/statuts_action.csv: ligne 2, colonne territoire: « CAMVS » alors que le "
        "dossier est celui de VM",
        "territoires/VM2/territoire.yml: siren 245901160 déjà déclaré par territoires/VM",
    ]


def test_cli_verifier(tmp_path):
    ok = run_cli("territoire", "verifier", str(EXAMPLES_TERRITORIES_DIR / "VM"))
    assert ok.returncode == 0, ok.stderr
    assert "VM: Communauté d'Agglomération Valenciennes Métropole (SIREN 245901160)" in ok.stdout
    _folder(tmp_path, "AB", 'nom: A\nsiren: "200000000"\nperimetre: liste\n')
    bad = run_cli("territoire", "verifier", str(tmp_path))
    assert bad.returncode == 1
    assert "territoires/AB/territoire.yml: perimetre: liste sans perimetre_qpv.csv" in bad.stderr


def test_epci_referentiel_derived_from_etalab():
    with (REFERENTIELS_DIR / "ref_epci.csv").open(encoding="utf-8") as fh:
        epci = {r["siren"]: r for r in csv.DictReader(fh)}
    with (REFERENTIELS_DIR / "ref_epci_communes.csv").open(encoding="utf-8") as fh:
        communes = {r["code_commune"]: r["siren_epci"] for r in csv.DictReader(fh)}
    assert len(epci) == 1255
    assert epci["245901160"]["nom"] == "CA Valenciennes Métropole"
    assert epci["246200364"]["nom"].startswith("CA de Lens")
    assert communes["59606"] == "245901160"  # Valenciennes
    assert all(re.fullmatch(r"\d{5}|2[AB]\d{3}", c) for c in communes)


# -- a build with no territory folder -------------------------------------------------------

# two QPV of the official list 2024 in two EPCI (the columns of listeqp2024-cog2024.csv), and
# one over two communes of two EPCI (Condé-sur-l'Escaut in VM, Vieux-Condé... in CAPH)
LISTE = (
    "code_qp;lib_qp;insee_reg;lib_reg;insee_dep;lib_dep;insee_com;lib_com;siren_epci;lib_epci\n"
    "QN06201M;Cité 10 - Grande Résidence;32;Hauts-de-France;62;Pas-de-Calais;62498;Lens;"
    "246200364;CA de Lens - Liévin\n"
    "QN05923M;Centre Ville - Le Jard;32;Hauts-de-France;59;Nord;59153;Condé-sur-l'Escaut;"
    "245901160;CA Valenciennes Métropole\n"
    # over two communes of two EPCI: Méricourt (Lens - Liévin), Rouvroy (Hénin-Carvin)
    'QN06245M;Quartier Du Maroc - La Canche;32;Hauts-de-France;62;Pas-de-Calais;"62570; 62724";'
    '"Méricourt; Rouvroy";246200364;CA de Lens - Liévin\n'
)


@pytest.fixture(scope="module")
def without_folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("sans_territoire")
    raw = base / "raw"
    (raw / "sig_ville").mkdir(parents=True)
    (raw / "sig_ville" / "listeqp2024-cog2024.csv").write_text(LISTE, encoding="utf-8")
    warehouse = build_direct(raw, base, "dim_qpv", "ref_perimetre_qpv")
    con = duckdb.connect(str(warehouse), read_only=True)
    yield con
    con.close()


@pytest.mark.scenario
def test_without_folders_each_epci_holding_a_loaded_qpv_is_a_territory(without_folders):
    rows = without_folders.execute(
        "select territoire, nom, siren, departement, perimetre, origine "
        "from referentiels.ref_territoires order by 1"
    ).fetchall()
    assert rows == [
        ("245901160", "CA Valenciennes Métropole", "245901160", "059", "officiel",
         "referentiel_epci"),
        ("246200299", "CA d'Hénin-Carvin", "246200299", "062", "officiel", "referentiel_epci"),
        ("246200364", "CA de Lens - Liévin", "246200364", "062", "officiel", "referentiel_epci"),
    ]  # fmt: skip
    perimeter = without_folders.execute(
        "select territoire, code_qpv, geographie from referentiels.ref_perimetre_qpv order by 1, 2"
    ).fetchall()
    # the QPV over two EPCI is in both official perimeters
    assert perimeter == [
        ("245901160", "QN05923M", "2024"),
        ("246200299", "QN06245M", "2024"),
        ("246200364", "QN06201M", "2024"),
        ("246200364", "QN06245M", "2024"),
    ]


@pytest.mark.scenario
def test_dim_qpv_holds_only_the_loaded_qpv(without_folders):
    codes = [
        r[0]
        for r in without_folders.execute("select code_qpv from marts.dim_qpv order by 1").fetchall()
    ]
    assert codes == ["QN05923M", "QN06201M", "QN06245M"]  # one row each, whatever the EPCI


def test_territories_loaded_from_folders_replace_the_demo_seeds(tmp_path):
    """The example folders, materialized: one raw row per territory and per file line."""
    raw = tmp_path / "raw"
    shutil.copytree(EXAMPLES_TERRITORIES_DIR, raw / "territoires")
    warehouse = tmp_path / "warehouse.duckdb"
    result = materialize_direct([territoires], raw, warehouse)
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.territoires").fetchone()[0] == 3
        assert con.execute("select count(*) from raw.territoires_perimetre_qpv").fetchone()[0] == 81
        logged = con.execute(
            "select count(*) from raw.ingestion_log where source = 'territoires'"
        ).fetchone()[0]
    files = [p for p in (raw / "territoires").rglob("*") if p.is_file()]
    assert logged == len(files)
