"""Build the committed real-data extract of the demo (maintainers only).

From the national files of ``shared/data`` (Licence Ouverte), keep the rows of the QPV of the
three seed territories listed in ``ref_perimetre_qpv.csv``:

- ``data/demo/insee/<BASE>_<year>.csv``: the header and the QPV rows of each INSEE base,
  byte for byte (BOM, CRLF, ``;``, decimal comma, trailing empty columns kept), so the demo
  exercises the real physical format;
- ``data/demo/sig_ville/QP2024_demo_3_territoires_WGS84.geojson``: the 2024 contours of their
  QPV, features copied unchanged (invalid geometries included: the build repairs them).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pipelines.settings import DEMO_DIR, REFERENTIELS_DIR

CONTOURS_NAME = "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"


def perimeter_codes(geographie: str) -> list[str]:
    with (REFERENTIELS_DIR / "ref_perimetre_qpv.csv").open(encoding="utf-8") as fh:
        return sorted(
            {row["code_qpv"] for row in csv.DictReader(fh) if row["geographie"] == geographie}
        )


def extract_insee(source: Path, target: Path, codes: set[str]) -> int:
    """Copy the header and the lines whose first field is one of ``codes``; returns lines kept."""
    data = source.read_bytes()
    lines = data.splitlines(keepends=True)
    kept = [lines[0]]
    for line in lines[1:]:
        first = line.split(b";", 1)[0].strip().decode("utf-8", "replace")
        if first in codes:
            kept.append(line)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"".join(kept))
    return len(kept) - 1


def extract_contours(source: Path, target: Path, codes: set[str]) -> int:
    collection = json.loads(source.read_text(encoding="utf-8"))
    features = [f for f in collection["features"] if f["properties"].get("code_qp") in codes]
    out = {k: v for k, v in collection.items() if k != "features"}
    out["features"] = features
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return len(features)


def build_extract(shared_data: Path) -> list[Path]:
    written = []
    codes_2015 = set(perimeter_codes("2015"))
    for source in sorted((shared_data / "insee_qpv2015").glob("*.csv")):
        target = DEMO_DIR / "insee" / source.name
        n = extract_insee(source, target, codes_2015)
        print(f"{source.name}: {n} QPV")
        written.append(target)
    codes_2024 = set(perimeter_codes("2024"))
    target = DEMO_DIR / "sig_ville" / "QP2024_demo_3_territoires_WGS84.geojson"
    n = extract_contours(shared_data / "anct" / CONTOURS_NAME, target, codes_2024)
    print(f"{CONTOURS_NAME}: {n} QPV")
    written.append(target)
    return written
