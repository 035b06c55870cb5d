"""Reading the ANCT QPV contours and the official list of QPV (pipelines.sources.sig_ville,
with the geometry of geo.contours).

Tests on real data read ``../shared/data`` (relative to the project root) and are skipped with a
message when it is absent. Format tests build small files in ``tmp_path`` from a handful of real
contours of the national layer.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import Geod

from geo.contours import OUTPUT_COLUMNS, polygonal_multipolygons, to_duckdb
from pipelines.lib.codes import unescape_excel
from pipelines.lib.raw_schemas import REJECT_COLUMNS
from pipelines.sources.sig_ville.attributes import normalise_pairs
from pipelines.sources.sig_ville.reader import ContoursError, read_contours, read_liste_qpv

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NATIONAL = DATA / "anct" / "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"

# Metropole (incl. Corsica and two multi-commune QPV), Réunion, Guyane.
METRO_SAMPLE = ["QN00201M", "QN01341I", "QN02A02M", "QN05602M", "QN05921M", "QN06204M"]
REUNION, GUYANE = "QN97402M", "QN97302I"
SAMPLE = [*METRO_SAMPLE, REUNION, GUYANE]
GEOD = Geod(ellps="GRS80")


def _require_national() -> Path:
    if not NATIONAL.exists():
        pytest.skip(
            f"Données réelles absentes ({NATIONAL}) : test sauté. Placez le dossier shared/data "
            "à côté du projet pour l'exécuter."
        )
    return NATIONAL


def geodesic_km2(geom: shapely.Geometry) -> float:
    """Independent area: geodesic area on the GRS80 ellipsoid of a lon/lat geometry."""
    oriented = shapely.orient_polygons(geom, exterior_cw=False)
    return abs(GEOD.geometry_area_perimeter(oriented)[0]) / 1e6


@pytest.fixture(scope="module")
def national():
    """read_contours on the real national file (read once for the module)."""
    return read_contours(_require_national())


@pytest.fixture(scope="module")
def raw_national() -> gpd.GeoDataFrame:
    """The national layer as stored (no repair), for building test files and independent checks."""
    return pyogrio.read_dataframe(_require_national())


@pytest.fixture
def sample(raw_national) -> gpd.GeoDataFrame:
    return raw_national[raw_national["code_qp"].isin(SAMPLE)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Real national file
# ---------------------------------------------------------------------------------------------


def test_national_file_loads_every_qpv_valid(national):
    qpv = national.qpv
    assert list(qpv.columns) == OUTPUT_COLUMNS
    assert qpv.crs.to_epsg() == 4326
    assert len(qpv) == 1584
    assert qpv["code_qpv"].is_unique
    assert set(qpv["geographie"]) == {"2024"}
    assert qpv.geometry.is_valid.all()
    assert set(qpv.geom_type) == {"MultiPolygon"}
    assert national.rejects.empty
    assert list(national.rejects.columns) == REJECT_COLUMNS
    (entry,) = national.report
    # Source quirk kept visible: commune names missing for Pierrefitte-sur-Seine (93059).
    assert entry["avertissements"] == [
        "3 QPV avec des noms de communes manquants ou en nombre différent des codes INSEE "
        "(laissés tels quels) : QN09335M, QN09336I, QN09342M"
    ]
    assert entry["crs_source"] == "EPSG:4326"
    assert (entry["lus"], entry["charges"], entry["rejetes"], entry["doublons"]) == (
        1584,
        1584,
        0,
        0,
    )
    # 586 geometries of the national file are invalid (coordinates rounded to 1e-4 degree).
    assert entry["invalides"] == 586
    assert entry["repares"] == 586
    assert int(qpv["geometrie_reparee"].sum()) == 586
    assert 0 < entry["ecart_surface_max_pct"] < 1.0
    # Letters of the 2024 codes (DOMAIN.md): M 1,087, I 341, N 139, C 17.
    assert qpv["code_qpv"].str[-1].value_counts().to_dict() == {
        "M": 1087,
        "I": 341,
        "N": 139,
        "C": 17,
    }


def test_repair_keeps_every_area(national, raw_national):
    """Independent check: geodesic area before / after make_valid, for each invalid geometry."""
    raw = raw_national.set_index("code_qp").geometry
    repaired = national.qpv.set_index("code_qpv").geometry
    invalid_codes = raw.index[~raw.is_valid]
    assert len(invalid_codes) == 586
    changes = np.array(
        [geodesic_km2(repaired[code]) / geodesic_km2(raw[code]) - 1 for code in invalid_codes]
    )
    assert np.abs(changes).max() < 0.01
    # The `structure` method of make_valid reduces this one to zero area: not ours.
    assert national.qpv.set_index("code_qpv").at["QN05602M", "surface_km2"] > 0.2


def test_surfaces_match_geodesic_areas(national):
    qpv = national.qpv.set_index("code_qpv")
    for code in METRO_SAMPLE:
        row = qpv.loc[code]
        assert row["crs_surface"] == "EPSG:2154"
        geodesic = geodesic_km2(row.geometry)
        assert row["surface_km2"] == pytest.approx(geodesic, rel=0.005), code
    for code, epsg in [(REUNION, "EPSG:2975"), (GUYANE, "EPSG:2972")]:
        row = qpv.loc[code]
        assert row["crs_surface"] == epsg
        geodesic = geodesic_km2(row.geometry)
        assert row["surface_km2"] == pytest.approx(geodesic, rel=0.005), code
        # Lambert-93 would be badly wrong overseas.
        lambert = gpd.GeoSeries([row.geometry], crs=4326).to_crs(2154).area.iloc[0] / 1e6
        assert abs(lambert / geodesic - 1) > 0.20, code


def test_lambert93_error_over_the_whole_metropole(national):
    """Lambert-93 areas stay within 0.5 % of geodesic areas, except at the southern tip of
    Corsica (Porto-Vecchio, latitude 41.6: +0.53 %), where the scale error of the projection is
    largest."""
    metro = national.qpv[national.qpv["crs_surface"] == "EPSG:2154"].set_index("code_qpv")
    assert len(metro) == 1362
    error = metro["surface_km2"] / metro.geometry.map(geodesic_km2) - 1
    assert error.abs().idxmax() == "QN02A01M"
    assert 0.005 < error["QN02A01M"] < 0.006
    assert error.drop("QN02A01M").abs().max() < 0.005


def test_overseas_area_crs(national):
    qpv = national.qpv
    assert qpv["crs_surface"].value_counts().to_dict() == {
        "EPSG:2154": 1362,
        "EPSG:3297": 88,
        "EPSG:2975": 57,
        "EPSG:5490": 31,
        "EPSG:2972": 29,
        "EPSG:4471": 17,
    }


def test_centroids_fall_inside_their_qpv(national):
    qpv = national.qpv.set_index("code_qpv")
    row = qpv.loc["QN05921M"]
    assert row["centroide_lon"] == pytest.approx(3.513, abs=0.01)
    assert row["centroide_lat"] == pytest.approx(50.379, abs=0.01)
    points = gpd.points_from_xy(qpv["centroide_lon"], qpv["centroide_lat"], crs=4326)
    inside_bbox = [
        shapely.box(*geom.bounds).buffer(1e-6).contains(point)
        for geom, point in zip(qpv.geometry, points, strict=True)
    ]
    assert all(inside_bbox)


def test_multi_commune_qpv_and_insee_codes(national):
    qpv = national.qpv.set_index("code_qpv")
    row = qpv.loc["QN05921M"]
    assert row["lib_com"].split(";") == [
        "Anzin",
        "Beuvrages",
        "Bruay-sur-l'Escaut",
        "Raismes",
        "Valenciennes",
    ]
    assert row["insee_com"] == "59014;59079;59112;59491;59606"
    assert qpv.at["QN00101M", "insee_com"] == "01053"
    assert qpv.at["QN02A01M", "insee_com"] == "2A247"
    codes = qpv["insee_com"].str.split(";").explode()
    assert codes.str.fullmatch(r"\d{5}|2[AB]\d{3}").all()
    n_codes = qpv["insee_com"].str.count(";")
    assert int((n_codes > 0).sum()) == 149
    # Positions kept when the source leaves a commune name empty (93059 Pierrefitte-sur-Seine).
    assert qpv.at["QN09335M", "insee_com"] == "93059;93072"
    assert qpv.at["QN09335M", "lib_com"] == ";Stains"
    assert qpv.at["QN09336I", "insee_com"] == "93059"
    assert pd.isna(qpv.at["QN09336I", "lib_com"])
    has_names = qpv["lib_com"].notna()
    assert (n_codes[has_names] == qpv.loc[has_names, "lib_com"].str.count(";")).all()


# ---------------------------------------------------------------------------------------------
# Formats built from real contours
# ---------------------------------------------------------------------------------------------


def _expected_surfaces(national) -> pd.Series:
    return national.qpv.set_index("code_qpv")["surface_km2"]


def test_geojson_wgs84_without_crs_member(tmp_path, sample, national):
    features = json.loads(sample.to_json(drop_id=True))
    features.pop("crs", None)  # RFC 7946: WGS84 lon/lat by definition
    path = tmp_path / "qpv.geojson"
    path.write_text(json.dumps(features), encoding="utf-8")
    result = read_contours(path)
    assert sorted(result.qpv["code_qpv"]) == sorted(SAMPLE)
    assert result.report[0]["crs_source"] == "EPSG:4326"
    got = result.qpv.set_index("code_qpv")["surface_km2"]
    pd.testing.assert_series_equal(got, _expected_surfaces(national)[got.index], rtol=1e-9)


def test_geojson_with_crs84_urn(tmp_path, sample, national):
    collection = json.loads(sample.to_json(drop_id=True))
    collection["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    path = tmp_path / "qpv_crs84.json"
    path.write_text(json.dumps(collection), encoding="utf-8")
    result = read_contours(path)
    assert len(result.qpv) == len(SAMPLE)
    assert result.report[0]["crs_source"] in {"EPSG:4326", "OGC:CRS84"}
    # lon/lat axis order kept: QN05921M is near Valenciennes (3.5 E, 50.4 N).
    row = result.qpv.set_index("code_qpv").loc["QN05921M"]
    assert 3.4 < row.geometry.centroid.x < 3.6 and 50.3 < row.geometry.centroid.y < 50.5
    invalid = int((~sample.is_valid).sum())
    assert result.report[0]["invalides"] == invalid > 0


def test_geopackage_lambert93(tmp_path, sample, national):
    path = tmp_path / "qpv_l93.gpkg"
    pyogrio.write_dataframe(sample.to_crs(2154), path, layer="qp_metropole_l93")
    result = read_contours(path)
    assert result.report[0]["crs_source"] == "EPSG:2154"
    assert result.report[0]["couche"] == "qp_metropole_l93"
    qpv = result.qpv.set_index("code_qpv")
    assert qpv.crs.to_epsg() == 4326
    assert set(qpv["crs_source"]) == {"EPSG:2154"}
    assert qpv.geometry.is_valid.all()
    got = qpv["surface_km2"]
    pd.testing.assert_series_equal(got, _expected_surfaces(national)[got.index], rtol=1e-3)
    # Coordinates are back in lon/lat (1e-6 degree ~ 0.1 m).
    reference = national.qpv.set_index("code_qpv").geometry
    # Same shapes once back in lon/lat (symmetric difference below 1e-6 of the area).
    difference = shapely.symmetric_difference(qpv.geometry.values, reference[qpv.index].values)
    assert (shapely.area(difference) / shapely.area(qpv.geometry.values)).max() < 1e-6


def test_shapefile_lambert93_with_2015_attributes(tmp_path, sample):
    old = gpd.GeoDataFrame(
        {
            "CODE_QP": ["QP059020", "QP059021", "QP062004"],
            "NOM_QP": ["Dutemple", "Chasse Royale", "Quartier Nord"],
            "COMMUNE_QP": ["Valenciennes", "Valenciennes", "Auchel"],
        },
        geometry=sample.geometry.iloc[:3].values,
        crs=4326,
    ).to_crs(2154)
    path = tmp_path / "QP_2015_L93.shp"
    old.to_file(path)
    for ext in (".dbf", ".prj", ".shx"):
        assert path.with_suffix(ext).exists()
    result = read_contours(path)
    qpv = result.qpv.set_index("code_qpv")
    assert list(qpv.index) == ["QP059020", "QP059021", "QP062004"]
    assert set(qpv["geographie"]) == {"2015"}
    assert qpv.at["QP059021", "libelle_qpv"] == "Chasse Royale"
    assert qpv.at["QP062004", "lib_com"] == "Auchel"
    assert qpv["insee_com"].isna().all()
    assert result.report[0]["crs_source"] == "EPSG:2154"
    assert set(qpv["crs_surface"]) == {"EPSG:2154"}


def test_shapefile_without_prj_is_refused():
    """tests/corpus/contours_sans_prj.shp: two Lambert-93 squares, its .shx and .dbf, no .prj."""
    path = Path(__file__).with_name("corpus") / "contours_sans_prj.shp"
    assert path.with_suffix(".dbf").exists() and not path.with_suffix(".prj").exists()
    with pytest.raises(ContoursError, match=r"contours_sans_prj\.shp") as info:
        read_contours(path)
    assert "CRS" in str(info.value) and "absent" in str(info.value)


def test_overseas_layer_in_utm40s(tmp_path, raw_national, national):
    reunion = raw_national[raw_national["code_qp"].str.startswith("QN974")].iloc[:5]
    path = tmp_path / "qp_reunion_utm40s.gpkg"
    pyogrio.write_dataframe(reunion.to_crs(2975), path)
    result = read_contours(path)
    qpv = result.qpv.set_index("code_qpv")
    assert len(qpv) == 5
    assert result.report[0]["crs_source"] == "EPSG:2975"
    assert set(qpv["crs_surface"]) == {"EPSG:2975"}
    assert qpv["centroide_lon"].between(55.2, 55.9).all()
    assert qpv["centroide_lat"].between(-21.4, -20.8).all()
    got = qpv["surface_km2"]
    pd.testing.assert_series_equal(got, _expected_surfaces(national)[got.index], rtol=1e-3)


def _official_zip(tmp_path: Path, raw: gpd.GeoDataFrame, families: tuple[str, ...]) -> Path:
    """Build a ZIP shaped like the ANCT one: top folder, SHP/ GEOJSON/ GPKG/, several layers."""
    metro = raw[~raw["code_qp"].str[2:4].isin(["97", "98"])].iloc[:6]
    reunion = raw[raw["code_qp"].str.startswith("QN974")].iloc[:3]
    everything = pd.concat([metro, reunion])
    layers = {
        "QP2024_France_Hexagonale_LB93": metro.to_crs(2154),
        "QP2024_France_Hexagonale_Outre_Mer_WGS84": everything,
        "QP2024_Reunion_UTM40S": reunion.to_crs(2975),
    }
    build = tmp_path / "build"
    top = build / "QP2024"
    for family in families:
        (top / family).mkdir(parents=True)
    for name, layer in layers.items():
        if "GPKG" in families:
            pyogrio.write_dataframe(layer, top / "GPKG" / "QP2024.gpkg", layer=name)
        if "GEOJSON" in families:
            pyogrio.write_dataframe(layer, top / "GEOJSON" / f"{name}.geojson")
        if "SHP" in families:
            layer.to_file(top / "SHP" / f"{name}.shp")
    archive = tmp_path / "QP2024.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(build.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(build).as_posix())
    shutil.rmtree(build)
    return archive


def test_official_zip_reads_one_family_one_row_per_code(tmp_path, raw_national, national):
    archive = _official_zip(tmp_path, raw_national, ("SHP", "GEOJSON", "GPKG"))
    result = read_contours(archive)
    qpv = result.qpv
    assert len(qpv) == 9 and qpv["code_qpv"].is_unique
    report = {entry["couche"]: entry for entry in result.report}
    assert set(report) == {
        "QP2024_France_Hexagonale_LB93",
        "QP2024_France_Hexagonale_Outre_Mer_WGS84",
        "QP2024_Reunion_UTM40S",
    }
    assert {e["fichier"] for e in result.report} == {"QP2024.zip/QP2024/GPKG/QP2024.gpkg"}
    # The WGS84 layer covering everything wins; the others' rows are counted as duplicates.
    assert set(qpv["source_couche"]) == {"QP2024_France_Hexagonale_Outre_Mer_WGS84"}
    assert report["QP2024_France_Hexagonale_Outre_Mer_WGS84"]["doublons"] == 0
    assert report["QP2024_France_Hexagonale_LB93"]["doublons"] == 6
    assert report["QP2024_Reunion_UTM40S"]["doublons"] == 3
    assert report["QP2024_Reunion_UTM40S"]["crs_source"] == "EPSG:2975"
    assert (
        "QP2024_France_Hexagonale_Outre_Mer_WGS84"
        in (report["QP2024_France_Hexagonale_LB93"]["avertissements"][0])
    )
    got = qpv.set_index("code_qpv")["surface_km2"]
    pd.testing.assert_series_equal(got, _expected_surfaces(national)[got.index], rtol=1e-9)


def test_zip_without_gpkg_prefers_geojson_then_shp(tmp_path, raw_national):
    archive = _official_zip(tmp_path, raw_national, ("SHP", "GEOJSON"))
    result = read_contours(archive)
    assert len(result.qpv) == 9
    assert all("/GEOJSON/" in entry["fichier"] for entry in result.report)
    archive.unlink()
    archive = _official_zip(tmp_path, raw_national, ("SHP",))
    result = read_contours(archive)
    assert len(result.qpv) == 9
    assert all(entry["fichier"].endswith(".shp") for entry in result.report)
    assert {e["crs_source"] for e in result.report} == {"EPSG:2154", "EPSG:4326", "EPSG:2975"}


def test_bad_codes_and_geometries_go_to_rejects(tmp_path, sample):
    bad = sample.iloc[:5].copy()
    bad = bad.rename(columns={"code_qp": "CODE_QUARTIER", "lib_qp": "LIBELLE"})
    bad.loc[1, "CODE_QUARTIER"] = "QN0592M"
    bad.loc[2, "CODE_QUARTIER"] = None
    bad.loc[3, "geometry"] = None
    bad.loc[4, "CODE_QUARTIER"] = " qn05999m "  # spaces and lower case are tolerated
    path = tmp_path / "avec_erreurs.geojson"
    pyogrio.write_dataframe(bad, path)
    result = read_contours(path)
    assert list(result.qpv["code_qpv"]) == [sample.at[0, "code_qp"], "QN05999M"]
    rejects = result.rejects.set_index("ligne")
    assert list(rejects.index) == [2, 3, 4]
    assert rejects.at[2, "valeur_brute"] == "QN0592M"
    assert rejects.at[2, "colonne"] == "CODE_QUARTIER"
    assert "invalide" in rejects.at[2, "motif"]
    assert rejects.at[3, "motif"] == "code QPV absent"
    assert rejects.at[4, "colonne"] == "geometry"
    assert "géométrie" in rejects.at[4, "motif"]
    assert set(rejects["source"]) == {"sig_ville"}
    assert set(rejects["fichier"]) == {"avec_erreurs.geojson"}
    assert set(rejects["feuille"]) == {"avec_erreurs"}
    assert result.report[0]["rejetes"] == 3
    assert result.report[0]["charges"] == 2


def test_code_column_found_by_its_values(tmp_path, sample):
    odd = sample.rename(columns={"code_qp": "identifiant", "lib_qp": "nom_qp"})
    path = tmp_path / "colonnes_inconnues.gpkg"
    pyogrio.write_dataframe(odd, path)
    qpv = read_contours(path).qpv
    assert sorted(qpv["code_qpv"]) == sorted(SAMPLE)
    assert qpv["libelle_qpv"].notna().all()


def test_excel_escaped_and_truncated_insee_in_contours(tmp_path, sample):
    layer = sample.iloc[:2].copy()
    layer["insee_com"] = ['="1053"', "59014, 59079"]
    layer["lib_com"] = ["Bourg-en-Bresse", "Anzin, Beuvrages"]
    path = tmp_path / "excel.geojson"
    pyogrio.write_dataframe(layer, path)
    qpv = read_contours(path).qpv
    assert list(qpv["insee_com"]) == ["01053", "59014;59079"]
    assert list(qpv["lib_com"]) == ["Bourg-en-Bresse", "Anzin;Beuvrages"]


def test_lambert93_coordinates_declared_as_wgs84_are_refused(tmp_path, sample):
    collection = json.loads(sample.to_crs(2154).to_json(drop_id=True))
    collection.pop("crs", None)  # GeoJSON without crs = WGS84: the coordinates cannot be degrees
    path = tmp_path / "l93_sans_crs.geojson"
    path.write_text(json.dumps(collection), encoding="utf-8")
    with pytest.raises(ContoursError, match="l93_sans_crs.geojson"):
        read_contours(path)


def test_within_layer_duplicates_are_merged(tmp_path, sample):
    parts = sample[sample["code_qp"] == "QN05921M"].copy()
    # Split the QPV into two features: west and east halves of its bounding box.
    minx, miny, maxx, maxy = parts.total_bounds
    middle = (minx + maxx) / 2
    geom = shapely.make_valid(parts.geometry.iloc[0])
    halves = [
        geom.intersection(shapely.box(minx, miny, middle, maxy)),
        geom.intersection(shapely.box(middle, miny, maxx, maxy)),
    ]
    parts = gpd.GeoDataFrame(
        pd.concat([parts.drop(columns="geometry")] * 2, ignore_index=True),
        geometry=polygonal_multipolygons(np.array(halves, dtype=object)),
        crs=4326,
    )
    assert len(parts) >= 2
    path = tmp_path / "eclate.gpkg"
    pyogrio.write_dataframe(parts, path)
    result = read_contours(path)
    assert len(result.qpv) == 1
    assert result.report[0]["fusionnes"] == len(parts) - 1
    expected = geodesic_km2(shapely.make_valid(sample.set_index("code_qp").geometry["QN05921M"]))
    assert result.qpv["surface_km2"].iloc[0] == pytest.approx(expected, rel=0.005)


# ---------------------------------------------------------------------------------------------
# Errors and pure helpers (no real data needed)
# ---------------------------------------------------------------------------------------------


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(ContoursError, match="introuvable"):
        read_contours(tmp_path / "absent.geojson")
    other = tmp_path / "qpv.csv"
    other.write_text("code_qp\n", encoding="utf-8")
    with pytest.raises(ContoursError, match="non pris en charge"):
        read_contours(other)


def test_unescape_and_pairs():
    assert unescape_excel('="60057"') == "60057"
    assert unescape_excel('"=""60057"""') == "60057"
    assert normalise_pairs('"=""60057"""', "Beauvais") == ("60057", "Beauvais")
    assert normalise_pairs("59491; 59014", "Raismes; Anzin") == ("59014;59491", "Anzin;Raismes")
    assert normalise_pairs("1053.0", None) == ("01053", None)
    assert normalise_pairs("2a247", "Porto-Vecchio") == ("2A247", "Porto-Vecchio")
    assert normalise_pairs(None, None) == (None, None)


def test_polygonal_parts_of_a_repaired_bowtie():
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    collection = shapely.GeometryCollection(
        [shapely.box(5, 5, 6, 6), shapely.LineString([(0, 0), (1, 1)])]
    )
    fixed = polygonal_multipolygons(
        np.array([shapely.make_valid(bowtie), collection, shapely.Point(0, 0)], dtype=object)
    )
    assert [g.geom_type for g in fixed] == ["MultiPolygon"] * 3
    assert fixed[0].area == pytest.approx(2.0) and fixed[0].is_valid
    assert fixed[1].area == pytest.approx(1.0)
    assert fixed[2].is_empty


LISTE_CSV = (
    "code_qp;lib_qp;insee_reg;lib_reg;insee_dep;lib_dep;insee_com;lib_com;siren_epci;lib_epci\n"
    "QN00101M;Grande Reyssouze Terre Des Fleurs;84;Auvergne-Rhône-Alpes;1;Ain;1053;"
    "Bourg-en-Bresse;200071751;CA du Bassin de Bourg-en-Bresse\n"
    'QN06001M;Argentine;32;Hauts-de-France;60;Oise;"=""60057""";Beauvais;'
    "200067999;CA du Beauvaisis\n"
    "QN05921M;Zone Intercommunale Rives De L'Escaut;32;Hauts-de-France;59;Nord;"
    '"59606; 59014; 59079; 59112; 59491";'
    '"Valenciennes; Anzin; Beuvrages; Bruay-sur-l\'Escaut; Raismes";'
    '"245901160; 200043396";"CA Valenciennes Métropole; CA de la Porte du Hainaut"\n'
    "QN02A01M;Pifano;94;Corse;2a;Corse-du-Sud;2A247;Porto-Vecchio;200040723;CC du Sud Corse\n"
    "QN97401I;Le Gol;4;La Réunion;974;La Réunion;97414;Saint-Louis;249740085;CIVIS\n"
    "QN9999;Code faux;32;Hauts-de-France;59;Nord;59606;Valenciennes;245901160;CA\n"
)


def test_read_liste_qpv(tmp_path):
    path = tmp_path / "listeqp2024-cog2024.csv"
    path.write_bytes(b"\xef\xbb\xbf" + LISTE_CSV.encode("utf-8"))
    liste = read_liste_qpv(path).set_index("code_qpv")
    assert list(liste.columns) == [
        "libelle_qpv",
        "insee_reg",
        "lib_reg",
        "insee_dep",
        "lib_dep",
        "insee_com",
        "lib_com",
        "siren_epci",
        "lib_epci",
    ]
    assert len(liste) == 5
    assert liste.at["QN00101M", "insee_com"] == "01053"
    assert liste.at["QN00101M", "insee_dep"] == "01"
    assert liste.at["QN06001M", "insee_com"] == "60057"
    assert liste.at["QN05921M", "insee_com"] == "59014;59079;59112;59491;59606"
    assert liste.at["QN05921M", "lib_com"] == (
        "Anzin;Beuvrages;Bruay-sur-l'Escaut;Raismes;Valenciennes"
    )
    assert liste.at["QN05921M", "siren_epci"] == "200043396;245901160"
    assert liste.at["QN05921M", "lib_epci"] == (
        "CA de la Porte du Hainaut;CA Valenciennes Métropole"
    )
    assert liste.at["QN02A01M", "insee_dep"] == "2A"
    assert liste.at["QN97401I", "insee_dep"] == "974"
    assert liste.at["QN97401I", "insee_reg"] == "04"
    assert liste.at["QN05921M", "libelle_qpv"] == "Zone Intercommunale Rives De L'Escaut"
    rejects = liste.attrs["rejets"]
    assert list(rejects.columns) == REJECT_COLUMNS
    assert rejects[["ligne", "valeur_brute"]].values.tolist() == [[7, "QN9999"]]


# ---------------------------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def spatial_con():
    extension = pytest.importorskip("duckdb_extension_spatial")
    path = Path(extension.__file__).parent / "extensions" / "v1.5.5" / "spatial.duckdb_extension"
    if not path.exists():
        pytest.skip(f"Extension spatiale DuckDB absente : {path}")
    con = duckdb.connect()
    con.execute(f"INSTALL '{path}'")
    con.execute("LOAD spatial")
    yield con
    con.close()


def test_to_duckdb(spatial_con, national):
    qpv = national.qpv[national.qpv["code_qpv"].isin(SAMPLE)]
    to_duckdb(qpv.iloc[:2], spatial_con, "qpv_contours")
    to_duckdb(qpv, spatial_con, "qpv_contours")  # replaces the table
    types = dict(
        spatial_con.execute(
            "select column_name, column_type from (describe qpv_contours)"
        ).fetchall()
    )
    assert types["geometry"].startswith("GEOMETRY")
    assert types["surface_km2"] == "DOUBLE"
    assert types["geometrie_reparee"] == "BOOLEAN"
    rows = spatial_con.execute(
        "select code_qpv, st_area(st_transform(geometry, 'EPSG:4326', 'EPSG:2154', true)) / 1e6, "
        "st_isvalid(geometry) from qpv_contours where code_qpv = 'QN05921M'"
    ).fetchall()
    ((code, area, valid),) = rows
    assert code == "QN05921M" and valid
    expected = qpv.set_index("code_qpv").at["QN05921M", "surface_km2"]
    assert area == pytest.approx(expected, rel=1e-6)
    assert spatial_con.execute("select count(*) from qpv_contours").fetchone()[0] == len(SAMPLE)
