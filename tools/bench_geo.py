"""Benchmark of the point-in-QPV assignment at national scale: ``python -m tools.bench_geo``.

For each size (default 1 M and 10 M points) the same deterministic random points over France
(half near QPV: jittered around the centroid of a random QPV; half uniform over the
metropolitan bounding box, 5 % of them over the overseas départements) are written to Parquet,
then assigned to the 1,584 real QPV of the ANCT national file, repaired with
:func:`geo.contours.read_contours`. Each method runs in its own subprocess, so that the peak RSS
(``VmHWM`` of the child) is per method:

* ``projet``: the project's rule, :func:`geo.points.assign_points` (the macro
  ``dbt_project/macros/assign_qpv.sql``, DuckDB spatial): read the points Parquet, assign,
  write the result Parquet (``id, statut, code_qpv, nb_qpv``);
* ``geopandas``: the baseline, ``geopandas.sjoin(points, qpv, predicate="intersects")`` with
  the same rule (smallest code, count), reading and writing the same files;
* ``plancher``: the floor, a plain scan of the points file building each point as a geometry.

It checks that the project gives exactly the baseline's answer (same QPV and count for every
point id) and prints one JSON document: per size and method the time, points per second and
peak RSS, the ratios to geopandas, and whether the answers are identical.

``--reference DIR`` instead compares the answers (statut, code_qpv, nb_qpv,
code_qpv_apres_inversion, motif, lon_wgs84, lat_wgs84) with another checkout of the project
(e.g. the implementation before the rule moved to the macro) on 1 M points: the random points
above, with 2 % swapped, 1.5 % invalid and 50,000 vertices and edge middles of the contours.

When the national contours are absent the benchmark is skipped with a message (exit code 0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONTOURS = (
    ROOT.parent / "shared" / "data" / "anct" / "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"
)
DEFAULT_SIZES = (1_000_000, 10_000_000)
METHODS = ("plancher", "projet", "geopandas")

METRO_BBOX = (-5.2, 41.3, 9.6, 51.1)
OVERSEAS_BBOXES = [
    (-61.85, 15.83, -61.0, 16.52),  # Guadeloupe
    (-61.24, 14.38, -60.8, 14.89),  # Martinique
    (-54.6, 2.1, -51.6, 5.8),  # Guyane
    (55.2, -21.4, 55.85, -20.85),  # La Réunion
    (44.95, -13.0, 45.3, -12.6),  # Mayotte
]
CHUNK = 1_000_000
#: Rows per Parquet row group of the points file (DuckDB's default; pyarrow's is 1 Mi rows,
#: which makes every reader hold 8 times more rows in memory).
ROW_GROUP = 122_880


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB): ``VmHWM``, which starts afresh at ``exec``
    (unlike ``ru_maxrss``, a child does not inherit the peak of its parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _connect(database: Path | None = None, read_only: bool = False):
    import duckdb

    from geo.points import load_spatial

    con = duckdb.connect(str(database) if database else ":memory:", read_only=read_only)
    load_spatial(con)
    return con


# --------------------------------------------------------------------------------------------
# Preparation (parent process)
# --------------------------------------------------------------------------------------------


def prepare_contours(contours: Path, workdir: Path) -> dict:
    """Repaired contours as GeoParquet (baseline) and in a DuckDB file (table ``qpv``)."""
    from geo.contours import to_duckdb
    from pipelines.sources.sig_ville.reader import read_contours

    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    qpv = read_contours(contours).qpv
    read_s = time.perf_counter() - started
    qpv[["code_qpv", "geographie", "geometry"]].to_parquet(workdir / "qpv_reparees.parquet")
    database = workdir / "qpv.duckdb"
    database.unlink(missing_ok=True)
    con = _connect(database)
    try:
        to_duckdb(qpv[["code_qpv", "geographie", "geometry"]], con, "qpv_contours")
        con.execute(
            "CREATE TABLE qpv AS SELECT code_qpv, geographie, geometry AS geom FROM qpv_contours"
        )
    finally:
        con.close()
    return {
        "qpv": len(qpv),
        "lecture_reparation_s": round(read_s, 2),
        "centroides": qpv[["centroide_lon", "centroide_lat"]].to_numpy(),
        "geometries": qpv.geometry.to_numpy(),
    }


def generate_points(path: Path, n: int, centroids, seed: int = 42) -> None:
    """Deterministic points: half near QPV, half uniform (95 % metropole, 5 % overseas)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    tmp = path.with_name(f".{path.name}.tmp")
    schema = pa.schema([("id", pa.int64()), ("lon", pa.float64()), ("lat", pa.float64())])
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            near = rng.random(m) < 0.5
            lon = np.empty(m)
            lat = np.empty(m)
            k = int(near.sum())
            pick = rng.integers(0, len(centroids), k)
            # about 450 m (1 sigma) around the centroid of a random QPV
            lon[near] = centroids[pick, 0] + rng.normal(0.0, 0.006, k)
            lat[near] = centroids[pick, 1] + rng.normal(0.0, 0.004, k)
            far = ~near
            overseas = far & (rng.random(m) < 0.05)
            metro = far & ~overseas
            a, b, c, d = METRO_BBOX
            lon[metro] = rng.uniform(a, c, int(metro.sum()))
            lat[metro] = rng.uniform(b, d, int(metro.sum()))
            idx = np.flatnonzero(overseas)
            which = rng.integers(0, len(OVERSEAS_BBOXES), len(idx))
            boxes = np.asarray(OVERSEAS_BBOXES)[which]
            lon[idx] = rng.uniform(boxes[:, 0], boxes[:, 2])
            lat[idx] = rng.uniform(boxes[:, 1], boxes[:, 3])
            ids = np.arange(start, start + m, dtype=np.int64)
            table = pa.table({"id": ids, "lon": lon, "lat": lat}, schema=schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    tmp.replace(path)


def generate_mixed_points(path: Path, points: Path, geometries, crs: str, seed: int = 7) -> None:
    """The random points of ``points`` with hard cases: 50,000 QPV vertices and edge middles
    (on boundaries), then 2 % swapped, 0.5 % missing, 0.5 % (0, 0), 0.5 % out of range; in
    ``crs`` (WGS84 or Lambert-93, transformed with pyproj; the columns keep their names)."""
    import numpy as np
    import pandas as pd
    import shapely

    rng = np.random.default_rng(seed)
    frame = pd.read_parquet(points)
    n = len(frame)
    lon, lat = frame["lon"].to_numpy().copy(), frame["lat"].to_numpy().copy()
    coords = shapely.get_coordinates(np.asarray(geometries))
    k = min(50_000, n // 4)
    first = rng.choice(len(coords) - 1, k, replace=False)
    vertices, following = coords[first], coords[first + 1]
    boundary = np.where(rng.random((k, 1)) < 0.5, vertices, (vertices + following) / 2)
    lon[-k:], lat[-k:] = boundary[:, 0], boundary[:, 1]
    if crs == "EPSG:2154":
        from pyproj import Transformer

        lon, lat = Transformer.from_crs(4326, 2154, always_xy=True).transform(lon, lat)
    kind = rng.random(n - k)
    swap = np.flatnonzero(kind < 0.02)
    lon[swap], lat[swap] = lat[swap], lon[swap].copy()
    lon[np.flatnonzero((kind >= 0.02) & (kind < 0.025))] = np.nan
    zero = np.flatnonzero((kind >= 0.025) & (kind < 0.03))
    lon[zero], lat[zero] = 0.0, 0.0
    far = np.flatnonzero((kind >= 0.03) & (kind < 0.035))
    lon[far] += 400.0 if crs == "EPSG:4326" else 1e7
    frame["lon"], frame["lat"] = lon, lat
    frame.to_parquet(path, index=False, row_group_size=ROW_GROUP)


# --------------------------------------------------------------------------------------------
# Methods (each in its own subprocess)
# --------------------------------------------------------------------------------------------


def run_projet(points: Path, out: Path, workdir: Path) -> dict:
    from geo.points import Points, assign_points, sql_string

    con = _connect(workdir / "qpv.duckdb", read_only=True)
    started, cpu = time.perf_counter(), time.process_time()
    relation = f"read_parquet({sql_string(str(points))})"
    source = Points(sql=relation, x="lon", y="lat", types={"id": "BIGINT"})
    result = assign_points(con, source, polygons="qpv", keep=["id"], output=out, with_details=False)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"secondes": elapsed, "cpu_s": cpu, "comptes": result.counts}


def run_geopandas(points: Path, out: Path, workdir: Path) -> dict:
    import geopandas as gpd
    import pandas as pd

    started, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_parquet(points)
    pts = gpd.GeoDataFrame(
        frame[["id"]], geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326
    )
    del frame
    qpv = gpd.read_parquet(workdir / "qpv_reparees.parquet")[["code_qpv", "geometry"]]
    joined = gpd.sjoin(pts, qpv, how="inner", predicate="intersects")
    agg = joined.groupby("id")["code_qpv"].agg(code_qpv="min", nb_qpv="count").reset_index()
    result = pts[["id"]].merge(agg, on="id", how="left")
    result["nb_qpv"] = result["nb_qpv"].fillna(0).astype("uint8")
    result.to_parquet(out, index=False)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "secondes": elapsed,
        "cpu_s": cpu,
        "comptes": {"dans_qpv": int(agg.shape[0]), "ambigus": int((agg["nb_qpv"] > 1).sum())},
    }


def run_plancher(points: Path, out: Path, workdir: Path) -> dict:
    con = _connect()
    started, cpu = time.perf_counter(), time.process_time()
    n = con.execute(
        "SELECT count(ST_Point(lon, lat)) FROM read_parquet(?)", [str(points)]
    ).fetchone()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"secondes": elapsed, "cpu_s": cpu, "lignes": int(n[0])}


RUNNERS = {"projet": run_projet, "geopandas": run_geopandas, "plancher": run_plancher}

#: The other checkout's assignment, with details (run with that checkout on PYTHONPATH). Works
#: with the implementation before the rule moved to the macro (grid index, ``build_index``)
#: and with the current one.
REFERENCE_CHILD = """
import sys, duckdb
import geo.points as gp
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("LOAD spatial")
if hasattr(gp, "build_index"):
    index = gp.build_index(con, "qpv")
    source = gp.read_points(con, sys.argv[2], crs=sys.argv[4])
    gp.assign_points(con, source, index=index, keep=["id"], output=sys.argv[3])
else:
    literal = "'" + sys.argv[2].replace("'", "''") + "'"
    source = gp.Points(sql=f"read_parquet({literal})", x="lon", y="lat", crs=sys.argv[4])
    gp.assign_points(con, source, polygons="qpv", keep=["id"], output=sys.argv[3])
"""


def _child(method: str, points: Path, out: Path, workdir: Path) -> None:
    result = RUNNERS[method](points, out, workdir)
    result["rss_pic_mib"] = _peak_rss_mib()
    print("RESULTAT " + json.dumps(result))


def run_method(method: str, points: Path, out: Path, workdir: Path) -> dict:
    """Run one method in a fresh interpreter; its own peak RSS comes back in the result."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench_geo", "--executer", method, "--points", str(points)]
        + ["--sortie", str(out), "--dossier", str(workdir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{method} a échoué :\n{done.stderr[-3000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULTAT "))
    return json.loads(line[len("RESULTAT ") :])


def compare(a: Path, b: Path, columns: tuple[str, ...] = ("code_qpv", "nb_qpv")) -> dict:
    """Points whose answer differs between two result files, per column (by ``id``)."""
    con = _connect()
    counts = ", ".join(
        f"count(*) FILTER (WHERE CAST(x.{c} AS VARCHAR) IS DISTINCT FROM CAST(y.{c} AS VARCHAR))"
        for c in columns
    )
    row = con.execute(
        f"SELECT count(*), {counts} FROM read_parquet(?) AS x "
        "FULL JOIN read_parquet(?) AS y ON x.id = y.id",
        [str(a), str(b)],
    ).fetchone()
    return {
        "points": row[0],
        **{f"{c}_differents": v for c, v in zip(columns, row[1:], strict=True)},
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _points_file(workdir: Path, n: int, prep: dict, seed: int) -> Path:
    points = workdir / f"points_{n}_{seed}_rg{ROW_GROUP}.parquet"
    if not points.exists():
        generate_points(points, n, prep["centroides"], seed)
    return points


def bench(args: argparse.Namespace, prep: dict) -> dict:
    workdir = args.dossier
    report: dict = {"contours": str(args.contours), "qpv": prep["qpv"], "tailles": {}}
    report["processeurs"] = os.cpu_count()
    report["charge_moyenne"] = round(os.getloadavg()[0], 1)
    for n in args.tailles:
        points = _points_file(workdir, n, prep, args.graine)
        results: dict[str, dict] = {}
        for method in args.methodes:
            out = workdir / f"resultat_{method}_{n}.parquet"
            r = run_method(method, points, out, workdir)
            r["points_par_s"] = round(n / r["secondes"])
            r["secondes"], r["cpu_s"] = round(r["secondes"], 2), round(r["cpu_s"], 2)
            r["rss_pic_mib"] = round(r["rss_pic_mib"])
            results[method] = r
        entry: dict = {"resultats": results}
        if "projet" in results and "geopandas" in results:
            p, g = results["projet"], results["geopandas"]
            entry["acceleration_vs_geopandas"] = round(g["secondes"] / p["secondes"], 2)
            entry["memoire_vs_geopandas"] = round(p["rss_pic_mib"] / g["rss_pic_mib"], 3)
            diff = compare(
                workdir / f"resultat_projet_{n}.parquet",
                workdir / f"resultat_geopandas_{n}.parquet",
            )
            entry["identite_geopandas"] = diff
            entry["identiques"] = diff["code_qpv_differents"] == diff["nb_qpv_differents"] == 0
        report["tailles"][str(n)] = entry
    return report


def compare_reference(args: argparse.Namespace, prep: dict) -> dict:
    """This checkout's answers against those of the checkout ``args.reference``: 1 M points in
    WGS84, then the same in Lambert-93."""
    from geo.points import sql_string

    workdir = args.dossier
    n = 1_000_000
    report: dict = {"reference": str(args.reference)}
    for crs in ("EPSG:4326", "EPSG:2154"):
        mixed = workdir / f"points_melange_{n}_{args.graine}_{crs[5:]}.parquet"
        if not mixed.exists():
            points = _points_file(workdir, n, prep, args.graine)
            generate_mixed_points(mixed, points, prep["geometries"], crs)
        outputs = {}
        for name, root in (("reference", args.reference.resolve()), ("projet", ROOT)):
            out = outputs[name] = workdir / f"comparaison_{name}_{crs[5:]}.parquet"
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", REFERENCE_CHILD, str(workdir / "qpv.duckdb"), str(mixed)]
                + [str(out), crs],
                capture_output=True,
                text=True,
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(root)},
            )
            if done.returncode != 0:
                raise RuntimeError(f"{name} ({root}) a échoué :\n{done.stderr[-3000:]}")
            print(f"{crs} {name} : {time.perf_counter() - started:.1f} s", file=sys.stderr)
        columns = ("statut", "code_qpv", "nb_qpv", "code_qpv_apres_inversion", "motif")
        diff = compare(
            outputs["projet"], outputs["reference"], (*columns, "lon_wgs84", "lat_wgs84")
        )
        result = f"read_parquet({sql_string(str(outputs['projet']))})"
        con = _connect()
        statuts = con.execute(
            f"SELECT CAST(statut AS VARCHAR), count(*) FROM {result} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        ambigus = con.execute(f"SELECT count(*) FROM {result} WHERE nb_qpv > 1").fetchone()[0]
        report[crs] = {
            "points": diff.pop("points"),
            "statuts": dict(statuts),
            "ambigus": ambigus,
            "differences": diff,
            "identiques": not any(diff.values()),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_geo",
        description="Banc d'essai de l'affectation point-dans-QPV.",
    )
    parser.add_argument("--tailles", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--methodes", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--contours", type=Path, default=DEFAULT_CONTOURS)
    parser.add_argument(
        "--dossier",
        type=Path,
        default=Path(tempfile.gettempdir()) / "observatoire_bench_geo",
        help="dossier de travail (points générés gardés d'un lancement à l'autre)",
    )
    parser.add_argument("--graine", type=int, default=42)
    parser.add_argument(
        "--reference",
        type=Path,
        help="autre copie du projet dont comparer les réponses (1 M points) au lieu du banc",
    )
    parser.add_argument("--executer", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--points", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sortie", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.executer:
        _child(args.executer, args.points, args.sortie, args.dossier)
        return 0
    if not args.contours.exists():
        print(
            f"Banc d'essai géographique sauté : contours nationaux absents ({args.contours}). "
            "Placez le dossier shared/data à côté du projet pour le lancer."
        )
        return 0
    args.dossier.mkdir(parents=True, exist_ok=True)
    prep = prepare_contours(args.contours, args.dossier)
    report = compare_reference(args, prep) if args.reference else bench(args, prep)
    report["lecture_reparation_contours_s"] = prep["lecture_reparation_s"]
    text = json.dumps(report, indent=2, ensure_ascii=False)
    name = "comparaison_reference.json" if args.reference else "bench_geo.json"
    (args.dossier / name).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
