"""``python -m tools.compare_insee``: the INSEE reader, before and after.

``lire RAW SORTIE`` reads ``RAW/insee`` as the asset ``raw/insee_valeurs`` does
(:func:`~pipelines.sources.insee.assets.read_insee`: values, rejects, anomalies, ingestion log
without its time stamp, or the error message), then each file of it alone
(:func:`~pipelines.sources.insee.reader.read_insee_file`: values, rejects, anomalies, report,
or the error message), with the code on ``PYTHONPATH``, into the pickle ``SORTIE``; it prints
the CPU time (user + sys) of the folder's reading and the load average. ``--entrepot`` also
writes the folder's reading into a new DuckDB warehouse as the asset does
(:func:`~pipelines.lib.assets.write_source`) and keeps its tables ``raw.insee_valeurs``,
``raw.rejets``, ``raw.anomalies`` and ``raw.ingestion_log`` (without time stamps), with the
CPU time of the writing. ``--fichier F`` (one or
more) reads those files alone instead (a corpus of broken files: the error is compared).
``comparer A B`` says whether two such pickles are identical (exact frame equality, same
messages) and where they differ. Run ``lire`` once with ``PYTHONPATH`` on a copy of the old code
(``git archive <commit> pipelines geo | tar -x -C …``) and once on the new, on the same input,
then ``comparer``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import resource
import sys
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _frame(table):
    import pandas as pd

    if table is None:
        return None
    frame = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    return frame.reset_index(drop=True)


def write_folder(got) -> dict:
    """The raw tables the asset writes from ``got`` (a new warehouse in a temporary folder)."""
    import tempfile

    import duckdb

    from pipelines.lib.assets import write_source

    with tempfile.TemporaryDirectory() as folder:
        con = duckdb.connect(str(Path(folder) / "entrepot.duckdb"))
        try:
            start = _cpu()
            write_source(con, "insee", "insee_valeurs", got)
            cpu = _cpu() - start
            tables = {
                f"raw.{t}": con.execute(f"SELECT * FROM raw.{t}").df()
                for t in ("insee_valeurs", "rejets", "anomalies")
            }
            log = con.execute("SELECT * EXCLUDE (horodatage) FROM raw.ingestion_log").df()
            tables["raw.ingestion_log"] = log
        finally:
            con.close()
    return {"tables": tables, "cpu": cpu}


def read_folder(raw: Path, warehouse: bool = False) -> dict:
    """What the asset's read function gives for ``raw/insee`` (or its error message)."""
    from pipelines.lib.assets import ReadContext
    from pipelines.lib.tables import IngestionError
    from pipelines.sources.insee.assets import read_insee

    ctx = ReadContext(raw, None, None, logging.getLogger("compare_insee"))
    start = _cpu()
    try:
        got = read_insee(ctx)
    except IngestionError as err:
        return {"erreur": str(err), "cpu": _cpu() - start}
    cpu = _cpu() - start  # the reading only (the values are still on disk or in pandas)
    result = {
        "valeurs": _frame(got.rows),
        "rejets": _frame(got.rejects),
        "anomalies": _frame(got.anomalies),
        "journal": [{k: v for k, v in log.items() if k != "horodatage"} for log in got.logs],
    }
    result["cpu"] = cpu
    if warehouse:
        written = write_folder(got)
        result["cpu_ecriture"] = written["cpu"]
        result.update(written["tables"])
    return result


def read_file(path: Path) -> dict:
    """What :func:`read_insee_file` gives for one file (or its error message)."""
    from pipelines.lib.tables import IngestionError
    from pipelines.sources.insee.reader import read_insee_file

    try:
        got = read_insee_file(path)
    except IngestionError as err:
        return {"erreur": str(err)}
    return {
        "valeurs": _frame(got.values_table),
        "rejets": _frame(got.rejects_table),
        "anomalies": _frame(got.anomalies),
        "rapport": got.report,
        "combinaisons": _frame(got.combos),
    }


def read(raw: Path | None, files: list[Path], out: Path, warehouse: bool = False) -> None:
    from pipelines.sources.insee.reader import list_insee_files

    results: dict = {}
    if raw is not None:
        folder = read_folder(raw, warehouse)
        cpu = folder.pop("cpu")
        described = folder.get("erreur") or (
            f"{len(folder['valeurs'])} valeurs, {len(folder['rejets'])} rejets"
        )
        if "cpu_ecriture" in folder:
            described += f" ; écriture CPU {folder.pop('cpu_ecriture'):.2f} s"
        print(f"{raw}/insee : {described} ; CPU {cpu:.2f} s (charge {os.getloadavg()[0]:.1f})")
        results["dossier"] = folder
        files = list_insee_files(raw / "insee")
    for path in files:
        results[str(path)] = read_file(path)
        if "erreur" in results[str(path)]:
            print(f"{path}: {results[str(path)]['erreur']}")
    out.write_bytes(pickle.dumps(results))


def _same(a, b, where: str) -> bool:
    import pandas as pd

    if set(a) != set(b):
        print(f"{where} : parties différentes {sorted(set(a) ^ set(b))}")
        return False
    same = True
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, pd.DataFrame) or isinstance(y, pd.DataFrame):
            try:
                pd.testing.assert_frame_equal(x, y, check_exact=True)
            except AssertionError as err:
                same = False
                print(f"{where}, {key} : différents\n{str(err)[:2000]}")
        elif x != y:
            same = False
            print(f"{where}, {key} : différents\n  {str(x)[:1000]}\n  {str(y)[:1000]}")
    return same


def compare(first: Path, second: Path) -> bool:
    a, b = pickle.loads(first.read_bytes()), pickle.loads(second.read_bytes())
    same = True
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: absent de l'un des deux fichiers")
            same = False
            continue
        same = _same(a[name], b[name], name) and same
    print(f"{len(a)} lectures : " + ("identiques" if same else "DIFFÉRENTES"))
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_insee", description=__doc__)
    commands = parser.add_subparsers(dest="commande", required=True)
    lire = commands.add_parser("lire", help="lit RAW/insee et écrit les résultats dans SORTIE")
    lire.add_argument("raw", type=Path, help="dossier brut (son sous-dossier insee/), ou -")
    lire.add_argument("sortie", type=Path)
    lire.add_argument("--fichier", type=Path, nargs="+", default=[], help="fichiers lus seuls")
    lire.add_argument(
        "--entrepot", action="store_true", help="écrit aussi les tables raw d'un entrepôt neuf"
    )
    comparer = commands.add_parser("comparer", help="compare deux fichiers écrits par lire")
    comparer.add_argument("a", type=Path)
    comparer.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.commande == "lire":
        raw = None if str(args.raw) == "-" else args.raw
        read(raw, args.fichier, args.sortie, args.entrepot)
        return 0
    return 0 if compare(args.a, args.b) else 1


if __name__ == "__main__":
    sys.exit(main())
