"""Schemas of every raw table written by the ingestion assets, and their writers.

Every raw table is declared here, and only here (no registration from another module). Every
raw table is created with its full schema even when its source folder is absent, so that dbt
always finds its sources and a missing source gives empty marts, not a failure.

Shared tables: ``raw.rejets`` (one row per rejected line or cell: file, sheet, line, column, raw
value, reason), ``raw.ingestion_log`` (one row per file read: SHA-256, size, rows read / loaded
/ rejected) and ``raw.anomalies`` (rows kept but worth a look); each source replaces only its
own rows there.

Why this module is long: the schemas are one declarative list per raw table (a column a line, so
that a reader of a diff sees each column added), kept together with the writers that create and
fill them; splitting the list would scatter the one place where raw tables are declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.lib.files import printable_name, sha256_bytes, sha256_file, unread_files
from pipelines.lib.spill import SpilledTable

RAW_SCHEMA = "raw"
#: Amounts in euros: exact to the cent from the reader to the exports (never a DOUBLE, whose
#: sums print as 496748.99999999994).
MONEY = "DECIMAL(18,2)"

# Typed key of the long indicator tables (insee.KEY_COLUMNS), shared by raw.insee_valeurs and
# raw.indicateurs_locaux.
RAW_INDICATOR_KEY: list[tuple[str, str]] = [
    ("source", "VARCHAR"),
    ("millesime", "INTEGER"),
    ("fichier", "VARCHAR"),
    ("feuille", "VARCHAR"),
    ("ligne", "BIGINT"),
    ("type_territoire", "VARCHAR"),
    ("code_territoire", "VARCHAR"),
    ("libelle_territoire", "VARCHAR"),
    ("geographie", "VARCHAR"),
    ("variable", "VARCHAR"),
    ("variable_fichier", "VARCHAR"),
]

RAW_TABLES: dict[str, list[tuple[str, str]]] = {
    "insee_valeurs": [
        *RAW_INDICATOR_KEY,
        ("valeur", "DOUBLE"),
        ("valeur_texte", "VARCHAR"),
        ("secret", "BOOLEAN"),
        ("marqueur_secret", "VARCHAR"),
    ],
    "qpv_contours": [
        ("code_qpv", "VARCHAR"),
        ("libelle_qpv", "VARCHAR"),
        ("geographie", "VARCHAR"),
        ("insee_com", "VARCHAR"),
        ("lib_com", "VARCHAR"),
        ("surface_km2", "DOUBLE"),
        ("crs_surface", "VARCHAR"),
        ("centroide_lon", "DOUBLE"),
        ("centroide_lat", "DOUBLE"),
        ("geometrie_reparee", "BOOLEAN"),
        ("source_fichier", "VARCHAR"),
        ("source_couche", "VARCHAR"),
        ("crs_source", "VARCHAR"),
        ("geom", "GEOMETRY"),
    ],
    "communes_contours": [
        ("code_commune", "VARCHAR"),
        ("nom_commune", "VARCHAR"),
        ("geometrie_reparee", "BOOLEAN"),
        ("source_fichier", "VARCHAR"),
        ("source_couche", "VARCHAR"),
        ("crs_source", "VARCHAR"),
        ("geom", "GEOMETRY"),
    ],
    "liste_qpv": [
        (c, "VARCHAR")
        for c in (
            "code_qpv libelle_qpv insee_reg lib_reg insee_dep lib_dep insee_com lib_com "
            "siren_epci lib_epci"
        ).split()
    ],
    "programmations": [
        ("territoire", "VARCHAR"),
        ("annee", "INTEGER"),
        ("dossier", "VARCHAR"),
        ("dossier_base", "VARCHAR"),
        ("serie_pluriannuelle", "BOOLEAN"),
        ("porteur_nom", "VARCHAR"),
        ("porteur_siret", "VARCHAR"),
        ("porteur_siren", "VARCHAR"),
        ("siret_valide", "BOOLEAN"),
        ("porteur_type", "VARCHAR"),
        ("intitule", "VARCHAR"),
        ("orientation_code", "VARCHAR"),
        ("orientation_libelle", "VARCHAR"),
        ("objectif_code", "VARCHAR"),
        ("objectif_libelle", "VARCHAR"),
        ("objectif_parent_code", "VARCHAR"),
        ("qpv_codes", "VARCHAR"),
        ("qpv_texte", "VARCHAR"),
        ("echelle", "VARCHAR"),
        ("statut_libelle", "VARCHAR"),
        ("thematique_transversale_code", "VARCHAR"),
        ("thematique_transversale_libelle", "VARCHAR"),
        ("projet_quartier", "BOOLEAN"),
        ("cout_total", MONEY),
        ("couts_indirects", MONEY),
        ("achats", MONEY),
        ("financeur_libelle", "VARCHAR"),
        ("montant_demande", MONEY),
        ("montant_accorde", MONEY),
        ("nature_subvention", "VARCHAR"),
        ("type_credits", "VARCHAR"),
        ("volet_regional", "VARCHAR"),
        ("rang_financement", "INTEGER"),
        ("cpo", "BOOLEAN"),
        ("cpo_duree", "INTEGER"),
        ("marqueur_egalite", "VARCHAR"),
        ("part_public_qpv", "DOUBLE"),
        ("date_debut_action", "DATE"),
        ("date_fin_action", "DATE"),
        ("date_bilan", "DATE"),
        ("date_bilan_intermediaire", "DATE"),
        ("date_demande_report", "DATE"),
        ("nombre_reunions_suivi", "INTEGER"),
        ("suivi_renforce", "BOOLEAN"),
        ("autres_colonnes", "VARCHAR"),
        ("source_fichier", "VARCHAR"),
        ("source_feuille", "VARCHAR"),
        ("source_ligne", "BIGINT"),
    ],
    "bilans": [
        ("territoire", "VARCHAR"),
        ("annee", "INTEGER"),
        ("dossier", "VARCHAR"),
        ("action_realisee", "BOOLEAN"),
        ("qpv_residence", "VARCHAR"),
        ("femmes", "BIGINT"),
        ("hommes", "BIGINT"),
        ("sexe_non_renseigne", "BIGINT"),
        ("age_moins_16", "BIGINT"),
        ("age_16_25", "BIGINT"),
        ("age_26_64", "BIGINT"),
        ("age_65_plus", "BIGINT"),
        ("age_non_renseigne", "BIGINT"),
        ("demandeurs_emploi", "BIGINT"),
        ("beneficiaires_rsa", "BIGINT"),
        ("familles_monoparentales", "BIGINT"),
        ("personnes_handicap", "BIGINT"),
        ("date_bilan", "DATE"),
        ("autres_colonnes", "VARCHAR"),
        ("source_fichier", "VARCHAR"),
        ("source_feuille", "VARCHAR"),
        (
            "source_ligne",
            "BIGINT",
        ),  # what the bilan says of the action (issue 15): realisation, planned beneficiaries,
        # results, residents' participation, and every declared age band / public as JSON
        ("realisation", "VARCHAR"),
        ("motif_non_realisation", "VARCHAR"),
        ("total_beneficiaires", "BIGINT"),
        ("beneficiaires_prevus", "BIGINT"),
        ("indicateur_resultat", "VARCHAR"),
        ("resultat_attendu", "BIGINT"),
        ("resultat_obtenu", "BIGINT"),
        ("participation_habitants", "BOOLEAN"),
        ("participation_modalites", "VARCHAR"),
        ("participation_formes", "VARCHAR"),
        ("mobilisation_publics", "VARCHAR"),
        ("effectifs_declares", "VARCHAR"),
    ],
    "anomalies": [
        ("source", "VARCHAR"),
        ("type", "VARCHAR"),
        ("fichier", "VARCHAR"),
        ("ligne", "BIGINT"),
        ("dossier", "VARCHAR"),
        ("message", "VARCHAR"),
        ("colonne", "VARCHAR"),
        ("valeur_brute", "VARCHAR"),
        # the programmation line's territory and year, where the anomaly is counted in the marts
        # (repeated requests: synthese_programmation.nb_demandes_en_conflit)
        ("territoire", "VARCHAR"),
        ("annee", "INTEGER"),
    ],
    "rejets": [
        ("source", "VARCHAR"),
        ("fichier", "VARCHAR"),
        ("feuille", "VARCHAR"),
        ("ligne", "BIGINT"),
        ("colonne", "VARCHAR"),
        ("valeur_brute", "VARCHAR"),
        ("motif", "VARCHAR"),
    ],
    "indicateurs_locaux": [
        *RAW_INDICATOR_KEY,
        ("indicateur", "VARCHAR"),
        ("unite", "VARCHAR"),
        ("facteur", "DOUBLE"),
        ("valeur", "DOUBLE"),
        ("valeur_fichier", "DOUBLE"),
        ("secret", "BOOLEAN"),
        ("marqueur_secret", "VARCHAR"),
        ("mapping", "VARCHAR"),
    ],
    "valeurs_reference": [
        ("territoire_type", "VARCHAR"),
        ("territoire_code", "VARCHAR"),
        ("libelle_territoire", "VARCHAR"),
        ("millesime", "INTEGER"),
        ("indicateur", "VARCHAR"),
        ("valeur", "DOUBLE"),
        ("source", "VARCHAR"),
        ("note", "VARCHAR"),
        ("fichier", "VARCHAR"),
        ("ligne", "BIGINT"),
    ],
    "passage_qpv_2015_2024": [
        ("code_qpv_2015", "VARCHAR"),
        ("libelle_qpv_2015", "VARCHAR"),
        ("code_qpv_2024", "VARCHAR"),
        ("libelle_qpv_2024", "VARCHAR"),
        ("statut", "VARCHAR"),
        ("rang", "INTEGER"),
        ("fichier", "VARCHAR"),
        ("ligne", "BIGINT"),
    ],
    # geocoded places assigned to their QPV (asset raw/lieux, written in SQL by geo.points)
    "lieux": [
        ("source_fichier", "VARCHAR"),
        ("source_ligne", "BIGINT"),
        ("identifiant", "VARCHAR"),
        ("type_lieu", "VARCHAR"),
        ("dossier", "VARCHAR"),
        ("lon", "DOUBLE"),
        ("lat", "DOUBLE"),
        ("crs_source", "VARCHAR"),
        ("geographie_qpv", "VARCHAR"),
        ("statut", "VARCHAR"),
        ("motif", "VARCHAR"),
        ("code_qpv", "VARCHAR"),
        ("nb_qpv", "INTEGER"),
        ("code_qpv_apres_inversion", "VARCHAR"),
    ],
    # the territory folders (pipelines/sources/territoires): every cell as written, typed by
    # the referentiels.ref_* models
    "territoires": [
        (c, "VARCHAR")
        for c in (
            "territoire",
            "nom",
            "type",
            "siren",
            "departement",
            "contrat",
            "annee_debut",
            "annee_fin",
            "perimetre",
            "source_seed",
            "fichier_source",
        )
    ],
    **{
        table: [("territoire", "VARCHAR"), *((c, "VARCHAR") for c in columns)]
        + [("fichier_source", "VARCHAR"), ("ligne", "BIGINT")]
        for table, columns in {
            "territoires_perimetre_qpv": ("code_qpv", "geographie", "libelle_qpv", "note"),
            "territoires_orientations": (
                "referentiel",
                "annee_debut",
                "annee_fin",
                "niveau",
                "type_niveau",
                "code",
                "libelle",
                "code_parent",
                "transversal",
                "source_seed",
            ),
            "territoires_statuts_action": ("statut_code", "libelle", "categorie", "source_seed"),
            "territoires_regles_financement": (
                "regle",
                "annee_debut",
                "valeur",
                "unite",
                "controle",
                "financeur",
                "annee_fin",
                "sens",
                "condition_statut",
                "tolerance",
                "condition_rang",
                "condition_nature",
                "condition_volet",
                "condition_quartier",
                "exception_porteur",
                "description",
                "source_seed",
                "source_libelle",
                "citation",
            ),
            "territoires_financeurs_alias": ("alias", "financeur"),
            "territoires_quartiers_interet_communautaire": (
                "nom",
                "commune",
                "population",
                "source_seed",
                "note",
            ),
            "territoires_zonages": (
                "type_zonage",
                "nom",
                "code_zonage",
                "code_qpv",
                "code_commune",
                "commune",
                "annee_debut",
                "annee_fin",
                "population",
                "source_seed",
                "source_libelle",
                "citation",
                "note",
            ),
            "territoires_objectifs": (
                "code",
                "libelle",
                "priorite",
                "cible",
                "unite",
                "sens",
                "valeur_reference",
                "annee_reference",
                "annee_debut",
                "annee_cible",
                "mesure",
                "orientation_code",
                "operateur",
                "source_seed",
                "source_libelle",
                "citation",
                "note",
            ),
            "territoires_marqueur_egalite": (
                "echelle",
                "annee_debut",
                "niveau",
                "rang",
                "annee_fin",
                "libelle",
                "definition",
                "criteres_echelle",
                "source_seed",
                "citation",
            ),
        }.items()
    },
    "ingestion_log": [
        ("source", "VARCHAR"),
        ("fichier", "VARCHAR"),
        ("empreinte_sha256", "VARCHAR"),
        ("taille_octets", "BIGINT"),
        ("lignes_lues", "BIGINT"),
        ("lignes_chargees", "BIGINT"),
        ("lignes_rejetees", "BIGINT"),
        ("statut", "VARCHAR"),
        ("message", "VARCHAR"),
        ("horodatage", "TIMESTAMP"),
    ],
}


#: Columns of ``raw.rejets`` (and of every reader's rejects frame).
REJECT_COLUMNS = [name for name, _ in RAW_TABLES["rejets"]]
#: Columns of ``raw.anomalies`` without ``source`` (each asset adds its own).
ANOMALY_COLUMNS = [name for name, _ in RAW_TABLES["anomalies"] if name != "source"]


@dataclass
class Reject:
    """One rejected line or cell of a raw file, with where it was and why."""

    source: str
    fichier: str
    feuille: str | None
    ligne: int | None
    colonne: str | None
    valeur_brute: str | None
    motif: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in REJECT_COLUMNS}


# Tables shared by all ingestion assets: each asset replaces only its own source's rows.
SHARED_TABLES = ("rejets", "ingestion_log", "anomalies")


def _ddl(table: str) -> str:
    cols = ", ".join(f'"{name}" {kind}' for name, kind in RAW_TABLES[table])
    return f"{RAW_SCHEMA}.{table} ({cols})"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and the shared tables if they do not exist."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for table in SHARED_TABLES:
        con.execute(f"CREATE TABLE IF NOT EXISTS {_ddl(table)}")
        # a warehouse written by an earlier version lacks the columns added since
        present = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [RAW_SCHEMA, table],
            ).fetchall()
        }
        for name, kind in RAW_TABLES[table]:
            if name not in present:
                con.execute(f'ALTER TABLE {RAW_SCHEMA}.{table} ADD COLUMN "{name}" {kind}')


def _select_list(table: str, frame: pd.DataFrame) -> str:
    parts = []
    for name, kind in RAW_TABLES[table]:
        if kind == "GEOMETRY":
            parts.append(
                f"ST_GeomFromWKB({name}_wkb) AS {name}"
                if f"{name}_wkb" in frame
                else f"NULL::GEOMETRY AS {name}"
            )
        elif name in frame.columns:
            parts.append(
                f'TRY_CAST("{name}" AS {kind}) AS "{name}"'
                if kind == "DATE"
                else f'CAST("{name}" AS {kind}) AS "{name}"'
            )
        else:
            parts.append(f'NULL::{kind} AS "{name}"')
    return ", ".join(parts)


def unknown_columns(table: str, frame: pd.DataFrame | None) -> list[str]:
    """Columns of a frame that the raw table does not hold (a parser/schema mismatch)."""
    if frame is None:
        return []
    known = {name for name, _ in RAW_TABLES[table]} | {f"{n}_wkb" for n, _ in RAW_TABLES[table]}
    return [c for c in frame.columns if c not in known]


def _check_columns(table: str, frame: pd.DataFrame | None) -> None:
    extra = unknown_columns(table, frame)
    if extra:
        raise ValueError(f"raw.{table}: colonnes non prévues dans le schéma: {extra}")


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Append the frame's rows to ``raw.<table>`` (columns matched by name); returns them.
    Rows spilled to disk (:class:`~pipelines.lib.spill.SpilledTable`) are inserted from
    their files, never loaded in a pandas frame."""
    if isinstance(frame, SpilledTable):
        for part in frame.frames_or_sql():
            if isinstance(part, pd.DataFrame):
                _insert(con, table, part)
            else:
                select = _select_list(table, frame)
                con.execute(f"INSERT INTO {RAW_SCHEMA}.{table} SELECT {select} FROM {part}")
        return len(frame)
    con.register("_frame", frame)
    try:
        con.execute(
            f"INSERT INTO {RAW_SCHEMA}.{table} SELECT {_select_list(table, frame)} FROM _frame"
        )
    finally:
        con.unregister("_frame")
    return len(frame)


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame | None) -> int:
    """Replace ``raw.<table>`` with the frame's rows (the full schema even when empty)."""
    ensure_raw_schema(con)
    _check_columns(table, frame)
    con.execute(f"CREATE OR REPLACE TABLE {_ddl(table)}")
    if frame is None or frame.empty:
        return 0
    return _insert(con, table, frame)


def replace_source_rows(
    con: duckdb.DuckDBPyConnection, table: str, source: str, frame: pd.DataFrame | None
) -> int:
    """Replace the rows of one source in a shared table (rejets, ingestion_log, anomalies)."""
    ensure_raw_schema(con)
    con.execute(f"DELETE FROM {RAW_SCHEMA}.{table} WHERE source = ?", [source])
    if frame is None or frame.empty:
        return 0
    frame = frame.assign(source=source)
    return _insert(con, table, frame)


def replace_file_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    files: list[str],
    frame: pd.DataFrame | None,
    source: str | None = None,
) -> int:
    """Replace the rows read from ``files`` in ``raw.<table>``, leaving every other row as it is.

    The partitioned ingestion writes one year this way: rows of other files (other years) are
    not touched. ``source`` is given for the shared tables (rejets, ingestion_log, anomalies),
    whose file column is ``fichier``; the source tables use ``source_fichier``.
    """
    ensure_raw_schema(con)
    _check_columns(table, frame)
    con.execute(f"CREATE TABLE IF NOT EXISTS {_ddl(table)}")
    column = "fichier" if source is not None else "source_fichier"
    if files:
        marks = ", ".join("?" for _ in files)
        where = f'"{column}" IN ({marks})' + (" AND source = ?" if source is not None else "")
        params = [*files, source] if source is not None else list(files)
        con.execute(f"DELETE FROM {RAW_SCHEMA}.{table} WHERE {where}", params)
    if frame is None or frame.empty:
        return 0
    if source is not None:
        frame = frame.assign(source=source)
    return _insert(con, table, frame)


def file_log(
    source: str,
    path: Path,
    lues: int,
    chargees: int,
    rejetees: int,
    statut: str = "charge",
    message: str | None = None,
) -> dict:
    """One ``ingestion_log`` record for a file read (hash of its bytes, size, counts)."""
    present = path.is_file()
    return {
        "source": source,
        "fichier": printable_name(path),
        "empreinte_sha256": sha256_file(path) if present else sha256_bytes(b""),
        "taille_octets": path.stat().st_size if present else 0,
        "lignes_lues": lues,
        "lignes_chargees": chargees,
        "lignes_rejetees": rejetees,
        "statut": statut,
        "message": message,
        "horodatage": datetime.now(UTC).replace(tzinfo=None),
    }


def unread_logs(
    source: str, folder: Path, suffixes, root: Path | None = None, skip=()
) -> list[dict]:
    """One ``ingestion_log`` record (statut ``non_lu``, 0 lines, the reason as message) for every
    file of ``folder`` that the source does not read (:func:`~pipelines.lib.files.unread_files`),
    except those in ``skip`` (read by another asset of the same folder)."""
    skipped = {Path(p) for p in skip}
    return [
        file_log(source, path, 0, 0, 0, statut="non_lu", message=reason)
        for path, reason in unread_files(folder, suffixes, root)
        if path not in skipped
    ]
