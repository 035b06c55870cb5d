"""DuckDB connections with the spatial extension installed offline from its PyPI wheel."""

from __future__ import annotations

from pathlib import Path

import duckdb

_SPATIAL_READY: set[str] = set()


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal (``'`` doubled), for the statements that take no bound
    parameter (``INSTALL``, ``LOAD``, ``ATTACH``): a path such as ``/srv/l'observation`` is
    read as one literal, never as SQL."""
    return "'" + str(text).replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (``"`` doubled): table names never reach SQL bare."""
    return '"' + str(name).replace('"', '""') + '"'


class ExtensionError(RuntimeError):
    """A DuckDB extension's wheel (``duckdb-extension-<name>``) is missing or holds no binary
    for this DuckDB."""


def extension_file(name: str) -> Path:
    """Path of the ``name`` extension binary shipped by the wheel ``duckdb-extension-<name>``
    (the one built for this DuckDB's version when there are several)."""
    import importlib

    try:
        wheel = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise ExtensionError(
            f"paquet duckdb-extension-{name} absent : make install (ou pip install -c "
            "constraints.txt -e .)"
        ) from None
    base = Path(wheel.__file__).parent / "extensions"
    candidates = sorted(base.glob(f"v{duckdb.__version__}/*.duckdb_extension")) or sorted(
        base.glob(f"*/{name}*.duckdb_extension")
    )
    if not candidates:
        raise ExtensionError(
            f"extension {name} introuvable sous {base} : réinstaller duckdb-extension-{name} "
            f"à la version de duckdb ({duckdb.__version__})"
        )
    return candidates[-1]


def load_extension(con: duckdb.DuckDBPyConnection, name: str, binary) -> None:
    """Load the extension ``name``, installing it first from ``binary()`` (its file in the
    local wheel) if DuckDB does not have it yet.

    ``INSTALL '<file>'`` copies the binary into DuckDB's extension directory, so that later
    ``LOAD <name>`` (and the dbt profile's ``extensions: [spatial]``) work with no network.
    ``INSTALL`` takes no bound parameter: the path is a quoted literal (:func:`sql_literal`), so
    that a project installed under ``/home/l'équipe/`` works.
    """
    try:
        con.execute(f"LOAD {name}")
        return
    except duckdb.Error:
        pass
    con.execute("INSTALL " + sql_literal(str(binary())))
    con.execute(f"LOAD {name}")


def spatial_extension_file() -> Path:
    """Path of the spatial extension binary shipped by ``duckdb-extension-spatial``."""
    return extension_file("spatial")


def load_spatial(con: duckdb.DuckDBPyConnection) -> None:
    """Load spatial, installing it from the local wheel first (:func:`load_extension`)."""
    # looked up when called: a test replaces spatial_extension_file
    load_extension(con, "spatial", lambda: spatial_extension_file())


def ensure_spatial_installed() -> None:
    """Install the spatial extension once per process (used before dbt runs)."""
    key = duckdb.__version__
    if key in _SPATIAL_READY:
        return
    con = duckdb.connect()
    try:
        load_spatial(con)
    finally:
        con.close()
    _SPATIAL_READY.add(key)


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with spatial loaded."""
    con = duckdb.connect(str(path), read_only=read_only)
    load_spatial(con)
    return con


def tables_in(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    """Names of the tables (and views) of ``schema`` in the connected database."""
    return {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [schema]
        ).fetchall()
    }
