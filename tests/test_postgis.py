"""``observatoire publish --postgres``: the published marts round-trip through a real PostGIS.

A throw-away PostgreSQL 15 + PostGIS 3 server (Debian ``postgresql-15-postgis-3``, installed by
``make install-postgis``) is started for this module on a free local port: ``initdb`` into a
temporary folder, ``pg_ctl start`` with its unix socket there, as the ``postgres`` user when the
tests run as root (PostgreSQL refuses root). Without the packages, the tests are skipped with a
message. QGIS's own Python (Debian ``python3-qgis``) opens a layer when it is there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from decimal import Decimal
from io import StringIO
from pathlib import Path

import duckdb
import pytest

from pipelines.duckdb_utils import load_spatial, quote_identifier
from pipelines.publication import postgis
from pipelines.publication.postgis import PostgisError, load_postgres, publish_warehouse
from tests.conftest import run_cli

SCHEMA = "observatoire"


def _postgres_bin() -> Path:
    """The bin folder of a PostgreSQL version that has PostGIS, or skip."""
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        version = bin_dir.parent.name
        control = Path(f"/usr/share/postgresql/{version}/extension/postgis.control")
        if (bin_dir / "initdb").exists() and control.exists():
            return bin_dir
    pytest.skip(
        "PostgreSQL + PostGIS absents (paquet Debian postgresql-15-postgis-3 : make "
        "install-postgis) : publication PostGIS non testée"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL + PostGIS server of this module: {url, host, port, bin}."""
    bin_dir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="observatoire-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("tests lancés en root sans runuser : PostgreSQL refuse de tourner en root")
        shutil.chown(root, user="postgres")
        root.chmod(0o755)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "serveur.log"
    port = _free_port()
    run = [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U"]
    done = subprocess.run(
        [*run, "postgres", "-E", "UTF8", "--no-locale"], capture_output=True, text=True
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb impossible ici : {done.stderr.strip()[-300:]}")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data)]
    done = subprocess.run(
        [*ctl, "-o", options, "-l", str(log), "-w", "start"], capture_output=True, text=True
    )
    if done.returncode != 0:
        text = log.read_text() if log.exists() else done.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"serveur PostgreSQL non démarré : {text[-1000:]}")
    try:
        yield {
            "url": f"postgresql://postgres@127.0.0.1:{port}/postgres",
            "host": "127.0.0.1",
            "port": port,
            "bin": bin_dir,
        }
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _pg(server) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the test server attached as ``pg`` (read side of the tests)."""
    con = duckdb.connect()
    load_spatial(con)
    load_postgres(con)
    con.execute(f"ATTACH '{server['url']}' AS pg (TYPE postgres, READ_ONLY)")
    return con


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute("select * from postgres_query('pg', ?)", [sql]).fetchall()


@pytest.fixture(scope="module")
def published(server, demo_build) -> dict:
    """The demo's published marts, published once to the server by the command."""
    warehouse = demo_build / "warehouse.duckdb"
    done = run_cli("publish", "--postgres", server["url"], "--warehouse", str(warehouse))
    assert done.returncode == 0, done.stdout + done.stderr
    return {"warehouse": warehouse, "marts": demo_build / "marts", "output": done.stdout}


def _rows(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> list[tuple]:
    select = ", ".join(quote_identifier(c) for c in columns)
    rows = con.execute(f"select {select} from {relation}").fetchall()
    return sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))


def _comparable(value):
    """A value as both sides read it (the Parquet export's masked counts are doubles)."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, list):
        return tuple(value)
    return value


@pytest.mark.scenario
def test_every_mart_round_trips_as_in_the_parquet_exports(published, server):
    """Every mart: same rows as its published Parquet file (statistical secrecy applied),
    every non-geometry value compared; same row count as the DuckDB mart."""
    con = _pg(server)
    duck = duckdb.connect(str(published["warehouse"]), read_only=True)
    load_spatial(duck)
    marts = sorted(
        r[0]
        for r in duck.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
    )
    in_pg = {
        r[0] for r in _query(con, f"select tablename from pg_tables where schemaname = '{SCHEMA}'")
    }
    assert set(marts) == in_pg
    for table in marts:
        count = duck.execute(f"select count(*) from marts.{quote_identifier(table)}").fetchone()
        pg_count = con.execute(f"select count(*) from pg.{SCHEMA}.{quote_identifier(table)}")
        assert pg_count.fetchone() == count, table
        parquet = published["marts"] / f"{table}.parquet"
        columns = [
            r[0]
            for r in con.execute(
                f"describe select * from pg.{SCHEMA}.{quote_identifier(table)}"
            ).fetchall()
            if r[0] not in ("geom",)
        ]
        expected = _rows(con, f"read_parquet('{parquet}')", columns)
        found = _rows(con, f"pg.{SCHEMA}.{quote_identifier(table)}", columns)
        assert [tuple(map(_comparable, r)) for r in found] == [
            tuple(map(_comparable, r)) for r in expected
        ], table
    # the secrecy of the Parquet files (the demo masks some rows): the same rows in PostGIS
    masked = con.execute(
        f"select count(*) from pg.{SCHEMA}.beneficiaires_genre where secret_statistique"
    ).fetchone()[0]
    assert masked > 0
    assert (
        masked
        == duck.execute(
            "select count(*) from read_parquet(?) where secret_statistique",
            [str(published["marts"] / "beneficiaires_genre.parquet")],
        ).fetchone()[0]
    )


@pytest.mark.scenario
def test_types_geometries_comments_and_read_only_role(published, server):
    con = _pg(server)
    types = dict(
        (f"{t}.{c}", (kind, precision, scale))
        for t, c, kind, precision, scale in _query(
            con,
            "select table_name, column_name, data_type, numeric_precision, numeric_scale "
            f"from information_schema.columns where table_schema = '{SCHEMA}'",
        )
    )
    # money stays NUMERIC with the precision of the mart's DECIMAL
    duck = duckdb.connect(str(published["warehouse"]), read_only=True)
    money = duck.execute(
        "select table_name, column_name, numeric_precision, numeric_scale from "
        "information_schema.columns where table_schema = 'marts' and column_name like 'montant%' "
        "and data_type like 'DECIMAL%'"
    ).fetchall()
    assert money
    for table, column, precision, scale in money:
        assert types[f"{table}.{column}"] == ("numeric", precision, scale)
    # and exact: the euros of the DuckDB mart to the cent
    total = "select sum(montant_accorde), count(*) from {}.depenses_orientation"
    exact = duck.execute(total.format("marts")).fetchone()
    assert _query(con, total.format(SCHEMA)) == [exact] and isinstance(exact[0], Decimal)
    # masked counts are integers again (not the doubles of the masking frame)
    assert types["beneficiaires_genre.femmes"][0] == "bigint"
    # geometries: typed, SRID 2154, indexed, the same areas as projected in DuckDB
    geometries = _query(
        con,
        "select f_table_name, type, srid from geometry_columns "
        f"where f_table_schema = '{SCHEMA}' order by 1",
    )
    assert {t for t, _, _ in geometries} >= {"dim_qpv", "carte_taux_emploi", "carte_effort_qpv"}
    assert all(srid == 2154 for _, _, srid in geometries)
    assert ("dim_qpv", "MULTIPOLYGON", 2154) in geometries
    indexes = _query(
        con,
        f"select indexdef from pg_indexes where schemaname = '{SCHEMA}' and tablename = 'dim_qpv'",
    )
    assert any("gist" in i[0] for i in indexes)
    pg_areas = dict(
        _query(con, f"select code_qpv, ST_Area(geom) from {SCHEMA}.dim_qpv where geom is not null")
    )
    load_spatial(duck)
    duck_areas = dict(
        duck.execute(
            "select code_qpv, ST_Area(ST_Transform(geom, 'EPSG:4326', 'EPSG:2154', "
            "always_xy := true)) from marts.dim_qpv where geom is not null"
        ).fetchall()
    )
    assert pg_areas.keys() == duck_areas.keys() and pg_areas
    for code, area in duck_areas.items():
        assert pg_areas[code] == pytest.approx(area, rel=1e-6), code
    # the marts' YAML descriptions as comments
    from pipelines.publication.postgis import mart_descriptions

    description, columns = mart_descriptions()["dim_qpv"]
    comments = _query(
        con,
        f"select obj_description('{SCHEMA}.dim_qpv'::regclass), "
        f"col_description('{SCHEMA}.dim_qpv'::regclass, 1)",
    )[0]
    first = duck.execute("select column_name from (describe marts.dim_qpv) limit 1").fetchone()[0]
    assert comments == (description, columns[first])
    geom_comment = _query(
        con,
        f"select col_description(attrelid, attnum) from pg_attribute where attrelid = "
        f"'{SCHEMA}.dim_qpv'::regclass and attname = 'geom'",
    )[0][0]
    assert geom_comment.startswith(columns["geom"])
    assert geom_comment.endswith("Lambert-93 (EPSG:2154), type MultiPolygon.")
    # the read-only role reads every table and writes none
    role = "observatoire_lecture"
    privileges = _query(
        con,
        f"select bool_and(has_table_privilege('{role}', schemaname || '.' || tablename, "
        f"'SELECT')), bool_or(has_table_privilege('{role}', schemaname || '.' || tablename, "
        f"'INSERT, UPDATE, DELETE, TRUNCATE')), has_schema_privilege('{role}', '{SCHEMA}', "
        f"'CREATE') from pg_tables where schemaname = '{SCHEMA}'",
    )
    assert privileges == [(True, False, False)]


@pytest.mark.scenario
def test_failure_halfway_leaves_the_previous_schema(published, server, monkeypatch):
    """A copy that fails after some tables, and a swap that cannot take its locks: the published
    schema is the one before, untouched, and no half-written schema is left."""
    con = _pg(server)

    def state():
        return _query(
            con,
            "select n.oid::bigint, obj_description(n.oid), (select count(*) from "
            f"{SCHEMA}.dim_qpv) as lignes, (select count(*) from pg_tables where schemaname = "
            f"'{SCHEMA}') as tables from pg_namespace n where nspname = '{SCHEMA}'",
        )

    before = state()
    assert before and before[0][2] > 0
    copy = postgis._copy_table
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 5:
            raise duckdb.IOException("connexion perdue (simulée)")
        return copy(*args, **kwargs)

    monkeypatch.setattr(postgis, "_copy_table", failing)
    with pytest.raises(PostgisError, match="schéma observatoire inchangé"):
        publish_warehouse(published["warehouse"], server["url"])
    assert state() == before
    leftovers = _query(con, "select nspname from pg_namespace where nspname like 'observatoire_%'")
    assert leftovers == []
    monkeypatch.setattr(postgis, "_copy_table", copy)

    # an analyst's transaction holds a lock on a published table: the swap gives up
    monkeypatch.setattr(postgis, "LOCK_TIMEOUT", "1s")
    psql = [
        str(server["bin"] / "psql"),
        "-h",
        server["host"],
        "-p",
        str(server["port"]),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        f"begin; lock table {SCHEMA}.dim_qpv in access share mode; select pg_sleep(20);",
    ]
    reader = subprocess.Popen(psql, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time

        for _ in range(50):  # the lock is taken
            if _query(
                con,
                "select count(*) from pg_locks where mode = 'AccessShareLock' and "
                f"relation = '{SCHEMA}.dim_qpv'::regclass",
            )[0][0]:
                break
            time.sleep(0.1)
        with pytest.raises(PostgisError, match="lock timeout|verrou"):
            publish_warehouse(published["warehouse"], server["url"])
    finally:
        reader.kill()
        reader.wait()
    assert state() == before
    assert _query(con, "select nspname from pg_namespace where nspname like 'observatoire_%'") == []


def test_server_down_is_a_clear_error_and_a_warning_of_the_build(demo_build, monkeypatch):
    """The command fails with a French message naming the server (password hidden); the
    build's asset does not fail: the summary says AVERTISSEMENT."""
    port = _free_port()  # nothing listens there
    url = f"postgresql://analyste:secret@127.0.0.1:{port}/observatoire"
    done = run_cli(
        "publish", "--postgres", url, "--warehouse", str(demo_build / "warehouse.duckdb")
    )
    assert done.returncode == 1
    assert "serveur PostgreSQL injoignable" in done.stderr
    assert "analyste:***@127.0.0.1" in done.stderr and "secret" not in done.stderr

    import dagster as dg

    from pipelines.warehouse.launch import Progress, _report_postgis
    from pipelines.warehouse.postgis import build_postgis_asset
    from pipelines.warehouse.resources import ProjectFolders

    monkeypatch.setenv("OBSERVATOIRE_POSTGRES_URL", url)
    folders = ProjectFolders(
        raw_dir=str(demo_build / "raw"),
        warehouse=str(demo_build / "warehouse.duckdb"),
        marts_dir=str(demo_build / "marts"),
        direct=True,
    )
    result = dg.materialize([build_postgis_asset()], resources={"folders": folders})
    assert result.success
    out = StringIO()
    _report_postgis(Progress(out), result)
    assert out.getvalue().startswith("AVERTISSEMENT : marts non publiés dans PostgreSQL")
    assert "serveur PostgreSQL injoignable" in out.getvalue()
    assert "secret" not in out.getvalue()


def test_the_asset_is_in_the_build_only_when_configured(monkeypatch):
    from pipelines.definitions import build_definitions
    from pipelines.warehouse.postgis import KEY

    monkeypatch.delenv("OBSERVATOIRE_POSTGRES_URL", raising=False)
    keys = build_definitions().resolve_asset_graph().get_all_asset_keys()
    assert KEY not in keys
    monkeypatch.setenv("OBSERVATOIRE_POSTGRES_URL", "postgresql://x@127.0.0.1/y")
    keys = build_definitions().resolve_asset_graph().get_all_asset_keys()
    assert KEY in keys


QGIS_SCRIPT = """
import sys
from qgis.core import QgsApplication, QgsDataSourceUri, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
host, port, schema = sys.argv[1:4]
uri = QgsDataSourceUri()
uri.setConnection(host, port, "postgres", "postgres", "")
uri.setDataSource(schema, "dim_qpv", "geom")
layer = QgsVectorLayer(uri.uri(False), "dim_qpv", "postgres")
print(layer.isValid(), layer.featureCount(), layer.crs().authid())
app.exitQgis()
"""


@pytest.mark.scenario
def test_qgis_opens_a_postgis_layer(published, server, tmp_path):
    python = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import qgis.core"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("QGIS absent (paquet Debian python3-qgis) : couche PostGIS non ouverte")
    script = tmp_path / "couche.py"
    script.write_text(QGIS_SCRIPT, encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [python, str(script), server["host"], str(server["port"]), SCHEMA],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    con = _pg(server)
    rows = con.execute(f"select count(*) from pg.{SCHEMA}.dim_qpv").fetchone()[0]
    assert done.stdout.split()[-3:] == ["True", str(rows), "EPSG:2154"]
