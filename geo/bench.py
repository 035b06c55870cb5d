"""Benchmark of the point-in-QPV assignment at national scale: ``python -m geo.bench``.

For each size (default 1 M and 10 M points) the same deterministic random points over France
(half near QPV: jittered around the centroid of a random QPV; half uniform over the
metropolitan bounding box, 5 % of them over the overseas départements) are written to Parquet,
then assigned to the 1,584 real QPV of the ANCT national file, repaired with
:func:`geo.contours.read_contours`. Each method runs in its own subprocess, so that the peak RSS
(``ru_maxrss`` of the child) is per method:

* ``projet``: the project's path, :func:`geo.points.assign_points` with the grid index built
  once and stored in a DuckDB file (like an R-tree stored with its table): read the points
  Parquet, assign, write the result Parquet (``id, statut, code_qpv, nb_qpv``);
* ``geopandas``: the baseline, ``geopandas.sjoin(points, qpv, predicate="intersects")`` with
  the same rule (smallest code, count), reading and writing the same files;
* ``duckdb_join``: DuckDB spatial's own ``SPATIAL_JOIN`` (``JOIN ... ON ST_Intersects``), same
  rule, same files (optional: ``--methodes``);
* ``plancher``: the floor, a plain scan of the points file building each point as a geometry
  (``SELECT count(ST_Point(lon, lat)) FROM read_parquet(...)``).

It checks that the project gives exactly the baseline's answer (same QPV for every point id)
and prints wall time, points per second and peak RSS. The index build (once per set of
contours) is reported on its own line. When ``../shared/data`` is absent the benchmark is
skipped with a message (exit code 0).
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
METHODS = ("plancher", "projet", "projet_sql", "geopandas", "duckdb_join")
DEFAULT_METHODS = ("plancher", "projet", "projet_sql", "geopandas")
INDEX_TABLE = "main.grille_qpv"

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
    """Peak resident memory of this process (MiB).

    ``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss``, it starts afresh at ``exec``, so a
    child does not inherit the peak of the process that launched it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# Preparation (parent process)
# --------------------------------------------------------------------------------------------


def prepare_contours(contours: Path, workdir: Path) -> dict:
    """Repaired contours as GeoParquet (baseline) and a DuckDB file with the table and index."""
    import duckdb

    from geo.contours import read_contours, to_duckdb
    from geo.points import build_index
    from pipelines.duckdb_utils import load_spatial

    workdir.mkdir(parents=True, exist_ok=True)
    parquet = workdir / "qpv_reparees.parquet"
    database = workdir / "qpv.duckdb"
    started = time.perf_counter()
    qpv = read_contours(contours).qpv
    read_s = time.perf_counter() - started
    qpv[["code_qpv", "geographie", "geometry"]].to_parquet(parquet)
    database.unlink(missing_ok=True)
    with duckdb.connect(str(database)) as con:
        load_spatial(con)
        to_duckdb(qpv[["code_qpv", "geographie", "geometry"]], con, "qpv_contours")
        con.execute(
            "CREATE VIEW qpv AS SELECT code_qpv, geographie, geometry AS geom FROM qpv_contours"
        )
        index = build_index(con, "qpv", persist=True, table=INDEX_TABLE)
    from geo import noyau

    try:  # compiled once here, outside the timed runs (like the index)
        noyau.extension_path()
    except noyau.NoyauIndisponible as err:
        print(f"Noyau compilé indisponible ({err}) : le projet utilise son chemin SQL")
    return {
        "qpv": len(qpv),
        "lecture_reparation_s": round(read_s, 2),
        "index": index.stats,
        "parquet": str(parquet),
        "duckdb": str(database),
        "centroides": qpv[["centroide_lon", "centroide_lat"]].to_numpy(),
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


# --------------------------------------------------------------------------------------------
# Methods (each in its own subprocess)
# --------------------------------------------------------------------------------------------


def _points_module():
    """``geo/points.py`` loaded on its own.

    The package's ``geo/__init__.py`` imports the contours reader (geopandas, pyogrio, pyproj:
    about 75 MiB), which the assignment does not use: what is measured is what the assignment
    needs (DuckDB with its spatial extension, numpy and shapely).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("geo_points", ROOT / "geo" / "points.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["geo_points"] = module
    spec.loader.exec_module(module)
    return module


def run_projet(points: Path, out: Path, workdir: Path) -> dict:
    import duckdb

    gp = _points_module()
    assign_points, open_index, read_points = gp.assign_points, gp.open_index, gp.read_points
    con = duckdb.connect(str(workdir / "qpv.duckdb"), read_only=True)
    index = open_index(con, INDEX_TABLE)
    started, cpu = time.perf_counter(), time.process_time()
    source = read_points(con, points, crs="EPSG:4326")
    result = assign_points(con, source, index=index, keep=["id"], output=out, with_details=False)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "secondes": elapsed,
        "cpu_s": cpu,
        "comptes": result.comptes,
        "moteur": result.moteur,
    }


def run_projet_sql(points: Path, out: Path, workdir: Path) -> dict:
    """The project's SQL path (grid, hash join, list lambdas), without the compiled kernel."""
    os.environ["OBSERVATOIRE_NOYAU"] = "0"
    return run_projet(points, out, workdir)


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


def run_duckdb_join(points: Path, out: Path, workdir: Path) -> dict:
    import duckdb

    from pipelines.duckdb_utils import load_spatial

    con = duckdb.connect(str(workdir / "qpv.duckdb"), read_only=True)
    load_spatial(con)
    con.execute("SET preserve_insertion_order = false")
    started, cpu = time.perf_counter(), time.process_time()
    con.execute(
        f"""COPY (
            WITH p AS (SELECT id, lon, lat FROM read_parquet('{points}')),
            m AS (
                SELECT p.id, min(q.code_qpv) AS code_qpv, count(*) AS nb_qpv
                FROM p JOIN qpv AS q ON ST_Intersects(q.geom, ST_Point(p.lon, p.lat))
                GROUP BY p.id
            )
            SELECT p.id, m.code_qpv, coalesce(m.nb_qpv, 0) AS nb_qpv
            FROM p LEFT JOIN m ON p.id = m.id
        ) TO '{out}' (FORMAT parquet)"""
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"secondes": elapsed, "cpu_s": cpu}


def run_plancher(points: Path, out: Path, workdir: Path) -> dict:
    import duckdb

    from pipelines.duckdb_utils import load_spatial

    con = duckdb.connect()
    load_spatial(con)
    started, cpu = time.perf_counter(), time.process_time()
    n = con.execute(f"SELECT count(ST_Point(lon, lat)) FROM read_parquet('{points}')").fetchone()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"secondes": elapsed, "cpu_s": cpu, "lignes": int(n[0])}


RUNNERS = {
    "projet": run_projet,
    "projet_sql": run_projet_sql,
    "geopandas": run_geopandas,
    "duckdb_join": run_duckdb_join,
    "plancher": run_plancher,
}


def _child(method: str, points: Path, out: Path, workdir: Path) -> None:
    result = RUNNERS[method](points, out, workdir)
    result["rss_pic_mib"] = _peak_rss_mib()
    print("RESULTAT " + json.dumps(result))


def run_method(method: str, points: Path, out: Path, workdir: Path) -> dict:
    """Run one method in a fresh interpreter; its own peak RSS comes back in the result."""
    started = time.perf_counter()
    # The child loads this file as a plain module (not through the geo package, whose
    # __init__ imports geopandas): each method imports only what it uses.
    launcher = (
        "import sys, importlib.util as u; "
        f"s = u.spec_from_file_location('geo_bench', {str(Path(__file__))!r}); "
        "m = u.module_from_spec(s); sys.modules['geo_bench'] = m; s.loader.exec_module(m); "
        "sys.exit(m.main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            launcher,
            "--executer",
            method,
            "--points",
            str(points),
            "--sortie",
            str(out),
            "--dossier",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{method} a échoué :\n{done.stderr[-3000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULTAT "))
    result = json.loads(line[len("RESULTAT ") :])
    result["processus_s"] = time.perf_counter() - started
    return result


def compare(a: Path, b: Path) -> dict:
    """Points whose QPV differs between two result files (NULL = outside every QPV)."""
    import duckdb

    con = duckdb.connect()
    row = con.execute(
        f"""SELECT count(*),
            count(*) FILTER (WHERE CAST(x.code_qpv AS VARCHAR)
                IS DISTINCT FROM CAST(y.code_qpv AS VARCHAR)),
            count(*) FILTER (WHERE coalesce(x.nb_qpv, 0) <> coalesce(y.nb_qpv, 0))
        FROM read_parquet('{a}') AS x FULL JOIN read_parquet('{b}') AS y ON x.id = y.id"""
    ).fetchone()
    return {"points": row[0], "qpv_differents": row[1], "nb_qpv_differents": row[2]}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _fmt_row(name: str, n: int, r: dict, floor: float | None, base_rss: float | None) -> str:
    secs = r["secondes"]
    ratio = f"{secs / floor:5.1f}x" if floor else "   - "
    mem = f"{r['rss_pic_mib'] / base_rss:5.2f}" if base_rss else "   - "
    return (
        f"{name:<12} {n:>11,} {secs:9.2f} {r['cpu_s']:8.2f} {n / secs:14,.0f} "
        f"{r['rss_pic_mib']:9.0f} {ratio:>8} {mem:>9}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geo.bench", description="Banc d'essai de l'affectation point-dans-QPV."
    )
    parser.add_argument("--tailles", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--methodes", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--contours", type=Path, default=DEFAULT_CONTOURS)
    parser.add_argument(
        "--dossier",
        type=Path,
        default=Path(tempfile.gettempdir()) / "observatoire_bench_geo",
        help="dossier de travail (points générés gardés d'un lancement à l'autre)",
    )
    parser.add_argument("--graine", type=int, default=42)
    parser.add_argument(
        "--repetitions",
        type=int,
        default=3,
        help="meilleur de N essais (geopandas : un seul)",
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
    workdir = args.dossier
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"Contours : {args.contours}")
    prep = prepare_contours(args.contours, workdir)
    stats = prep["index"]
    print(
        f"{prep['qpv']} QPV lus et réparés en {prep['lecture_reparation_s']} s ; index (grille "
        f"niveau {DEFAULT_LEVELS_LABEL}) construit une fois en {stats['duree_construction_s']} s : "
        f"{stats['cellules_non_resolues']:,} cellules non résolues, {stats['aretes']:,} arêtes"
    )
    print(f"Processeurs : {os.cpu_count()} ; charge moyenne : {os.getloadavg()[0]:.1f}")
    report = {"contours": str(args.contours), "index": stats, "tailles": {}}
    header = (
        f"{'méthode':<12} {'points':>11} {'mur (s)':>9} {'cpu (s)':>8} {'points/s':>14} "
        f"{'RSS (Mio)':>9} {'/plancher':>8} {'RSS/base':>9}"
    )
    for n in args.tailles:
        points = workdir / f"points_{n}_{args.graine}_rg{ROW_GROUP}.parquet"
        if not points.exists():
            t0 = time.perf_counter()
            generate_points(points, n, prep["centroides"], args.graine)
            print(f"\n{n:,} points générés en {time.perf_counter() - t0:.1f} s : {points}")
        else:
            print(f"\n{n:,} points (déjà générés) : {points}")
        results: dict[str, dict] = {}
        outputs: dict[str, Path] = {}
        for method in args.methodes:
            best = None
            # the baseline (about a minute at 10 M points) runs once
            for _ in range(1 if method == "geopandas" else max(1, args.repetitions)):
                out = workdir / f"resultat_{method}_{n}.parquet"
                r = run_method(method, points, out, workdir)
                if best is None or r["secondes"] < best["secondes"]:
                    best = r
            results[method] = best
            outputs[method] = workdir / f"resultat_{method}_{n}.parquet"
        floor = results.get("plancher", {}).get("secondes")
        base_rss = results.get("geopandas", {}).get("rss_pic_mib")
        print(header)
        for method, r in results.items():
            print(_fmt_row(method, n, r, floor, base_rss))
        checks = {}
        for other in ("geopandas", "duckdb_join", "projet_sql"):
            if "projet" in outputs and other in outputs:
                checks[other] = compare(outputs["projet"], outputs[other])
                c = checks[other]
                same = c["qpv_differents"] == 0 and c["nb_qpv_differents"] == 0
                print(
                    f"projet = {other} : {'identiques' if same else 'DIFFÉRENTS'} "
                    f"({c['qpv_differents']} QPV et {c['nb_qpv_differents']} nb_qpv différents "
                    f"sur {c['points']:,} points)"
                )
        if "projet" in results:
            c = results["projet"].get("comptes", {})
            print(
                f"projet (moteur {results['projet'].get('moteur', '?')}) : "
                f"{c.get('dans_qpv', 0):,} dans un QPV, {c.get('hors_qpv', 0):,} hors QPV,"
                f" {c.get('ambigus', 0):,} dans plusieurs QPV"
            )
        report["tailles"][str(n)] = {"resultats": results, "identite": checks}
    (workdir / "bench_geo.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nRésultats : {workdir / 'bench_geo.json'}")
    return 0


DEFAULT_LEVELS_LABEL = "7/9/11"

if __name__ == "__main__":
    sys.exit(main())
