"""The QGIS kit (issue 17, item 3): ``marts/qgis/observatoire.gpkg`` and ``observatoire.qgz``.

What the build of the demo writes is read back three ways: as a GeoPackage (SQLite: one geometry
type, CRS and geography per layer, field types, the ``layer_styles`` table), against the marts
(features and values equal those of the warehouse), and by QGIS itself, headless, with its own
Python (``tests/qgis_check.py`` run by ``/usr/bin/python3``; skipped with a message where
``python3-qgis`` is not installed): the project loads, every layer is valid, in EPSG:2154, and
styled.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.publication.qgis import BLUES, classes
from tests.conftest import run_cli

QGIS_PYTHON = Path("/usr/bin/python3")
CHECK = Path(__file__).with_name("qgis_check.py")
#: renderer of each kind of layer's default style (QGIS's own names)
RENDERERS = {
    "qpv": "singleSymbol",
    "zonages": "RuleRenderer",
    "taux": "RuleRenderer",
    "effort": "RuleRenderer",
    "effort_montants": "singleSymbol",
    "lieux": "RuleRenderer",
}


def _kind(layer: str) -> str:
    for prefix in ("effort_montants", "taux", "effort", "zonages", "lieux", "qpv"):
        if layer.startswith(prefix):
            return prefix
    raise AssertionError(layer)


@pytest.fixture(scope="module")
def kit(demo_build: Path) -> Path:
    folder = demo_build / "marts" / "qgis"
    assert (folder / "observatoire.gpkg").is_file(), "le build n'a pas écrit le kit QGIS"
    assert (folder / "observatoire.qgz").is_file()
    return folder


@pytest.fixture(scope="module")
def gpkg(kit: Path):
    con = sqlite3.connect(kit / "observatoire.gpkg")
    yield con
    con.close()


@pytest.fixture(scope="module")
def warehouse(demo_build: Path):
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    con.execute("load spatial")
    yield con
    con.close()


def _layers(gpkg) -> dict[str, tuple[str, int]]:
    return {
        name: (kind, srs)
        for name, kind, srs in gpkg.execute(
            "select c.table_name, g.geometry_type_name, g.srs_id from gpkg_contents c "
            "join gpkg_geometry_columns g using (table_name) where c.data_type = 'features'"
        )
    }


def _declared(gpkg, table: str) -> dict[str, str]:
    return {r[1]: r[2] for r in gpkg.execute(f'pragma table_info("{table}")')}


def test_layers_one_geometry_type_one_geography_lambert93(gpkg):
    layers = _layers(gpkg)
    assert {"qpv_2024", "qpv_2015", "taux_emploi_qpv_2024", "effort_qpv_2024"} <= set(layers)
    assert any(name.startswith("zonages_qpv_") for name in layers)
    for name, (kind, srs) in layers.items():
        assert srs == 2154, name
        assert kind == ("POINT" if name.startswith("effort_montants") else "MULTIPOLYGON"), name
        geography = name.rsplit("_", 1)[1]
        assert geography in ("2015", "2024"), name
        # every feature of the layer is of that geography
        column = {
            "qpv": "geographie",
            "taux": "geographie_contour",
            "effort": "geographie_contour",
            "effort_montants": "geographie_contour",
            "lieux": "geographie_qpv",
        }.get(_kind(name))
        if column and column in _declared(gpkg, name):
            values = {r[0] for r in gpkg.execute(f'select distinct "{column}" from "{name}"')}
            assert values <= {geography}, (name, values)
    titles = dict(gpkg.execute("select table_name, identifier from gpkg_contents"))
    assert titles["qpv_2024"] == "Quartiers prioritaires 2024"
    assert titles["taux_emploi_qpv_2024"].startswith("Taux d'emploi")


def test_field_types(gpkg):
    qpv = _declared(gpkg, "qpv_2024")
    assert qpv["geometrie_reparee"] == "BOOLEAN"
    assert qpv["densite_hab_km2"] == "REAL"
    assert qpv["surface_km2"] == "REAL"
    assert qpv["nb_communes"] == "INTEGER"
    effort = _declared(gpkg, "effort_qpv_2024")
    assert effort["montant_accorde"] == "REAL"
    assert effort["contour_retenu"] == "BOOLEAN"
    assert effort["derniere_annee"] == "BOOLEAN"
    assert effort["annee"] == "INTEGER"
    taux = _declared(gpkg, "taux_emploi_qpv_2024")
    assert taux["taux_emploi"] == "REAL"
    assert taux["secret_taux_emploi"] == "BOOLEAN"


def test_values_equal_the_marts(gpkg, warehouse):
    count = warehouse.execute(
        "select count(*) from marts.carte_taux_emploi "
        "where geographie_contour = '2024' and geom is not null"
    ).fetchone()[0]
    assert gpkg.execute("select count(*) from taux_emploi_qpv_2024").fetchone()[0] == count
    assert count > 0
    mart = warehouse.execute(
        "select territoire, annee, code_qpv, montant_accorde, euros_par_habitant "
        "from marts.carte_effort_qpv where geographie_contour = '2024' and geom is not null"
    ).df()
    layer = pd.read_sql(
        "select territoire, annee, code_qpv, montant_accorde, euros_par_habitant from "
        "effort_qpv_2024",
        gpkg,
    )
    merged = mart.merge(layer, on=["territoire", "annee", "code_qpv"], suffixes=("_m", "_k"))
    assert len(merged) == len(mart) == len(layer)
    for _, row in merged.iterrows():
        if pd.isna(row.montant_accorde_m):
            assert pd.isna(row.montant_accorde_k)
        else:
            # DECIMAL(18, 2) written as REAL, to the cent
            assert round(row.montant_accorde_k, 2) == float(row.montant_accorde_m)
    # dernier millésime: the latest of the territory
    latest = dict(
        warehouse.execute(
            "select territoire, max(millesime) from marts.carte_taux_emploi group by 1"
        ).fetchall()
    )
    for territoire, millesime, flag in gpkg.execute(
        "select territoire, millesime, dernier_millesime from taux_emploi_qpv_2024"
    ):
        assert bool(flag) == (millesime == latest[territoire])
    qpv = warehouse.execute(
        "select count(*) from marts.dim_qpv where geographie = '2024' and geom is not null"
    ).fetchone()[0]
    assert gpkg.execute("select count(*) from qpv_2024").fetchone()[0] == qpv


def test_default_style_of_every_layer_in_layer_styles(gpkg):
    columns = [r[1] for r in gpkg.execute("pragma table_info(layer_styles)")]
    for name in (
        "f_table_catalog",
        "f_table_schema",
        "f_table_name",
        "f_geometry_column",
        "styleName",
        "styleQML",
        "styleSLD",
        "useAsDefault",
        "description",
        "owner",
        "ui",
        "update_time",
    ):
        assert name in columns
    styles = {
        r[0]: r[1:]
        for r in gpkg.execute(
            "select f_table_name, f_table_schema, f_geometry_column, useAsDefault, styleQML "
            "from layer_styles"
        )
    }
    for layer in _layers(gpkg):
        schema, geometry, default, text = styles[layer]
        assert (schema, geometry, default) == ("", "geom", 1), layer
        assert text.startswith("<!DOCTYPE qgis")
        assert "<aliases>" in text
    # a rate coloured in sequential classes, with a « sans donnée » class
    taux = styles["taux_emploi_qpv_2024"][3]
    assert 'type="RuleRenderer"' in taux and "Sans donnée" in taux and " %" in taux
    # an amount drawn as proportional circles, never as a choropleth
    montants = styles["effort_montants_qpv_2024"][3]
    assert "sqrt" in montants and "montant_accorde" in montants


def test_readme_table_says_what_is_missing(gpkg):
    rows = pd.read_sql("select * from lisez_moi", gpkg)
    assert set(_layers(gpkg)) <= set(rows["couche"].dropna())
    notes = " ".join(rows.loc[rows["couche"].isna(), "description"])
    empty = gpkg.execute("select count(*) from qpv_2015").fetchone()[0] == 0
    if empty:
        assert "Quartiers prioritaires 2015" in notes


def test_project_opens_the_geopackage_by_a_relative_path(kit: Path):
    with zipfile.ZipFile(kit / "observatoire.qgz") as archive:
        (name,) = archive.namelist()
        text = archive.read(name).decode("utf-8")
    assert name == "observatoire.qgs"
    assert "./observatoire.gpkg|layername=qpv_2024" in text
    assert str(kit) not in text
    assert "<authid>EPSG:2154</authid>" in text


def test_classes_cover_the_values_with_french_labels():
    values = pd.Series([21.4, 30.0, 35.5, 40.2, 48.8, None])
    rules = classes(values, "taux_emploi", BLUES, "%")
    assert 1 < len(rules) <= len(BLUES)
    assert rules[0].label.startswith("21,4 à ")
    assert rules[-1].label.endswith("48,8 %")
    assert rules[-1].filter.endswith("<= 48.8")
    assert rules[0].color == BLUES[0] and rules[-1].color == BLUES[-1]
    assert classes(pd.Series([None], dtype=float), "x", BLUES) == ()


def test_export_qgis_command(demo_build: Path, tmp_path: Path):
    done = run_cli(
        "export",
        "qgis",
        "--warehouse",
        str(demo_build / "warehouse.duckdb"),
        "--dossier",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "qgis" / "observatoire.gpkg").is_file()
    assert (tmp_path / "qgis" / "observatoire.qgz").is_file()
    assert "taux_emploi_qpv_2024" in done.stdout
    missing = run_cli("export", "qgis", "--warehouse", str(tmp_path / "absent.duckdb"))
    assert missing.returncode != 0
    assert "entrepôt introuvable" in missing.stderr


def test_secrecy_applies_as_in_the_parquet_exports(warehouse, tmp_path: Path, monkeypatch):
    """The kit reads every mart as published: a mart declared with counts (here, for the test,
    the population of carte_effort_qpv, with a threshold of 2,000) has them masked in its layer
    exactly as in its Parquet file."""
    import pipelines.publication.qgis as kit_module
    from pipelines.publication.secret import MaskSpec, load_specs

    specs = {**load_specs(), "carte_effort_qpv": MaskSpec(counts=["population"])}
    monkeypatch.setattr(kit_module, "load_specs", lambda: specs)
    monkeypatch.setenv("OBSERVATOIRE_SEUIL_SECRET", "2000")
    result = kit_module.export_qgis(warehouse, tmp_path)
    with sqlite3.connect(result.gpkg) as gpkg:
        layer = pd.read_sql(
            "select territoire, annee, code_qpv, population, secret_statistique "
            "from effort_qpv_2024",
            gpkg,
        )
    mart = warehouse.execute(
        "select territoire, annee, code_qpv, population as vraie from marts.carte_effort_qpv "
        "where geographie_contour = '2024' and geom is not null"
    ).df()
    merged = layer.merge(mart, on=["territoire", "annee", "code_qpv"])
    small = merged[(merged.vraie > 0) & (merged.vraie < 2000)]
    assert len(small) > 0
    assert small.population.isna().all()
    assert (small.secret_statistique == 1).all()
    big = merged[merged.vraie >= 2000]
    assert (big.population == big.vraie).all()


def _square(lon: float, lat: float, size: float = 0.01) -> str:
    return (
        f"POLYGON(({lon} {lat}, {lon + size} {lat}, {lon + size} {lat + size}, "
        f"{lon} {lat + size}, {lon} {lat}))"
    )


@pytest.fixture()
def places_warehouse(tmp_path: Path):
    """A warehouse with only dim_qpv and lieux_qpv (two QPV 2024, two types of place, one count
    under the secrecy threshold): the marts of the demo have no place yet."""
    con = duckdb.connect(str(tmp_path / "lieux.duckdb"))
    con.execute("load spatial")
    con.execute("create schema marts")
    con.execute(
        "create table marts.dim_qpv as select * from (values "
        f"('QN05901M', 'Quartier A', '2024', 'VM', ST_GeomFromText('{_square(3.50, 50.35)}')), "
        f"('QN05902M', 'Quartier B', '2024', 'VM', ST_GeomFromText('{_square(3.53, 50.36)}'))"
        ") as t(code_qpv, libelle_qpv, geographie, territoire, geom)"
    )
    con.execute(
        "create table marts.lieux_qpv as select * from (values "
        "('2024', 'équipement', 'dans_qpv', 'QN05901M', 'Quartier A', 'VM', false, 12, 3, 0, 60.0),"
        "('2024', 'équipement', 'dans_qpv', 'QN05902M', 'Quartier B', 'VM', false, 8, 2, 1, 40.0),"
        "('2024', 'domicile des bénéficiaires', 'dans_qpv', 'QN05901M', 'Quartier A', 'VM', "
        "true, null, null, null, null),"
        "('2024', 'équipement', 'hors_qpv', null, null, null, false, 5, 1, 0, null)"
        ") as t(geographie_qpv, type_lieu, statut, code_qpv, libelle_qpv, territoire, "
        "secret_statistique, nb_lieux, nb_dossiers, nb_ambigus, part_type)"
    )
    yield con
    con.close()


def test_places_layer_one_project_layer_per_type(places_warehouse, tmp_path: Path):
    from pipelines.publication.qgis import export_qgis

    result = export_qgis(places_warehouse, tmp_path / "out")
    assert result.layers["lieux_qpv_2024"] == 3  # the places inside a QPV, not hors_qpv
    assert result.layers["qpv_2024"] == 2 and result.layers["qpv_2015"] == 0
    notes = " ".join(result.notes)
    assert "Carte du taux d'emploi : table absente" in notes
    assert "Zonages : la correspondance des zonages et des QPV n'est pas dans l'entrepôt" in notes
    with sqlite3.connect(result.gpkg) as gpkg:
        rows = gpkg.execute(
            "select code_qpv, type_lieu, nb_lieux, secret_statistique from lieux_qpv_2024 "
            "order by type_lieu, code_qpv"
        ).fetchall()
        assert _declared(gpkg, "lieux_qpv_2024")["nb_lieux"] == "INTEGER"
    assert rows == [
        ("QN05901M", "domicile des bénéficiaires", None, 1),
        ("QN05901M", "équipement", 12, 0),
        ("QN05902M", "équipement", 8, 0),
    ]
    with zipfile.ZipFile(result.project) as archive:
        text = archive.read("observatoire.qgs").decode("utf-8")
    assert "équipement (QPV 2024)" in text and "domicile des bénéficiaires (QPV 2024)" in text
    assert "&quot;type_lieu&quot; = 'équipement'" in text
    if QGIS_PYTHON.is_file():
        seen = _open_with_qgis(result.project, result.gpkg, tmp_path)
        if seen is not None:
            layer = seen["project"]["équipement (QPV 2024)"]
            assert layer["valid"] and layer["features"] == 2
            assert layer["rules"]["Sans donnée"] == 0
            secret = seen["project"]["domicile des bénéficiaires (QPV 2024)"]
            assert secret["rules"]["Secret statistique (1 à 4)"] == 1


def _open_with_qgis(project: Path, gpkg: Path, tmp_path: Path) -> dict | None:
    """What QGIS (headless, its own Python) sees of the kit, or None where it cannot run."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV"))
    }
    env.update(QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path), HOME=str(tmp_path))
    done = subprocess.run(
        [str(QGIS_PYTHON), str(CHECK), str(project), str(gpkg)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    if "No module named 'qgis'" in done.stderr:
        return None
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _qgis_python() -> Path:
    if not QGIS_PYTHON.is_file():
        pytest.skip(f"{QGIS_PYTHON} absent : QGIS (python3-qgis) non installé")
    probe = subprocess.run(
        [str(QGIS_PYTHON), "-c", "import qgis.core"],
        capture_output=True,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(
            "QGIS headless indisponible (paquet Debian python3-qgis : make install-qgis) : "
            + probe.stderr.strip()[-300:]
        )
    return QGIS_PYTHON


def test_qgis_opens_the_kit_headless(kit: Path, tmp_path: Path):
    _qgis_python()
    seen = _open_with_qgis(kit / "observatoire.qgz", kit / "observatoire.gpkg", tmp_path)
    assert seen is not None
    assert seen["read"] is True
    assert seen["crs"] == "EPSG:2154"
    assert seen["absolute_paths"] is False
    assert seen["project"], "aucune couche dans le projet"
    for name, layer in seen["project"].items():
        assert layer["valid"], name
        assert layer["crs"] == "EPSG:2154", name
        assert layer["renderer"] in ("singleSymbol", "RuleRenderer"), name
        assert layer["source"].startswith(str(kit)), name  # the relative path, resolved
        assert any(layer["aliases"].values()), f"{name}: pas d'alias, style non appliqué"
    visible = [n for n, layer in seen["project"].items() if "Taux d'emploi" in n]
    assert visible and all(seen["project"][n]["subset"] for n in visible)
    for name, layer in seen["gpkg"].items():
        # opened alone, the layer gets the default style of layer_styles
        assert layer["valid"], name
        assert layer["crs"] == "EPSG:2154", name
        assert layer["styles_in_database"] >= 1, name
        assert layer["renderer"] == RENDERERS[_kind(name)], name
        assert layer["aliases"].get("libelle_qpv", "Libellé QPV") != "", name
        assert any(layer["aliases"].values()), f"{name}: style par défaut non appliqué"
        assert layer["expression_errors"] == [], name
    # every rate is drawn in a class: « Sans donnée » only for the contours without a rate
    rules = seen["gpkg"]["taux_emploi_qpv_2024"]["rules"]
    with sqlite3.connect(kit / "observatoire.gpkg") as gpkg:
        (without,) = gpkg.execute(
            "select count(*) from taux_emploi_qpv_2024 "
            "where taux_emploi is null and not coalesce(secret_taux_emploi, 0)"
        ).fetchone()
        (total,) = gpkg.execute("select count(*) from taux_emploi_qpv_2024").fetchone()
    assert rules["Sans donnée"] == without
    assert sum(rules.values()) == total


def test_rows_typed_for_the_geopackage_and_contours_valid_once_projected():
    from pipelines.publication.qgis import query_frame

    con = duckdb.connect()
    con.execute("load spatial")
    frame = query_frame(
        con,
        "select true as drapeau, 12::bigint as nombre, 1234.565::decimal(18, 2) as montant, "
        "ST_GeomFromText('POLYGON((3.5 50.3, 3.51 50.31, 3.51 50.3, 3.5 50.31, 3.5 50.3))') "
        "as geom",
    )
    assert str(frame["drapeau"].dtype) == "boolean"
    assert str(frame["nombre"].dtype) == "Int64"
    assert frame["montant"].iloc[0] == 1234.57  # DECIMAL(18, 2): to the cent
    assert frame.crs.to_epsg() == 2154
    # a self-crossing ring (a bow tie) comes out valid, still one MultiPolygon
    assert frame.geometry.is_valid.all()
    assert list(frame.geometry.geom_type) == ["MultiPolygon"]


def test_dim_qpv_gpkg_booleans_are_booleans(demo_build: Path):
    """The plain GeoPackage of dim_qpv (beside the kit) has its booleans as BOOLEAN too."""
    with sqlite3.connect(demo_build / "marts" / "dim_qpv.gpkg") as gpkg:
        types = _declared(gpkg, "dim_qpv")
    assert types["geometrie_reparee"] == "BOOLEAN"
    assert types["densite_hab_km2"] == "REAL"
