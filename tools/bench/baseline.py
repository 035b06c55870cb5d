"""The plain DuckDB baseline: one SQL script computing the four headline marts from the raw
files of the benchmark, with none of the project's checks, rejects, référentiels or exports.

- ``taux_emploi``: taux d'emploi (``TX_TOT_EMPL`` of the IPRO base) by QPV and millésime;
- ``depenses``: granted amounts by territory × year × orientation × financeur (as written);
- ``beneficiaires``: women, men and unknown by QPV of residence (bilans);
- ``lieux``: places per QPV (point in polygon on the contours, made valid).

``python -m tools.bench.baseline RAW_DIR OUT.duckdb`` runs it and prints one JSON line (rows
per result, seconds); the runner measures its wall time and memory from outside.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

AMOUNT = (
    "try_cast(replace(replace(replace(replace({c}, '€', ''), ' ', ''), chr(160), ''), ',', '.') "
    "as decimal(18, 2))"
)


def _columns(names: list[str]) -> str:
    """A ``columns`` struct of VARCHAR columns (the dialect is given: no sniffing per file)."""
    return "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in (x.replace("'", "''") for x in names)) + "}"


def script(raw_dir: Path) -> str:
    from tools.bench.generate import BILAN_HEADER, PROGRAMMATION_HEADER

    raw = str(raw_dir).replace("'", "''")
    contours = str(next((raw_dir / "sig_ville").glob("*.geojson"))).replace("'", "''")
    accorde = AMOUNT.format(c='"Montant accordé"')
    return f"""
create or replace table taux_emploi as
select
    trim(CODGEO) as code_qpv,
    cast(regexp_extract(filename, 'IPRO_(\\d{{4}})', 1) as integer) as millesime,
    try_cast(replace(replace(TX_TOT_EMPL, ' ', ''), ',', '.') as double) as taux_emploi
from read_csv('{raw}/insee/IPRO_*.csv', delim = ';', header = true, all_varchar = true,
    filename = true, null_padding = true)
where CODGEO is not null;

create or replace table depenses as
select
    Territoire as territoire,
    cast(Exercice as integer) as annee,
    Orientation as orientation,
    Financeur as financeur,
    sum({accorde}) as montant_accorde,
    count(*) as nb_lignes
from read_csv('{raw}/programmations/*.csv', delim = ';', header = true, auto_detect = false,
    quote = '"', columns = {_columns(PROGRAMMATION_HEADER)})
group by all;

create or replace table beneficiaires as
select
    "QPV de résidence" as quartier,
    sum(cast(Femmes as bigint)) as femmes,
    sum(cast(Hommes as bigint)) as hommes,
    sum(cast("Sexe non renseigné" as bigint)) as sexe_non_renseigne
from read_csv('{raw}/bilans/*.csv', delim = ';', header = true, auto_detect = false,
    quote = '"', columns = {_columns(BILAN_HEADER)})
group by all;

create or replace table qpv as
select code_qp as code_qpv, st_makevalid(geom) as geom
from st_read('{contours}');

create or replace table lieux as
with points as (
    select identifiant, st_point(lon, lat) as geom
    from read_csv('{raw}/lieux/*.csv', delim = ';', header = true,
        auto_detect = false, columns = {{'identifiant': 'varchar', 'lon': 'double',
        'lat': 'double'}})
)
select q.code_qpv, count(*) as nb_lieux
from points p join qpv q on st_intersects(q.geom, p.geom)
group by all;
"""


RESULTS = ("taux_emploi", "depenses", "beneficiaires", "lieux")


def run(raw_dir: Path, out: Path) -> dict:
    import duckdb

    out.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(out))
    con.execute("set enable_progress_bar = false")
    try:
        con.execute("load spatial")
    except duckdb.Error:
        con.execute("install spatial")
        con.execute("load spatial")
    try:
        con.execute(script(raw_dir))
        rows = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in RESULTS}
        totals = {
            "montant_accorde": float(
                con.execute("select coalesce(sum(montant_accorde), 0) from depenses").fetchone()[0]
            ),
            "lieux_en_qpv": int(
                con.execute("select coalesce(sum(nb_lieux), 0) from lieux").fetchone()[0]
            ),
            "beneficiaires_femmes_qpv": int(
                con.execute(
                    "select coalesce(sum(femmes), 0) from beneficiaires where quartier like 'QN%'"
                ).fetchone()[0]
            ),
        }
    finally:
        con.close()
    return {"lignes": rows, "totaux": totals, "s": round(time.perf_counter() - started, 2)}


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]), Path(sys.argv[2]))))
