"""Write ``marts.subventions_scdl`` as the CSV files a collectivité publishes.

The OpenDataFrance SCDL « subventions » schema, version 2.1.0 (schema.data.gouv.fr,
``scdl/subventions``), has 16 fields in a fixed order. A published file is UTF-8, comma-separated,
with that header; missing values are empty cells; a text cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is prefixed with ``'`` (formula injection, OWASP); dates are
ISO ``AAAA-MM-JJ``; decimals use a point; ``notificationUE`` is ``oui`` / ``non``. One file is
written per attributing financeur and year (``fichier_scdl`` of the mart:
``subventions_<territoire>_<financeur>_<année>.csv``) under ``MARTS_DIR/scdl/``.

The mart only holds subsidies the warehouse may publish (``int_suivi__subventions.publiable``: an
identified attributor and a beneficiary that is a legal person); this module checks again that no
row without an organisation name goes out, and reports the fields a row still lacks for a valid
file (``dateConvention`` is not in programmation exports; ``idAttribuant`` needs the 14-digit
SIRET, the référentiel only has the EPCI's SIREN).
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from pipelines.duckdb_utils import tables_in
from pipelines.publication.cells import neutralise_formula
from pipelines.publication.empreintes import group_fingerprints, reusable, write_record

SCDL_VERSION = "2.1.0"
SCDL_FIELDS = (
    "nomAttribuant",
    "idAttribuant",
    "dateConvention",
    "referenceDecision",
    "nomBeneficiaire",
    "idBeneficiaire",
    "rnaBeneficiaire",
    "objet",
    "montant",
    "nature",
    "conditionsVersement",
    "datesPeriodeVersement",
    "idRAE",
    "notificationUE",
    "pourcentageSubvention",
    "dispositifAide",
)
REQUIRED = (
    "nomAttribuant",
    "idAttribuant",
    "dateConvention",
    "nomBeneficiaire",
    "objet",
    "montant",
    "nature",
    "conditionsVersement",
    "datesPeriodeVersement",
    "notificationUE",
    "pourcentageSubvention",
)
NATURES = {
    "aide en numéraire",
    "aide en nature",
    "aide en numéraire;aide en nature",
    "aide en nature;aide en numéraire",
}
PATTERNS = {
    "idAttribuant": re.compile(r"^\d{14}$"),
    "idBeneficiaire": re.compile(r"^\d{14}$"),
    "rnaBeneficiaire": re.compile(r"^W\d{9}$"),
    "dateConvention": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "datesPeriodeVersement": re.compile(
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(/[0-9]{4}-[0-9]{2}-[0-9]{2})?$"
    ),
    "notificationUE": re.compile(r"^(oui|non)$"),
}
#: Fields written as numbers (point decimals); every other field is text.
NUMERIC_FIELDS = frozenset({"montant", "pourcentageSubvention"})
SCDL_DIR = "scdl"
FILE_PATTERN = "subventions_*.csv"


@dataclass
class ScdlExport:
    """What ``export_scdl`` wrote: rows per file and, per file, the fields left to complete."""

    folder: Path
    files: dict[str, int] = field(default_factory=dict)
    incomplete: dict[str, dict[str, int]] = field(default_factory=dict)
    #: files linked from the published folder (rows unchanged), not written again
    reused: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.files.values())


def format_value(name: str, value: Any) -> str:
    """One SCDL cell: empty for NULL, ISO dates, point decimals, ``oui``/``non`` booleans; a
    text cell a spreadsheet would evaluate as a formula gets a leading ``'``
    (:func:`~pipelines.publication.cells.neutralise_formula`), numbers never do."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if name in NUMERIC_FIELDS:
        return f"{Decimal(str(value)):.2f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return neutralise_formula(str(value))


def validate_scdl_row(row: dict[str, str]) -> list[str]:
    """Problems of one formatted row against the SCDL 2.1.0 schema (empty list = valid)."""
    problems = [f"{name} vide" for name in REQUIRED if not row.get(name)]
    for name, pattern in PATTERNS.items():
        value = row.get(name, "")
        if value and not pattern.match(value):
            problems.append(f"{name} « {value} » ne suit pas le motif {pattern.pattern}")
    if row.get("nature") and row["nature"] not in NATURES:
        problems.append(f"nature « {row['nature']} » non autorisée")
    if len(row.get("objet", "")) >= 256 or len(row.get("conditionsVersement", "")) >= 256:
        problems.append("objet ou conditionsVersement de 256 caractères ou plus")
    if len(row.get("idRAE", "")) >= 5:
        problems.append("idRAE de 5 caractères ou plus")
    if row.get("montant"):
        try:
            float(row["montant"])
        except ValueError:
            problems.append(f"montant « {row['montant']} » n'est pas un nombre")
    if row.get("pourcentageSubvention"):
        share = float(row["pourcentageSubvention"])
        if not 0.01 <= share <= 1:
            problems.append("pourcentageSubvention hors de [0.01, 1]")
    return problems


def to_csv(rows: list[dict[str, str]]) -> str:
    """The text of an SCDL file: header of the 16 fields, comma-separated, minimal quoting.

    A carriage return inside a cell becomes a line feed, so that the cell is quoted (the csv
    module quotes line feeds, not a lone CR, which readers would take for the end of the row)."""
    rows = [
        row
        if not any("\r" in v for v in row.values())
        else {k: v.replace("\r\n", "\n").replace("\r", "\n") for k, v in row.items()}
        for row in rows
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=SCDL_FIELDS, delimiter=",", lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def export_scdl(
    con: duckdb.DuckDBPyConnection, marts_dir: Path, published: Path | None = None
) -> ScdlExport:
    """Write one SCDL CSV per ``fichier_scdl`` of ``marts.subventions_scdl`` under
    ``marts_dir/scdl/`` (files of a previous run are replaced). Returns the rows written per file
    and, per file, how many rows lack each field a valid publication needs.

    ``published``: the published marts folder, when its files may be taken as they are (a build
    of some years by the same version with the same options): a file whose rows have the
    fingerprint recorded with it there is linked, with what was found missing in it
    (:mod:`pipelines.publication.empreintes`)."""
    folder = Path(marts_dir) / SCDL_DIR
    result = ScdlExport(folder)
    if "subventions_scdl" not in tables_in(con, "marts"):
        return result
    fingerprints = group_fingerprints(con, "marts.subventions_scdl", "fichier_scdl", SCDL_FIELDS)
    reuse = reusable(published / SCDL_DIR if published else None, fingerprints)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(FILE_PATTERN):
        old.unlink()
    entries: dict[str, dict] = {}
    files: dict[str, int] = {}
    for fichier in sorted(reuse.files):
        entry = entries[fichier] = reuse.link(fichier, folder)
        files[fichier] = int(entry["lignes"])
        if entry.get("a_completer"):
            result.incomplete[fichier] = dict(entry["a_completer"])
        result.reused.append(fichier)
    columns = ", ".join(f'"{name}"' for name in SCDL_FIELDS)
    records = con.execute(
        f"select fichier_scdl, {columns} from marts.subventions_scdl "
        "where not list_has(?::varchar[], fichier_scdl) "
        'order by fichier_scdl, "referenceDecision", "nomBeneficiaire"',
        [sorted(reuse.files)],
    ).fetchall()
    by_file: dict[str, list[dict[str, str]]] = defaultdict(list)
    # each field's values repeat (dates, attribuant, nature, amounts): formatted once each
    formatted: dict[tuple[str, type, Any], str] = {}
    for fichier, *values in records:
        row = {}
        for name, value in zip(SCDL_FIELDS, values, strict=True):
            key = (name, type(value), value)
            text = formatted.get(key)
            if text is None:
                text = formatted[key] = format_value(name, value)
            row[name] = text
        if not row["nomBeneficiaire"]:
            raise ValueError(f"{fichier}: bénéficiaire sans nom, ligne non publiable")
        by_file[fichier].append(row)
    for fichier, rows in sorted(by_file.items()):
        target = folder / fichier
        tmp = target.with_suffix(".csv.tmp")
        tmp.write_text(to_csv(rows), encoding="utf-8", newline="")
        tmp.replace(target)
        files[fichier] = len(rows)
        missing: dict[str, int] = defaultdict(int)
        for row in rows:
            for problem in validate_scdl_row(row):
                missing[problem.split(" ", 1)[0]] += 1
        if missing:
            result.incomplete[fichier] = dict(missing)
        entries[fichier] = {
            "empreinte": fingerprints[fichier],
            "lignes": len(rows),
            "a_completer": dict(missing),
        }
    result.files = dict(sorted(files.items()))
    result.incomplete = dict(sorted(result.incomplete.items()))
    write_record(folder, entries)
    return result
