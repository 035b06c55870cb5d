"""Source programmations: yearly programmation exports (Dauphin, GISPRO, local Excel tables).

:mod:`.reader` reads the tables and their lines (shared with the bilans), :mod:`.cells` parses
the cells, :mod:`.rules` makes the rows (action x financeur) and the anomalies, :mod:`.assets`
holds the partitioned ingestion asset ``raw/programmations``.
"""

from pipelines.sources.programmations.reader import SuiviError, SuiviResult
from pipelines.sources.programmations.rules import parse_programmations

__all__ = ["SuiviError", "SuiviResult", "parse_programmations"]
