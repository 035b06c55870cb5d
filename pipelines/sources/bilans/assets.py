"""Ingestion asset ``raw/bilans``: partitioned by year like the programmations, read the same way
(:func:`pipelines.sources.programmations.assets.suivi_asset`)."""

from __future__ import annotations

from pipelines.sources.bilans.reader import parse_bilans
from pipelines.sources.programmations.assets import suivi_asset

bilans = suivi_asset(
    "bilans",
    parse_bilans,
    "Bilans des actions (data/raw/bilans/*.csv|xlsx), action x QPV de résidence.",
)
