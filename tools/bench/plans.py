"""``python -m tools.bench.plans <entrepôt.duckdb>``: time and join operators of the
rule-evaluation models, at several shares of the programmation volume.

The models (:data:`RULE_MODELS`) are compiled by ``dbt compile`` against an empty throwaway
warehouse, then each share is computed in an in-memory DuckDB: the tables the models read are
copied from the given warehouse (read-only), those of the programmation (a ``territoire`` and a
``dossier`` column) restricted to a share of the actions (``hash(territoire, dossier)``; with
``--echantillon territoires``, the tables with a ``territoire`` column to a share of the
territories), and every model is created in dependency order with DuckDB's JSON profiling on.
The JSON printed gives, per share and model: its wall time (the fastest of ``--repetitions``
runs) and its CPU time (user + system of the process: every DuckDB thread; the profiler's own
CPU figure adds up the operators' timers, up to twice as much under load), the rows it wrote
and every join operator of its plan (operator, join type, condition, time, rows in and out);
the operators that compare every pair of rows (:data:`FORBIDDEN`) are listed apart
(``interdits``), with the growth exponent of each model's time between the smallest and the
largest share (1 for a time that grows as its input, 2 for one that grows as its square). At
the share 1 the recomputed tables are compared with the warehouse's (rows present on one side
only, ``ecart_entrepot``).
"""

from __future__ import annotations

import json
import math
import re
import resource
import tempfile
import time
from pathlib import Path

import click
import duckdb

#: the rule-evaluation models: the typed rules, their evaluation per action and per territory
#: year, the granted subsidies published under conditions, and the marts built on them
RULE_MODELS = (
    "int_suivi__regles",
    "int_suivi__controles_actions",
    "int_suivi__controles_territoire",
    "int_suivi__subventions",
    "controles_programmation",
    "regles_non_verifiables",
    "subventions_scdl",
    "egalite_marqueur",
)
#: join operators that compare every pair of rows of their two sides (no hash on a key)
FORBIDDEN = ("NESTED_LOOP_JOIN", "BLOCKWISE_NL_JOIN", "PIECEWISE_MERGE_JOIN", "CROSS_PRODUCT")
JOIN = re.compile(r"JOIN|CROSS_PRODUCT")
RELATION = re.compile(r'"(\w+)"\."(\w+)"\."(\w+)"')


def compile_models(models: tuple[str, ...], folder: Path) -> dict[str, str]:
    """The compiled SQL of each model (``dbt compile`` on an empty warehouse in ``folder``)."""
    from pipelines.duckdb_utils import ensure_spatial_installed
    from pipelines.warehouse.dbt import run_dbt

    ensure_spatial_installed()
    target = folder / "target"
    done = run_dbt(folder / "warehouse.duckdb", folder, "compile", "--select", *models)
    if done.returncode != 0:
        raise click.ClickException(f"dbt compile a échoué :\n{done.stdout[-3000:]}")
    out = {}
    for model in models:
        found = sorted((target / "compiled").rglob(f"models/**/{model}.sql"))
        if not found:
            raise click.ClickException(f"modèle {model} introuvable après dbt compile")
        out[model] = found[0].read_text(encoding="utf-8")
    return out


def dependency_order(sqls: dict[str, str]) -> tuple[list[str], dict[str, tuple[str, str, str]]]:
    """The models in an order where each comes after the models it reads, and the relation
    (catalog, schema, table) of each table read that is not one of them."""
    produced: dict[str, tuple[str, str, str]] = {}
    reads: dict[str, set[tuple[str, str, str]]] = {}
    for model, sql in sqls.items():
        reads[model] = set(RELATION.findall(sql))
    for relations in reads.values():
        for relation in relations:
            if relation[2] in sqls:
                produced[relation[2]] = relation
    order: list[str] = []
    pending = dict(reads)
    while pending:
        ready = [
            m
            for m, rel in pending.items()
            if all(r[2] not in pending or r[2] == m for r in rel if r[2] in sqls)
        ]
        if not ready:
            raise click.ClickException(f"dépendances circulaires entre {sorted(pending)}")
        for model in sorted(ready, key=list(sqls).index):
            order.append(model)
            del pending[model]
    inputs = {r[2]: r for relations in reads.values() for r in relations if r[2] not in sqls}
    return order, inputs


def _joins(node: dict) -> list[dict]:
    out = []
    kind = node.get("operator_type") or ""
    if JOIN.search(kind):
        extra = node.get("extra_info") or {}
        out.append(
            {
                "operateur": kind,
                "type": extra.get("Join Type"),
                "condition": extra.get("Conditions") or extra.get("Condition"),
                "duree_s": round(node.get("operator_timing") or 0.0, 4),
                "lignes": node.get("operator_cardinality"),
                "lignes_entree": [
                    c.get("operator_cardinality") for c in node.get("children") or []
                ],
            }
        )
    for child in node.get("children") or []:
        out.extend(_joins(child))
    return out


def _where(columns: set[str], fraction: float, by: str) -> str:
    if fraction >= 1:
        return ""
    key = {"actions": ("territoire", "dossier"), "territoires": ("territoire",)}[by]
    if not set(key) <= columns:
        return ""
    return f" where hash({', '.join(key)}, 'echantillon') % 1000 < {round(fraction * 1000)}"


def measure_share(
    warehouse: Path,
    sqls: dict[str, str],
    fraction: float,
    by: str = "actions",
    compare: bool = False,
    repetitions: int = 1,
) -> dict:
    """Recompute every model on ``fraction`` of the volume; time (the fastest of
    ``repetitions`` runs), rows and joins of each."""
    order, inputs = dependency_order(sqls)
    con = duckdb.connect()
    profile = Path(tempfile.mkstemp(suffix=".json", prefix="plan-")[1])
    try:
        con.execute(f"attach '{warehouse}' as src (read_only)")
        catalogs = {r[0] for r in inputs.values()}
        for catalog in catalogs:
            con.execute(f"attach ':memory:' as \"{catalog}\"")
        volume = {}
        for table, (catalog, schema, _) in sorted(inputs.items()):
            columns = {
                r[0]
                for r in con.execute(
                    "select column_name from duckdb_columns() where database_name = 'src' "
                    "and schema_name = ? and table_name = ?",
                    [schema, table],
                ).fetchall()
            }
            if not columns:
                raise click.ClickException(f"table {schema}.{table} absente de {warehouse}")
            con.execute(f'create schema if not exists "{catalog}"."{schema}"')
            con.execute(
                f'create table "{catalog}"."{schema}"."{table}" as select * from '
                f'src."{schema}"."{table}"{_where(columns, fraction, by)}'
            )
            if table in ("int_suivi__actions", "int_suivi__actions_financeurs"):
                volume[table] = con.execute(
                    f'select count(*) from "{catalog}"."{schema}"."{table}"'
                ).fetchone()[0]
        models = {}
        for model in order:
            catalog, schema, _ = next(
                (r for rels in map(RELATION.findall, sqls.values()) for r in rels if r[2] == model),
                (next(iter(catalogs)), _schema_of(con, model), model),
            )
            con.execute(f'create schema if not exists "{catalog}"."{schema}"')
            walls, plan, cpu = [], {}, 0.0
            for _ in range(repetitions):
                con.execute("set enable_profiling = 'json'")
                con.execute(f"set profiling_output = '{profile}'")
                start, start_cpu = time.perf_counter(), _process_cpu()
                con.execute(
                    f'create or replace table "{catalog}"."{schema}"."{model}" as {sqls[model]}'
                )
                walls.append(time.perf_counter() - start)
                spent = _process_cpu() - start_cpu
                con.execute("pragma disable_profiling")
                if walls[-1] == min(walls):  # the plan and CPU time of the fastest run
                    plan, cpu = json.loads(profile.read_text(encoding="utf-8")), spent
            wall = min(walls)
            joins = _joins(plan)
            rows = con.execute(f'select count(*) from "{catalog}"."{schema}"."{model}"').fetchone()
            entry = {
                "duree_s": round(wall, 4),
                "durees_s": [round(w, 4) for w in walls],
                "cpu_s": round(cpu, 4),
                "lignes": rows[0],
                "jointures": joins,
                "interdits": [j for j in joins if j["operateur"] in FORBIDDEN],
            }
            if compare and fraction >= 1:
                entry["ecart_entrepot"] = None
            if compare and fraction >= 1 and _in_source(con, schema, model):
                entry["ecart_entrepot"] = con.execute(
                    f'select count(*) from ((select * from "{catalog}"."{schema}"."{model}" '
                    f'except all select * from src."{schema}"."{model}") union all '
                    f'(select * from src."{schema}"."{model}" except all '
                    f'select * from "{catalog}"."{schema}"."{model}"))'
                ).fetchone()[0]
            models[model] = entry
        threads = con.execute("select current_setting('threads')").fetchone()[0]
    finally:
        con.close()
        profile.unlink(missing_ok=True)
    return {"part": fraction, "fils": threads, "volume": volume, "modeles": models}


def _process_cpu() -> float:
    """CPU time (user + system) of this process, all of DuckDB's threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _in_source(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where database_name = 'src' "
            "and schema_name = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _schema_of(con: duckdb.DuckDBPyConnection, model: str) -> str:
    found = con.execute(
        "select schema_name from duckdb_tables() where database_name = 'src' and table_name = ?",
        [model],
    ).fetchone()
    return found[0] if found else "marts"


def growth(shares: list[dict], measure: str = "duree_s") -> dict[str, float | None]:
    """Per model, the exponent k of time ~ volume^k between the smallest and the largest share
    (volume: rows of int_suivi__actions_financeurs; time: ``measure``, the wall time or the
    CPU time of the process); None when a time is under 10 ms."""
    if len(shares) < 2:
        return {}
    low, high = shares[0], shares[-1]
    key = "int_suivi__actions_financeurs"
    n0, n1 = low["volume"].get(key), high["volume"].get(key)
    out: dict[str, float | None] = {}
    for model in high["modeles"]:
        t0, t1 = low["modeles"][model][measure], high["modeles"][model][measure]
        if not n0 or not n1 or n1 <= n0 or min(t0, t1) < 0.01:
            out[model] = None
        else:
            out[model] = round(math.log(t1 / t0) / math.log(n1 / n0), 2)
    return out


def report(
    warehouse: Path,
    fractions: list[float],
    by: str = "actions",
    models: tuple[str, ...] = RULE_MODELS,
    compare: bool = True,
    repetitions: int = 1,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="plans-") as tmp:
        sqls = compile_models(models, Path(tmp))
    shares = [
        measure_share(warehouse, sqls, f, by, compare, repetitions) for f in sorted(fractions)
    ]
    forbidden = [
        {"part": s["part"], "modele": m, **j}
        for s in shares
        for m, entry in s["modeles"].items()
        for j in entry["interdits"]
    ]
    return {
        "entrepot": str(warehouse),
        "duckdb": duckdb.__version__,
        "echantillon": by,
        "parts": shares,
        "exposant_croissance": growth(shares),
        "exposant_croissance_cpu": growth(shares, "cpu_s"),
        "interdits": forbidden,
    }


@click.command(
    help="Plans des modèles d'évaluation des règles : pour chaque part du volume (--parts), "
    "durée, lignes et opérateurs de jointure de chaque modèle, recalculé en mémoire à partir "
    "des tables de l'entrepôt (lu seulement). Imprime un JSON ; code 1 si un opérateur qui "
    "compare toutes les paires de lignes (boucle imbriquée) apparaît."
)
@click.argument("entrepot", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--parts",
    default="1",
    show_default=True,
    help="Parts du volume, séparées par des virgules (0.1,0.3,1).",
)
@click.option(
    "--echantillon",
    type=click.Choice(["actions", "territoires"]),
    default="actions",
    show_default=True,
    help="Tirer une part des actions de chaque territoire, ou une part des territoires.",
)
@click.option(
    "--modele",
    "models",
    multiple=True,
    help="Modèle à mesurer (répétable ; défaut : tous les modèles d'évaluation des règles).",
)
@click.option(
    "--repetitions",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Calculs de chaque modèle par part ; la durée retenue est la plus courte.",
)
@click.option("--sortie", type=click.Path(path_type=Path, dir_okay=False), default=None)
def main(
    entrepot: Path,
    parts: str,
    echantillon: str,
    models: tuple[str, ...],
    repetitions: int,
    sortie: Path | None,
) -> None:
    try:
        fractions = [float(p) for p in parts.split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"« {parts} » : des nombres séparés par des virgules") from None
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise click.BadParameter(f"« {parts} » : des parts entre 0 (exclu) et 1")
    result = report(
        entrepot.resolve(), fractions, echantillon, models or RULE_MODELS, True, repetitions
    )
    text = json.dumps(result, ensure_ascii=False, indent=1)
    if sortie:
        sortie.write_text(text + "\n", encoding="utf-8")
    click.echo(text)
    if result["interdits"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
