"""Publication des marts en formats ouverts (SCDL OpenDataFrance)."""

from pipelines.publication.scdl import SCDL_FIELDS, export_scdl, validate_scdl_row

__all__ = ["SCDL_FIELDS", "export_scdl", "validate_scdl_row"]
