"""Statistical secrecy of published exports: small counts masked, with complementary masking.

The warehouse keeps the true values (analysts of the contract need them); what leaves it
(Parquet/CSV exports, the report) goes through :func:`mask_counts`. Which columns of which mart
are counts, totals and derived values is data: ``secret_statistique.csv`` beside this module.

Rule, per row of a table whose count columns add up to its total column:

1. a count strictly between 0 and the threshold (default 5) is masked (NULL);
2. if a total is published and exactly one count of the row is masked, it could be recomputed
   as total - the others: the smallest other non-zero count is masked too (complementary
   masking); zeros are never used as complements, they reveal nothing;
3. a total strictly between 0 and the threshold is masked with all the counts of its row;
4. derived columns (shares) are masked whenever a count of their row is;
5. the row gets ``secret_statistique = true`` when anything in it was masked.

Rows that add up to a total published elsewhere (the age bands of a cell of
``beneficiaires_age_public`` add up to ``beneficiaires_genre.total``) are tied by ``groupe``
columns: 6. within a group of rows (same values of the ``groupe`` columns), when exactly one
count is masked, the smallest other non-zero count of the group is masked too (complementary
masking across rows).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

SPEC_FILE = Path(__file__).with_name("secret_statistique.csv")
ENV_THRESHOLD = "OBSERVATOIRE_SEUIL_SECRET"
DEFAULT_THRESHOLD = 5


def threshold() -> int:
    return int(os.environ.get(ENV_THRESHOLD, DEFAULT_THRESHOLD))


@dataclass
class MaskSpec:
    counts: list[str] = field(default_factory=list)
    total: str | None = None
    derived: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


def load_specs(path: Path = SPEC_FILE) -> dict[str, MaskSpec]:
    specs: dict[str, MaskSpec] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            spec = specs.setdefault(row["table"], MaskSpec())
            role = row["role"].strip()
            if role == "compte":
                spec.counts.append(row["colonne"])
            elif role == "total":
                spec.total = row["colonne"]
            elif role == "derive":
                spec.derived.append(row["colonne"])
            elif role == "groupe":
                spec.groups.append(row["colonne"])
            else:
                raise ValueError(f"{path}: rôle inconnu {role!r} (compte, total, derive, groupe)")
    return specs


def mask_counts(frame: pd.DataFrame, spec: MaskSpec, seuil: int | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with small counts masked (see the module docstring)."""
    seuil = threshold() if seuil is None else seuil
    out = frame.copy()
    counts = [c for c in spec.counts if c in out]
    for col in [*counts, *([spec.total] if spec.total else []), *spec.derived]:
        if col in out:
            out[col] = out[col].astype("object")
    # the rows one by one on plain lists (pandas' .at costs more than the rule itself)
    column = {c: out[c].tolist() for c in [*counts, *spec.derived] if c in out}
    totals = out[spec.total].tolist() if spec.total else None
    flags = []
    for i in range(len(out)):
        values = {c: column[c][i] for c in counts}
        masked = {
            c for c, v in values.items() if v is not None and not pd.isna(v) and 0 < v < seuil
        }
        total = totals[i] if totals is not None else None
        if totals is not None and total is not None and not pd.isna(total) and 0 < total < seuil:
            masked |= {c for c, v in values.items() if v is not None and not pd.isna(v) and v > 0}
            totals[i] = None
        if spec.total and len(masked) == 1:
            others = sorted(
                (v, c)
                for c, v in values.items()
                if c not in masked and v is not None and not pd.isna(v) and v > 0
            )
            if others:
                masked.add(others[0][1])
        for c in masked:
            column[c][i] = None
        if masked:
            for c in spec.derived:
                if c in column:
                    column[c][i] = None
        flags.append(bool(masked))
    for c, values in column.items():
        out[c] = pd.Series(values, index=out.index, dtype="object")
    if totals is not None:
        out[spec.total] = pd.Series(totals, index=out.index, dtype="object")
    out["secret_statistique"] = flags
    if spec.groups and len(counts) == 1 and not out.empty:
        _mask_groups(out, counts[0], spec)
    return out


def _mask_groups(out: pd.DataFrame, count: str, spec: MaskSpec) -> None:
    """Rule 6: in each group of rows with exactly one masked count, mask the smallest other
    non-zero count of the group (in place)."""
    keys = out[spec.groups].astype(str).agg("|".join, axis=1)
    for _, positions in out.groupby(keys, sort=False).indices.items():
        index = out.index[positions]
        values = out.loc[index, count]
        masked = [i for i in index if values[i] is None or pd.isna(values[i])]
        masked = [i for i in masked if out.at[i, "secret_statistique"]]
        if len(masked) != 1:
            continue
        others = sorted(
            (values[i], i)
            for i in index
            if i not in masked and not pd.isna(values[i]) and values[i] > 0
        )
        if others:
            i = others[0][1]
            out.at[i, count] = None
            for c in spec.derived:
                if c in out:
                    out.at[i, c] = None
            out.at[i, "secret_statistique"] = True
