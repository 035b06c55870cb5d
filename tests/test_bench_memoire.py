"""The memory bench (``make bench-memoire``) runs on tiny files and prints valid JSON: one entry
per reader with the file size, the peak RSS increase and its ratio to the size. Not a timed
test, and no bound is asserted here (the figures are in docs/donnees-brutes.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.scenario
def test_bench_memoire_prints_json_for_every_reader(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench_memoire",
            "--taille-mo",
            "0.05",
            "--lecteurs",
            "insee,liste_qpv,lieux",
            "--dossier",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["borne"]["facteur"] == 5 and result["borne"]["constante_octets"] > 0
    assert set(result["lecteurs"]) == {"insee", "liste_qpv", "lieux"}
    for name, got in result["lecteurs"].items():
        assert got["erreur"] is None, (name, got)
        assert got["taille_octets"] >= 0.05 * 2**20
        assert got["lignes"] > 0
        assert got["pic_rss_octets"] >= got["rss_avant_octets"] > 0
        assert got["rapport"] == round(got["hausse_octets"] / got["taille_octets"], 2)
    # the generated INSEE file repeats the real rows under new, distinct QPV codes: every
    # value of every row is read (nothing refused as a duplicate)
    insee = result["lecteurs"]["insee"]
    assert insee["lignes"] > 0


def test_bench_memoire_refuses_an_unknown_reader():
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench_memoire", "--lecteurs", "inconnu"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2 and "lecteur inconnu : inconnu" in done.stderr
