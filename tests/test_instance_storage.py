"""The event log storage of the CLI's Dagster instance (pipelines/warehouse/instance.py): pooled
connections, and still Dagster's own files."""

from __future__ import annotations

import logging
import threading
import time

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage

from pipelines.warehouse.instance import SqliteEventLogStorageMemeMoteur


def _materialization(run_id: str, table: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=logging.INFO,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name="construction",
            event_specific_data=StepMaterializationData(
                dg.AssetMaterialization(asset_key=["marts", table])
            ),
        ),
    )


def test_events_from_several_threads_land_in_dagster_s_own_files(tmp_path):
    storage = SqliteEventLogStorageMemeMoteur(str(tmp_path))

    def write(run_id: str) -> None:
        for i in range(30):
            storage.store_event(_materialization(run_id, f"mart_{i % 5}"))

    threads = [threading.Thread(target=write, args=(f"run{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # another process's storage (Dagster's plain one, as `dagster dev` without this project's
    # config) reads every event while this one keeps its connections open
    plain = SqliteEventLogStorage(str(tmp_path))
    assert [len(plain.get_logs_for_run(f"run{n}")) for n in range(3)] == [30, 30, 30]
    key = dg.AssetKey(["marts", "mart_4"])
    assert plain.get_latest_materialization_events([key])[key] is not None
    # and it writes while this one is open; this one sees it
    plain.store_event(_materialization("run9", "mart_9"))
    assert len(storage.get_logs_for_run("run9")) == 1

    # wiped: the run databases are removed and written again from new connections
    storage.wipe()
    assert storage.get_logs_for_run("run0") == []
    storage.store_event(_materialization("run0", "mart_0"))
    assert len(plain.get_logs_for_run("run0")) == 1
    storage.dispose()
    plain.dispose()
