"""Reliability of what a build publishes, without a full build: missing inputs refused before
any work, paths and values quoted in SQL, formula cells neutralised in the published CSV, one
switch for warehouse and marts, locks, the dbt child tied to the build, the manifest.

Each case asserts the exit code (or exception), the French message and what was published.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.operations import MissingInputsError, check_inputs
from pipelines.settings import Paths
from pipelines.warehouse import resources
from pipelines.warehouse.launch import run_build


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _published(tmp_path: Path, sources: dict[str, list[str]], build_id="20260101T000000-abcdef"):
    """A published warehouse (bytes only) and the manifest of the build that published it."""
    warehouse = _write(tmp_path / "warehouse.duckdb", "published warehouse")
    _write(tmp_path / "marts" / "dim_qpv.parquet", "published mart")
    files = [
        {"source": source, "chemin": f"{folder}/{name}", "sha256": "0" * 64, "taille": 1}
        for folder, names in sources.items()
        for source, name in ((folder.replace("/", "_"), n) for n in names)
    ]
    files.append({"source": None, "chemin": "alias_entetes.yml", "sha256": "1" * 64, "taille": 1})
    manifest = {
        "build_id": build_id,
        "entrepot": "warehouse.duckdb",
        "date": "2026-01-01T00:00:00+00:00",
        "fichiers": files,
    }
    _write(tmp_path / "builds" / f"{build_id}.json", json.dumps(manifest))
    return warehouse


def _snapshot(tmp_path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file() and "raw" not in p.relative_to(tmp_path).parts
    }


# --- 1. an empty or unmounted raw folder does not replace the published marts ------------------


def test_no_input_file_at_all_is_refused_even_on_a_first_build(tmp_path):
    raw = tmp_path / "raw"
    _write(raw / ".cache" / "hidden.csv")  # hidden: not an input
    with pytest.raises(MissingInputsError, match="aucun fichier brut .dossier vide ou non monté"):
        check_inputs(raw, tmp_path / "warehouse.duckdb")
    with pytest.raises(MissingInputsError, match="--autoriser-vide"):
        check_inputs(tmp_path / "not-mounted", tmp_path / "warehouse.duckdb")
    _write(raw / "insee" / "IPRO_2022.csv")
    check_inputs(raw, tmp_path / "warehouse.duckdb")  # a first build with files: fine


def test_a_source_missing_since_the_published_build_stops_the_build_before_any_work(tmp_path):
    """The published build loaded insee/, programmations/ and lieux/; only insee/ is left:
    run_build stops before dbt, the Dagster run and the lock, and publishes nothing."""
    _published(
        tmp_path,
        {"insee": ["IPRO_2022.csv"], "programmations": ["VM_2026.csv"], "lieux": ["l.csv"]},
    )
    raw = tmp_path / "raw"
    _write(raw / "insee" / "IPRO_2022.csv")
    _write(raw / "lieux" / ".~lock.l.csv#")  # a hidden lock file is no input
    _write(raw / "programmations" / "README.txt")  # no programmation file either
    before = _snapshot(tmp_path)
    out = io.StringIO()
    code, reason = run_build(
        Paths(raw, tmp_path / "warehouse.duckdb", tmp_path / "marts"), stream=out
    )
    assert code == 1
    assert reason.startswith(f"{raw.resolve()}: aucun fichier pour 2 source(s)")
    assert "construction publiée 20260101T000000-abcdef: lieux/, programmations/." in reason
    assert "l'entrepôt publié est gardé tel quel" in reason and "--autoriser-vide" in reason
    assert out.getvalue() == ""  # no step started
    assert _snapshot(tmp_path) == before  # nothing written, nothing published


def test_the_check_compares_with_the_last_manifest_of_this_warehouse_only(tmp_path):
    warehouse = _published(tmp_path, {"insee": ["a.csv"]}, build_id="20260101T000000-aaaaaa")
    raw = tmp_path / "raw"
    _write(raw / "insee" / "a.csv")
    # an older manifest with more sources, and one of another warehouse of the folder: ignored
    old = {"build_id": "20250101T000000-old", "date": "2025-01-01T00:00:00+00:00"}
    old["fichiers"] = [{"source": "bilans", "chemin": "bilans/b.csv"}]
    _write(tmp_path / "builds" / "20250101T000000-old.json", json.dumps(old))
    other = {**old, "build_id": "20270101T000000-other", "date": "2027-01-01T00:00:00+00:00"}
    other["entrepot"] = "warehouse_20250101T000000-old.duckdb"
    _write(tmp_path / "builds" / "20270101T000000-other.json", json.dumps(other))
    check_inputs(raw, warehouse)
    # without a published warehouse, nothing to protect: only the empty folder is refused
    warehouse.unlink()
    _write(tmp_path / "builds" / "20280101T000000-new.json", json.dumps({**old, "date": "2028"}))
    check_inputs(raw, warehouse)


def test_cli_option_autoriser_vide_lets_the_build_start(tmp_path, monkeypatch):
    """With --autoriser-vide the check is skipped (the build goes on to dbt: stopped here)."""
    from pipelines.warehouse import dbt

    def stop(*_args, **_kwargs):
        raise RuntimeError("dbt reached")

    monkeypatch.setattr(dbt, "prepare_manifest", stop)
    (tmp_path / "raw").mkdir()
    paths = Paths(tmp_path / "raw", tmp_path / "warehouse.duckdb", tmp_path / "marts")
    code, reason = run_build(paths, stream=io.StringIO(), allow_empty=True)
    assert code == 1 and "dbt reached" in reason


def _probe_run(tmp_path, **kwargs):
    folders = resources.ProjectFolders(
        raw_dir=str(tmp_path / "raw"),
        warehouse=str(tmp_path / "warehouse.duckdb"),
        marts_dir=str(tmp_path / "marts"),
        **kwargs.pop("folders", {}),
    )

    @dg.asset
    def probe(warehouse: resources.Warehouse) -> None:
        with warehouse.connect() as con:
            con.execute("create table t as select 1 as x")

    return dg.materialize(
        [probe],
        resources={"folders": folders, "warehouse": resources.Warehouse(folders=folders)},
        raise_on_error=False,
        **kwargs,
    )


def test_runs_from_the_ui_sensor_or_schedule_are_refused_too_unless_tagged(tmp_path):
    """The sensor starts a build when files disappear (an unmounted folder): the run stops
    when its resources are set up, before any asset; the run tag or the resource lifts it."""
    (tmp_path / "raw").mkdir()
    refused = _probe_run(tmp_path)
    assert not refused.success
    events = " ".join(repr(e.event_specific_data) for e in refused.all_events)
    assert "MissingInputsError" in events and "aucun fichier brut" in events
    assert not (tmp_path / ".warehouse.duckdb.construction").exists()
    assert _probe_run(tmp_path, tags={resources.TAG_ALLOW_EMPTY: "oui"}).success
    assert _probe_run(tmp_path, folders={"allow_empty": True}).success


# --- 2. paths and values reach SQL as parameters or quoted; 3. formula cells neutralised --------

INJECTION = "=cmd|' /C calc'!A0"


def _small_marts(path: Path) -> None:
    """A warehouse with a plain mart, an oddly named one and the SCDL mart: a hostile porteur,
    text cells starting with + - @ tab CR, and a negative amount (a number, kept as it is)."""
    from tests.test_scdl import _mart

    con = duckdb.connect(str(path))
    base = ("EPCI X", "24590116000012", date(2027, 3, 1))
    tail = ("aide en numéraire", "unique", "2027-01-01/2027-12-31", None, False, 1.0, None)
    hostile = [
        (INJECTION, "+33 objet", -1500.0),
        ("@SUM(A1:A9)", "-2 ateliers", 20.0),
        ("\tTab asso", "\rRetour", 30.0),
        ("Asso sûre", "Objet - ordinaire", 40.0),
    ]
    _mart(
        con,
        [
            (*base, f"D{i}", name, None, "W123456789", objet, amount, *tail, "a_2027.csv")
            for i, (name, objet, amount) in enumerate(hostile)
        ],
    )
    con.execute("create table marts.depenses_orientation as select 1 as n, 'x' as libelle")
    con.execute('create table marts."l\'index ""cité""" as select 2 as n')
    con.close()


def test_exports_to_a_marts_folder_with_an_apostrophe_and_no_formula_in_the_scdl(tmp_path):
    from pipelines.warehouse.exports import export_marts

    warehouse = tmp_path / "w.duckdb"
    _small_marts(warehouse)
    out = tmp_path / "l'observation" / "marts"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        result = export_marts(con, out)
    finally:
        con.close()
    assert result.written == {
        "depenses_orientation": 1,
        'l\'index "cité"': 1,
        "subventions_scdl": 4,
        "scdl_fichiers": 1,
    }
    check = duckdb.connect()
    assert check.execute(
        "select * from read_parquet(?)", [str(out / "depenses_orientation.parquet")]
    ).fetchall() == [(1, "x")]
    assert (out / 'l\'index "cité".parquet').is_file()
    assert not list(out.glob("*.tmp"))
    text = (out / "scdl" / "a_2027.csv").read_bytes().decode("utf-8")
    assert "\r" not in text  # a CR in a cell became a quoted line feed
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 4
    by_amount = {r["montant"]: r for r in rows}
    assert (
        by_amount["-1500.00"]["nomBeneficiaire"] == "'" + INJECTION
    )  # number kept, text neutralised
    assert by_amount["-1500.00"]["objet"] == "'+33 objet"
    assert by_amount["20.00"]["nomBeneficiaire"] == "'@SUM(A1:A9)"
    assert by_amount["20.00"]["objet"] == "'-2 ateliers"
    assert by_amount["30.00"]["nomBeneficiaire"] == "'\tTab asso"
    assert by_amount["30.00"]["objet"] == "'\nRetour"
    assert by_amount["40.00"]["nomBeneficiaire"] == "Asso sûre"
    assert by_amount["40.00"]["objet"] == "Objet - ordinaire"
    for row in rows:  # no cell a spreadsheet would evaluate
        assert not any(
            v.startswith(("=", "+", "-", "@", "\t", "\r")) for k, v in row.items() if k != "montant"
        )


# --- 4. warehouse and marts published by one switch; a writer on the published file refuses it --


def _stage(paths: Paths, rows: int, mart_text: str) -> None:
    from pipelines.warehouse.resources import prepare_staging

    prepare_staging(paths, copy_published=False)
    con = duckdb.connect(str(paths.staging_warehouse))
    con.execute(
        f"create schema marts; create table marts.a as select range as n from range({rows})"
    )
    con.close()
    (paths.staging_marts / "a.parquet").write_text(mart_text)


def _state(paths: Paths) -> tuple[int, str]:
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        rows = con.execute("select count(*) from marts.a").fetchone()[0]
    finally:
        con.close()
    return rows, (paths.marts_dir / "a.parquet").read_text()


def _paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "raw", tmp_path / "warehouse.duckdb", tmp_path / "marts").resolved()


def test_successive_publications_switch_warehouse_and_marts_together(tmp_path):
    from pipelines.warehouse.publication import publish

    paths = _paths(tmp_path)
    _stage(paths, 1, "build 1")
    publish(paths, "b1")
    reader = duckdb.connect(str(paths.warehouse), read_only=True)  # an analyst, during a rebuild
    _stage(paths, 2, "build 2")
    publish(paths, "b2")
    assert _state(paths) == (2, "build 2")
    root = tmp_path / ".warehouse.duckdb.publications"
    assert sorted(p.name for p in root.iterdir()) == ["b2", "courante"]  # b1 removed
    assert reader.execute("select count(*) from marts.a").fetchone() == (1,)  # still reads b1
    reader.close()


def test_a_publication_that_dies_before_the_switch_publishes_nothing(tmp_path, monkeypatch):
    """A crash (here: the link cannot be made) after the staging moved into its publication
    folder: the published warehouse and marts are the old ones, together; the next build
    removes the orphan folder."""
    from pipelines.warehouse import publication
    from pipelines.warehouse.resources import prepare_staging

    paths = _paths(tmp_path)
    _stage(paths, 1, "build 1")
    publication.publish(paths, "b1")

    def crash(*_args, **_kwargs):
        raise OSError("killed")

    _stage(paths, 2, "build 2")
    monkeypatch.setattr(publication.os, "symlink", crash)
    with pytest.raises(OSError, match="killed"):
        publication.publish(paths, "b2")
    monkeypatch.undo()
    assert _state(paths) == (1, "build 1")
    root = tmp_path / ".warehouse.duckdb.publications"
    assert (root / "b2").is_dir()
    prepare_staging(paths, copy_published=False)  # the next build, under the lock
    assert sorted(p.name for p in root.iterdir()) == ["b1", "courante"]
    assert _state(paths) == (1, "build 1")


def test_publication_refused_while_a_writer_holds_the_published_warehouse(tmp_path):
    """An analyst on a read-write connection would lose what they write after the switch: the
    publication (and the start of a build) is refused with a message; a -readonly reader is
    fine."""
    from pipelines.operations import PublishError
    from pipelines.warehouse import resources
    from pipelines.warehouse.publication import publish

    paths = _paths(tmp_path)
    _stage(paths, 1, "build 1")
    publish(paths, "b1")
    _stage(paths, 2, "build 2")
    holder = (
        "import sys, time, duckdb; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro');"
        " print('open', flush=True); time.sleep(30)"
    )
    for mode in ("rw", "ro"):
        proc = subprocess.Popen(
            [sys.executable, "-c", holder, str(paths.warehouse), mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline().strip() == "open"
            if mode == "rw":
                with pytest.raises(PublishError) as err:
                    publish(paths, "b2")
                message = str(err.value)
                assert message.startswith(
                    f"{paths.warehouse}: l'entrepôt publié est ouvert en écriture"
                )
                assert "-readonly" in message and "rien n'est publié" in message
                root = tmp_path / ".warehouse.duckdb.publications"
                assert os.readlink(root / "courante") == "b1"  # (the writer locks the file)
                assert (paths.marts_dir / "a.parquet").read_text() == "build 1"
                assert paths.staging_warehouse.is_file()  # kept for the next attempt
                folders = resources.ProjectFolders(
                    raw_dir=str(tmp_path / "raw"),
                    warehouse=str(paths.warehouse),
                    marts_dir=str(paths.marts_dir),
                    allow_empty=True,
                )
                with pytest.raises(PublishError, match="ouvert en écriture"):
                    folders.setup_for_execution(dg.build_init_resource_context())
            else:
                _stage(paths, 2, "build 2")
                publish(paths, "b2")
                assert _state(paths) == (2, "build 2")
        finally:
            proc.kill()
            proc.wait()


# --- 6. two warehouses sharing one marts folder are not built at once ------------------------


def test_the_marts_folder_is_locked_too(tmp_path):
    from pipelines.operations import BuildLock, OperationError

    marts = tmp_path / "marts"
    holder = (
        "import sys, time; from pathlib import Path; from pipelines.operations import BuildLock; "
        "BuildLock(Path(sys.argv[1]), marts_dir=Path(sys.argv[2])).acquire(); "
        "print('held', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "a.duckdb"), str(marts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(OperationError) as err:
            BuildLock(tmp_path / "b.duckdb", marts_dir=marts).acquire()
        assert str(err.value).startswith(f"{marts}: une autre construction (d'un autre entrepôt)")
        assert BuildLock._held == {}  # the warehouse lock taken first was released
        with BuildLock(tmp_path / "b.duckdb", marts_dir=tmp_path / "other_marts"):
            pass
    finally:
        proc.kill()
        proc.wait()
    with BuildLock(tmp_path / "b.duckdb", marts_dir=marts):
        pass


# --- 5. the dbt child dies with a killed build -----------------------------------------------

PARENT = """
import sys, time
from pipelines.operations import tie_dbt_to_process
from dagster_dbt.core import dbt_cli_invocation
if sys.argv[1] == "lie":
    tie_dbt_to_process()
child = dbt_cli_invocation.subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG: Linux")
@pytest.mark.scenario
def test_the_dbt_child_dies_when_the_build_is_killed():
    """kill -9 of the build: the process dagster-dbt started (dbt) dies with it; without the
    tie (control), it would run on as an orphan."""
    import signal
    import time

    for mode, survives in (("lie", False), ("libre", True)):
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True
        )
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline and not survives:
            time.sleep(0.05)
        try:
            assert _alive(child) == survives, mode
        finally:
            if _alive(child):
                os.kill(child, signal.SIGKILL)


# --- 7. the manifest records every file read, with the bytes that were read ------------------


def _logged_warehouse(path: Path, rows: list[tuple[str, str, str]]) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute(
        "create table raw.ingestion_log (source varchar, fichier varchar, empreinte_sha256 varchar)"
    )
    con.executemany("insert into raw.ingestion_log values (?, ?, ?)", rows)
    con.close()


def test_manifest_records_every_file_read_lieux_included_and_restores_it(tmp_path):
    import hashlib

    from pipelines.operations import OperationError, archive_inputs, restore_inputs

    raw = (tmp_path / "raw").resolve()
    lieux = _write(raw / "lieux" / "equipements.csv", "x;y\n3.5;50.3\n")
    insee = _write(raw / "insee" / "IPRO_2022.csv", "CODGEO;A\n")
    sidecar = _write(raw / "sig_ville" / "qp.prj", "PROJCS")
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (lieux, insee, sidecar)}
    staging = tmp_path / "staging.duckdb"
    _logged_warehouse(
        staging, [("lieux", str(lieux), sha[lieux]), ("insee", str(insee), sha[insee])]
    )
    warehouse = tmp_path / "warehouse.duckdb"
    manifest = archive_inputs(staging, warehouse, raw, "b1")
    assert manifest["entrepot"] == "warehouse.duckdb"
    assert [(f["chemin"], f["source"], f["sha256"]) for f in manifest["fichiers"]] == [
        ("insee/IPRO_2022.csv", "insee", sha[insee]),
        ("lieux/equipements.csv", "lieux", sha[lieux]),
        ("sig_ville/qp.prj", None, sha[sidecar]),
    ]
    restored = restore_inputs(warehouse, manifest, tmp_path / "restored")
    assert {p.relative_to(tmp_path / "restored").as_posix(): p.read_bytes() for p in restored} == {
        "insee/IPRO_2022.csv": insee.read_bytes(),
        "lieux/equipements.csv": lieux.read_bytes(),
        "sig_ville/qp.prj": sidecar.read_bytes(),
    }
    # a file changed after it was read: the archive would not hold what was read
    lieux.write_text("x;y\n0;0\n", encoding="utf-8")
    with pytest.raises(OperationError) as err:
        archive_inputs(staging, warehouse, raw, "b2")
    assert str(err.value).startswith(f"{lieux}: modifié pendant la construction")
    assert "rien n'est publié" in str(err.value)
    lieux.unlink()
    with pytest.raises(OperationError, match="equipements.csv: supprimé pendant la construction"):
        archive_inputs(staging, warehouse, raw, "b2")
    # a manifest cannot write outside the folder it restores
    evil = {"fichiers": [{**manifest["fichiers"][0], "chemin": "../../etc/x"}]}
    with pytest.raises(OperationError, match="chemin hors du dossier brut"):
        restore_inputs(warehouse, evil, tmp_path / "restored")


def test_archive_copies_a_file_once_and_refuses_bytes_that_change_while_copied(
    tmp_path, monkeypatch
):
    import hashlib

    from pipelines import operations
    from pipelines.operations import OperationError, _archive_file

    store = tmp_path / "archive"
    source = _write(tmp_path / "raw" / "programmation_2027.csv", "Dossier;Montant\nD1;10\n")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert _archive_file(source, store) == (sha, source.stat().st_size)
    archived = store / sha[:2] / sha
    assert archived.read_bytes() == source.read_bytes()
    # archived already: hashed, not written again (same inode, same mtime)
    before = archived.stat()
    assert _archive_file(source, store) == (sha, source.stat().st_size)
    assert (archived.stat().st_ino, archived.stat().st_mtime_ns) == (
        before.st_ino,
        before.st_mtime_ns,
    )
    assert [p.name for p in store.iterdir() if p.is_file()] == []  # no temporary file left

    # a new file whose bytes change between its hash and its copy: nothing archived
    other = _write(tmp_path / "raw" / "bilans_2027.csv", "Dossier;Femmes\nD1;3\n")
    real = hashlib.file_digest

    def digest_then_change(f, name):
        result = real(f, name)
        other.write_text("Dossier;Femmes\nD1;4\n", encoding="utf-8")
        return result

    monkeypatch.setattr(operations.hashlib, "file_digest", digest_then_change)
    with pytest.raises(OperationError, match="bilans_2027.csv: modifié pendant l'archivage"):
        _archive_file(other, store)
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == [sha]
