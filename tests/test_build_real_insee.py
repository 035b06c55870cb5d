"""Acceptance: a build on the six real national INSEE files gives every QPV, exact values."""

from __future__ import annotations

import csv
import shutil

import duckdb
import pytest

from tests.conftest import build, shared_data


def test_taux_emploi_quartier_on_real_files(tmp_path):
    folder = shared_data("insee_qpv2015")
    raw = tmp_path / "raw" / "insee"
    raw.mkdir(parents=True)
    for path in folder.glob("*.csv"):
        shutil.copy(path, raw)
    result = build(tmp_path / "raw", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    expected = {}
    for millesime in (2021, 2022):
        with (folder / f"IPRO_{millesime}.csv").open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=";")
            for row in reader:
                cells = [row["TX_TOT_EMPL"], row["TX_F_EMPL"], row["TX_ET_EMPL"]]
                expected[(row["CODGEO"], millesime)] = [
                    float(c.replace(",", ".")) if c.strip() else None for c in cells
                ]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "select code_qpv, millesime, taux_emploi, taux_emploi_femmes, taux_emploi_etrangers, "
        "secret_taux_emploi from marts.taux_emploi_quartier"
    ).fetchall()
    got = {(r[0], r[1]): list(r[2:5]) for r in rows}
    assert len(got) == len(rows) == len(expected) == 2 * 1345
    assert got == expected
    assert got[("QP059020", 2022)][0] == pytest.approx(40.0)
    secret = {(r[0], r[1]) for r in rows if r[5]}
    assert secret == {k for k, v in expected.items() if v[0] is None}
    assert (tmp_path / "marts" / "taux_emploi_quartier.parquet").is_file()
    n = con.execute("select count(*) from marts.dim_qpv where geographie = '2015'").fetchone()[0]
    assert n == 1400  # every QPV of the DEMO files (IPRO has 1,345)
