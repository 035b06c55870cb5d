"""The demo's places geocoded by the BAN (tools/demo/synthetic/lieux.py) through the build:
``marts.lieux_qpv`` holds, per QPV and type of place, the counts computed here independently
from the demo file (csv + shapely on the demo contours), and the addresses under the score
threshold are in ``raw.rejets``, never counted."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest
import shapely

from pipelines.sources.lieux.reader import DEFAULT_SCORE_MIN
from pipelines.sources.sig_ville.reader import read_contours
from tools.demo.synthetic.lieux import CONTOURS, FILE_NAME


@pytest.fixture(scope="module")
def expected(demo_build: Path) -> dict:
    """Counts from the demo file alone: rows kept by the score, their QPV by shapely."""
    contours = read_contours(CONTOURS).qpv
    geometries = np.asarray(contours.geometry.values)
    counts: Counter = Counter()
    rejected = []
    path = demo_build / "raw" / "lieux" / FILE_NAME
    with path.open(encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh, delimiter=";"), start=2):
            score = row["result_score"]
            if not score or float(score) < DEFAULT_SCORE_MIN:
                rejected.append((line, score))
                continue
            x, y = float(row["longitude"]), float(row["latitude"])
            hits = sorted(contours.loc[shapely.intersects_xy(geometries, x, y), "code_qpv"])
            statut = "dans_qpv" if hits else "hors_qpv"
            counts[(row["type"], statut, hits[0] if hits else None)] += 1
    return {"counts": counts, "rejected": rejected}


@pytest.fixture(scope="module")
def con(demo_build: Path):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def test_lieux_qpv_counts_equal_the_demo_file(con, expected):
    rows = con.execute(
        "SELECT type_lieu, statut, code_qpv, nb_lieux, secret_statistique FROM marts.lieux_qpv "
        "WHERE geographie_qpv = '2024'"
    ).fetchall()
    got = {(t, s, c): n for t, s, c, n, _ in rows}
    assert got == dict(expected["counts"])
    assert not any(secret for *_, secret in rows)  # équipements, lieux d'action: no secrecy
    in_qpv = sum(n for (_, s, _), n in expected["counts"].items() if s == "dans_qpv")
    assert in_qpv >= 42  # every QPV of the demo has places


def test_low_scores_are_rejected_with_their_score_never_counted(con, expected):
    rejets = con.execute(
        "SELECT ligne, valeur_brute, motif FROM raw.rejets "
        "WHERE source = 'lieux' AND colonne = 'result_score' ORDER BY ligne"
    ).fetchall()
    assert [(line, value) for line, value, _ in rejets] == expected["rejected"]
    assert len(rejets) >= 5
    lines = {line for line, _ in expected["rejected"]}
    counted = con.execute("SELECT source_ligne FROM raw.lieux").fetchall()
    assert not lines & {line for (line,) in counted}
    assert all("lieu non affecté" in motif for *_, motif in rejets)
