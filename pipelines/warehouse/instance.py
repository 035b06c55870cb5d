"""The Dagster instance of the CLI's builds (``DAGSTER_HOME``), and its event log storage.

Dagster's SQLite event log creates a SQLAlchemy engine for every read or write of an event and
disposes of it right after: about 6,000 engines in a demo build (1,100 events, each written to
its run's database and, for materializations and checks, to the index), 1 ms each here, so
about 5 s of a 35 s build. :class:`SqliteEventLogStorageMemeMoteur` keeps one engine per
database for the life of the process (still a new SQLite connection per operation, as Dagster
does: nothing stays locked between two events); everything else is Dagster's own storage, same
files, same schema, readable by ``dagster dev`` and any other instance.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from pipelines.settings import DEFAULT_DAGSTER_HOME

#: ``dagster.yaml`` written in a new ``DAGSTER_HOME`` (an existing file is the user's: kept).
INSTANCE_CONFIG = """\
telemetry:
  enabled: false
# Dagster's SQLite event log, with one engine per database kept for the process
# (pipelines/warehouse/instance.py): the same files, read by `dagster dev` as usual
event_log_storage:
  module: pipelines.warehouse.instance
  class: SqliteEventLogStorageMemeMoteur
  config:
    base_dir: {base_dir}
"""


class SqliteEventLogStorageMemeMoteur(SqliteEventLogStorage):
    """Dagster's SQLite event log storage, reusing one engine per shard (database file)."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: dict = {}
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SqliteEventLogStorageMemeMoteur:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=NullPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                self._engines[shard] = engine
            with engine.connect() as conn, conn.begin():
                yield conn


def open_instance():
    """The persistent Dagster instance (``DAGSTER_HOME``, else ``.dagster_home`` of the project):
    ``make ui`` shows the runs, materializations and check results of the CLI's builds."""
    import dagster as dg

    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # where Dagster keeps them by default, beside the runs (history/)
        base_dir = (home / "history" / "runs").resolve()
        config.write_text(INSTANCE_CONFIG.format(base_dir=base_dir), encoding="utf-8")
    return dg.DagsterInstance.from_config(str(home))
