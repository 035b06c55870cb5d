"""``python -m tools.bench.lieux``: CPU and wall time of the asset ``raw/lieux``'s body
(:func:`pipelines.sources.lieux.assets.assign_folder`) on synthetic points, and a digest of what
it writes (``raw.lieux``, the lieux rows of ``raw.rejets``), for this copy of the project and,
with ``--reference``, another copy (e.g. ``git worktree add /tmp/avant <commit>``): the two
digests must be equal.

Input: the 1,584 real contours of ``../shared/data/anct/`` (loaded once by the asset
``raw/qpv_contours``) and ``--points`` points written by :func:`tools.bench.generate.write_lieux`
(half near a QPV centroid, half uniform over metropolitan France), with a decimal point, and with
``--virgule`` a copy with decimal commas. Each measure runs in its own process, alternating
versions (the machine's load changes over time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from pipelines.settings import PROJECT_ROOT

CONTOURS = PROJECT_ROOT.parent / "shared" / "data" / "anct"
CONTOURS_FILE = "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"

#: What each measuring process runs (argv: database with the contours, folder of places).
MEASURE = """
import json, shutil, sys, time, duckdb
from pathlib import Path
from pipelines.sources.lieux.assets import assign_folder
base, folder = Path(sys.argv[1]), Path(sys.argv[2])
work = base.with_name(f"mesure_{base.stem}.duckdb")
shutil.copy(base, work)
con = duckdb.connect(str(work))
con.execute("LOAD spatial")
cpu, wall = time.process_time(), time.perf_counter()
summary = assign_folder(con, folder)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
digests = {}
for table, columns, where, order in (
    ("raw.lieux", "*", "", "source_fichier, source_ligne, geographie_qpv"),
    ("raw.rejets", "fichier, feuille, ligne, colonne, valeur_brute, motif",
     "WHERE source = 'lieux'", "fichier, ligne"),
):
    row = con.execute(
        f"SELECT count(*), md5(string_agg(md5(CAST(columns(*) AS VARCHAR)), ',' "
        f"ORDER BY {order})) FROM (SELECT {columns} FROM {table} {where})"
    ).fetchone()
    digests[table] = [str(v) for v in row]
con.close()
work.unlink()
print(json.dumps({"cpu_s": round(cpu, 2), "mur_s": round(wall, 2), "empreintes": digests,
                  "par_geographie": summary["par_geographie"]}))
"""


def _prepare(folder: Path, points: int, virgule: bool) -> tuple[Path, dict[str, Path]]:
    import dagster as dg

    from pipelines.sources.sig_ville.assets import qpv_contours
    from pipelines.warehouse.resources import ProjectFolders, Warehouse
    from tools.bench.generate import write_lieux

    source = CONTOURS / CONTOURS_FILE
    if not source.is_file():
        raise click.ClickException(f"contours absents : {source} (../shared/data non fourni)")
    raw = folder / "raw"
    (raw / "sig_ville").mkdir(parents=True, exist_ok=True)
    if not (raw / "sig_ville" / CONTOURS_FILE).exists():
        shutil.copy(source, raw / "sig_ville" / CONTOURS_FILE)
    base = folder / "contours.duckdb"
    if not base.exists():
        folders = ProjectFolders(
            raw_dir=str(raw), warehouse=str(base), marts_dir=str(folder / "m"), direct=True
        )
        resources = {"folders": folders, "warehouse": Warehouse(folders=folders)}
        assert dg.materialize([qpv_contours], resources=resources).success
    inputs = {"point": folder / "point"}
    csv_path = inputs["point"] / "lieux.csv"
    if not csv_path.exists() or _count(csv_path) != points:
        import duckdb

        con = duckdb.connect(str(base), read_only=True)
        con.execute("LOAD spatial")
        near = con.execute(
            "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM raw.qpv_contours "
            "WHERE geom IS NOT NULL"
        ).fetchall()
        con.close()
        write_lieux(csv_path, points, near)
    if virgule:
        inputs["virgule"] = folder / "virgule"
        inputs["virgule"].mkdir(exist_ok=True)
        with (
            csv_path.open(encoding="utf-8") as src,
            (inputs["virgule"] / "lieux.csv").open("w", encoding="utf-8") as out,
        ):
            for line in src:
                out.write(line.replace(".", ","))
    return base, inputs


def _count(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh) - 1


def _measure(root: Path, base: Path, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "DAGSTER_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(base), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    if done.returncode != 0:
        raise click.ClickException(f"mesure en échec ({root}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command(help=__doc__.split("\n\n")[0].replace("``", ""))
@click.option("--points", type=click.IntRange(min=100), default=2_000_000, show_default=True)
@click.option("--repetitions", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--reference",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Autre copie du projet (version de référence) mesurée en alternance.",
)
@click.option("--virgule", is_flag=True, help="Mesurer aussi une copie à virgule décimale.")
@click.option(
    "--dossier",
    type=click.Path(path_type=Path, file_okay=False),
    default=PROJECT_ROOT / "data" / "bench_lieux",
    show_default=True,
)
def main(
    points: int, repetitions: int, reference: Path | None, virgule: bool, dossier: Path
) -> None:
    dossier.mkdir(parents=True, exist_ok=True)
    base, inputs = _prepare(dossier, points, virgule)
    versions = {"actuelle": PROJECT_ROOT}
    if reference is not None:
        versions = {"reference": reference.resolve(), **versions}
    results: dict = {}
    for kind, folder in inputs.items():
        for _ in range(repetitions):
            for name, root in versions.items():
                measure = _measure(root, base, folder)
                results.setdefault(kind, {}).setdefault(name, []).append(measure)
                click.echo(f"{kind} {name}: {measure['cpu_s']} s CPU, {measure['mur_s']} s")
    for kind, by_version in results.items():
        digests = {json.dumps(m["empreintes"]) for ms in by_version.values() for m in ms}
        for name, measures in by_version.items():
            cpu = sorted(m["cpu_s"] for m in measures)[len(measures) // 2]
            click.echo(f"{kind} {name}: médiane {cpu} s CPU")
        click.echo(f"{kind}: résultats identiques : {'oui' if len(digests) == 1 else 'NON'}")
    (dossier / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
