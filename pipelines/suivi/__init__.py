"""Suivi de la programmation: parsers of programmation exports and action bilans."""

from pipelines.suivi.bilans import parse_bilans
from pipelines.suivi.programmations import SuiviError, SuiviResult, parse_programmations

__all__ = ["SuiviError", "SuiviResult", "parse_bilans", "parse_programmations"]
