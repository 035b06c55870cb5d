"""Where the millésime and the base of an INSEE file come from when its name does not say:
a column of years (one per row), or the parameter file ``<stem>.yml`` beside the data file
(``millesime: 2022``, ``base: IPRO``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipelines.lib.cells import normalise_header
from pipelines.lib.tables import IngestionError

# Columns that give the millésime of each row (compared after normalise_header), when all their
# values are years.
MILLESIME_COLUMNS = {"MILLESIME", "ANNEE", "AN", "ANNEE_MILLESIME", "MILLESIME_DONNEES"}
_YEAR = re.compile(r"^(19[89]\d|20\d\d)$")


def millesime_column(header: list[str], rows: list[tuple[int, list[str]]]) -> int | None:
    """Index of the column giving each row's millésime: named like one (``millesime``,
    ``annee``...) and holding years only (its first 200 non-empty values)."""
    for j, raw in enumerate(header):
        if normalise_header(raw) not in MILLESIME_COLUMNS:
            continue
        values = [cells[j].strip() for _, cells in rows if j < len(cells) and cells[j].strip()]
        if values and all(year_of(v) is not None for v in values[:200]):
            return j
    return None


def year_of(cell: str) -> int | None:
    text = cell.strip()
    if text.endswith(".0"):  # a year stored as a number in a workbook
        text = text[:-2]
    return int(text) if _YEAR.match(text) else None


PARAMETER_KEYS = {"millesime", "base"}


def file_parameters(path: Path) -> tuple[Path | None, dict[str, Any]]:
    """The parameters of a data file, from ``<stem>.yml`` (or ``.yaml``) beside it:
    ``millesime`` (the year, when the name has none) and ``base`` (IPRO, DEMO, REVN... when
    the name names none). (None, {}) without such a file; IngestionError if it is invalid."""
    for suffix in (".yml", ".yaml"):
        sidecar = path.with_suffix(suffix)
        if sidecar.is_file():
            break
    else:
        return None, {}
    try:
        params = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise IngestionError(f"{sidecar}: YAML illisible ({str(err).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise IngestionError(f"{sidecar}: attendu des clés « millesime: 2022 », « base: IPRO »")
    unknown = sorted(str(k) for k in params if k not in PARAMETER_KEYS)
    if unknown:
        raise IngestionError(
            f"{sidecar}: clé inconnue « {unknown[0]} » (clés possibles : millesime, base)"
        )
    out: dict[str, Any] = {}
    if params.get("millesime") is not None:
        year = year_of(str(params["millesime"]))
        if year is None:
            raise IngestionError(
                f"{sidecar}: millesime « {params['millesime']} » : année sur 4 chiffres attendue"
            )
        out["millesime"] = year
    if params.get("base") is not None:
        base = str(params["base"]).strip().upper()
        if not re.fullmatch(r"[A-Z0-9_]+", base):
            raise IngestionError(f"{sidecar}: base « {params['base']} » : un nom comme IPRO")
        out["base"] = base
    return sidecar, out
