"""Publication of the marts to the team's PostgreSQL/PostGIS server (``observatoire publish``).

What is copied is what the Parquet exports publish: every table of the ``marts`` schema with the
statistical secrecy applied (:func:`pipelines.publication.tableurs.published`), into one schema
of the server (``observatoire`` by default):

- money stays ``NUMERIC(p, s)`` (DuckDB's DECIMAL), counts ``BIGINT``, lists PostgreSQL arrays;
- geometries are ``geometry(<type>, 2154)``: the marts hold WGS84 contours (EPSG:4326), PostGIS
  projects them to Lambert-93 (``ST_Transform``), with a spatial index on each;
- every table and column carries the description of the marts' YAML (``COMMENT ON``), the
  schema says which build it holds and when it was published;
- a read-only role (``observatoire_lecture`` by default, created ``NOLOGIN`` when missing) gets
  ``USAGE`` on the schema and ``SELECT`` on its tables: ``GRANT observatoire_lecture TO
  <analyste>`` gives an analyst read access, and nothing more.

Atomicity: the tables are written into a new schema ``<schema>_nouveau`` (invisible to
analysts), their row counts checked against DuckDB's, then one transaction renames the published
schema aside, renames the new one in its place and drops the old one. A failure before or during
that transaction leaves the published schema as it was (the half-written new schema is dropped);
an analyst's query sees the old tables or the new ones, never a mix.

The copy goes through DuckDB's ``postgres`` extension (installed offline from its PyPI wheel
``duckdb-extension-postgres``, like ``spatial``): the marts are read and written by DuckDB with
PostgreSQL's binary COPY, no row passes through Python, and DuckDB's types map onto
PostgreSQL's (DECIMAL → NUMERIC with its precision, lists → arrays); the statements DuckDB has no
syntax for (PostGIS types, comments, roles, the swap) go through ``postgres_execute``, each as
one PostgreSQL transaction.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb

from pipelines.duckdb_utils import (
    ExtensionError,
    extension_file,
    load_extension,
    quote_identifier,
    sql_literal,
    tables_in,
)
from pipelines.warehouse.manifest import mart_descriptions

#: Environment variables of the build's optional last asset (:func:`build_postgis_asset`).
ENV_URL = "OBSERVATOIRE_POSTGRES_URL"
ENV_SCHEMA = "OBSERVATOIRE_POSTGRES_SCHEMA"
ENV_ROLE = "OBSERVATOIRE_POSTGRES_ROLE_LECTURE"
DEFAULT_SCHEMA = "observatoire"
DEFAULT_ROLE = "observatoire_lecture"
#: The marts' geometries are WGS84 longitude/latitude; PostGIS gets Lambert-93.
SOURCE_SRID = 4326
TARGET_SRID = 2154
#: Longest wait for the locks of the swap (an analyst's long query on the old schema): past it
#: the swap fails and the published schema stays as it was.
LOCK_TIMEOUT = "60s"
_ATTACHED = "pg_observatoire"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class PostgisError(Exception):
    """The marts could not be published to PostgreSQL (message in French)."""


@dataclass
class PostgisPublication:
    """What :func:`publish_postgis` published."""

    schema: str
    rows: dict[str, int] = field(default_factory=dict)
    geometries: dict[str, str] = field(default_factory=dict)  # "table.column": type
    seconds: float = 0.0


def hide_password(url: str) -> str:
    """``url`` fit for a message: the password of a URL or of a ``key=value`` string masked."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return url
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", url)


def check_name(name: str, what: str) -> str:
    """A schema or role name: lower-case letters, digits and ``_`` (no quoting surprises)."""
    if not _NAME.match(name):
        raise PostgisError(
            f"{what} {name!r} invalide : lettres minuscules sans accent, chiffres et _, "
            "41 caractères au plus, sans commencer par un chiffre"
        )
    return name


# -- DuckDB side ---------------------------------------------------------------------------------


def postgres_extension_file() -> Path:
    """Path of the postgres extension binary shipped by ``duckdb-extension-postgres``."""
    try:
        return extension_file("postgres")
    except ExtensionError as err:
        raise PostgisError(str(err)) from None


def load_postgres(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's postgres extension, installing it from the local wheel when needed."""
    load_extension(con, "postgres", postgres_extension_file)


def _pg(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """``sql`` run on the server as one transaction (several statements allowed)."""
    con.execute(f"CALL postgres_execute({sql_literal(_ATTACHED)}, ?)", [sql])


def _pg_query(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(
        f"SELECT * FROM postgres_query({sql_literal(_ATTACHED)}, ?)", [sql]
    ).fetchall()


def _text(value: str) -> str:
    """A PostgreSQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _columns(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {source}").fetchall()]


def _copy_expression(name: str, kind: str) -> str:
    """The DuckDB expression that writes column ``name`` of the mart's type ``kind`` to
    PostgreSQL."""
    col = quote_identifier(name)
    if kind in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT") or kind.startswith("DECIMAL"):
        col = f"cast({col} as {kind})"  # (a masked count is a double in the published frame)
        return f"{col} as {quote_identifier(name)}"
    if kind.startswith("GEOMETRY"):
        return f"ST_AsWKB({col}) as {col}"  # bytea, made a PostGIS geometry on the server
    if kind == "HUGEINT":  # DuckDB's sums of integers: a PostgreSQL bigint, not a double
        return f"cast({col} as bigint) as {col}"
    if kind.startswith(("STRUCT", "MAP", "UNION")):
        return f"cast(to_json({col}) as json) as {col}"
    return col


def _geometry_type(con: duckdb.DuckDBPyConnection, source: str, column: str) -> str:
    """``MultiPolygon``, ``Point``... when every value has that type, else ``Geometry``."""
    kinds = {
        r[0]
        for r in con.execute(
            f"select distinct ST_GeometryType({quote_identifier(column)})::varchar from {source} "
            f"where {quote_identifier(column)} is not null"
        ).fetchall()
    }
    names = {
        "POINT": "Point",
        "LINESTRING": "LineString",
        "POLYGON": "Polygon",
        "MULTIPOINT": "MultiPoint",
        "MULTILINESTRING": "MultiLineString",
        "MULTIPOLYGON": "MultiPolygon",
    }
    if len(kinds) == 1 and (kind := kinds.pop().upper()) in names:
        return names[kind]
    if kinds and kinds <= {"POLYGON", "MULTIPOLYGON"}:
        return "MultiPolygon"  # promoted with ST_Multi on the server
    return "Geometry"


def _attach(con: duckdb.DuckDBPyConnection, url: str) -> None:
    load_postgres(con)
    try:
        con.execute(f"ATTACH {sql_literal(url)} AS {_ATTACHED} (TYPE postgres)")
    except duckdb.Error as err:
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        text = text.replace(url, hide_password(url))  # DuckDB's message quotes the URL
        reason = re.sub(r'^.*?Unable to connect to Postgres at "[^"]*":\s*', "", text)
        raise PostgisError(
            f"serveur PostgreSQL injoignable ({hide_password(url)}) : {reason}"
        ) from None


def _ensure_postgis(con: duckdb.DuckDBPyConnection) -> None:
    if _pg_query(con, "select 1 from pg_extension where extname = 'postgis'"):
        return
    try:
        _pg(con, "create extension if not exists postgis")
    except duckdb.Error as err:
        raise PostgisError(
            "extension PostGIS absente de la base et impossible à créer (un administrateur "
            f"doit lancer « create extension postgis ») : {_first_line(err)}"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    found = re.search(r"(ERROR|FATAL):\s+(.*)", text)  # PostgreSQL's own message
    if found:
        return found.group(2).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _copy_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: str,
    schema: str,
    descriptions: dict[str, tuple[str, dict[str, str]]],
    result: PostgisPublication,
) -> None:
    """One published mart into ``schema`` (the new one), with its geometries, comments and
    checked row count."""
    columns = _columns(con, source)
    # masking goes through pandas, whose counts come back as doubles: the mart's own types
    original = dict(_columns(con, f"marts.{quote_identifier(table)}"))
    columns = [(n, original.get(n, k)) for n, k in columns]
    target = f"{_ATTACHED}.{quote_identifier(schema)}.{quote_identifier(table)}"
    select = ", ".join(_copy_expression(n, k) for n, k in columns)
    con.execute(f"CREATE TABLE {target} AS SELECT {select} FROM {source}")
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    statements = []
    projected: dict[str, str] = {}
    for name, kind in columns:
        if not kind.startswith("GEOMETRY"):
            continue
        gtype = _geometry_type(con, source, name)
        col = quote_identifier(name)
        value = f"ST_SetSRID(ST_GeomFromWKB({col}), {SOURCE_SRID})"
        if gtype == "MultiPolygon":
            value = f"ST_Multi({value})"
        statements += [
            f"alter table {qualified} alter column {col} type geometry({gtype}, {TARGET_SRID}) "
            f"using ST_Transform({value}, {TARGET_SRID})",
            f"create index on {qualified} using gist ({col})",
        ]
        result.geometries[f"{table}.{name}"] = f"geometry({gtype}, {TARGET_SRID})"
        projected[name] = (
            f" Dans PostGIS : projetée en Lambert-93 (EPSG:{TARGET_SRID}), type {gtype}."
        )
    description, column_texts = descriptions.get(table, ("", {}))
    if description:
        statements.append(f"comment on table {qualified} is {_text(description)}")
    for name, _ in columns:
        text = column_texts.get(name) or (
            "Vrai quand un effectif de la ligne est masqué (secret statistique)"
            if name == "secret_statistique"
            else ""
        )
        text = (text + projected.get(name, "")).strip()
        if text:
            statements.append(
                f"comment on column {qualified}.{quote_identifier(name)} is {_text(text)}"
            )
    if statements:
        _pg(con, ";\n".join(statements))
    expected = con.execute(f"select count(*) from {source}").fetchone()[0]
    found = _pg_query(con, f"select count(*) from {qualified}")[0][0]
    if found != expected:
        raise PostgisError(
            f"{table} : {found} lignes écrites dans PostgreSQL pour {expected} dans l'entrepôt"
        )
    result.rows[table] = int(expected)


def _grant_and_swap(
    con: duckdb.DuckDBPyConnection, schema: str, new: str, role: str, note: str
) -> None:
    """Read-only role on the new schema, then the swap: one transaction."""
    old = f"{schema}_ancien"
    q_schema, q_new, q_old, q_role = map(quote_identifier, (schema, new, old, role))
    _pg(
        con,
        f"""
        do $$ begin
            if not exists (select 1 from pg_roles where rolname = {_text(role)}) then
                create role {q_role} nologin;
            end if;
        end $$;
        grant usage on schema {q_new} to {q_role};
        grant select on all tables in schema {q_new} to {q_role};
        comment on schema {q_new} is {_text(note)};
        set local lock_timeout = {_text(LOCK_TIMEOUT)};
        drop schema if exists {q_old} cascade;
        do $$ begin
            if exists (select 1 from pg_namespace where nspname = {_text(schema)}) then
                alter schema {q_schema} rename to {q_old};
            end if;
        end $$;
        alter schema {q_new} rename to {q_schema};
        drop schema if exists {q_old} cascade
        """,
    )


def publish_postgis(
    warehouse: duckdb.DuckDBPyConnection,
    url: str,
    schema: str = DEFAULT_SCHEMA,
    role: str = DEFAULT_ROLE,
    build: str | None = None,
    descriptions: dict[str, tuple[str, dict[str, str]]] | None = None,
    log=None,
) -> PostgisPublication:
    """Every mart of ``warehouse`` (a DuckDB connection with spatial loaded), as published,
    into ``schema`` of the PostgreSQL server at ``url`` (a libpq URL or ``key=value`` string;
    the password may come from ``PGPASSWORD`` or ``~/.pgpass``), atomically: see the module
    docstring. Raises :class:`PostgisError`; the published schema is then unchanged."""
    from pipelines.publication.secret import load_specs
    from pipelines.publication.tableurs import published

    started = time.perf_counter()
    check_name(schema, "schéma")
    check_name(role, "rôle")
    new = f"{schema}_nouveau"
    descriptions = mart_descriptions() if descriptions is None else descriptions
    result = PostgisPublication(schema)
    tables = sorted(tables_in(warehouse, "marts"))
    if not tables:
        raise PostgisError("aucun mart dans l'entrepôt : rien à publier (observatoire build)")
    _attach(warehouse, url)
    try:
        _ensure_postgis(warehouse)
        _pg(warehouse, f"drop schema if exists {quote_identifier(new)} cascade")
        warehouse.execute(f"CREATE SCHEMA {_ATTACHED}.{quote_identifier(new)}")
        try:
            specs = load_specs()
            with ExitStack() as stack:
                for table in tables:
                    source = stack.enter_context(published(warehouse, table, specs))
                    _copy_table(warehouse, table, source, new, descriptions, result)
                    if log:
                        log.info(f"PostGIS {new}.{table} : {result.rows[table]} lignes")
            note = (
                "Marts de l'observatoire de la politique de la ville (secret statistique "
                f"appliqué), publiés le {datetime.now():%d/%m/%Y à %H:%M}"
                + (f", construction {build}" if build else "")
            )
            _grant_and_swap(warehouse, schema, new, role, note)
        except BaseException as err:
            try:  # the published schema was never touched: only the new one goes
                _pg(warehouse, f"drop schema if exists {quote_identifier(new)} cascade")
            except Exception:  # noqa: BLE001,S110 - the server may be what failed
                pass
            if isinstance(err, PostgisError) or not isinstance(err, Exception):
                raise
            raise PostgisError(
                f"publication PostgreSQL interrompue, schéma {schema} inchangé : {_first_line(err)}"
            ) from err
    finally:
        try:
            warehouse.execute(f"DETACH {_ATTACHED}")
        except duckdb.Error:
            pass
    result.seconds = time.perf_counter() - started
    return result


def publish_warehouse(
    warehouse_path: Path,
    url: str,
    schema: str = DEFAULT_SCHEMA,
    role: str = DEFAULT_ROLE,
    log=None,
) -> PostgisPublication:
    """:func:`publish_postgis` of the published warehouse file (attached read-only)."""
    from pipelines.duckdb_utils import load_spatial
    from pipelines.operations import CURRENT, publications_dir

    if not warehouse_path.is_file():
        raise PostgisError(f"{warehouse_path} : entrepôt introuvable (observatoire build)")
    link = publications_dir(warehouse_path) / CURRENT
    build = os.readlink(link) if link.is_symlink() else None
    # the warehouse attached read-only to an in-memory database: DuckDB's transactions on a
    # read-only connection are read-only on the PostgreSQL side too
    con = duckdb.connect()
    try:
        load_spatial(con)
        con.execute(f"ATTACH {sql_literal(str(warehouse_path))} AS entrepot (READ_ONLY)")
        con.execute("USE entrepot")
        return publish_postgis(con, url, schema, role, build=build, log=log)
    finally:
        con.close()


def settings_from_env() -> tuple[str, str, str] | None:
    """(url, schema, role) of the build's publication to PostgreSQL, or None when
    ``OBSERVATOIRE_POSTGRES_URL`` is not set."""
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        return None
    return (
        url,
        os.environ.get(ENV_SCHEMA, "").strip() or DEFAULT_SCHEMA,
        os.environ.get(ENV_ROLE, "").strip() or DEFAULT_ROLE,
    )
