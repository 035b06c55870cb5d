"""Tests of geo.export: dim_qpv as GeoParquet, GeoPackage and GeoJSON, read back.

The mart is built in the test from the real contours of the demo extract (42 QPV 2024, ANCT)
plus rows without geometry, as ``marts.dim_qpv`` has them (QPV known only from INSEE bases).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely

from geo.contours import to_duckdb
from geo.export import export_dim_qpv, geoparquet_crs
from pipelines.duckdb_utils import load_spatial
from pipelines.sources.sig_ville.reader import read_contours

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "sig_ville" / "QP2024_demo_3_territoires_WGS84.geojson"


@pytest.fixture(scope="module")
def mart(tmp_path_factory):
    qpv = read_contours(DEMO).qpv
    con = duckdb.connect()
    load_spatial(con)
    to_duckdb(qpv, con, "contours")
    con.execute("CREATE SCHEMA marts")
    con.execute(
        """CREATE TABLE marts.dim_qpv AS
        SELECT code_qpv, libelle_qpv, geographie, insee_com AS codes_communes,
            lib_com AS noms_communes, CAST(len(string_split(insee_com, ';')) AS BIGINT)
                AS nb_communes,
            surface_km2, CAST(NULL AS DOUBLE) AS population, geometrie_reparee,
            geometry AS geom
        FROM contours
        UNION ALL
        SELECT 'QP059020', 'Chasse Royale', '2015', NULL, NULL, NULL, NULL, 3829.0, NULL, NULL
        """
    )
    out = tmp_path_factory.mktemp("marts")
    written = export_dim_qpv(con, out)
    expected = con.execute(
        "SELECT * EXCLUDE (geom), ST_AsWKB(geom) AS wkb FROM marts.dim_qpv ORDER BY code_qpv"
    ).df()
    con.close()
    return written, expected, qpv


def read(path: Path) -> gpd.GeoDataFrame:
    if path.suffix == ".parquet":
        return gpd.read_parquet(path)
    return pyogrio.read_dataframe(path)


@pytest.mark.parametrize("fmt", ["parquet", "gpkg", "geojson"])
def test_each_format_reads_back(mart, fmt):
    written, expected, qpv = mart
    gdf = read(written[fmt]).sort_values("code_qpv").reset_index(drop=True)
    assert gdf.crs is not None
    assert gdf.crs.to_authority() in {("OGC", "CRS84"), ("EPSG", "4326")}
    assert gdf.crs.equals("OGC:CRS84", ignore_axis_order=True)
    assert len(gdf) == len(expected) == 43
    assert list(gdf["code_qpv"]) == list(expected["code_qpv"])
    present = gdf.geometry.notna() & ~gdf.geometry.is_empty
    assert int(present.sum()) == 42
    assert gdf.geometry[present].is_valid.all()
    assert set(gdf.geometry[present].geom_type) == {"MultiPolygon"}
    want = shapely.from_wkb([bytes(b) for b in expected["wkb"].dropna()])
    got = np.asarray(gdf.geometry[present].values)
    assert np.allclose(shapely.area(got), shapely.area(want), rtol=1e-9)
    # same shapes (GeoJSON: 15 decimals, so near-duplicate vertices may merge)
    assert (shapely.hausdorff_distance(got, want) < 1e-12).all()
    # attributes, nulls included
    for col in ("libelle_qpv", "geographie", "codes_communes", "noms_communes"):
        a = gdf[col].astype(object).where(gdf[col].notna(), None).tolist()
        b = expected[col].astype(object).where(expected[col].notna(), None).tolist()
        assert a == b, col
    assert np.allclose(
        gdf["surface_km2"].astype(float), expected["surface_km2"].astype(float), equal_nan=True
    )
    assert gdf.loc[gdf["code_qpv"] == "QP059020", "population"].iloc[0] == 3829.0
    assert gdf.loc[gdf["code_qpv"] == "QN05921M", "nb_communes"].iloc[0] == 5


def test_geoparquet_metadata_has_crs(mart):
    written, _, _ = mart
    crs = geoparquet_crs(written["parquet"])
    assert crs.get("id") == {"authority": "OGC", "code": "CRS84"}
    meta = json.loads(pq.read_metadata(written["parquet"]).metadata[b"geo"])
    column = meta["columns"][meta["primary_column"]]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["MultiPolygon"]
    xmin, ymin, xmax, ymax = column["bbox"]
    assert 2.4 < xmin < xmax < 4.2 and 50.1 < ymin < ymax < 50.6


def test_geopackage_srs_is_4326(mart):
    written, _, _ = mart
    with sqlite3.connect(written["gpkg"]) as db:
        rows = db.execute("SELECT table_name, srs_id FROM gpkg_geometry_columns").fetchall()
        srs = db.execute(
            "SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys "
            "WHERE srs_id = 4326"
        ).fetchall()
    assert rows == [("dim_qpv", 4326)]
    assert srs == [("EPSG", 4326)]


def test_geojson_is_rfc7946(mart):
    written, _, _ = mart
    data = json.loads(written["geojson"].read_text(encoding="utf-8"))
    assert "crs" not in data
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 43
    nulls = [f for f in data["features"] if f["geometry"] is None]
    assert [f["properties"]["code_qpv"] for f in nulls] == ["QP059020"]
    for feature in data["features"]:
        if feature["geometry"] is None:
            continue
        for polygon in feature["geometry"]["coordinates"]:
            exterior = np.asarray(polygon[0])
            x, y = exterior[:, 0], exterior[:, 1]
            signed_area = (x[:-1] * y[1:] - x[1:] * y[:-1]).sum() / 2
            assert signed_area > 0  # right-hand rule: exterior counter-clockwise
            assert -180 <= exterior[:, 0].min() and exterior[:, 1].max() <= 90


def test_export_replaces_previous_files(mart, tmp_path):
    written, _, _ = mart
    before = {k: p.stat().st_size for k, p in written.items()}
    assert all(size > 1000 for size in before.values())
    assert not list(written["parquet"].parent.glob(".*tmp*"))
    frame = pd.read_parquet(written["parquet"])
    assert "geom" in frame.columns or "geometry" in frame.columns
