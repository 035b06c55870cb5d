"""The steps of ``make bench``, each in its own process tree, measured from outside.

1. ``construction_complete``: ``observatoire build`` of the benchmark's raw folder into a fresh
   warehouse, marts folder and Dagster instance (``<dossier>/travail/``);
2. ``sans_changement``: the same command again, nothing changed (the launcher compares the
   files' hashes, the code version and the options with the published build and stops);
3. ``annee_ajoutee``: the programmations and bilans of one more year are copied into the raw
   folder, then ``observatoire build --annee <that year>``;
4. ``reference_duckdb``: the plain DuckDB script (:mod:`tools.bench.baseline`) over the raw
   folder of step 1 (the added year's files removed again: the same files as the full build).

The no-change step comes before the added year: after a build of some years only, the next
full build is redone on purpose (a series spanning two years is checked by a full build only).

Per step: wall time, peak RSS of the process tree (the sum of the resident memory of the
process and all its descendants — Dagster, the dbt subprocess, Chromium — sampled every
0.2 s; pages shared between processes count once per process), rows in (data lines of the
files the step reads) and rows out (the four headline marts, all marts), the exit code and
the last lines printed. Ratios and targets go in ``results.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pipelines.operations import popen_dying_with_parent
from pipelines.settings import PROJECT_ROOT

#: The four headline marts (and the baseline's table computing the same thing).
HEADLINE = {
    "taux_emploi_quartier": "taux_emploi",
    "depenses_orientation": "depenses",
    "beneficiaires_genre": "beneficiaires",
    "lieux_qpv": "lieux",
}
TARGETS = {
    "construction_complete / reference_duckdb": 3.0,
    "annee_ajoutee / construction_complete": 0.25,
    "sans_changement / construction_complete": 0.10,
}
MEMORY_TARGET_MIB = 4096


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields follow the last ')'
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (MiB)."""
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kib(pid)
        todo.extend(tree.get(pid, []))
    return total / 1024


def measure(command: list[str], env: dict[str, str], log: Path, interval: float = 0.2) -> dict:
    """Run ``command`` (its output to ``log``), sampling the tree's memory; returns wall time,
    peak RSS, exit code and the last lines of its output."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = 0.0
    with log.open("w", encoding="utf-8") as out:
        started = time.perf_counter()
        # the step dies with the bench (kill, Ctrl-C): no build left running alone
        process = popen_dying_with_parent(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
        )
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_mib(process.pid))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return {
        "wall_s": round(wall, 2),
        "pic_rss_mio": round(peak, 1),
        "code_sortie": code,
        "sortie": lines[-4:],
        "journal": str(log),
    }


def mart_rows(warehouse: Path) -> dict:
    """Rows of the four headline marts and of all marts of the published warehouse."""
    import duckdb

    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        ]
        counts = {t: con.execute(f'select count(*) from marts."{t}"').fetchone()[0] for t in tables}
        read = con.execute(
            "select coalesce(sum(lignes_lues), 0) from raw.ingestion_log"
        ).fetchone()[0]
        totals = {
            "montant_accorde": float(
                con.execute(
                    "select coalesce(sum(montant_accorde), 0) from marts.depenses_orientation"
                ).fetchone()[0]
            ),
            "lieux_en_qpv": int(
                con.execute(
                    "select coalesce(sum(nb_lieux), 0) from marts.lieux_qpv "
                    "where code_qpv is not null"
                ).fetchone()[0]
            ),
        }
    except duckdb.Error as err:
        return {"erreur": str(err).splitlines()[0]}
    finally:
        con.close()
    return {
        "marts_phares": {m: counts.get(m) for m in HEADLINE},
        "marts_toutes": sum(counts.values()),
        "nb_marts": len(counts),
        "lignes_lues_entrepot": int(read),
        "totaux": totals,
    }


def _environment(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(work / "dagster_home"),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "OBSERVATOIRE_RAW_DIR": str(work.parent / "raw"),
            "OBSERVATOIRE_WAREHOUSE": str(work / "warehouse.duckdb"),
            "OBSERVATOIRE_MARTS_DIR": str(work / "marts"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    return env


def _build_command(raw: Path, work: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "build",
        "--raw-dir",
        str(raw),
        "--warehouse",
        str(work / "warehouse.duckdb"),
        "--marts-dir",
        str(work / "marts"),
        *extra,
    ]


def _added_files(added: Path, raw: Path) -> list[tuple[Path, Path]]:
    return [(p, raw / p.relative_to(added)) for p in sorted(added.rglob("*")) if p.is_file()]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_steps(folder: Path, inventory: dict, builds: bool = True, echo=print) -> dict:
    """Run the steps on ``folder/raw`` (written by :func:`tools.bench.generate.generate`) and
    return the results (also written to ``folder/results.json``)."""
    raw, added = folder / "raw", folder / "annee_ajoutee"
    work = folder / "travail"
    pairs = _added_files(added, raw)
    for _, target in pairs:  # the raw folder of the full build: without the added year
        target.unlink(missing_ok=True)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = _environment(work)
    lines = inventory["lignes"]
    rows_in_full = sum(lines.values())
    rows_in_year = sum(inventory["lignes_annee_ajoutee"].values())
    steps: dict[str, dict] = {}

    def step(name: str, command: list[str], rows_in: int, warehouse: Path | None) -> dict:
        echo(f"{name}: {' '.join(command[2:4])} ... (charge {_load()})")
        result = {"charge_avant": _load(), **measure(command, env, work / f"{name}.log")}
        result["lignes_entree"] = rows_in
        if warehouse is not None:
            result["sortie_entrepot"] = mart_rows(warehouse)
        echo(
            f"  {result['wall_s']} s, pic {result['pic_rss_mio']:.0f} Mio, "
            f"code {result['code_sortie']}: {' / '.join(result['sortie'][-1:])}"
        )
        steps[name] = result
        return result

    warehouse = work / "warehouse.duckdb"
    if builds:
        step("construction_complete", _build_command(raw, work), rows_in_full, warehouse)
        step("sans_changement", _build_command(raw, work), 0, warehouse)
        for source, target in pairs:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        step(
            "annee_ajoutee",
            _build_command(raw, work, "--annee", str(inventory["annee_ajoutee"])),
            rows_in_year,
            warehouse,
        )
        for _, target in pairs:
            target.unlink(missing_ok=True)
    baseline_db = work / "reference.duckdb"
    result = step(
        "reference_duckdb",
        [sys.executable, "-m", "tools.bench.baseline", str(raw), str(baseline_db)],
        rows_in_full,
        None,
    )
    try:
        reported = json.loads(result["sortie"][-1])
        result["sortie_reference"] = {
            "marts_phares": {m: reported["lignes"][t] for m, t in HEADLINE.items()},
            "totaux": reported["totaux"],
        }
    except (IndexError, ValueError, KeyError):
        pass
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "coeurs": os.cpu_count(),
            "memoire_mio": _memory_mib(),
            "charge_fin": _load(),
        },
        "volumes": inventory,
        "etapes": steps,
        "ratios": ratios(steps),
    }
    out = folder / "results.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    echo(json.dumps(results["ratios"], ensure_ascii=False, indent=2))
    echo(f"résultats: {out}")
    return results


def ratios(steps: dict) -> dict:
    """Ratios of wall times, and whether each target of the issue is reached."""
    wall = {name: s["wall_s"] for name, s in steps.items() if s.get("code_sortie") == 0}
    out: dict = {}
    for label, target in TARGETS.items():
        a, b = (x.strip() for x in label.split("/"))
        if a in wall and b in wall and wall[b] > 0:
            value = round(wall[a] / wall[b], 3)
            out[label] = {"valeur": value, "cible": target, "atteinte": value <= target}
    full = steps.get("construction_complete")
    if full:
        peak = max(s["pic_rss_mio"] for s in steps.values())
        out["pic_rss_mio (toutes étapes)"] = {
            "valeur": peak,
            "cible": MEMORY_TARGET_MIB,
            "atteinte": peak < MEMORY_TARGET_MIB,
        }
    return out


def _memory_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None
