"""Tests of the reading of files of places (pipelines/sources/lieux): the BAN geocoder's CSV and
its score threshold, and the one-reading road of the asset (load_points) against the reference
road (read_points + geo.points.assign_points) on messy files.

The contours are the demo extract committed in ``data/demo/sig_ville/`` (real QPV 2024); the
expected QPV of a point is computed with shapely in the test (as tests/test_points.py does).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import geopandas as gpd
import pandas as pd
import pytest
from pyproj import Transformer

from geo.points import PointsError, assign_points, sql_number
from pipelines.duckdb_utils import load_spatial
from pipelines.lib.raw_schemas import replace_table
from pipelines.sources.lieux.assets import assign_folder
from pipelines.sources.lieux.reader import (
    DEFAULT_SCORE_MIN,
    ENV_SCORE_MIN,
    _number,
    ban_columns,
    read_points,
    score_threshold,
)
from pipelines.sources.sig_ville.reader import read_contours

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "sig_ville" / "QP2024_demo_3_territoires_WGS84.geojson"
TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
#: What the geocoder adds to the user's columns (addok-csv, adresse.data.gouv.fr /search/csv).
BAN = (
    "latitude;longitude;result_label;result_score;result_score_next;result_type;result_id;"
    "result_housenumber;result_name;result_street;result_postcode;result_city;result_context;"
    "result_citycode;result_oldcitycode;result_oldcity;result_district;result_status"
)


@pytest.fixture(scope="module")
def contours() -> gpd.GeoDataFrame:
    return read_contours(DEMO).qpv


@pytest.fixture(scope="module")
def inside(contours):
    """A point inside QN05933M and one inside QN05910M (shapely's representative points)."""
    geometry = contours.set_index("code_qpv").geometry
    return {code: geometry[code].representative_point() for code in ("QN05933M", "QN05910M")}


def warehouse(tmp_path: Path, contours: gpd.GeoDataFrame, geographies=("2024",)):
    """A DuckDB with raw.qpv_contours: the demo contours, once per geography asked (the
    '2015' copy carries other codes, so that both passes are told apart)."""
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    load_spatial(con)
    frames = []
    for geographie in geographies:
        frame = pd.DataFrame(contours.drop(columns="geometry"))
        frame["geographie"] = geographie
        if geographie != "2024":
            frame["code_qpv"] = frame["code_qpv"].str.replace("QN", "QP")
        frame["geom_wkb"] = contours.geometry.to_wkb()
        frames.append(frame)
    replace_table(con, "qpv_contours", pd.concat(frames, ignore_index=True))
    return con


def ban_line(user: str, lon: float | str, lat: float | str, score: str, status="ok") -> str:
    fields = [str(lat), str(lon), "label", score, "", "housenumber", "id", "", "", "", "", ""]
    fields += ["", "", "", "", "", status]
    return f"{user};{';'.join(fields)}"


# -- the BAN geocoder's CSV -------------------------------------------------------------------


def test_ban_columns_recognised(tmp_path):
    path = tmp_path / "ban.csv"
    path.write_text(f"adresse;commune;type;{BAN}\n" + ban_line("1 rue A;Anzin;x", 3.5, 50.3, "0.9"))
    source = read_points(duckdb.connect(), path)
    assert (source.x, source.y) == ("longitude", "latitude")
    assert (source.score, source.status) == ("result_score", "result_status")
    assert source.identifiant is None and source.extra == {}
    assert ban_columns(["lon", "lat"]) == (None, None)


def test_ban_scores_under_the_threshold_are_rejected_with_their_score(
    tmp_path, contours, inside, monkeypatch
):
    monkeypatch.delenv(ENV_SCORE_MIN, raising=False)
    a, b = inside["QN05933M"], inside["QN05910M"]
    folder = tmp_path / "lieux"
    folder.mkdir()
    lines = [
        f"adresse;commune;type;{BAN}",
        ban_line("1 rue A;Anzin;Équipement", a.x, a.y, "0.9712"),  # line 2: in QN05933M
        ban_line("bat C;Anzin;Équipement", a.x, a.y, "0.4999"),  # 3: in a QPV, score too low
        ban_line("2 rue B;Feignies;Lieu d'action", b.x, b.y, "0.5"),  # 4: the threshold: kept
        ban_line("voir mairie;Marly;Équipement", "", "", "", "not-found"),  # 5: not found
        ban_line("3 rue C;Marly;Équipement", 3.2, 50.2, "0.81"),  # 6: outside every QPV
        ban_line("4 rue D;Marly;Équipement", 50.2, 3.2, "0.77"),  # 7: swapped
    ]
    (folder / "ban.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with warehouse(tmp_path, contours) as con:
        summary = assign_folder(con, folder)
        rows = con.execute("SELECT * FROM raw.lieux ORDER BY source_ligne").df()
        rejets = con.execute(
            "SELECT ligne, colonne, valeur_brute, motif FROM raw.rejets "
            "WHERE source = 'lieux' ORDER BY ligne"
        ).fetchall()
        log = con.execute(
            "SELECT lignes_lues, lignes_chargees, lignes_rejetees FROM raw.ingestion_log "
            "WHERE source = 'lieux'"
        ).fetchall()
    # never assigned: lines 3 and 5 are not in raw.lieux at all
    assert list(rows.source_ligne) == [2, 4, 6, 7]
    assert list(rows.statut) == ["dans_qpv", "dans_qpv", "hors_qpv", "lon_lat_inverses"]
    assert list(rows.code_qpv[:2]) == ["QN05933M", "QN05910M"]
    assert list(rows.type_lieu) == ["Équipement", "Lieu d'action", "Équipement", "Équipement"]
    assert list(rows.identifiant) == ["2", "4", "6", "7"]  # no identifier column: the line
    assert "adresse" not in rows.columns  # addresses dropped at reading
    assert rejets[0] == (
        3,
        "result_score",
        "0.4999",
        f"score de géocodage inférieur au seuil 0,5 ({ENV_SCORE_MIN}) : lieu non affecté",
    )
    assert rejets[1][:3] == (5, "result_score", "")
    assert "result_status = not-found" in rejets[1][3]
    assert rejets[2][:2] == (7, "longitude ; latitude")
    assert len(rejets) == 3
    assert log == [(6, 3, 3)]
    entry = summary["fichiers"][0]
    assert entry["score_insuffisant"] == 2 and entry["2024"]["lus"] == 4


def test_ban_threshold_is_a_parameter(tmp_path, contours, inside, monkeypatch):
    a = inside["QN05933M"]
    folder = tmp_path / "lieux"
    folder.mkdir()
    scores = ["0.95", "0.72", "0.61", "0.40"]
    lines = [f"adresse;{BAN}"] + [ban_line(f"{i} rue A", a.x, a.y, s) for i, s in enumerate(scores)]
    (folder / "ban.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for value, kept in (("0,7", 2), ("0.6", 3), ("0", 4), ("1", 0)):
        monkeypatch.setenv(ENV_SCORE_MIN, value)
        (tmp_path / value).mkdir()
        with warehouse(tmp_path / value, contours) as con:
            assign_folder(con, folder)
            assert con.execute("SELECT count(*) FROM raw.lieux").fetchone()[0] == kept
            rejected = con.execute(
                "SELECT count(*) FROM raw.rejets WHERE source = 'lieux'"
            ).fetchone()[0]
            assert rejected == len(scores) - kept
    assert DEFAULT_SCORE_MIN == 0.5
    for wrong in ("1,5", "abc", "-0.1"):
        monkeypatch.setenv(ENV_SCORE_MIN, wrong)
        with pytest.raises(PointsError, match=f"{ENV_SCORE_MIN} = '{wrong}' : attendu un score"):
            score_threshold()


# -- one reading for everything: the same answers as the reference road ----------------------


def test_number_reading_in_steps_is_the_rules(tmp_path):
    con = duckdb.connect()
    cells = [
        "2.5",
        " 2.5 ",
        "2,5",
        "1.234,5",
        "1 234,5",
        "1e5",
        "inf",
        "-inf",
        "nan",
        "+3",
        "1_000",
        "",
        " ",
        "\u00a02.5",
        "2.5\u202f",
        "abc",
        ".5",
        "5.",
        "--1",
        "1.2.3",
        "1,2,3",
        "\t2.5\n",
        "2 .5",
        "Infinity",
        None,
    ]
    con.execute("CREATE TABLE v (x VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[c] for c in cells])
    steps, full = _number("x", False)
    chain = " ".join(f"WHEN {step} IS NOT NULL THEN {step}" for step in steps)
    rows = con.execute(
        f"SELECT x, {sql_number('x', False)}, CASE {chain} ELSE {full} END FROM v"
    ).fetchall()
    for cell, rule, two_steps in rows:
        assert (rule == two_steps) or (rule != rule and two_steps != two_steps), cell  # NaN


def reference(con, path: Path, geographie: str) -> pd.DataFrame:
    """read_points + assign_points, the road the asset took before it read files once."""
    source = read_points(con, path)
    first = 2 if path.suffix == ".csv" else 1
    from pipelines.sources.lieux.reader import PointsSource

    numbered = PointsSource(
        path=path,
        sql=f"(SELECT row_number() OVER () + {first - 1} AS _ligne, * FROM {source.sql})",
        columns=["_ligne", *source.columns],
        x=source.x,
        y=source.y,
        numeric=source.numeric,
        crs=source.crs,
        types=source.types,
    )
    assign_points(
        con,
        numbered,
        polygons="raw.qpv_contours",
        geographie=geographie,
        keep=["_ligne"],
        output_table="temp.reference",
    )
    return con.execute(
        "SELECT _ligne AS source_ligne, statut, code_qpv, CAST(nb_qpv AS INTEGER) AS nb_qpv, "
        "motif, code_qpv_apres_inversion, lon_wgs84 AS lon, lat_wgs84 AS lat, geographie_qpv "
        "FROM temp.reference ORDER BY 1"
    ).df()


@pytest.mark.parametrize("kind", ["texte", "nombres", "lambert93", "parquet"])
def test_same_rows_as_the_reference_road(tmp_path, contours, inside, kind):
    """Every status and motif, two geographies: raw.lieux equals the reference road's."""
    a, b = inside["QN05933M"], inside["QN05910M"]
    folder = tmp_path / "lieux"
    folder.mkdir()
    points = [
        (a.x, a.y),
        (b.x, b.y),
        (3.2, 50.2),
        (a.y, a.x),
        (0.0, 0.0),
        (200.0, 95.0),
        (None, 50.0),
        (3.5, None),
        (a.x + 0.0001, a.y),
        (-61.5, 16.2),
    ]
    if kind == "lambert93":
        (ax, ay), (bx, by) = TO_L93.transform(a.x, a.y), TO_L93.transform(b.x, b.y)
        points = [
            (ax, ay),
            (bx, by),
            (ax + 5000, ay),
            (ay, ax),
            (bx + 30, by),
            (0.0, 0.0),
            (None, by),
            (bx, None),
            (ax + 10, ay),
            (9e6, 9e6),
        ]
    if kind == "parquet":
        frame = pd.DataFrame(points, columns=["lon", "lat"])
        frame.insert(0, "id", [f"P{i}" for i in range(len(points))])
        path = folder / "p.parquet"
        frame.to_parquet(path)
    else:

        def cell(v, i):
            if v is None:
                return ["", " ", "\u00a0"][i % 3]
            text = f"{v:.7f}"
            return text.replace(".", ",") if kind == "texte" and i % 2 else text

        body = [f"P{i};{cell(x, i)};{cell(y, i)};t" for i, (x, y) in enumerate(points)]
        if kind == "texte":
            body.append("PX;abc;50,1;t")  # a cell that is not a number: the rule's text road
        path = folder / "p.csv"
        path.write_text("id;lon;lat;type\n" + "\n".join(body) + "\n", encoding="utf-8")
    with warehouse(tmp_path, contours, ("2015", "2024")) as con:
        summary = assign_folder(con, folder)
        for geographie in ("2015", "2024"):
            got = con.execute(
                "SELECT source_ligne, statut, code_qpv, nb_qpv, motif, code_qpv_apres_inversion,"
                " lon, lat, geographie_qpv FROM raw.lieux WHERE geographie_qpv = ? ORDER BY 1",
                [geographie],
            ).df()
            want = reference(con, path, geographie)
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
        assert summary["par_geographie"]["2024"]["dans_qpv"] >= 2
        motifs = set(con.execute("SELECT motif FROM raw.lieux").df().motif.dropna())
    assert "coordonnée absente" in motifs and "longitude et latitude (x et y) inversées" in motifs
    if kind == "texte":
        assert "coordonnée non numérique" in motifs


@pytest.mark.parametrize("good_lines", [0, 50000])
def test_misshapen_file_refused_with_the_librarys_message(tmp_path, contours, good_lines):
    """A few lines: DuckDB's dialect sniffing fails; many good lines first: DuckDB reads the
    file and sets the bad records aside. Either way, the reading library's message."""
    folder = tmp_path / "lieux"
    folder.mkdir()
    path = folder / "lieux.csv"
    first = "".join(f"{i};2,35;48,85\n" for i in range(good_lines))
    path.write_text(
        f"id;lon;lat\n{first}1;2,35;48,85\n2;2,36;48,86;en trop\n3;2,37\n4;2,38;48,88\n",
        encoding="utf-8",
    )
    with pytest.raises(PointsError) as slow:
        read_points(duckdb.connect(), path)
    with warehouse(tmp_path, contours) as con, pytest.raises(PointsError) as fast:
        assign_folder(con, folder)
    assert str(fast.value) == str(slow.value)
    line = good_lines + 3
    assert str(fast.value).startswith(
        f"lieux.csv: ligne {line} : 4 champs au lieu de 3 ; ligne {line + 1}"
    )
