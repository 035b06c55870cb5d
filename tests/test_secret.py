"""Statistical secrecy of published exports: small counts masked, complementary masking."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from pipelines.publication.secret import MaskSpec, load_specs, mask_counts

SPEC = MaskSpec(counts=["femmes", "hommes", "nr"], total="total", derived=["part"])


def frame(rows):
    return pd.DataFrame(rows, columns=["qpv", "femmes", "hommes", "nr", "total", "part"])


def test_small_count_masked_with_its_complement():
    out = mask_counts(frame([["A", 3, 10, 7, 20, 23.1]]), SPEC, seuil=5).iloc[0]
    # 3 < 5 masked; alone it could be recomputed from the total: the smallest other count (7)
    # is masked too; the share is derived from masked counts
    assert pd.isna(out.femmes) and pd.isna(out.nr) and out.hommes == 10 and out.total == 20
    assert pd.isna(out.part) and out.secret_statistique


def test_zeros_are_not_complements_and_large_counts_stay():
    out = mask_counts(frame([["A", 2, 30, 0, 32, 6.3], ["B", 12, 30, 0, 42, 28.6]]), SPEC, 5)
    a, b = out.iloc[0], out.iloc[1]
    assert pd.isna(a.femmes) and pd.isna(a.hommes) and a.nr == 0
    assert (b.femmes, b.hommes, b.nr, b.total, b.part) == (12, 30, 0, 42, 28.6)
    assert not b.secret_statistique


def test_small_total_masks_the_whole_row():
    out = mask_counts(frame([["A", 1, 2, 0, 3, 33.3]]), SPEC, 5).iloc[0]
    assert pd.isna(out.femmes) and pd.isna(out.hommes) and pd.isna(out.total)
    assert out.nr == 0


def test_no_masked_cell_can_be_recomputed():
    rows = [
        ["A", a, b, c, a + b + c, None]
        for a in range(0, 8)
        for b in range(0, 8)
        for c in range(0, 3)
    ]
    out = mask_counts(frame(rows), SPEC, 5)
    for _, r in out.iterrows():
        cells = [r.femmes, r.hommes, r.nr]
        hidden = [pd.isna(x) for x in cells]
        if not pd.isna(r.total):
            assert sum(hidden) != 1  # one hidden cell would be total minus the others
        for x in cells:
            assert pd.isna(x) or x == 0 or x >= 5


def test_spec_file_covers_beneficiaires_genre():
    spec = load_specs()["beneficiaires_genre"]
    assert set(spec.counts) == {"femmes", "hommes", "sexe_non_renseigne"}
    assert spec.total == "total"
    assert spec.derived == ["part_femmes", "ecart_part_femmes_points"]


def test_published_parquet_is_masked_but_warehouse_is_not(demo_build):
    import duckdb

    published = pq.read_table(demo_build / "marts" / "beneficiaires_genre.parquet").to_pandas()
    counts = published[["femmes", "hommes", "sexe_non_renseigne"]]
    assert ((counts.isna()) | (counts == 0) | (counts >= 5)).all().all()
    assert published["secret_statistique"].any()
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    small = con.execute(
        "select count(*) from marts.beneficiaires_genre where femmes between 1 and 4"
    ).fetchone()[0]
    assert small > 0  # the demo has small counts; the warehouse keeps them for the analysts
