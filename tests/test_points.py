"""Tests of the point-in-QPV rule (dbt_project/macros/assign_qpv.sql run by geo.points) and of
the reading of files of places (pipelines.sources.lieux.reader), on hand-checked points of real
contours.

The contours come from the demo extract committed in ``data/demo/sig_ville/`` (42 real QPV 2024
of the three territories, ANCT), repaired by ``geo.contours.read_contours``; every expected
answer is checked against shapely (GEOS) in the test itself. Tests on the national file of
``../shared/data`` are skipped with a message when it is absent.
"""

from __future__ import annotations

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

from geo.contours import to_duckdb
from geo.points import MACRO, STATUTS, PointsError, assign_points, choose_geographie
from pipelines.duckdb_utils import load_spatial
from pipelines.sources.lieux.reader import read_points
from pipelines.sources.sig_ville.reader import read_contours

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


def expected(contours: gpd.GeoDataFrame, x: float, y: float) -> list[str]:
    """Codes of the QPV intersecting the point (GEOS), sorted: the independent answer."""
    hits = shapely.intersects_xy(np.asarray(contours.geometry.values), x, y)
    return sorted(contours.loc[hits, "code_qpv"])


def run(con, tmp_path: Path, frame: pd.DataFrame, name: str = "p.parquet", **kw):
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    else:
        path.write_text(frame, encoding=kw.pop("encoding", "utf-8"))
    source = read_points(con, path, crs=kw.pop("crs", None))
    kw.setdefault("polygons", "qpv")
    result = assign_points(con, source, output_table="resultat", **kw)
    rows = con.execute("SELECT * FROM resultat").df()
    return result, rows


def test_hand_checked_points(con, contours, tmp_path):
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
    result, rows = run(con, tmp_path, frame)
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
    assert result.counts["ambigus"] == 2
    assert result.counts["lus"] == 5 == result.counts["dans_qpv"] + result.counts["hors_qpv"]
    assert set(rows["geographie_qpv"]) == {"2024"}


def test_invalid_and_swapped_coordinates(con, contours, tmp_path):
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
    result, rows = run(con, tmp_path, csv, name="lieux.csv")
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
    c = result.counts
    assert c == {
        "dans_qpv": 1,
        "hors_qpv": 1,
        "coordonnees_invalides": 5,
        "lon_lat_inverses": 1,
        "lus": 8,
        "ambigus": 0,
    }


def test_lambert93_detected_and_comma_separated(con, contours, tmp_path):
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
    result = assign_points(con, source, polygons="qpv", output_table="resultat_l93")
    got = con.execute("SELECT * FROM resultat_l93").df().set_index("id")
    assert got.loc["a", "code_qpv"] == "QN06204M"
    assert got.loc["b", "code_qpv"] == "QN06204M"  # quoted decimal comma
    assert got.loc["c", "statut"] == "lon_lat_inverses"
    assert got.loc["c", "code_qpv_apres_inversion"] == "QN06204M"
    assert got.loc["d", "statut"] == "coordonnees_invalides"
    assert abs(got.loc["a", "lon_wgs84"] - inside.x) < 1e-6
    assert got.loc["d", "motif"] == "hors de l'emprise du Lambert-93 (France métropolitaine)"
    assert result.crs == "EPSG:2154" and result.counts["lus"] == 5


def test_csv_dialects_tab_and_thousands_utf8_only(con, contours, tmp_path):
    """Tab-separated file, French headers; Lambert-93 written with thousands separators
    (no-break space, dot) and a decimal comma. The same file in Windows-1252 is refused with its
    line, as by every reader of the project (one encoding policy)."""
    inside = contours.set_index("code_qpv").geometry["QN06204M"].representative_point()
    x, y = TO_L93.transform(inside.x, inside.y)
    nbsp = "\u00a0"
    a = f"{x:,.2f}".replace(",", nbsp).replace(".", ",")
    b = f"{y:,.2f}".replace(",", ".").rsplit(".", 1)
    rows = [
        "Numéro\tCoordonnée X\tCoordonnée Y\tCatégorie",
        f"n1\t{a}\t{b[0]},{b[1]}\téquipement",
        f"n2\t{x:.1f}\t{y:.1f}\téquipement",
    ]
    latin = tmp_path / "lieux_latin1.tsv"
    latin.write_bytes("\n".join(rows).encode("cp1252"))
    with pytest.raises(PointsError, match=r"lieux_latin1.tsv: ligne 1: encodage non UTF-8"):
        read_points(con, latin)
    utf16 = tmp_path / "lieux_utf16.tsv"  # UTF-16 with its BOM: read like UTF-8
    utf16.write_bytes("\n".join(rows).encode("utf-16"))
    wide = read_points(con, utf16, extra={"type": ["categorie"]})
    assert (wide.x, wide.y, wide.identifiant) == ("Coordonnée X", "Coordonnée Y", "Numéro")
    assert con.execute(f"SELECT count(*) FROM {wide.sql}").fetchone() == (2,)
    path = tmp_path / "lieux.tsv"
    path.write_bytes("\n".join(rows).encode("utf-8"))
    source = read_points(con, path, extra={"type": ["categorie"]})
    assert (source.x, source.y, source.identifiant) == ("Coordonnée X", "Coordonnée Y", "Numéro")
    assert source.crs == "EPSG:2154" and not source.numeric
    assert source.extra["type"] == "Catégorie"
    result = assign_points(con, source, polygons="qpv", output_table="dialectes")
    got = con.execute("SELECT * FROM dialectes ORDER BY 1").df()
    assert got["code_qpv"].tolist() == ["QN06204M", "QN06204M"], got
    assert result.counts["dans_qpv"] == 2


def test_same_answers_as_geopandas_on_random_points(con, contours, tmp_path):
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
        con, read_points(con, path), polygons="qpv", keep=["id"], output=out, with_details=False
    )
    assert list(pd.read_parquet(out).columns) == ["id", "statut", "code_qpv", "nb_qpv"]
    got = pd.read_parquet(out).set_index("id").sort_index()
    points = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    joined = gpd.sjoin(points, contours[["code_qpv", "geometry"]], predicate="intersects")
    ref = joined.groupby("id")["code_qpv"].agg(["min", "count"])
    want = pd.Series(None, index=frame["id"], dtype=object)
    want[ref.index] = ref["min"]
    codes = got["code_qpv"].astype(object).fillna("")
    assert codes.index.equals(want.index)
    assert (codes == want.fillna("")).all(), (codes != want.fillna("")).sum()
    assert int((ref["count"] > 1).sum()) == result.counts["ambigus"]
    assert result.counts["dans_qpv"] == len(ref) > 1000


def column_encodings(path: Path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    out: dict[str, set[str]] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            column = meta.row_group(g).column(c)
            out.setdefault(column.path_in_schema, set()).update(column.encodings)
    return out


def test_output_parquet_encodings(con, tmp_path):
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
        result = assign_points(con, read_points(con, path), polygons="qpv", keep=keep, output=out)
        assert result.counts["lus"] == n
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


def test_points_on_vertices_edges_and_dyadic_lines(con, contours, tmp_path):
    """Points on QPV vertices and edges, and on lines of multiples of 2**-11 degree near the
    boundaries (where float rounding is exact): the answers must be GEOS's."""
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
    _, rows = run(con, tmp_path, frame, name="grid.parquet", keep=["id"])
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


def test_geographie_choice_and_errors(con, tmp_path):
    con.execute(
        "CREATE OR REPLACE VIEW deux AS SELECT code_qpv, geographie, geom FROM qpv "
        "UNION ALL SELECT 'QP059020', '2015', ST_Buffer(ST_Point(3.5, 50.35), 0.01)"
    )
    assert choose_geographie(con, "deux", None) == "2024"
    frame = pd.DataFrame({"id": [1, 2], "lon": [3.5, 3.2], "lat": [50.35, 50.2]})
    old, rows = run(con, tmp_path, frame, name="g.parquet", polygons="deux", geographie="2015")
    assert old.geographie == "2015" and old.qpv == 1
    assert rows["code_qpv"].tolist()[0] == "QP059020" and set(rows["geographie_qpv"]) == {"2015"}
    with pytest.raises(PointsError, match="2030"):
        run(con, tmp_path, frame, name="g.parquet", polygons="deux", geographie="2030")
    con.execute(
        "CREATE OR REPLACE VIEW double AS SELECT code_qpv, geom FROM qpv "
        "UNION ALL SELECT 'QN05933M', ST_Buffer(ST_Point(3.5, 50.35), 0.01)"
    )
    with pytest.raises(PointsError, match="en double"):
        assign_points(
            con, read_points(con, tmp_path / "g.parquet"), polygons="double", output_table="r"
        )
    bad = tmp_path / "sans_coordonnees.csv"
    bad.write_text("id;adresse\n1;rue\n", encoding="utf-8")
    with pytest.raises(PointsError, match="introuvable"):
        read_points(con, bad)
    weird = tmp_path / "crs_inconnu.csv"
    weird.write_text("id;x;y\n1;5000;5000\n", encoding="utf-8")
    with pytest.raises(PointsError, match="non reconnu"):
        read_points(con, weird)


def test_statuses_cover_every_row(con, tmp_path):
    rng = np.random.default_rng(3)
    lon = rng.uniform(-200, 200, 2000)
    lat = rng.uniform(-100, 100, 2000)
    lon[::50] = np.nan
    frame = pd.DataFrame({"id": np.arange(2000), "lon": lon, "lat": lat})
    result, rows = run(con, tmp_path, frame, name="cover.parquet", keep=["id"])
    assert set(rows["statut"]) <= set(STATUTS)
    assert result.counts["lus"] == 2000 == sum(result.counts[s] for s in STATUTS)


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
        pts = {"sommet": segment[0], "milieu": middle, "reunion": (reunion.x, reunion.y)}
        frame = pd.DataFrame(
            {
                "id": list(pts),
                "lon": [p[0] for p in pts.values()],
                "lat": [p[1] for p in pts.values()],
            }
        )
        result, rows = run(c, tmp_path, frame)
        assert result.qpv == 1584
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
    from pipelines.lib.raw_schemas import replace_table
    from pipelines.sources.lieux.assets import assign_folder

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


def test_macro_as_dbt_calls_it(con, contours, tmp_path):
    """The macro with dbt's defaults (every column, geographie '2024', numbers): one row per
    record, repeated records and points in several QPV included; GEOS's answers."""
    import jinja2

    macro = jinja2.Environment().from_string(MACRO.read_text(encoding="utf-8")).module.assign_qpv
    a = contours.set_index("code_qpv").geometry
    overlap = a["QN05920M"].intersection(a["QN05921M"]).representative_point()
    rng = np.random.default_rng(5)
    centres = contours.geometry.representative_point()
    pick = rng.integers(0, len(contours), 3000)
    lon = centres.x.to_numpy()[pick] + rng.normal(0, 0.004, 3000)
    lat = centres.y.to_numpy()[pick] + rng.normal(0, 0.003, 3000)
    lon[:7] = [SHARED_VERTEX[0], SHARED_VERTEX[0], overlap.x, overlap.x, overlap.x, np.nan, 0.0]
    lat[:7] = [SHARED_VERTEX[1], SHARED_VERTEX[1], overlap.y, overlap.y, overlap.y, 50.0, 0.0]
    frame = pd.DataFrame({"id": np.arange(3000), "lon": lon, "lat": lat, "nom": "x"})
    path = tmp_path / "macro.parquet"
    frame.to_parquet(path)
    sql = macro(f"read_parquet('{path}')", "lon", "lat", "qpv")
    got = con.execute(f"SELECT * FROM ({sql})").df().sort_values("id").reset_index(drop=True)
    assert list(got.columns) == ["id", "lon", "lat", "nom", "statut", "code_qpv", "nb_qpv"]
    assert got["id"].tolist() == list(range(3000))
    hits = [[] if i in (5, 6) else expected(contours, lon[i], lat[i]) for i in range(3000)]
    assert got["statut"].tolist()[5:7] == ["coordonnees_invalides"] * 2
    valid = got.drop(index=[5, 6])
    want = [h for i, h in enumerate(hits) if i not in (5, 6)]
    assert valid["code_qpv"].where(valid["code_qpv"].notna(), None).tolist() == [
        h[0] if h else None for h in want
    ]
    assert valid["nb_qpv"].tolist() == [len(h) for h in want]
    assert (
        got["nb_qpv"].tolist()[:5] == [2] * 5 and got["code_qpv"].tolist()[:5] == ["QN05920M"] * 5
    )


def test_the_rule_has_a_single_home():
    """No spatial predicate in the Python code of geo/ and pipelines/: the rule is the macro's."""
    for folder in ("geo", "pipelines"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "bench.py":
                continue  # the geopandas baseline
            text = path.read_text(encoding="utf-8").lower()
            assert "st_intersects(" not in text and "st_contains(" not in text, path
