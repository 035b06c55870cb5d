"""Banc de mémoire des lecteurs : la hausse du pic de mémoire de chaque lecteur face à la taille
de son fichier.

``python -m tools.bench_memoire`` (``make bench-memoire``) écrit, pour chaque lecteur, un grand
fichier d'entrée dans un dossier de travail, le lit dans un processus enfant et imprime un JSON :
taille du fichier, mémoire résidente avant la lecture, pic pendant la lecture, hausse, rapport
hausse / taille, et si la hausse tient dans la borne annoncée (:data:`FACTOR` x la taille +
:data:`~pipelines.lib.tables.MEMORY_CONSTANT`, docs/donnees-brutes.md).

Fichiers d'entrée (``--taille-mo``, 50 Mo par défaut) :

* ``insee`` : la base nationale IPRO 2022 de ``../shared/data`` (l'extrait de la démo à
  défaut), ses lignes répétées avec des codes QPV 2015 tous différents jusqu'à la taille visée ;
* ``programmations`` et ``bilans`` : fichiers synthétiques du banc national
  (:mod:`tools.bench.generate`) d'un seul territoire ;
* ``lieux`` : points synthétiques (``identifiant;lon;lat``) ;
* ``liste_qpv`` : une liste au format ``listeqp2024-cog2024.csv`` aux codes QN synthétiques ;
* ``indicateurs`` : un tableau d'indicateurs locaux (CSV) et sa correspondance.

La mesure : dans l'enfant, les bibliothèques importées et une première lecture d'un petit
fichier du même genre faite (imports paresseux, caches), le pic de ``/proc/self/status``
(``VmHWM``) est remis à la mémoire du moment (``/proc/self/clear_refs``) puis relu après la
lecture ; sans ce droit, la mémoire (``VmRSS``) est échantillonnée toutes les 5 ms. Linux
seulement. Ce n'est pas un test chronométré : ``tests/test_bench_memoire.py`` ne vérifie que la
forme du JSON sur de petits fichiers.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
#: The announced bound: at most FACTOR x the file size above the constant.
FACTOR = 5

READERS = ("insee", "programmations", "bilans", "lieux", "liste_qpv", "indicateurs")


# -- input files --------------------------------------------------------------------------------


def _insee_template() -> Path:
    national = SHARED / "insee_qpv2015" / "IPRO_2022.csv"
    return national if national.is_file() else ROOT / "data" / "demo" / "insee" / "IPRO_2022.csv"


def write_insee(path: Path, size: int) -> None:
    """The IPRO 2022 base, its QPV rows repeated with new QPV 2015 codes up to ``size`` bytes."""
    from pipelines.lib.codes import QPV_LIKE

    with _insee_template().open(encoding="utf-8-sig", newline="") as fh:
        text = fh.read()
    lines = text.split("\r\n")
    header, rows = lines[0], [r for r in lines[1:] if QPV_LIKE.match(r.split(";", 1)[0])]
    path.parent.mkdir(parents=True, exist_ok=True)
    written, n = 0, 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        fh.write(header + "\r\n")
        while written < size or n == 0:
            row = rows[n % len(rows)]
            code = f"QP{n // 1000:03d}{n % 1000:03d}"
            line = code + row[len(row.split(";", 1)[0]) :] + "\r\n"
            fh.write(line)
            written += len(line.encode("utf-8"))
            n += 1
            if n >= 1_000_000:  # every QP code used
                break


def _territory(qpv: int):
    from tools.bench.generate import Territory

    return Territory(
        "200000001",
        "Territoire du banc",
        [(f"QN{59 + k // 100:03d}{k % 100:02d}M", f"Quartier {k}") for k in range(qpv)],
    )


def _write_suivi(folder: Path, size: int) -> tuple[Path, Path]:
    from tools.bench.generate import write_year

    lines = max(20, size // 200)
    write_year(folder, [_territory(40)], 2024, lines, random.Random(20261203))
    prog = next((folder / "programmations").glob("*.csv"))
    bilans = next((folder / "bilans").glob("*.csv"))
    return prog, bilans


def write_programmations(path: Path, size: int) -> None:
    prog, _ = _write_suivi(path.parent / "suivi", size)
    prog.replace(path)


def write_bilans(path: Path, size: int) -> None:
    # bilans lines are about a third of the programmation lines: ask for three times more
    _, bilans = _write_suivi(path.parent / "suivi", 3 * size)
    bilans.replace(path)


def write_lieux(path: Path, size: int) -> None:
    from tools.bench.generate import write_lieux as points

    rng = random.Random(7)
    near = [(rng.uniform(-1, 7), rng.uniform(43, 50)) for _ in range(200)]
    points(path, max(10, size // 30), near)


def write_liste_qpv(path: Path, size: int) -> None:
    header = (
        "code_qp;lib_qp;insee_reg;lib_reg;insee_dep;lib_dep;insee_com;lib_com;siren_epci;lib_epci"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    written, n = 0, 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        fh.write(header + "\r\n")
        while (written < size or n == 0) and n < 999 * 100 * 4:
            dep = 1 + n // 400
            code = f"QN{dep:03d}{(n // 4) % 100:02d}{'MINC'[n % 4]}"
            line = (
                f"{code};Quartier du banc {n};32;Hauts-de-France;{dep:03d};Département {dep};"
                f"{dep:02d}{n % 1000:03d};Commune {n % 1000};200000001;CA du banc\r\n"
            )
            fh.write(line)
            written += len(line.encode("utf-8"))
            n += 1


INDICATEURS = [f"Part des familles monoparentales {k} (%)" for k in range(8)]


def write_indicateurs(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    written, n = 0, 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        writer.writerow(["Code territoire", "Libellé territoire", *INDICATEURS])
        while written < size or n == 0:
            row = [f"QP{n // 1000:03d}{n % 1000:03d}", f"Quartier {n}"]
            row += [f"{rng.uniform(0, 60):.1f}".replace(".", ",") for _ in INDICATEURS]
            writer.writerow(row)
            written += sum(len(c) for c in row) + len(row) + 1
            n += 1
            if n >= 1_000_000:
                break
    mapping = {
        "fournisseur": "BANC",
        "fichiers": [path.name],
        "millesime": 2022,
        "territoire": {"code": "Code territoire", "libelle": "Libellé territoire"},
        "colonnes": {
            name: {"indicateur": "part_familles_monoparentales", "unite": "%"}
            for name in INDICATEURS[:1]
        },
        "ignorer": INDICATEURS[1:],
    }
    path.with_name(path.stem + ".mapping.yml").write_text(
        json.dumps(mapping, ensure_ascii=False), encoding="utf-8"
    )


WRITERS: dict[str, tuple[str, Callable[[Path, int], None]]] = {
    "insee": ("IPRO_2022.csv", write_insee),
    "programmations": ("programmation_banc_2024.csv", write_programmations),
    "bilans": ("bilans_banc_2024.csv", write_bilans),
    "lieux": ("lieux_banc.csv", write_lieux),
    "liste_qpv": ("listeqp2024-cog2024.csv", write_liste_qpv),
    "indicateurs": ("BANC_indicateurs_2022.csv", write_indicateurs),
}


# -- readers (in the child) ---------------------------------------------------------------------


def read(reader: str, path: Path) -> int:
    """Read one file with the project's reader; returns the rows it gave."""
    if reader == "insee":
        from pipelines.sources.insee.reader import read_insee_file

        result = read_insee_file(path)
        # values_table: the values on disk (an older version held them in ``values``)
        table = getattr(result, "values_table", None)
        return len(table if table is not None else result.values)
    if reader == "programmations":
        from pipelines.sources.programmations.rules import parse_programmations

        return len(parse_programmations([path]).rows)
    if reader == "bilans":
        from pipelines.sources.bilans.reader import parse_bilans

        return len(parse_bilans([path]).rows)
    if reader == "lieux":
        import duckdb

        from pipelines.sources.lieux.reader import read_points

        con = duckdb.connect()
        try:
            points = read_points(con, path)
            return con.execute(f"select count(*) from {points.sql}").fetchone()[0]
        finally:
            con.close()
    if reader == "liste_qpv":
        from pipelines.sources.sig_ville.reader import read_liste_qpv

        return len(read_liste_qpv(path))
    if reader == "indicateurs":
        from pipelines.sources.indicateurs.mapping import load_mapping
        from pipelines.sources.indicateurs.reader import read_local_table

        mapping = load_mapping(path.with_name(path.stem + ".mapping.yml"))
        return len(read_local_table(path, mapping).values)
    raise ValueError(reader)


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(reader: str, small: Path, large: Path) -> dict:
    """Measure one reader on ``large`` after a first read of ``small`` (in this process)."""
    read(reader, small)
    rss_before = _status_kib("VmRSS") * 1024
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # VmHWM := VmRSS
        method = "VmHWM"
    except OSError:
        method = "echantillonnage"
    peak = [rss_before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _status_kib("VmRSS") * 1024)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    error = None
    rows = None
    try:
        rows = read(reader, large)
    except Exception as err:  # noqa: BLE001 - reported in the JSON
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    hwm = _status_kib("VmHWM") * 1024
    top = hwm if method == "VmHWM" else peak[0]
    return {
        "rss_avant_octets": rss_before,
        "pic_rss_octets": max(top, peak[0]),
        "methode": method,
        "secondes": round(seconds, 2),
        "lignes": rows,
        "erreur": error,
    }


# -- the bench ----------------------------------------------------------------------------------


def measure(reader: str, folder: Path, size: int) -> dict:
    from pipelines.lib.tables import MEMORY_CONSTANT

    name, writer = WRITERS[reader]
    small = folder / reader / "petit" / name
    large = folder / reader / "grand" / name
    writer(small, 20_000)
    writer(large, size)
    command = [
        sys.executable,
        "-m",
        "tools.bench_memoire",
        "--enfant",
        reader,
        str(small),
        str(large),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        got = {"erreur": (done.stderr.strip().splitlines() or ["?"])[-1], "code": done.returncode}
    else:
        got = json.loads(done.stdout.strip().splitlines()[-1])
    file_size = large.stat().st_size
    out = {"fichier": large.name, "taille_octets": file_size, **got}
    if "pic_rss_octets" in got:
        rise = max(0, got["pic_rss_octets"] - got["rss_avant_octets"])
        out["hausse_octets"] = rise
        out["rapport"] = round(rise / file_size, 2)
        out["hausse_moins_constante_sur_taille"] = round(
            max(0, rise - MEMORY_CONSTANT) / file_size, 2
        )
        out["borne_octets"] = FACTOR * file_size + MEMORY_CONSTANT
        out["dans_la_borne"] = rise <= out["borne_octets"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_memoire", description=__doc__)
    parser.add_argument("--taille-mo", type=float, default=50.0, help="taille visée des fichiers")
    parser.add_argument("--lecteurs", default=",".join(READERS), help=f"parmi {', '.join(READERS)}")
    parser.add_argument("--dossier", type=Path, help="dossier de travail (temporaire sinon)")
    parser.add_argument("--sortie", type=Path, help="écrire aussi le JSON dans ce fichier")
    parser.add_argument(
        "--enfant", nargs=3, metavar=("LECTEUR", "PETIT", "GRAND"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.enfant:
        reader, small, large = args.enfant
        print(json.dumps(child(reader, Path(small), Path(large))))
        return 0
    from pipelines.lib.tables import MEMORY_CONSTANT

    readers = [r.strip() for r in args.lecteurs.split(",") if r.strip()]
    unknown = [r for r in readers if r not in READERS]
    if unknown:
        parser.error(f"lecteur inconnu : {', '.join(unknown)} (parmi {', '.join(READERS)})")
    size = int(args.taille_mo * 2**20)
    with tempfile.TemporaryDirectory(prefix="bench-memoire-") as tmp:
        folder = args.dossier or Path(tmp)
        result = {
            "taille_visee_octets": size,
            "borne": {"facteur": FACTOR, "constante_octets": MEMORY_CONSTANT},
            "lecteurs": {r: measure(r, folder, size) for r in readers},
        }
    text = json.dumps(result, ensure_ascii=False, indent=2)
    if args.sortie:
        args.sortie.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
