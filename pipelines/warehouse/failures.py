"""Why a build failed, in French: the failing dbt tests explained by the raw files and lines
that caused them (:func:`explain_test_failures`), printed by the CLI instead of dbt test names."""

import json
import os
from pathlib import Path

import duckdb

from pipelines.duckdb_utils import connect, quote_identifier, sql_literal
from pipelines.settings import Paths

#: Columns naming the raw file and line a row comes from, by preference.
ORIGIN_COLUMNS = (("source_fichier", "source_ligne"), ("fichier", "ligne"))


def _relation(node: dict) -> str:
    return (
        f"{quote_identifier(node['schema'])}.{quote_identifier(node.get('alias') or node['name'])}"
    )


def _meta_message(node: dict) -> str | None:
    return (node.get("config", {}).get("meta") or {}).get("message")


def _sql_text(value) -> str:
    """A YAML value as DuckDB casts the column's value to text (``true``, not ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _test_checks(node: dict, nodes: dict, columns: list[str]) -> list[tuple[str, str, str]]:
    """(column, what is wrong in French, SQL predicate of its failing rows in ``_m``) for a
    generic test of the model's columns; [] for another test (its own SQL is run instead)."""
    meta = node.get("test_metadata") or {}
    kwargs, name = meta.get("kwargs") or {}, meta.get("name")
    if name == "colonnes_renseignees":
        wanted = kwargs.get("colonnes")
    elif name == "valeurs_admises":
        wanted = list(kwargs.get("valeurs") or {})
    else:
        wanted = [kwargs.get("column_name")]
    if not wanted or not all(c in columns for c in wanted):
        return []
    out = []
    for column in wanted:
        q = quote_identifier(column)
        if name in ("not_null", "colonnes_renseignees"):
            out.append((column, f"colonne « {column} » vide", f"{q} is null"))
        elif name == "unique":
            dup = f"{q} in (select {q} from _m group by 1 having count(*) > 1)"
            out.append((column, f"« {column} » en double", dup))
        elif name in ("accepted_values", "valeurs_admises"):
            listed = kwargs["valeurs"][column] if name == "valeurs_admises" else kwargs["values"]
            values = [_sql_text(v) for v in listed or []]
            admitted = ", ".join(sql_literal(v) for v in values) or "NULL"
            what = f"« {column} » hors des valeurs admises ({', '.join(values[:8])})"
            out.append((column, what, f"cast({q} as varchar) not in ({admitted})"))
        elif name == "relationships" and kwargs.get("field"):
            attached = node.get("attached_node")
            parents = [nodes.get(u) for u in node["depends_on"]["nodes"] if u != attached]
            if len(parents) != 1 or not parents[0]:
                return []
            f = quote_identifier(kwargs["field"])
            what = f"« {column} » absent de {parents[0]['name']} (colonne {kwargs['field']})"
            known = f"select {f} from {_relation(parents[0])} where {f} is not null"
            out.append((column, what, f"{q} is not null and {q} not in ({known})"))
        else:
            return []
    return out


def _origins(rows: list[tuple], raw_dir: Path | None) -> str:
    """``programmations/x.csv lignes 3, 4 (« v ») ; y.csv ligne 2`` from (file, line, value)."""
    by_file: dict[str, tuple[list, list]] = {}
    for fichier, ligne, valeur in rows:
        name = str(fichier)
        if raw_dir is not None and name.startswith(str(raw_dir) + os.sep):
            name = name[len(str(raw_dir)) + 1 :]
        lines, values = by_file.setdefault(name, ([], []))
        if ligne is not None and ligne not in lines:
            lines.append(ligne)
        if valeur is not None and str(valeur) not in values:
            values.append(str(valeur))
    parts = []
    for name, (lines, values) in list(by_file.items())[:4]:
        more = ", ..." if len(lines) > 8 else ""
        if lines:
            name += (
                (" lignes " if len(lines) > 1 else " ligne ")
                + ", ".join(str(n) for n in sorted(lines)[:8])
                + more
            )
        if values:
            shown = ", ".join(f"« {v} »" for v in values[:4])
            name += f" ({shown}{', ...' if len(values) > 4 else ''})"
        parts.append(name)
    if len(by_file) > 4:
        parts.append(f"et {len(by_file) - 4} autre(s) fichier(s)")
    return " ; ".join(parts)


def explain_test_failures(paths: Paths, limit: int = 8) -> list[str]:
    """One French line per failed dbt test (severity error) of the build's last dbt run: what
    is wrong (the test's ``meta.message``, else that of a failing test of the same column,
    such as a staging warning giving the cause), and the raw files, lines and values of the
    failing rows where the model keeps them (``source_fichier``/``source_ligne`` or
    ``fichier``/``ligne``). Read from dbt's run results in the staging folder and from the
    staging warehouse, after the run; lines naming files first; [] when nothing can be read.
    """
    target = paths.staging_dir / "dbt" / "target"
    try:
        results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
        nodes = json.loads((target / "manifest.json").read_text(encoding="utf-8"))["nodes"]
        con = connect(paths.staging_warehouse, read_only=True)
    except (OSError, ValueError, KeyError, duckdb.Error):
        return []
    failed = [
        (r, nodes.get(r["unique_id"]) or {"name": r["unique_id"]})
        for r in results
        if r["unique_id"].startswith("test.") and r["status"] in ("fail", "warn", "error")
    ]
    hints: dict[str, str] = {}
    for _, node in failed:
        kwargs = (node.get("test_metadata") or {}).get("kwargs") or {}
        for column in kwargs.get("colonnes") or [kwargs.get("column_name")]:
            if _meta_message(node) and column:
                hints.setdefault(column, _meta_message(node))
    lines: list[tuple[int, str]] = []
    try:
        for result, node in failed:
            model = nodes.get(node.get("attached_node") or "") or {}
            label = model.get("name") or node["name"]
            if result["status"] == "error":
                error = "".join((result.get("message") or "").strip().splitlines()[:1])[:200]
                lines.append((1, f"{label}: contrôle {node['name']} en erreur ({error})"))
            elif result["status"] == "fail":
                try:
                    lines.extend(_explain(con, node, model, nodes, result, hints, paths.raw_dir))
                except duckdb.Error:
                    text = _meta_message(node) or f"contrôle {node['name']} en échec"
                    lines.append((1, f"{label}: {text}"))
    finally:
        con.close()
    lines.sort(key=lambda item: item[0])
    out = [text for _, text in lines[:limit]]
    if len(lines) > limit:
        out.append(f"... et {len(lines) - limit} autre(s) contrôle(s) en échec")
    return out


def _explain(con, node, model, nodes, result, hints, raw_dir) -> list[tuple[int, str]]:
    """(0 when files are named, else 1, French line) for each failing part of one test."""
    label = model.get("name") or node["name"]
    checks, columns = [], []
    if model:
        columns = [r[0] for r in con.execute(f"describe {_relation(model)}").fetchall()]
        checks = _test_checks(node, nodes, columns)
    out = []
    if not checks:  # a singular test (or another generic one): its own SQL, its own columns
        found = con.execute(f"select * from ({result.get('compiled_code')}\n) limit 200")
        names = [d[0] for d in found.description]
        origin = next((o for o in ORIGIN_COLUMNS if set(o) <= set(names)), None)
        text = _meta_message(node) or f"contrôle {node['name']} en échec"
        text = f"{label}: {text} ({result.get('failures')} ligne(s))"
        if origin is None:
            return [(1, text)]
        i, j = names.index(origin[0]), names.index(origin[1])
        rows = [(r[i], r[j], None) for r in found.fetchall()]
        return [(0, f"{text}: {_origins(rows, raw_dir)}")]
    where = node.get("config", {}).get("where")
    con.execute(
        f"create or replace temp view _m as select * from {_relation(model)}"
        + (f" where {where}" if where else "")
    )
    origin = next((o for o in ORIGIN_COLUMNS if set(o) <= set(columns)), None)
    for column, what, predicate in checks:
        n = con.execute(f"select count(*) from _m where {predicate}").fetchone()[0]
        if not n:
            continue
        hint = _meta_message(node) or hints.get(column)
        text = f"{label}: {what}" + (f" — {hint}" if hint else "") + f" ({n} ligne(s))"
        if origin is None:
            out.append((1, f"{text} ; cette table ne garde pas le fichier d'origine des lignes"))
            continue
        f, ln, q = (quote_identifier(c) for c in (*origin, column))
        rows = con.execute(
            f"select {f}, {ln}, cast({q} as varchar) from _m where {predicate} "
            "order by 1, 2 limit 200"
        ).fetchall()
        out.append((0, f"{text}: {_origins(rows, raw_dir)}"))
    return out
