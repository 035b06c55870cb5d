"""A programmation of an EPCI outside the examples (CA de Lens - Liévin, SIREN 246200364) is
attached to its EPCI with no territory folder, and a second EPCI with a folder (CA
d'Hénin-Carvin, code CAHC) gets its hierarchy and rules: the source assets and dbt build of both
(tests/conftest.py ``build_direct``), and the summary a build prints from that warehouse."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.sources import source_assets
from pipelines.warehouse.publication import summary
from tests.conftest import build_direct, failure_of, materialize_direct

# the official list of QPV 2024 (listeqp2024-cog2024.csv columns), three QPV of Lens - Liévin
# and one of Hénin-Carvin (codes, names and communes of the official list)
LISTE = (
    "code_qp;lib_qp;insee_reg;lib_reg;insee_dep;lib_dep;insee_com;lib_com;siren_epci;lib_epci\n"
    "QN06226M;Cité 2;32;Hauts-de-France;62;Pas-de-Calais;62498;Lens;246200364;"
    "CA de Lens - Liévin\n"
    "QN06227M;Sellier Cité 4;32;Hauts-de-France;62;Pas-de-Calais;62498;Lens;246200364;"
    "CA de Lens - Liévin\n"
    "QN06228M;Calonne - Marichelles - Vent De Bise;32;Hauts-de-France;62;Pas-de-Calais;62510;"
    "Liévin;246200364;CA de Lens - Liévin\n"
    "QN06245M;Quartier Du Maroc - La Canche;32;Hauts-de-France;62;Pas-de-Calais;62724;Rouvroy;"
    "246200299;CA d'Hénin-Carvin\n"
)
HEADER = (
    "Territoire;N° dossier;Exercice;Code SIRET;Raison sociale du porteur;Intitulé de l'action;"
    "Orientation;Quartier(s) concerné(s);Financeur;Montant demandé;Montant accordé\n"
)
LENS = HEADER + (
    "246200364;2025-001;2025;73282932000074;Association A;Chantier jeunes;Emploi;"
    "QN06226M;Communauté d'agglomération de Lens-Liévin;12 000,00 €;10 000,00 €\n"
    "246200364;2025-001;2025;73282932000074;Association A;Chantier jeunes;Emploi;"
    "QN06226M;Etat;4 000,00 €;4 000,00 €\n"
    "246200364;2025-002;2025;73282932000074;Association B;Ateliers parents;Parentalité;"
    "QN06228M;CA de Lens - Liévin;2 500,00 €;2 500,00 €\n"
)
CAHC = HEADER.replace("Territoire;", "") + (
    "2025-010;2025;73282932000074;Association C;Atelier CV;O1 - Emploi et insertion;QN06245M;"
    "Etat;3 000,00 €;3 000,00 €\n"
    "2025-011;2025;73282932000074;Association D;Forum;O1 - Emploi et insertion;QN06245M;"
    "Etat;6 000,00 €;6 000,00 €\n"
)
TERRITOIRE_YML = 'nom: "CA d\'Hénin-Carvin"\nsiren: "246200299"\nperimetre: officiel\n'
ORIENTATIONS = (
    "referentiel,annee_debut,annee_fin,niveau,type_niveau,code,libelle,code_parent,transversal\n"
    "CAHC_2024_2030,2024,2030,1,orientation,O1,Emploi et insertion,,false\n"
)
REGLES = (
    "regle,financeur,annee_debut,annee_fin,valeur,unite,controle,sens,description\n"
    "etat_demande_minimum,ETAT_BOP147,2024,2030,5000,EUR,montant_demande,min,"
    "Demande État d'au moins 5 000 € (exemple de test)\n"
)


@pytest.fixture(scope="module")
def lens(tmp_path_factory):
    base = tmp_path_factory.mktemp("quatrieme_epci")
    raw = base / "raw"
    (raw / "sig_ville").mkdir(parents=True)
    (raw / "sig_ville" / "listeqp2024-cog2024.csv").write_text(LISTE, encoding="utf-8")
    (raw / "programmations").mkdir()
    (raw / "programmations" / "programmation_lens_2025.csv").write_text(LENS, encoding="utf-8")
    (raw / "programmations" / "CAHC_programmation_2025.csv").write_text(CAHC, encoding="utf-8")
    folder = raw / "territoires" / "CAHC"
    folder.mkdir(parents=True)
    (folder / "territoire.yml").write_text(TERRITOIRE_YML, encoding="utf-8")
    (folder / "orientations.csv").write_text(ORIENTATIONS, encoding="utf-8")
    (folder / "regles_financement.csv").write_text(REGLES, encoding="utf-8")
    warehouse = build_direct(
        raw, base, "depenses_orientation", "controles_programmation", "ref_perimetre_qpv"
    )
    con = duckdb.connect(str(warehouse), read_only=True)
    yield {"con": con, "stdout": summary(warehouse, {}), "raw": raw, "base": base}
    con.close()


@pytest.mark.scenario
def test_attached_to_its_epci_by_siren_with_name_and_perimeter(lens):
    con = lens["con"]
    assert con.execute(
        "select territoire, nom, siren, origine, perimetre from referentiels.ref_territoires "
        "order by 1"
    ).fetchall() == [
        ("246200364", "CA de Lens - Liévin", "246200364", "referentiel_epci", "officiel"),
        ("CAHC", "CA d'Hénin-Carvin", "246200299", "dossier_territoire", "officiel"),
    ]
    perimeter = con.execute(
        "select territoire, code_qpv from referentiels.ref_perimetre_qpv order by 1, 2"
    ).fetchall()
    assert perimeter == [
        ("246200364", "QN06226M"),
        ("246200364", "QN06227M"),
        ("246200364", "QN06228M"),
        ("CAHC", "QN06245M"),
    ]
    assert {
        r[0] for r in con.execute("select distinct territoire from raw.programmations").fetchall()
    } == {
        "246200364",
        "CAHC",
    }


@pytest.mark.scenario
def test_the_epci_named_as_financeur_is_the_epci(lens):
    rows = (
        lens["con"]
        .execute(
            "select financeur, sum(montant_accorde) from marts.depenses_orientation "
            "where territoire = '246200364' group by 1 order by 1"
        )
        .fetchall()
    )
    # « Communauté d'agglomération de Lens-Liévin » and « CA de Lens - Liévin »: the EPCI
    assert rows == [("EPCI", 12500.0), ("ETAT_BOP147", 4000.0)]


@pytest.mark.scenario
def test_orientations_as_written_and_no_rule_without_a_folder(lens):
    con = lens["con"]
    orientations = con.execute(
        "select distinct orientation_code, orientation_reconnue from marts.depenses_orientation "
        "where territoire = '246200364' order by 1"
    ).fetchall()
    assert orientations == [("Emploi", False), ("Parentalité", False)]
    assert (
        con.execute(
            "select count(*) from marts.controles_programmation where territoire = '246200364'"
        ).fetchone()[0]
        == 0
    )
    out = lens["stdout"]
    assert (
        "246200364 CA de Lens - Liévin (EPCI du référentiel, sans dossier de territoire): "
        "orientations telles qu'écrites dans les fichiers (aucune hiérarchie déclarée), "
        "aucune règle évaluée"
    ) in out


@pytest.mark.scenario
def test_a_folder_gives_hierarchy_and_rules(lens):
    con = lens["con"]
    assert con.execute(
        "select distinct orientation_code, orientation_reconnue from marts.depenses_orientation "
        "where territoire = 'CAHC'"
    ).fetchall() == [("O1", True)]
    failures = con.execute(
        "select dossier from marts.controles_programmation "
        "where territoire = 'CAHC' and regle = 'etat_demande_minimum'"
    ).fetchall()
    assert failures == [("2025-010",)]  # 3 000 € < 5 000 €; 6 000 € passes
    assert (
        "CAHC CA d'Hénin-Carvin (dossier territoires/CAHC/): hiérarchie d'intervention "
        "déclarée, 1 règle(s) de financement"
    ) in lens["stdout"]


@pytest.mark.scenario
def test_an_unknown_territory_stops_the_build_naming_the_file(lens, tmp_path):
    raw = tmp_path / "raw"
    (raw / "programmations").mkdir(parents=True)
    (raw / "programmations" / "programmation_2025.csv").write_text(
        HEADER + "CA Imaginaire;2025-001;2025;;A;B;C;;Etat;1 000,00 €;1 000,00 €\n",
        encoding="utf-8",
    )
    result = materialize_direct(
        source_assets, raw, tmp_path / "warehouse.duckdb", raise_on_error=False
    )
    assert not result.success
    text = failure_of(result)
    assert "programmation_2025.csv, ligne 2: territoire « CA Imaginaire » inconnu" in text
    assert "data/raw/territoires/<code>/" in text
