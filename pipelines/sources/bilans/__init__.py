"""Source bilans: beneficiaries of each action by sex, age band, public and QPV of residence.

Read with the programmations' table reader (:mod:`pipelines.sources.programmations.reader`);
:mod:`.assets` holds the partitioned ingestion asset ``raw/bilans``.
"""

from pipelines.sources.bilans.reader import parse_bilans

__all__ = ["parse_bilans"]
