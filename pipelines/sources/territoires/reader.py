"""Reading the territory folders: ``territoires/<code>/territoire.yml`` and its référentiels.

A territory (the EPCI of a contrat de ville) is the user's data, not the project's: each folder
of ``data/raw/territoires/`` holds

- ``territoire.yml`` (required): ``nom``, ``siren`` (of the EPCI, 9 digits), optionally
  ``contrat``, ``annee_debut``/``annee_fin`` (the contract's period), ``departement``,
  ``source`` (the document the référentiels were taken from) and ``perimetre``: ``liste``
  (the QPV listed in ``perimetre_qpv.csv``) or ``officiel`` (the QPV of the loaded contours or
  official list whose communes belong to the EPCI; the default without ``perimetre_qpv.csv``);
- as needed, CSV files in the shapes of :data:`FILES`: its QPV perimeter, orientation
  hierarchy, action statuses, funding rules, financeur aliases, quartiers d'intérêt
  communautaire, other zonings (``zonages.csv``: quartiers de veille active, sites NPNRU, cités
  éducatives...: one row per zoning x covered QPV or commune), the contract's targets
  (``objectifs.csv``), the scales of its marqueur égalité (each with its period: a territory without
  one has no marqueur, and its programmations' marqueur column is not judged). A
  ``territoire`` column is optional in them; when present it must be the folder's code.

The folder's name is the territory's code (``VM``, ``CAMVS``...: upper-case letters, digits,
``_``), the one programmation and bilan files use. Every error names the file, the line and
the column; :func:`verify` collects them all (``observatoire territoire verifier``), the
ingestion asset stops at the first folder that has any.

Why this module is long: every file kind of a territory folder is checked here, with the checks
that span rows (a marqueur scale's period, a zoning's rows, an objective's code), so that one
command (``observatoire territoire verifier``) reports every error of a folder at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from pipelines.lib.cells import cell_text, fold
from pipelines.lib.codes import QPV_2015, QPV_2024
from pipelines.lib.raw_schemas import RAW_TABLES
from pipelines.lib.tables import IngestionError, named_header, read_tables

SOURCE = "territoires"
CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,29}$")
SIREN = re.compile(r"^\d{9}$")
YEAR = re.compile(r"^(19|20)\d\d$")
QPV_CODE = re.compile(f"{QPV_2015.pattern}|{QPV_2024.pattern}")
INTEGER = re.compile(r"^-?\d+$")
DECIMAL = re.compile(r"^-?\d+([.,]\d+)?$")
BOOLEAN = re.compile(r"^(true|false)$", re.IGNORECASE)
COMMUNE_CODE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
#: zoning types of zonages.csv (value in the file -> French label); the QPV are not one of them:
#: they are the contract's perimeter (perimetre_qpv.csv)
ZONAGE_TYPES = {
    "quartier_veille_active": "quartier de veille active",
    "quartier_interet_communautaire": "quartier d'intérêt communautaire",
    "site_renouvellement_urbain": "site NPNRU/PNRU",
    "cite_educative": "cité éducative",
    "programme_reussite_educative": "programme de réussite éducative (PRE)",
    "cite_emploi": "cité de l'emploi",
    "autre": "autre zonage",
}
#: measures of the warehouse an objective of objectifs.csv can be observed with (column
#: mesure -> French label); computed by int_objectifs__mesures for a territory and a year, for
#: the whole programmation or for the objective's orientation_code
MESURES = {
    "nb_actions": "nombre d'actions programmées",
    "nb_actions_financees": "nombre d'actions financées",
    "nb_porteurs": "nombre de porteurs",
    "nb_qpv_concernes": "nombre de QPV concernés par une action",
    "montant_accorde": "montant accordé (euros)",
    "montant_accorde_credits_specifiques": "montant accordé en crédits spécifiques (euros)",
    "montant_accorde_droit_commun": "montant accordé en droit commun (euros)",
    "part_actions_cpo": "part des actions sous convention pluriannuelle (CPO)",
    "beneficiaires": "nombre de bénéficiaires (bilans)",
    "beneficiaires_femmes": "nombre de bénéficiaires femmes (bilans)",
    "part_femmes_beneficiaires": "part des femmes parmi les bénéficiaires (bilans)",
}
#: columns the reader adds to every file's rows
_ADDED = ("territoire", "fichier_source", "ligne")


@dataclass(frozen=True)
class FileSpec:
    """One référentiel file of a territory folder: its raw table (whose schema in
    :data:`~pipelines.lib.raw_schemas.RAW_TABLES` lists the file's columns) and the columns that
    must be there and filled."""

    table: str
    required: tuple[str, ...]
    #: columns holding a year (checked: 4 digits)
    years: tuple[str, ...] = ()
    #: other checked columns: column -> (pattern, what is expected)
    patterns: tuple[tuple[str, re.Pattern, str], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The file's columns: those of its raw table but the ones the reader adds."""
        return tuple(c for c, _ in RAW_TABLES[self.table] if c not in _ADDED)


FILES: dict[str, FileSpec] = {
    "perimetre_qpv.csv": FileSpec(
        "territoires_perimetre_qpv",
        ("code_qpv", "geographie"),
        patterns=(
            ("code_qpv", QPV_CODE, "un code QPV (QP059020, QN05920M)"),
            ("geographie", re.compile(r"^(2015|2024)$"), "2015 ou 2024"),
        ),
    ),
    "orientations.csv": FileSpec(
        "territoires_orientations",
        ("referentiel", "annee_debut", "annee_fin", "niveau", "type_niveau", "code", "libelle"),
        years=("annee_debut", "annee_fin"),
        patterns=(
            ("niveau", INTEGER, "un nombre entier"),
            ("transversal", BOOLEAN, "true ou false"),
        ),
    ),
    "statuts_action.csv": FileSpec(
        "territoires_statuts_action", ("statut_code", "libelle", "categorie")
    ),
    "regles_financement.csv": FileSpec(
        "territoires_regles_financement",
        ("regle", "annee_debut", "valeur", "unite", "controle"),
        years=("annee_debut", "annee_fin"),
        patterns=(
            ("tolerance", DECIMAL, "un nombre (0.1 ou 0,1)"),
            ("condition_rang", INTEGER, "un nombre entier"),
        ),
    ),
    "financeurs_alias.csv": FileSpec("territoires_financeurs_alias", ("alias", "financeur")),
    "quartiers_interet_communautaire.csv": FileSpec(
        "territoires_quartiers_interet_communautaire",
        ("nom",),
        patterns=(("population", INTEGER, "un nombre entier"),),
    ),
    "zonages.csv": FileSpec(
        "territoires_zonages",
        ("type_zonage", "nom", "source_seed"),
        years=("annee_debut", "annee_fin"),
        patterns=(
            (
                "type_zonage",
                re.compile("^(" + "|".join(ZONAGE_TYPES) + ")$"),
                "un type de zonage (" + ", ".join(ZONAGE_TYPES) + ")",
            ),
            ("code_qpv", QPV_CODE, "un code QPV (QP059020, QN05920M)"),
            ("code_commune", COMMUNE_CODE, "un code commune INSEE à 5 caractères (59392)"),
            ("population", INTEGER, "un nombre entier"),
        ),
    ),
    "objectifs.csv": FileSpec(
        "territoires_objectifs",
        ("code", "libelle", "source_seed", "citation"),
        years=("annee_reference", "annee_debut", "annee_cible"),
        patterns=(
            ("cible", DECIMAL, "un nombre (20 ou 34,5), ou vide"),
            ("valeur_reference", DECIMAL, "un nombre (10 ou 18,8), ou vide"),
            ("sens", re.compile(r"^(au_moins|au_plus)$"), "au_moins ou au_plus"),
            (
                "mesure",
                re.compile("^(" + "|".join(MESURES) + ")$"),
                "une mesure de l'entrepôt (" + ", ".join(MESURES) + "), ou vide",
            ),
        ),
    ),
    "marqueur_egalite.csv": FileSpec(
        "territoires_marqueur_egalite",
        ("echelle", "annee_debut", "niveau", "rang"),
        years=("annee_debut", "annee_fin"),
        patterns=(("rang", INTEGER, "un nombre entier (1 pour le niveau le plus bas)"),),
    ),
}

#: territoire.yml: key -> required
YML_KEYS = {
    "nom": True,
    "siren": True,
    "contrat": False,
    "annee_debut": False,
    "annee_fin": False,
    "departement": False,
    "source": False,
    "perimetre": False,
}
#: columns of raw.territoires (one row per folder)
TERRITOIRE_COLUMNS = [c for c, _ in RAW_TABLES["territoires"]]


@dataclass
class Territory:
    code: str
    folder: Path
    attributes: dict[str, str | None]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def territory_folders(raw_dir: Path) -> list[Path]:
    """The territory folders of ``raw_dir/territoires`` (hidden folders ignored), sorted."""
    root = raw_dir / SOURCE
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _text(value) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def read_territoire_yml(folder: Path, errors: list[str]) -> dict[str, str | None]:
    path = folder / "territoire.yml"
    label = f"{SOURCE}/{folder.name}/territoire.yml"
    if not path.is_file():
        errors.append(f"{label}: fichier manquant (voir le modèle dans exemples/territoires/)")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        errors.append(f"{label}: encodage non UTF-8: le ré-enregistrer en UTF-8")
        return {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f": ligne {mark.line + 1}" if mark else ""
        errors.append(f"{label}{where}: YAML illisible ({getattr(err, 'problem', err)})")
        return {}
    if not isinstance(data, dict):
        errors.append(f"{label}: un dictionnaire « clé: valeur » est attendu")
        return {}
    unknown = sorted(set(map(str, data)) - set(YML_KEYS))
    if unknown:
        errors.append(
            f"{label}: clé(s) inconnue(s) {', '.join(unknown)} (clés possibles: "
            f"{', '.join(YML_KEYS)})"
        )
    values = {key: _text(data.get(key)) for key in YML_KEYS}
    for key, required in YML_KEYS.items():
        if required and not values[key]:
            errors.append(f"{label}: clé « {key} » manquante ou vide")
    if values["siren"] and not SIREN.match(values["siren"]):
        errors.append(
            f"{label}: siren « {values['siren']} » invalide (9 chiffres, entre guillemets)"
        )
    for key in ("annee_debut", "annee_fin"):
        if values[key] and not YEAR.match(values[key]):
            errors.append(f"{label}: {key} « {values[key]} » n'est pas une année")
    if values["perimetre"] and values["perimetre"] not in ("liste", "officiel"):
        errors.append(
            f"{label}: perimetre « {values['perimetre']} » inconnu (« liste » ou « officiel »)"
        )
    return values


def read_referentiel(folder: Path, name: str, spec: FileSpec, errors: list[str]) -> pd.DataFrame:
    """The rows of one référentiel CSV of a territory folder, every column as text."""
    path = folder / name
    label = f"{SOURCE}/{folder.name}/{name}"
    canonical = {fold(c): c for c in (*spec.columns, "territoire")}
    names = set(canonical)
    try:
        (table,) = read_tables(path, named_header(names, fold), scan=5, label=label)
    except (IngestionError, ValueError) as err:
        errors.append(str(err))
        return pd.DataFrame()
    if table.header_index is None:
        errors.append(
            f"{label}: aucune ligne d'en-tête reconnue (colonnes attendues: "
            f"{', '.join(spec.required)})"
        )
        return pd.DataFrame()
    header = [canonical.get(fold(str(c or "")), fold(str(c or ""))) for c in table.header]
    positions: dict[str, int] = {}
    for k, column in enumerate(header):
        if not column:
            continue
        if column in positions:
            errors.append(
                f"{label}: ligne {table.header_line}: colonne « {column} » en double "
                f"(colonnes {positions[column] + 1} et {k + 1})"
            )
        elif column in canonical.values():
            positions[column] = k
        else:
            errors.append(
                f"{label}: ligne {table.header_line}: colonne « {table.header[k]} » inconnue "
                f"(colonnes possibles: {', '.join(spec.columns)})"
            )
    missing = [c for c in spec.required if c not in positions]
    if missing:
        errors.append(f"{label}: colonne(s) manquante(s): {', '.join(missing)}")
        return pd.DataFrame()
    records = []
    for row in table.data:
        if row.blank:
            continue
        if len(row.cells) != len(table.header):
            errors.append(
                f"{label}: ligne {row.line}: {len(row.cells)} champs, l'en-tête en a "
                f"{len(table.header)}"
            )
            continue
        record = {c: cell_text(row.cells[k]) for c, k in positions.items()}
        given = record.pop("territoire", None)
        if given is not None and given != folder.name:
            errors.append(
                f"{label}: ligne {row.line}, colonne territoire: « {given} » alors que le "
                f"dossier est celui de {folder.name}"
            )
        for column in spec.required:
            if record.get(column) is None:
                errors.append(f"{label}: ligne {row.line}, colonne {column}: valeur manquante")
        for column in spec.years:
            value = record.get(column)
            if value is not None and not YEAR.match(value):
                errors.append(
                    f"{label}: ligne {row.line}, colonne {column}: « {value} » n'est pas une année"
                )
        for column, pattern, expected in spec.patterns:
            value = record.get(column)
            if value is not None and not pattern.match(value):
                errors.append(
                    f"{label}: ligne {row.line}, colonne {column}: « {value} » au lieu de "
                    f"{expected}"
                )
            elif value is not None and pattern is DECIMAL:
                record[column] = value.replace(",", ".")
        record.update(territoire=folder.name, fichier_source=label, ligne=row.line)
        records.append(record)
    columns = ["territoire", *spec.columns, "fichier_source", "ligne"]
    return pd.DataFrame(records, columns=columns)


def check_marqueur_scales(frame: pd.DataFrame | None, errors: list[str]) -> None:
    """A marqueur scale has one period (the same ``annee_debut``/``annee_fin`` on all its
    levels), a level and a rank once, and no two scales are in force the same year: the scale
    of a programmation year is never a guess."""
    if frame is None or frame.empty:
        return
    periods: dict[str, tuple[int, int | None]] = {}
    for echelle, rows in frame.groupby("echelle", sort=False):
        label = rows["fichier_source"].iloc[0]
        spans = {(r.annee_debut, r.annee_fin) for r in rows.itertuples()}
        if len(spans) > 1:
            errors.append(
                f"{label}: échelle « {echelle} »: plusieurs périodes ("
                + ", ".join(f"{a}-{b or '…'}" for a, b in sorted(spans, key=str))
                + "): une échelle a une seule période, sur chacun de ses niveaux"
            )
            continue
        for column, what in (("niveau", "niveau"), ("rang", "rang")):
            twice = rows[rows[column].duplicated()]
            for row in twice.itertuples():
                errors.append(
                    f"{label}: ligne {row.ligne}: échelle « {echelle} »: {what} "
                    f"« {getattr(row, column)} » en double"
                )
        ((debut, fin),) = spans
        if debut and YEAR.match(debut) and (fin is None or YEAR.match(fin)):
            periods[str(echelle)] = (int(debut), int(fin) if fin else None)
    scales = sorted(periods.items(), key=lambda item: item[1][0])
    for (first, (_, end)), (second, (start, _)) in zip(scales, scales[1:], strict=False):
        if end is None or end >= start:
            errors.append(
                f"{frame['fichier_source'].iloc[0]}: les échelles « {first} » et « {second} » "
                f"sont toutes deux en vigueur en {start}: fermer la première (annee_fin) avant "
                "le début de la seconde"
            )


def check_zonages(frame: pd.DataFrame | None, errors: list[str]) -> None:
    """Each row of zonages.csv covers a QPV or a commune; the rows of one zoning (same
    ``code_zonage``, else same type and name) agree on its type, name and period, and a period
    does not end before it starts."""
    if frame is None or frame.empty:
        return
    for row in frame.itertuples():
        if row.code_qpv is None and row.code_commune is None:
            errors.append(
                f"{row.fichier_source}: ligne {row.ligne}, colonnes code_qpv et code_commune: "
                "les deux sont vides (une ligne couvre un QPV ou une commune)"
            )
        debut, fin = row.annee_debut, row.annee_fin
        if debut and fin and YEAR.match(debut) and YEAR.match(fin) and int(fin) < int(debut):
            errors.append(
                f"{row.fichier_source}: ligne {row.ligne}, colonne annee_fin: {fin} avant "
                f"annee_debut {debut}"
            )
    keyed = frame.assign(
        _cle=frame["code_zonage"].fillna(frame["type_zonage"].fillna("") + "|" + frame["nom"])
    )
    for _key, rows in keyed.groupby("_cle", sort=False):
        for column in ("type_zonage", "nom", "annee_debut", "annee_fin"):
            values = rows[column].fillna("").unique()
            if len(values) > 1:
                first = rows.iloc[0]
                errors.append(
                    f"{first['fichier_source']}: zonage « {first['nom']} »: colonne {column}: "
                    f"valeurs différentes selon les lignes ({', '.join(map(str, values))}, "
                    f"lignes {', '.join(str(x) for x in rows['ligne'])}): un zonage a un seul "
                    "type, un seul nom et une seule période"
                )


def check_objectifs(
    frame: pd.DataFrame | None, orientations: pd.DataFrame | None, errors: list[str]
) -> None:
    """An objective's code appears once; a target needs its direction (``sens``) to be judged;
    an ``orientation_code`` (the orientation the objective belongs to, and the one its measure
    is restricted to when it has one) is a level-1 code of the folder's ``orientations.csv``."""
    if frame is None or frame.empty:
        return
    for row in frame[frame["code"].duplicated()].itertuples():
        errors.append(
            f"{row.fichier_source}: ligne {row.ligne}, colonne code: « {row.code} » en double"
        )
    level_1 = None
    if orientations is not None and not orientations.empty:
        level_1 = set(orientations.loc[orientations["niveau"] == "1", "code"])
    for row in frame.itertuples():
        if row.cible is not None and row.sens is None:
            errors.append(
                f"{row.fichier_source}: ligne {row.ligne}, colonne sens: valeur manquante "
                "(au_moins ou au_plus) alors que la cible est donnée"
            )
        if row.annee_debut is None and row.annee_cible is None:
            errors.append(
                f"{row.fichier_source}: ligne {row.ligne}, colonnes annee_debut et annee_cible: "
                "les deux sont vides (l'objectif est suivi à partir de annee_debut, jusqu'à "
                "annee_cible)"
            )
        code = row.orientation_code
        if code is not None and level_1 is not None and code not in level_1:
            errors.append(
                f"{row.fichier_source}: ligne {row.ligne}, colonne orientation_code: « {code} » "
                "n'est pas un code de niveau 1 de orientations.csv (codes possibles: "
                f"{', '.join(sorted(level_1))})"
            )


def read_territory(folder: Path, errors: list[str]) -> Territory:
    """One territory folder; every problem is appended to ``errors`` (file, line, column)."""
    code = folder.name
    if not CODE.match(code):
        errors.append(
            f"{SOURCE}/{code}: nom de dossier invalide: le code du territoire s'écrit en "
            "majuscules, chiffres et « _ » (ex. VM, CAMVS), comme dans les noms des fichiers "
            "de programmation"
        )
    values = read_territoire_yml(folder, errors)
    territory = Territory(code, folder, values)
    for path in sorted(folder.iterdir()):
        if path.name == "territoire.yml" or path.name.startswith("."):
            continue
        if path.name not in FILES:
            errors.append(
                f"{SOURCE}/{code}/{path.name}: fichier inconnu (fichiers possibles: "
                f"territoire.yml, {', '.join(FILES)})"
            )
    for name, spec in FILES.items():
        if (folder / name).is_file():
            territory.tables[spec.table] = read_referentiel(folder, name, spec, errors)
    check_marqueur_scales(territory.tables.get("territoires_marqueur_egalite"), errors)
    check_zonages(territory.tables.get("territoires_zonages"), errors)
    check_objectifs(
        territory.tables.get("territoires_objectifs"),
        territory.tables.get("territoires_orientations"),
        errors,
    )
    perimetre = values.get("perimetre")
    has_list = "territoires_perimetre_qpv" in territory.tables
    if perimetre == "liste" and not has_list:
        errors.append(f"{SOURCE}/{code}/territoire.yml: perimetre: liste sans perimetre_qpv.csv")
    if values:
        values["perimetre"] = perimetre or ("liste" if has_list else "officiel")
    return territory


def verify(raw_or_territory_dir: Path) -> tuple[list[Territory], list[str]]:
    """Every territory under a raw folder (``territoires/*``), under ``territoires/`` itself,
    or one territory folder; returns them and the list of errors (empty: all is well)."""
    path = Path(raw_or_territory_dir)
    if (path / "territoire.yml").is_file():
        folders = [path]
    elif (path / SOURCE).is_dir():
        folders = territory_folders(path)
    else:
        folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    errors: list[str] = []
    territories = [read_territory(folder, errors) for folder in folders]
    sirens: dict[str, str] = {}
    for territory in territories:
        siren = territory.attributes.get("siren")
        if siren and siren in sirens:
            errors.append(
                f"{SOURCE}/{territory.code}/territoire.yml: siren {siren} déjà déclaré par "
                f"{SOURCE}/{sirens[siren]}"
            )
        elif siren:
            sirens[siren] = territory.code
    return territories, errors


def territory_rows(territories: list[Territory]) -> pd.DataFrame:
    """One row per territory (the raw table ``territoires``)."""
    rows = [
        {
            "territoire": t.code,
            "nom": t.attributes.get("nom"),
            "type": "EPCI",
            "siren": t.attributes.get("siren"),
            "departement": t.attributes.get("departement"),
            "contrat": t.attributes.get("contrat"),
            "annee_debut": t.attributes.get("annee_debut"),
            "annee_fin": t.attributes.get("annee_fin"),
            "perimetre": t.attributes.get("perimetre"),
            "source_seed": t.attributes.get("source"),
            "fichier_source": f"{SOURCE}/{t.code}/territoire.yml",
        }
        for t in territories
    ]
    return pd.DataFrame(rows, columns=TERRITOIRE_COLUMNS)
