"""``observatoire build --as-of``: a past build rebuilt from its archived inputs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import CLI, NO_DOCUMENTS, ROOT
from tests.test_operations import mart_rows


@pytest.mark.scenario
def test_as_of_rebuilds_a_past_build_from_its_archive(demo_build, tmp_path):
    builds = sorted((demo_build / "builds").glob("*.json"))
    assert builds, "the demo build records its manifest"
    build_id = builds[0].stem
    shutil.copytree(demo_build / "archive", tmp_path / "archive")
    shutil.copytree(demo_build / "builds", tmp_path / "builds")
    result = subprocess.run(
        [
            *CLI,
            "build",
            "--warehouse",
            str(tmp_path / "warehouse.duckdb"),
            "--marts-dir",
            str(tmp_path / "marts"),
            "--as-of",
            build_id,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        # the marts are what is compared: no report nor workbook (about 5 s of the build)
        env={**os.environ, **NO_DOCUMENTS},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rebuilt = tmp_path / f"warehouse_{build_id}.duckdb"
    # same rows; only the paths of the source files differ (restored in raw_<id>/)
    assert mart_rows(rebuilt, True) == mart_rows(demo_build / "warehouse.duckdb", True)
    assert not (tmp_path / "warehouse.duckdb").exists()  # the published one is not touched
