"""``python -m tools.compare_suivi``: the programmation and bilan readers, before and after.

``lire RAW SORTIE`` parses ``RAW/programmations`` and ``RAW/bilans`` with the code on
``PYTHONPATH`` (rows, rejects, anomalies, file summaries into the pickle ``SORTIE``; the listed
perimeters of ``RAW/territoires/*/perimetre_qpv.csv`` are given to the programmations) and prints
the CPU time (user + sys) of each parser and the load average; ``comparer A B`` says whether two
such pickles are identical (exact frame equality) and where they differ. Run ``lire`` once with
``PYTHONPATH`` on a copy of the old code (``git archive <commit> pipelines geo | tar -x -C …``)
and once on the new, on the same input, then ``comparer``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
from pathlib import Path


def read(raw: Path, out: Path, known_file: Path | None) -> None:
    from pipelines.sources.bilans.reader import parse_bilans
    from pipelines.sources.programmations.partitions import suivi_files
    from pipelines.sources.programmations.rules import parse_programmations

    known = set(known_file.read_text(encoding="utf-8").split()) if known_file else None
    perimetre = perimeters(raw)
    results = {}
    for source, parse in (("programmations", parse_programmations), ("bilans", parse_bilans)):
        paths = suivi_files(raw, source)
        options = {"perimetre": perimetre} if source == "programmations" and perimetre else {}
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = parse(paths, known_qpv=known, **options)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        print(
            f"{source}: {len(paths)} fichier(s), {len(result.rows)} lignes, "
            f"{len(result.rejects)} rejets, {len(result.anomalies)} anomalies ; CPU {cpu:.2f} s "
            f"(charge {os.getloadavg()[0]:.1f})"
        )
        results[source] = (result.rows, result.rejects, result.anomalies, result.files)
    out.write_bytes(pickle.dumps(results))


def perimeters(raw: Path) -> dict[str, set[str]]:
    """Territory folder -> its listed QPV (``RAW/territoires/<code>/perimetre_qpv.csv``), so that
    the programmations' « QPV of another territory » anomalies are compared too."""
    import csv

    found: dict[str, set[str]] = {}
    for path in sorted(raw.glob("territoires/*/perimetre_qpv.csv")):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            codes = {row["code_qpv"].strip().upper() for row in csv.DictReader(fh)}
        found[path.parent.name] = {c for c in codes if c}
    return found


def compare(first: Path, second: Path) -> bool:
    import pandas as pd

    a, b = pickle.loads(first.read_bytes()), pickle.loads(second.read_bytes())
    same = True
    for source in sorted(set(a) | set(b)):
        if source not in a or source not in b:
            print(f"{source}: absent de l'un des deux fichiers")
            same = False
            continue
        for k, part in enumerate(("lignes", "rejets", "anomalies")):
            try:
                pd.testing.assert_frame_equal(a[source][k], b[source][k], check_exact=True)
            except AssertionError as err:
                same = False
                print(f"{source}, {part} : différents\n{str(err)[:2000]}")
        if a[source][3] != b[source][3]:
            same = False
            print(f"{source}, résumés par fichier : différents")
    print("identiques" if same else "DIFFÉRENTS")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_suivi", description=__doc__)
    commands = parser.add_subparsers(dest="commande", required=True)
    lire = commands.add_parser("lire", help="lit RAW et écrit les résultats dans SORTIE")
    lire.add_argument("raw", type=Path)
    lire.add_argument("sortie", type=Path)
    lire.add_argument("--codes-qpv-connus", type=Path, default=None, help="un code QPV par ligne")
    comparer = commands.add_parser("comparer", help="compare deux fichiers écrits par lire")
    comparer.add_argument("a", type=Path)
    comparer.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.commande == "lire":
        read(args.raw, args.sortie, args.codes_qpv_connus)
        return 0
    return 0 if compare(args.a, args.b) else 1


if __name__ == "__main__":
    sys.exit(main())
