"""Commune contours (issue #17, item 1): read from ``communes/`` or ``sig_ville/``, told apart
from the QPV contours by their attributes, and drawn as outlines under the QPV of the report's
maps (or the legend says they are not loaded).

The synthetic communes are squares around demo QPV (their corners are written below), so that
a reader can check every code, name and count against the input.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Polygon, box

from tests.conftest import DEMO_DIR, build_direct, failure_of, materialize_direct

QPV_FILE = DEMO_DIR / "sig_ville" / "QP2024_demo_3_territoires_WGS84.geojson"
#: The demo's 2024 contours: 42 QPV of the three territories.
DEMO_QPV = 42


def _demo_qpv() -> gpd.GeoDataFrame:
    return gpd.read_file(QPV_FILE)


def _valenciennes_squares() -> gpd.GeoDataFrame:
    """Two squares splitting the box of the VM QPV QN05921M and QN05930M (Anzin, Valenciennes)
    in two halves, and a bow-tie (an invalid polygon, repaired on reading) for Marly, in
    Lambert-93, with a row whose code is not a commune code."""
    qpv = _demo_qpv()
    xmin, ymin, xmax, ymax = (
        qpv[qpv["code_qp"].isin(["QN05921M", "QN05930M"])].to_crs(2154).total_bounds
    )
    xmin, ymin, xmax, ymax = xmin - 500, ymin - 500, xmax + 500, ymax + 500
    middle = (xmin + xmax) / 2
    bowtie = Polygon(
        [(middle, ymin - 2000), (xmax, ymin - 1000), (xmax, ymin - 2000), (middle, ymin - 1000)]
    )
    return gpd.GeoDataFrame(
        {
            "INSEE_COM": ["59014", "59606", "59383", "ABC"],
            "NOM": ["Anzin", "Valenciennes", "Marly", "Sans code"],
            "POPULATION": [13000, 43000, 11000, 0],
        },
        geometry=[
            box(xmin, ymin, middle, ymax),
            box(middle, ymin, xmax, ymax),
            bowtie,
            box(xmin, ymin - 3000, middle, ymin - 2500),
        ],
        crs=2154,
    )


def _bethune_square() -> gpd.GeoDataFrame:
    """A square of 2 km around QN06208M (Béthune, CABBALR), in WGS84, columns code / nom."""
    qpv = _demo_qpv()
    first = qpv[qpv["code_qp"] == "QN06208M"].to_crs(2154)
    x, y = first.geometry.iloc[0].representative_point().coords[0]
    square = gpd.GeoSeries([box(x - 1000, y - 1000, x + 1000, y + 1000)], crs=2154).to_crs(4326)
    return gpd.GeoDataFrame({"code": ["62119"], "nom": ["Béthune"]}, geometry=square, crs=4326)


def _raw(tmp_path: Path) -> Path:
    """A raw folder: the demo QPV and the two Valenciennes communes in ``sig_ville/``, with a
    file that is neither; Béthune and a QPV file put in ``communes/`` by mistake."""
    raw = tmp_path / "raw"
    (raw / "sig_ville").mkdir(parents=True)
    (raw / "communes").mkdir()
    shutil.copy(QPV_FILE, raw / "sig_ville" / QPV_FILE.name)
    _valenciennes_squares().to_file(raw / "sig_ville" / "communes_l93.gpkg")
    gpd.GeoDataFrame(
        {"id": [1], "valeur": ["x"]}, geometry=[box(3.5, 50.3, 3.6, 50.4)], crs=4326
    ).to_file(raw / "sig_ville" / "autre.geojson")
    _bethune_square().to_file(raw / "communes" / "bethune.geojson")
    _demo_qpv().iloc[:2].to_file(raw / "communes" / "qpv_par_erreur.geojson")
    return raw


def test_file_kind_tells_qpv_communes_and_neither_apart(tmp_path):
    from pipelines.sources.communes.reader import COMMUNES, QPV, file_kind

    raw = _raw(tmp_path)
    assert file_kind(raw / "sig_ville" / QPV_FILE.name)[0] == QPV  # has insee_com and lib_com too
    assert file_kind(raw / "sig_ville" / "communes_l93.gpkg") == (
        COMMUNES,
        "contours de communes (colonnes INSEE_COM, NOM)",
    )
    assert file_kind(raw / "communes" / "bethune.geojson")[0] == COMMUNES
    kind, reason = file_kind(raw / "sig_ville" / "autre.geojson")
    assert kind is None and "colonnes présentes : id, valeur" in reason


def test_staging_table_codes_names_valid_geometries(tmp_path):
    raw = _raw(tmp_path)
    (tmp_path / "b").mkdir()
    warehouse = build_direct(raw, tmp_path / "b", "stg_communes__contours")
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("load spatial")
    rows = con.execute(
        """
        select code_commune, nom_commune, geometrie_reparee, source_fichier,
               ST_IsValid(geom), ST_GeometryType(geom)::varchar, floor(ST_XMin(geom))
        from staging.stg_communes__contours order by code_commune
        """
    ).fetchall()
    assert [r[:3] for r in rows] == [
        ("59014", "Anzin", False),
        ("59383", "Marly", True),  # the bow-tie, repaired
        ("59606", "Valenciennes", False),
        ("62119", "Béthune", False),
    ]
    assert {r[3] for r in rows} == {"communes_l93.gpkg", "bethune.geojson"}
    assert all(r[4] and r[5] == "MULTIPOLYGON" for r in rows)
    assert {r[6] for r in rows} <= {2.0, 3.0}  # WGS84 longitudes (Nord, Pas-de-Calais)
    # the QPV contours are the demo's 42, none of the commune files taken as QPV
    assert con.execute("select count(*) from raw.qpv_contours").fetchone()[0] == DEMO_QPV
    rejects = con.execute(
        "select fichier, ligne, colonne, valeur_brute, motif from raw.rejets "
        "where source = 'communes'"
    ).fetchall()
    assert rejects == [
        (
            "communes_l93.gpkg",
            4,
            "INSEE_COM",
            "ABC",
            "code commune invalide : attendu 5 caractères (59350, 2A004)",
        )
    ]
    logs = {
        Path(f).name: (source, statut, lues, chargees, rejetees, message)
        for source, f, statut, lues, chargees, rejetees, message in con.execute(
            "select source, fichier, statut, lignes_lues, lignes_chargees, lignes_rejetees, "
            "message from raw.ingestion_log where source in ('communes', 'sig_ville')"
        ).fetchall()
    }
    assert logs["communes_l93.gpkg"][:5] == ("communes", "charge", 4, 3, 1)
    assert logs["bethune.geojson"][:5] == ("communes", "charge", 1, 1, 0)
    assert logs[QPV_FILE.name][:2] == ("sig_ville", "charge")
    source, statut, *_, message = logs["autre.geojson"]
    assert (source, statut) == ("sig_ville", "non_lu") and "ni contours de QPV" in message
    source, statut, *_, message = logs["qpv_par_erreur.geojson"]
    assert (source, statut) == ("communes", "non_lu") and message.startswith("contours de QPV")


def _failure(tmp_path: Path, name: str, write) -> str:
    from pipelines.sources.communes.assets import communes_contours

    raw = tmp_path / "raw"
    (raw / "communes").mkdir(parents=True)
    write(raw / "communes" / name)
    result = materialize_direct(
        [communes_contours], raw, tmp_path / "w.duckdb", raise_on_error=False
    )
    assert not result.success
    return failure_of(result)


def test_a_broken_file_is_refused_with_its_name(tmp_path):
    message = _failure(
        tmp_path, "casse.geojson", lambda p: p.write_text('{"type": "FeatureCollection", ')
    )
    assert "casse.geojson" in message and "Lecture impossible" in message


def test_a_shapefile_without_projection_is_refused_with_its_name(tmp_path):
    def write(path: Path) -> None:
        _bethune_square().to_file(path)
        path.with_suffix(".prj").unlink()

    message = _failure(tmp_path, "bethune.shp", write)
    assert "bethune.shp" in message and "CRS" in message


def test_a_commune_in_two_files_is_refused_naming_both(tmp_path):
    def write(path: Path) -> None:
        _bethune_square().to_file(path)
        _bethune_square().to_file(path.with_name("bethune_bis.geojson"))

    message = _failure(tmp_path, "bethune.geojson", write)
    assert "bethune.geojson et " in message and "bethune_bis.geojson" in message
    assert "1 code(s) commune" in message


# -- maps -------------------------------------------------------------------------------------


def _svg_maps(html: str) -> list[str]:
    """The maps of a report: the outer ``<svg>`` elements holding a map (an inner ``<svg>``)."""
    maps = []
    for match in re.finditer("<svg xmlns=", html):
        depth, pos = 0, match.start()
        while True:
            opening, closing = html.find("<svg", pos + 1), html.find("</svg>", pos + 1)
            if opening != -1 and opening < closing:
                depth, pos = depth + 1, opening
            elif depth:
                depth, pos = depth - 1, closing
            else:
                svg = html[match.start() : closing + 6]
                if "<svg x='0'" in svg:
                    maps.append(svg)
                break
    return maps


def test_choropleth_draws_outlines_or_says_they_are_missing():
    from pipelines.report import charts

    area = charts.Area("QN00001M", "M 0 0 L 1000 0 L 1000 -1000 Z", 1.0, "q", "1", 500, 500)
    outline = charts.Outline(
        "59606", "Valenciennes", "M -5000 5000 L 6000 5000 L 6000 -6000 Z", True, 500, -2000
    )
    outline.width = outline.height = 11000
    drawn = charts.choropleth([area], (0, 0, 1000, 1000), "t", "u", communes=[outline])
    assert "class='limites-communales'" in drawn and "Limites communales</text>" in drawn
    assert ">Valenciennes</text>" in drawn and charts.NO_COMMUNES not in drawn
    # under the QPV: the outlines come before the QPV's paths
    assert drawn.index("limites-communales") < drawn.index("M 0 0 L 1000 0")
    missing = charts.choropleth([area], (0, 0, 1000, 1000), "t", "u")
    assert charts.NO_COMMUNES in missing and "limites-communales" not in missing
    # a name that does not fit in its commune is not written
    outline.width = 50
    assert ">Valenciennes</text>" not in charts.choropleth(
        [area], (0, 0, 1000, 1000), "t", "u", communes=[outline]
    )


def test_report_maps_draw_the_territory_communes(demo_build, tmp_path):
    """Every map of the VM report draws the two Valenciennes squares (Béthune, outside the
    window, is clipped away); without commune contours every map says so in its legend."""
    from pipelines.report import charts, write_report
    from pipelines.sources.communes.assets import communes_contours

    plain = write_report(
        demo_build / "warehouse.duckdb", "VM", 2027, tmp_path / "sans.html", pdf=False
    )
    maps = _svg_maps(plain.html.read_text(encoding="utf-8"))
    assert len(maps) >= 3
    assert all(charts.NO_COMMUNES in svg and "limites-communales" not in svg for svg in maps)

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_build / "warehouse.duckdb", warehouse)
    result = materialize_direct([communes_contours], _raw(tmp_path), warehouse)
    assert result.success
    report = write_report(warehouse, "VM", 2027, tmp_path / "avec.html", pdf=False)
    maps = _svg_maps(report.html.read_text(encoding="utf-8"))
    assert len(maps) >= 3
    for svg in maps:
        assert charts.NO_COMMUNES not in svg and "Limites communales</text>" in svg
        group = re.search(r"<g class='limites-communales'.*?</g>", svg).group(0)
        titles = re.findall(r"<title>([^<]+)</title>", group)
        # Anzin and Valenciennes around the VM QPV; Marly's bow-tie, 1 to 2 km south of the box
        # of QN05921M and QN05930M, in the window as well; Béthune far away, clipped
        assert "Anzin" in titles and "Valenciennes" in titles and "Béthune" not in titles
        # the outlines come first, under the QPV contours
        assert svg.index("limites-communales") < svg.index("stroke='#333'")


@pytest.mark.parametrize("name", ["communes.zip"])
def test_zipped_shapefile_of_communes(tmp_path, name):
    """The usual download: a zipped Shapefile (IGN ADMIN EXPRESS) read from the ZIP."""
    import zipfile

    from pipelines.sources.communes.reader import read_communes

    folder = tmp_path / "shp"
    folder.mkdir()
    _valenciennes_squares().to_file(folder / "COMMUNE.shp")
    with zipfile.ZipFile(tmp_path / name, "w") as archive:
        for part in folder.iterdir():
            archive.write(part, f"ADMIN-EXPRESS/{part.name}")
    result = read_communes(tmp_path / name)
    assert result.communes["code_commune"].tolist() == ["59014", "59383", "59606"]
    assert result.report[0]["crs_source"] == "EPSG:2154"
    assert shapely.is_valid(result.communes.geometry.values).all()
