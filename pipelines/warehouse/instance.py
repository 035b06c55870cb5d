"""The Dagster instance of the CLI's builds (``DAGSTER_HOME``), and its event log storage.

Dagster's SQLite event log creates a SQLAlchemy engine for every read or write of an event and
disposes of it right after: about 6,000 engines in a demo build (1,100 events, each written to
its run's database and, for materializations and checks, to the index), 1 ms each here. Each
operation also opened a new SQLite connection and closed it, and closing the last connection to
a WAL database checkpoints it: 7 to 12 ms per event stored, 3.3 to 4.2 ms with connections kept
(400 materializations, ``SqliteEventLogStorageMemeMoteur`` with and without its pool); a
national build stores about 1,500 events.

:class:`SqliteEventLogStorageMemeMoteur` keeps one engine per database and process, with
SQLAlchemy's default pool for a SQLite file (connections kept open between operations, one per
thread at a time). In WAL mode, which Dagster sets, an open connection holds no lock between two
transactions: `dagster dev` and other processes read and write the same files as before.
Everything else is Dagster's own storage, same files, same schema.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import Engine, create_engine
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
        self._engines: dict[tuple[str, int], Engine] = {}
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SqliteEventLogStorageMemeMoteur:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            # per process: a pooled connection is never shared with a forked child
            key = (shard, os.getpid())
            engine = self._engines.get(key)
            if engine is None:
                if shard not in self._initialized_dbs:
                    # as Dagster does it (it creates the tables and sets WAL mode), on a
                    # connection that is not kept
                    init = create_engine(
                        self.conn_string_for_shard(shard),
                        poolclass=NullPool,
                        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                    )
                    self._initdb(init)
                    init.dispose()
                    self._initialized_dbs.add(shard)
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                self._engines[key] = engine
            with engine.connect() as conn, conn.begin():
                yield conn

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._dispose_engines()  # before Dagster removes the run databases
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


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
