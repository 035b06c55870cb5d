"""The session's demo build: written and built once, shared by every test (and xdist worker).

``build_demo(root)`` writes the demo raw files into ``root/demo/raw`` and builds them through the
``observatoire`` command (as a user would) into ``root/demo``, under a file lock; the first caller
builds, the others wait and reuse it (``build.done``, or ``build.failed`` with the output).
``conftest.py`` schedules the module that first needs it at the start of the run, beside the
national build. ``python -m tests.demo_build ROOT`` builds it by hand.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pipelines.cli"]


def memory_folder(prefix: str) -> Path:
    """A new folder in RAM (``/dev/shm``) when the machine has one, removed when this process
    ends; else in the system's temporary folder. For the tests' Dagster instances: Dagster's
    SQLite event log commits every event (about 3,300 commits in a demo build, each a disk
    flush: 10 s of a build's time on this machine's disk), which a test has no use for."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=f"observatoire-{prefix}-", dir=parent))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class DemoBuildError(RuntimeError):
    """The demo could not be written or built; the message holds the command's output."""


def build_demo(root: Path) -> Path:
    base = root / "demo"
    with FileLock(str(root / "demo.lock")):
        failed = base / "build.failed"
        if failed.exists():
            raise DemoBuildError(failed.read_text()[-3000:])
        if (base / "build.done").exists():
            return base
        base.mkdir(parents=True, exist_ok=True)
        # its own Dagster instance, read by the instance tests through base/dagster_home
        home = base / "dagster_home"
        if not home.exists():
            home.symlink_to(memory_folder("demo-dagster"), target_is_directory=True)
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        env.setdefault("OBSERVATOIRE_RAPPORT_PDF", "0")
        steps = [
            [sys.executable, "-m", "tools.demo", "--raw-dir", str(base / "raw")],
            # its own Dagster instance: the instance test reads the run from there
            [
                *CLI,
                "build",
                "--raw-dir",
                str(base / "raw"),
                "--warehouse",
                str(base / "warehouse.duckdb"),
                "--marts-dir",
                str(base / "marts"),
            ],
        ]
        for command in steps:
            result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
            if result.returncode != 0:
                failed.write_text(result.stdout[-3000:] + result.stderr[-3000:])
                raise DemoBuildError(failed.read_text())
        (base / "build.log").write_text(result.stdout + result.stderr)
        (base / "build.done").touch()
    return base


if __name__ == "__main__":
    build_demo(Path(sys.argv[1]))
