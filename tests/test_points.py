"""Tests of geo.points: point-in-QPV assignment on hand-checked points of real contours.

The contours come from the demo extract committed in ``data/demo/sig_ville/`` (42 real QPV 2024
of the three territories, ANCT), repaired by ``geo.contours.read_contours``; every expected
answer is checked against shapely (GEOS) in the test itself. Tests on the national file of
``../shared/data`` are skipped with a message when it is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import Transformer

from geo import noyau
from geo.contours import read_contours, to_duckdb
from geo.points import (
    STATUTS,
    PointsError,
    assign_points,
    build_index,
    open_index,
    read_points,
)
from pipelines.duckdb_utils import load_spatial

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "sig_ville" / "QP2024_demo_3_territoires_WGS84.geojson"
NATIONAL = (
    ROOT.parent / "shared" / "data" / "anct" / "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"
)

# QN05920M and QN05921M (Valenciennes) overlap on a small triangle and share this vertex.
SHARED_VERTEX = (3.4982, 50.3763)
TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)


@pytest.fixture(scope="module")
def contours() -> gpd.GeoDataFrame:
    return read_contours(DEMO).qpv


@pytest.fixture(scope="module")
def con(contours):
    connection = duckdb.connect()
    load_spatial(connection)
    to_duckdb(contours[["code_qpv", "geographie", "geometry"]], connection, "contours")
    connection.execute(
        "CREATE VIEW qpv AS SELECT code_qpv, geographie, geometry AS geom FROM contours"
    )
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def index(con):
    return build_index(con, "qpv")


def kernel_or_skip() -> None:
    """Skip (fail under CI, whose machine has a C compiler) when the kernel cannot be built."""
    try:
        noyau.extension_path()
    except noyau.NoyauIndisponible as err:
        if os.environ.get("CI"):
            pytest.fail(f"noyau compilé indisponible sous CI : {err}")
        pytest.skip(f"noyau compilé indisponible ici : {err}")


@pytest.fixture(params=["noyau", "sql"])
def moteur(request, monkeypatch):
    """Run a test with the compiled kernel, then with the SQL path (same answers expected)."""
    if request.param == "noyau":
        kernel_or_skip()
        monkeypatch.delenv("OBSERVATOIRE_NOYAU", raising=False)
    else:
        monkeypatch.setenv("OBSERVATOIRE_NOYAU", "0")
    return request.param


def expected(contours: gpd.GeoDataFrame, x: float, y: float) -> list[str]:
    """Codes of the QPV intersecting the point (GEOS), sorted: the independent answer."""
    hits = shapely.intersects_xy(np.asarray(contours.geometry.values), x, y)
    return sorted(contours.loc[hits, "code_qpv"])


def run(con, index, tmp_path: Path, frame: pd.DataFrame, name: str = "p.parquet", **kw):
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    else:
        path.write_text(frame, encoding=kw.pop("encoding", "utf-8"))
    source = read_points(con, path, crs=kw.pop("crs", None))
    result = assign_points(con, source, index=index, output_table="resultat", **kw)
    rows = con.execute("SELECT * FROM resultat").df()
    wanted = os.environ.get("OBSERVATOIRE_NOYAU") != "0" and source.crs == "EPSG:4326"
    assert result.moteur == ("noyau" if wanted else "sql")
    return result, rows


def test_hand_checked_points(con, index, contours, tmp_path, moteur):
    a = contours.set_index("code_qpv").geometry
    inside = a["QN05933M"].representative_point()
    vertex_single = shapely.get_coordinates(a["QN05910M"])[3]
    overlap = a["QN05920M"].intersection(a["QN05921M"]).representative_point()
    points = {
        "dedans": (inside.x, inside.y),
        "dehors": (3.2, 50.2),
        "sommet_partage": SHARED_VERTEX,
        "recouvrement": (overlap.x, overlap.y),
        "sur_limite": tuple(vertex_single),
    }
    # The answers, checked with GEOS.
    assert expected(contours, *points["dedans"]) == ["QN05933M"]
    assert expected(contours, *points["dehors"]) == []
    assert expected(contours, *points["sommet_partage"]) == ["QN05920M", "QN05921M"]
    assert expected(contours, *points["recouvrement"]) == ["QN05920M", "QN05921M"]
    assert expected(contours, *points["sur_limite"]) == ["QN05910M"]
    frame = pd.DataFrame(
        {
            "identifiant": list(points),
            "lon": [p[0] for p in points.values()],
            "lat": [p[1] for p in points.values()],
        }
    )
    result, rows = run(con, index, tmp_path, frame)
    got = rows.set_index("identifiant")
    assert got.loc["dedans", "statut"] == "dans_qpv"
    assert got.loc["dedans", "code_qpv"] == "QN05933M"
    assert got.loc["dehors", "statut"] == "hors_qpv"
    assert pd.isna(got.loc["dehors", "code_qpv"]) and got.loc["dehors", "nb_qpv"] == 0
    # boundary counts as inside; two QPV -> smallest code, counted as ambiguous
    for name in ("sommet_partage", "recouvrement"):
        assert got.loc[name, "code_qpv"] == "QN05920M"
        assert got.loc[name, "nb_qpv"] == 2
    assert got.loc["sur_limite", "code_qpv"] == "QN05910M"
    assert got.loc["sur_limite", "nb_qpv"] == 1
    assert result.comptes["ambigus"] == 2
    assert result.comptes["lus"] == 5 == result.comptes["dans_qpv"] + result.comptes["hors_qpv"]
    assert set(rows["geographie_qpv"]) == {"2024"}


def test_invalid_and_swapped_coordinates(con, index, contours, tmp_path, moteur):
    inside = contours.set_index("code_qpv").geometry["QN05933M"].representative_point()
    csv = "\n".join(
        [
            "identifiant;longitude;latitude",
            f"ok;{str(inside.x).replace('.', ',')};{str(inside.y).replace('.', ',')}",
            f"inverse;{inside.y};{inside.x}",
            "vide;;50,1",
            "texte;abc;50,1",
            "zero;0;0",
            "hors_bornes;250;50",
            "lat_hors_bornes;3,5;95",
            "ailleurs;-74,0;40,7",
        ]
    )
    result, rows = run(con, index, tmp_path, csv, name="lieux.csv")
    got = rows.set_index("identifiant")
    assert got.loc["ok", "statut"] == "dans_qpv" and got.loc["ok", "code_qpv"] == "QN05933M"
    assert got.loc["inverse", "statut"] == "lon_lat_inverses"
    assert pd.isna(got.loc["inverse", "code_qpv"])
    assert got.loc["inverse", "code_qpv_apres_inversion"] == "QN05933M"
    for name in ("vide", "texte", "zero", "hors_bornes", "lat_hors_bornes"):
        assert got.loc[name, "statut"] == "coordonnees_invalides", name
        assert got.loc[name, "motif"], name
    assert got.loc["vide", "motif"] == "coordonnée absente"
    assert got.loc["texte", "motif"] == "coordonnée non numérique"
    assert got.loc["ailleurs", "statut"] == "hors_qpv"  # valid, in New York
    c = result.comptes
    assert c == {
        "dans_qpv": 1,
        "hors_qpv": 1,
        "coordonnees_invalides": 5,
        "lon_lat_inverses": 1,
        "lus": 8,
        "ambigus": 0,
    }


def test_lambert93_detected_and_comma_separated(con, index, contours, tmp_path):
    inside = contours.set_index("code_qpv").geometry["QN06204M"].representative_point()
    x, y = TO_L93.transform(inside.x, inside.y)
    xs, ys = f"{x:.2f}", f"{y:.2f}"
    csv = "\n".join(
        [
            "id,x,y,type",
            f"a,{xs},{ys},",
            f'b,"{xs.replace(".", ",")}","{ys.replace(".", ",")}",equipement',
            f"b2,{xs},{ys},equipement",
            f"c,{ys},{xs},",
            "d,100,200,",
        ]
    )
    path = tmp_path / "l93.csv"
    path.write_text(csv, encoding="utf-8")
    source = read_points(con, path)
    assert source.crs == "EPSG:2154" and source.x == "x" and source.identifiant == "id"
    assign_points(con, source, index=index, output_table="resultat_l93")
    got = con.execute("SELECT * FROM resultat_l93").df().set_index("id")
    assert got.loc["a", "code_qpv"] == "QN06204M"
    assert got.loc["b", "code_qpv"] == "QN06204M"  # quoted decimal comma
    assert got.loc["c", "statut"] == "lon_lat_inverses"
    assert got.loc["c", "code_qpv_apres_inversion"] == "QN06204M"
    assert got.loc["d", "statut"] == "coordonnees_invalides"
    assert abs(got.loc["a", "lon_wgs84"] - inside.x) < 1e-6


def test_same_answers_as_geopandas_on_random_points(con, index, contours, tmp_path, moteur):
    rng = np.random.default_rng(7)
    n = 20_000
    centres = contours.geometry.representative_point()
    pick = rng.integers(0, len(contours), n)
    lon = centres.x.to_numpy()[pick] + rng.normal(0, 0.004, n)
    lat = centres.y.to_numpy()[pick] + rng.normal(0, 0.003, n)
    frame = pd.DataFrame({"id": np.arange(n), "lon": lon, "lat": lat})
    path = tmp_path / "random.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    out = tmp_path / "random_out.parquet"
    result = assign_points(
        con, read_points(con, path), index=index, keep=["id"], output=out, with_details=False
    )
    assert result.moteur == moteur
    got = pd.read_parquet(out).set_index("id").sort_index()
    points = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    joined = gpd.sjoin(points, contours[["code_qpv", "geometry"]], predicate="intersects")
    ref = joined.groupby("id")["code_qpv"].agg(["min", "count"])
    want = pd.Series(None, index=frame["id"], dtype=object)
    want[ref.index] = ref["min"]
    codes = got["code_qpv"].astype(object).fillna("")
    assert codes.index.equals(want.index)
    assert (codes == want.fillna("")).all(), (codes != want.fillna("")).sum()
    assert int((ref["count"] > 1).sum()) == result.comptes["ambigus"]
    assert result.comptes["dans_qpv"] == len(ref) > 1000


def column_encodings(path: Path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    out: dict[str, set[str]] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            column = meta.row_group(g).column(c)
            out.setdefault(column.path_in_schema, set()).update(column.encodings)
    return out


def test_output_parquet_encodings(con, index, tmp_path, moteur):
    """Format 2 pages: integer ids delta-encoded; a dictionary only where it helps (text)."""
    n = 3_000
    frame = pd.DataFrame(
        {
            "id": np.arange(n) * 7,
            "commune": np.where(np.arange(n) % 2 == 0, "Anzin", "Denain"),
            "lon": np.full(n, 3.5),
            "lat": np.full(n, 50.35),
        }
    )
    path = tmp_path / "enc.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    numbers = tmp_path / "numbers.parquet"
    texts = tmp_path / "texts.parquet"
    for keep, out in ((["id"], numbers), (["id", "commune"], texts)):
        result = assign_points(con, read_points(con, path), index=index, keep=keep, output=out)
        assert result.moteur == moteur and result.comptes["lus"] == n
    enc = column_encodings(numbers)
    assert enc["id"] == enc["nb_qpv"] == {"DELTA_BINARY_PACKED"}  # no dictionary trial
    assert "RLE_DICTIONARY" in enc["statut"] and "RLE_DICTIONARY" in enc["code_qpv"]  # ENUMs
    enc = column_encodings(texts)
    assert "RLE_DICTIONARY" in enc["commune"] and "RLE_DICTIONARY" in enc["nb_qpv"]
    # and readers other than DuckDB read it back
    back = pq.read_table(texts).to_pandas()
    assert sorted(back["id"]) == list(frame["id"])
    assert set(back["commune"]) == {"Anzin", "Denain"}


def edge_middles(contours: gpd.GeoDataFrame, rng, n: int) -> np.ndarray:
    """Middles of ``n`` polygon edges (horizontal and vertical ones included when present)."""
    rings = shapely.get_rings(shapely.get_parts(np.asarray(contours.geometry.values)))
    starts, ends = [], []
    for ring in rings:
        xy = shapely.get_coordinates(ring)
        starts.append(xy[:-1])
        ends.append(xy[1:])
    a, b = np.vstack(starts), np.vstack(ends)
    straight = np.flatnonzero((a[:, 0] == b[:, 0]) | (a[:, 1] == b[:, 1]))
    pick = np.concatenate([straight[:100], rng.choice(len(a), n, replace=False)])
    return (a[pick] + b[pick]) / 2


def test_points_exactly_on_grid_lines_and_cell_corners(con, index, contours, tmp_path, moteur):
    """Points on cell borders of the grid (multiples of 2**-11 degree) near QPV boundaries,
    where the edges of the clipped rings are cut: the answers must still be GEOS's."""
    f = 2.0**11
    rng = np.random.default_rng(11)
    coords = shapely.get_coordinates(np.asarray(contours.geometry.values))
    coords = coords[rng.choice(len(coords), 1500, replace=False)]
    gx = np.floor(coords[:, 0] * f) / f
    gy = np.floor(coords[:, 1] * f) / f
    jitter = rng.choice([0.0, 1e-12, -1e-12, 3e-10], len(coords))
    pts = np.vstack(
        [
            np.column_stack([gx, coords[:, 1]]),  # on a vertical grid line
            np.column_stack([coords[:, 0], gy]),  # on a horizontal grid line
            np.column_stack([gx, gy]),  # on a cell corner
            np.column_stack([gx + jitter, coords[:, 1]]),  # just beside a grid line
            np.column_stack([coords[:, 0], gy + 1 / f]),  # top border of the cell
            edge_middles(contours, rng, 600),  # on an edge, between two vertices
        ]
    )
    frame = pd.DataFrame({"id": np.arange(len(pts)), "lon": pts[:, 0], "lat": pts[:, 1]})
    _, rows = run(con, index, tmp_path, frame, name="grid.parquet", keep=["id"])
    rows = rows.set_index("id").sort_index()
    geoms = np.asarray(contours.geometry.values)
    codes = contours["code_qpv"].to_numpy()
    hits = [sorted(codes[shapely.intersects_xy(geoms, x, y)]) for x, y in pts]
    got_codes = rows["code_qpv"].astype(object).where(rows["code_qpv"].notna(), None).tolist()
    want_codes = [h[0] if h else None for h in hits]
    bad = [
        (tuple(pts[i]), got_codes[i], hits[i])
        for i in range(len(pts))
        if got_codes[i] != want_codes[i]
    ]
    assert not bad, bad[:5]
    assert rows["nb_qpv"].tolist() == [len(h) for h in hits]
    assert sum(1 for h in hits if h) > 1000


def test_persisted_index_reopened(con, tmp_path, contours):
    db = tmp_path / "grille.duckdb"
    with duckdb.connect(str(db)) as c:
        load_spatial(c)
        to_duckdb(contours[["code_qpv", "geographie", "geometry"]], c, "contours")
        c.execute("CREATE VIEW qpv AS SELECT code_qpv, geographie, geometry AS geom FROM contours")
        built = build_index(c, "qpv", persist=True, table="main.grille_qpv")
    with duckdb.connect(str(db), read_only=True) as c:
        load_spatial(c)
        index = open_index(c, "main.grille_qpv")
        assert index.codes == built.codes and index.geographie == "2024"
        frame = pd.DataFrame({"id": [1], "lon": [SHARED_VERTEX[0]], "lat": [SHARED_VERTEX[1]]})
        path = tmp_path / "one.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        out = tmp_path / "one_out.parquet"
        assign_points(c, read_points(c, path), index=index, output=out)
        row = pd.read_parquet(out).iloc[0]
        assert row["code_qpv"] == "QN05920M" and row["nb_qpv"] == 2  # exact re-test path


def test_geographie_choice_and_errors(con, tmp_path):
    con.execute(
        "CREATE OR REPLACE VIEW deux AS SELECT code_qpv, geographie, geom FROM qpv "
        "UNION ALL SELECT 'QP059020', '2015', ST_Buffer(ST_Point(3.5, 50.35), 0.01)"
    )
    assert build_index(con, "deux").geographie == "2024"
    old = build_index(con, "deux", geographie="2015")
    assert old.codes == ["QP059020"]
    with pytest.raises(PointsError, match="2030"):
        build_index(con, "deux", geographie="2030")
    bad = tmp_path / "sans_coordonnees.csv"
    bad.write_text("id;adresse\n1;rue\n", encoding="utf-8")
    with pytest.raises(PointsError, match="introuvable"):
        read_points(con, bad)
    weird = tmp_path / "crs_inconnu.csv"
    weird.write_text("id;x;y\n1;5000;5000\n", encoding="utf-8")
    with pytest.raises(PointsError, match="non reconnu"):
        read_points(con, weird)


def test_statuses_cover_every_row(con, index, tmp_path):
    rng = np.random.default_rng(3)
    lon = rng.uniform(-200, 200, 2000)
    lat = rng.uniform(-100, 100, 2000)
    lon[::50] = np.nan
    frame = pd.DataFrame({"id": np.arange(2000), "lon": lon, "lat": lat})
    result, rows = run(con, index, tmp_path, frame, name="cover.parquet", keep=["id"])
    assert set(rows["statut"]) <= set(STATUTS)
    assert result.comptes["lus"] == 2000 == sum(result.comptes[s] for s in STATUTS)


@pytest.mark.skipif(not NATIONAL.exists(), reason=f"données réelles absentes : {NATIONAL}")
def test_national_shared_edge_and_overseas(tmp_path):
    national = read_contours(NATIONAL).qpv
    pair = national[national["code_qpv"].isin(["QN09124M", "QN09125M"])].set_index("code_qpv")
    shared = pair.geometry["QN09124M"].boundary.intersection(pair.geometry["QN09125M"].boundary)
    segment = shapely.get_coordinates(shared)[:2]
    middle = segment.mean(axis=0)
    reunion = national.set_index("code_qpv").geometry["QN97402M"].representative_point()
    with duckdb.connect() as c:
        load_spatial(c)
        to_duckdb(national[["code_qpv", "geographie", "geometry"]], c, "contours")
        c.execute("CREATE VIEW qpv AS SELECT code_qpv, geographie, geometry AS geom FROM contours")
        index = build_index(c, "qpv")
        assert len(index.codes) == 1584
        pts = {"sommet": segment[0], "milieu": middle, "reunion": (reunion.x, reunion.y)}
        frame = pd.DataFrame(
            {
                "id": list(pts),
                "lon": [p[0] for p in pts.values()],
                "lat": [p[1] for p in pts.values()],
            }
        )
        _, rows = run(c, index, tmp_path, frame)
    got = rows.set_index("id")
    # A shared vertex is on both boundaries: both QPV, the smallest code.
    assert expected(national, *pts["sommet"]) == ["QN09124M", "QN09125M"]
    assert got.loc["sommet", "code_qpv"] == "QN09124M"
    assert got.loc["sommet", "nb_qpv"] == 2
    # The float midpoint of a shared edge is within 1e-12 degree of it but, for GEOS, on one
    # side only: the exact re-test gives the same answer as GEOS.
    geoms = pair.geometry
    assert all(shapely.distance(g.boundary, shapely.Point(middle)) < 1e-12 for g in geoms)
    want = expected(national, *pts["milieu"])
    assert got.loc["milieu", "code_qpv"] == want[0]
    assert got.loc["milieu", "nb_qpv"] == len(want)
    assert got.loc["reunion", "code_qpv"] == "QN97402M"


def test_lieux_folder_written_to_raw(tmp_path, contours):
    """The asset's body: files of RAW/lieux -> raw.lieux, raw.rejets, raw.ingestion_log."""
    from pipelines.defs.geo_assets import assign_folder
    from pipelines.defs.raw_tables import replace_table

    folder = tmp_path / "lieux"
    folder.mkdir()
    inside = contours.set_index("code_qpv").geometry["QN05933M"].representative_point()
    (folder / "beneficiaires.csv").write_text(
        "Identifiant;Nom;Longitude;Latitude;Type;Dossier\n"
        f"B1;Dupont;{inside.x};{inside.y};residence_beneficiaire;D-01\n"
        "B2;Martin;3,2;50,2;residence_beneficiaire;D-01\n"
        f"B3;Durand;{inside.y};{inside.x};residence_beneficiaire;D-02\n"
        "B4;Petit;;;residence_beneficiaire;D-02\n",
        encoding="utf-8",
    )
    pd.DataFrame(
        {"id": ["E1"], "lon": [inside.x], "lat": [inside.y], "type": ["equipement"]}
    ).to_parquet(folder / "equipements.parquet")
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as c:
        load_spatial(c)
        frame = pd.DataFrame(contours.drop(columns="geometry"))
        frame["geom_wkb"] = contours.geometry.to_wkb()
        replace_table(c, "qpv_contours", frame)
        summary = assign_folder(c, folder)
        rows = c.execute("SELECT * FROM raw.lieux ORDER BY source_fichier, source_ligne").df()
        rejets = c.execute("SELECT ligne, motif FROM raw.rejets WHERE source = 'lieux'").fetchall()
        logs = c.execute(
            "SELECT lignes_lues, lignes_chargees, lignes_rejetees FROM raw.ingestion_log "
            "WHERE source = 'lieux' ORDER BY fichier"
        ).fetchall()
    assert "nom" not in {col.lower() for col in rows.columns}  # personal data dropped
    assert len(rows) == 5 and summary["lignes_table"] == 5
    benef = rows[rows["source_fichier"].str.endswith(".csv")].set_index("identifiant")
    assert benef.loc["B1", "code_qpv"] == "QN05933M" and benef.loc["B1", "source_ligne"] == 2
    assert benef.loc["B2", "statut"] == "hors_qpv"
    assert benef.loc["B3", "statut"] == "lon_lat_inverses"
    assert benef.loc["B4", "statut"] == "coordonnees_invalides"
    assert benef.loc["B1", "dossier"] == "D-01" and benef.loc["B1", "type_lieu"].startswith("res")
    assert rows.loc[rows["identifiant"] == "E1", "code_qpv"].item() == "QN05933M"
    assert sorted(rejets) == [
        (4, "longitude et latitude (x et y) inversées"),
        (5, "coordonnée absente"),
    ]
    assert logs == [(4, 2, 2), (1, 1, 0)]
    comptes = summary["par_geographie"]["2024"]
    assert comptes["lus"] == 5 == comptes["dans_qpv"] + comptes["hors_qpv"] + 2


def test_dbt_macro_gives_the_same_answers(con, index, contours, tmp_path):
    """dbt_project/macros/assign_qpv.sql, rendered with Jinja, against the Python path."""
    import jinja2

    text = (ROOT / "dbt_project" / "macros" / "assign_qpv.sql").read_text(encoding="utf-8")
    env = jinja2.Environment()
    macro = env.from_string(text).module.assign_qpv
    rng = np.random.default_rng(5)
    centres = contours.geometry.representative_point()
    pick = rng.integers(0, len(contours), 3000)
    lon = centres.x.to_numpy()[pick] + rng.normal(0, 0.004, 3000)
    lat = centres.y.to_numpy()[pick] + rng.normal(0, 0.003, 3000)
    lon[:3] = [SHARED_VERTEX[0], np.nan, 0.0]
    lat[:3] = [SHARED_VERTEX[1], 50.0, 0.0]
    frame = pd.DataFrame({"id": np.arange(3000), "lon": lon, "lat": lat})
    path = tmp_path / "macro.parquet"
    frame.to_parquet(path)
    sql = macro(f"read_parquet('{path}')", "lon", "lat", "qpv")
    got = con.execute(f"SELECT id, statut, code_qpv, nb_qpv FROM ({sql}) ORDER BY id").df()
    _, want = run(con, index, tmp_path, frame, name="macro2.parquet", keep=["id"])
    want = want.sort_values("id").reset_index(drop=True)
    assert got["statut"].tolist() == want["statut"].astype(str).tolist()
    a = got["code_qpv"].astype(object).where(got["code_qpv"].notna(), None).tolist()
    b = want["code_qpv"].astype(object).where(want["code_qpv"].notna(), None).tolist()
    assert a == b
    assert got.loc[0, "code_qpv"] == "QN05920M" and got.loc[0, "nb_qpv"] == 2


def test_kernel_and_sql_paths_agree_on_every_column(con, index, contours, tmp_path, monkeypatch):
    """The compiled kernel and the SQL path give the same rows, details included, on points
    around the QPV, on their vertices (re-tested exactly), swapped, invalid and far away."""
    kernel_or_skip()
    rng = np.random.default_rng(5)
    centres = contours.geometry.representative_point()
    pick = rng.integers(0, len(contours), 6000)
    lon = centres.x.to_numpy()[pick] + rng.normal(0, 0.004, len(pick))
    lat = centres.y.to_numpy()[pick] + rng.normal(0, 0.003, len(pick))
    vertices = shapely.get_coordinates(np.asarray(contours.geometry.values))
    vertices = vertices[rng.choice(len(vertices), 500, replace=False)]
    extra_x = [np.nan, 0.0, 250.0, 2.35, SHARED_VERTEX[0]]
    extra_y = [50.0, 0.0, 50.0, 48.85, SHARED_VERTEX[1]]
    xs = np.concatenate([lon, vertices[:, 0], lat[:300], extra_x])
    ys = np.concatenate([lat, vertices[:, 1], lon[:300], extra_y])
    frame = pd.DataFrame({"id": np.arange(len(xs)), "lon": xs, "lat": ys})
    frame.loc[len(frame)] = [len(frame), None, 50.0]
    path = tmp_path / "both.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    results = {}
    for engine, flag in (("noyau", "1"), ("sql", "0")):
        monkeypatch.setenv("OBSERVATOIRE_NOYAU", flag)
        out = tmp_path / f"{engine}.parquet"
        result = assign_points(con, read_points(con, path), index=index, keep=["id"], output=out)
        assert result.moteur == engine
        results[engine] = (result, pd.read_parquet(out).sort_values("id").reset_index(drop=True))
    a, b = results["noyau"][1], results["sql"][1]
    for column in a.columns:
        left, right = a[column].astype(object), b[column].astype(object)
        same = (left == right) | (left.isna() & right.isna())
        assert same.all(), (column, a.loc[~same, ["id", column]].head(), right[~same].head())
    assert results["noyau"][0].comptes == results["sql"][0].comptes
    c = results["noyau"][0].comptes
    assert c["lon_lat_inverses"] == 300 and c["coordonnees_invalides"] == 4
    assert c["dans_qpv"] > 2000 and c["ambigus"] > 0


def test_kernel_unavailable_falls_back_to_sql(con, index, tmp_path, monkeypatch, caplog):
    """No compiler: the SQL path answers, and the reason is logged."""
    monkeypatch.setenv("CC", str(tmp_path / "pas_de_compilateur"))
    monkeypatch.setenv("OBSERVATOIRE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(noyau, "_CACHE", {})
    monkeypatch.setattr(noyau, "_FAILURE", {})
    frame = pd.DataFrame({"id": [1], "lon": [2.35], "lat": [48.85]})
    path = tmp_path / "un.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    with caplog.at_level("INFO", logger="geo.noyau"):
        result = assign_points(
            con, read_points(con, path), index=index, keep=["id"], output=tmp_path / "o.parquet"
        )
    assert result.moteur == "sql"
    assert result.comptes["hors_qpv"] == 1
    assert "compilation du noyau impossible" in caplog.text
    # a cache folder that cannot be written: the same fallback, not a crash
    blocker = tmp_path / "pas_un_dossier"
    blocker.write_text("")
    monkeypatch.delenv("CC")
    monkeypatch.setenv("OBSERVATOIRE_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(noyau, "_CACHE", {})
    monkeypatch.setattr(noyau, "_FAILURE", {})
    with caplog.at_level("INFO", logger="geo.noyau"):
        assert noyau.connect(tmp_path / "absent.noyau") is None
    assert "compilation du noyau impossible" in caplog.text
    # a corrupt index file is refused when the extension loads
    bad = tmp_path / "faux.noyau"
    bad.write_bytes(b"PASUNINDEX" + bytes(600))
    monkeypatch.delenv("OBSERVATOIRE_CACHE")
    monkeypatch.setattr(noyau, "_CACHE", {})
    monkeypatch.setattr(noyau, "_FAILURE", {})
    with caplog.at_level("INFO", logger="geo.noyau"):
        assert noyau.connect(bad) is None
    assert "n'est pas un index QPV" in caplog.text


def test_kernel_portable_build_when_native_is_refused(con, index, tmp_path, monkeypatch):
    """A compiler that refuses -march=native gets the portable build, with the same answers;
    another processor gets another cache entry."""
    kernel_or_skip()
    real = shutil.which("cc") or shutil.which("gcc")
    calls = tmp_path / "appels.txt"
    wrapper = tmp_path / "cc_sans_native"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        'for a in "$@"; do [ "$a" = "-march=native" ] && '
        '{ echo "option inconnue : $a" >&2; exit 1; }; done\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("OBSERVATOIRE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(noyau, "_CACHE", {})
    monkeypatch.setattr(noyau, "_FAILURE", {})
    built = noyau.extension_path()
    tries = calls.read_text().splitlines()
    assert len(tries) == 2 and "-march=native" in tries[0] and "-march=native" not in tries[1]
    frame = pd.DataFrame(
        {"id": [1, 2], "lon": [SHARED_VERTEX[0], 3.2], "lat": [SHARED_VERTEX[1], 50.2]}
    )
    path = tmp_path / "deux.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    result = assign_points(
        con, read_points(con, path), index=index, keep=["id"], output=tmp_path / "o.parquet"
    )
    assert result.moteur == "noyau"
    rows = pd.read_parquet(tmp_path / "o.parquet").set_index("id")
    assert rows.loc[1, "code_qpv"] == "QN05920M" and rows.loc[1, "nb_qpv"] == 2
    assert rows.loc[2, "statut"] == "hors_qpv"
    # the processor is part of the cache key: a binary built here is never handed to another
    monkeypatch.setattr(noyau, "_CACHE", {})
    monkeypatch.setattr(noyau, "_cpu_signature", lambda: "autre processeur|sse2")
    assert noyau.extension_path().parent != built.parent
