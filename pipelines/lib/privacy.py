"""Fields holding personal data never enter the warehouse.

Columns a parser does not know are kept in ``autres_colonnes`` (JSON) so that nothing is lost;
those whose header looks like personal data (names, birth dates, personal addresses, phone,
e-mail, social identifiers: patterns in ``donnees_personnelles.csv``) are removed from it, and
each removal is reported as an anomaly naming the file and the column (never the value).
"""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from pathlib import Path

import pandas as pd

from pipelines.lib.cells import fold

PATTERNS_FILE = Path(__file__).with_name("donnees_personnelles.csv")


@cache
def _patterns() -> list[tuple[re.Pattern, str]]:
    with PATTERNS_FILE.open(encoding="utf-8") as fh:
        return [(re.compile(row["motif"]), row["description"]) for row in csv.DictReader(fh)]


def personal_reason(header: str) -> str | None:
    """Why a column header looks like personal data, or None."""
    folded = fold(header)
    for pattern, description in _patterns():
        if pattern.search(folded):
            return description
    return None


def drop_personal_columns(
    frame: pd.DataFrame | None, source: str, file_column: str = "source_fichier"
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Remove personal-data keys from ``autres_colonnes``; returns (frame, anomalies)."""
    columns = ["source", "type", "fichier", "ligne", "dossier", "message"]
    if frame is None or frame.empty or "autres_colonnes" not in frame:
        return frame, pd.DataFrame(columns=columns)
    found: set[tuple[str, str, str]] = set()  # (file, column, reason)
    files = frame[file_column] if file_column in frame else pd.Series([None] * len(frame))
    cleaned = []
    done: dict[str, tuple[str | None, list[tuple[str, str]]]] = {}  # the same JSON repeats
    for value, fichier in zip(frame["autres_colonnes"], files, strict=True):
        if value is None or (isinstance(value, float) and pd.isna(value)):
            cleaned.append(value)
            continue
        if isinstance(value, str):
            result = done.get(value)
            if result is None:
                result = done[value] = _without_personal(json.loads(value))
        else:
            result = _without_personal(dict(value))
        cleaned.append(result[0])
        for key, reason in result[1]:
            found.add((str(fichier), key, reason))
    out = frame.copy()
    out["autres_colonnes"] = cleaned
    anomalies = [
        {
            "source": source,
            "type": "donnees_personnelles_ecartees",
            "fichier": fichier,
            "ligne": None,
            "dossier": None,
            "message": f"colonne « {key} » écartée: {reason} (données personnelles non chargées)",
        }
        for fichier, key, reason in sorted(found)
    ]
    return out, pd.DataFrame(anomalies, columns=columns)


def _without_personal(data: dict) -> tuple[str | None, list[tuple[str, str]]]:
    """(the JSON of ``data`` without its personal-data keys, None when nothing is left; the
    (key, reason) of each key removed)."""
    kept = {}
    removed = []
    for key, cell in data.items():
        reason = personal_reason(key)
        if reason:
            removed.append((key, reason))
        else:
            kept[key] = cell
    return (json.dumps(kept, ensure_ascii=False) if kept else None), removed
