"""Compare two warehouses table by table: ``python tools/compare_warehouses.py OLD NEW``.

Every table (and view) of the ``raw`` and ``marts`` schemas of either file is compared:

* the same tables on both sides;
* the same columns (names, order and types);
* the same rows as multisets (order-independent, duplicates counted, NULLs equal), computed
  with ``EXCEPT ALL`` both ways; geometry columns are compared as WKB.

Columns that legitimately differ between two builds of the same files are left out of the row
comparison (their presence and type are still compared): by default ``horodatage`` (the load
timestamp of ``raw.ingestion_log``). ``--ignore NAME`` adds a column name (any table) or a
``schema.table.column``. ``--replace OLD=NEW`` rewrites a path prefix in the text columns of the
old warehouse before comparing (builds from two copies of the raw dir).

Prints a JSON summary (per table: rows on each side, rows only in OLD / only in NEW, a few
examples) and exits 1 when anything differs, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

SCHEMAS = ("raw", "marts")
DEFAULT_IGNORED = ("horodatage",)
EXAMPLES = 3


def _load_spatial(con: duckdb.DuckDBPyConnection) -> None:
    try:
        from pipelines.duckdb_utils import load_spatial

        load_spatial(con)
    except Exception:  # noqa: BLE001 - run outside the project: try the installed extension
        con.execute("LOAD spatial")


def _tables(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema in ('raw', 'marts') "
        "order by table_schema, table_name, ordinal_position",
        [db],
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, kind in rows:
        out.setdefault(f"{schema}.{table}", []).append((column, kind))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _select(
    db: str, table: str, columns: list[tuple[str, str]], replace: list[tuple[str, str]]
) -> str:
    schema, name = table.split(".", 1)
    parts = []
    for column, kind in columns:
        ref = _quote(column)
        if kind.upper().startswith("GEOMETRY"):
            parts.append(f"ST_AsWKB({ref}) AS {ref}")
        elif replace and kind.upper() == "VARCHAR":
            expr = ref
            for old, new in replace:
                expr = f"replace({expr}, {_literal(old)}, {_literal(new)})"
            parts.append(f"{expr} AS {ref}")
        else:
            parts.append(ref)
    select = ", ".join(parts) if parts else "1 AS _vide"
    return f"SELECT {select} FROM {_quote(db)}.{_quote(schema)}.{_quote(name)}"


def compare(
    old: Path, new: Path, ignored: set[str], replace: list[tuple[str, str]]
) -> dict[str, object]:
    """The comparison summary of two warehouse files (see the module docstring)."""
    con = duckdb.connect()
    _load_spatial(con)
    # ATTACH takes no bound parameter: the paths are quoted literals (an apostrophe is doubled)
    con.execute(f"ATTACH {_literal(str(old))} AS ancien (READ_ONLY)")
    con.execute(f"ATTACH {_literal(str(new))} AS nouveau (READ_ONLY)")
    left, right = _tables(con, "ancien"), _tables(con, "nouveau")
    tables: dict[str, dict[str, object]] = {}
    differences = 0
    for table in sorted(set(left) | set(right)):
        entry: dict[str, object] = {}
        tables[table] = entry
        if table not in left or table not in right:
            entry["statut"] = "absente de NEW" if table in left else "absente de OLD"
            differences += 1
            continue
        if left[table] != right[table]:
            entry["statut"] = "colonnes différentes"
            entry["colonnes_old"] = left[table]
            entry["colonnes_new"] = right[table]
            differences += 1
            continue
        skipped = [c for c, _ in left[table] if c in ignored or f"{table}.{c}" in ignored]
        columns = [(c, k) for c, k in left[table] if c not in skipped]
        a = _select("ancien", table, columns, replace)
        b = _select("nouveau", table, columns, [])
        n_old = con.execute(f"SELECT count(*) FROM ({a})").fetchone()[0]
        n_new = con.execute(f"SELECT count(*) FROM ({b})").fetchone()[0]
        only_old = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0]
        only_new = con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchone()[0]
        entry.update(lignes_old=n_old, lignes_new=n_new)
        if skipped:
            entry["colonnes_ignorees"] = skipped
        if only_old or only_new:
            differences += 1
            entry["statut"] = "lignes différentes"
            entry["seulement_old"] = only_old
            entry["seulement_new"] = only_new
            names = [c for c, _ in columns]
            for label, query in (
                ("exemples_old", f"{a} EXCEPT ALL {b}"),
                ("exemples_new", f"{b} EXCEPT ALL {a}"),
            ):
                rows = con.execute(f"SELECT * FROM ({query}) LIMIT {EXAMPLES}").fetchall()
                entry[label] = [
                    {
                        n: (v.hex()[:40] if isinstance(v, bytes | bytearray) else str(v))
                        for n, v in zip(names, row, strict=True)
                    }
                    for row in rows
                ]
        else:
            entry["statut"] = "identique"
    con.close()
    return {
        "old": str(old),
        "new": str(new),
        "tables": len(tables),
        "identiques": sum(1 for t in tables.values() if t.get("statut") == "identique"),
        "differences": differences,
        "detail": tables,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--ignore", action="append", default=[], help="column or schema.table.col")
    parser.add_argument("--replace", action="append", default=[], help="OLD_PREFIX=NEW_PREFIX")
    args = parser.parse_args(argv)
    for path in (args.old, args.new):
        if not path.is_file():
            parser.error(f"{path}: fichier introuvable")
    replace = [tuple(r.split("=", 1)) for r in args.replace]
    summary = compare(args.old, args.new, {*DEFAULT_IGNORED, *args.ignore}, replace)
    print(json.dumps(summary, ensure_ascii=False, indent=1, default=str))
    return 1 if summary["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
