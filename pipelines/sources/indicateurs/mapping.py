"""Reader of local indicator tables (Compas, CAF, France Travail, ARS extracts...).

Such tables have no public schema: wide CSV/XLSX keyed by a territory code (QPV, IRIS,
commune, EPCI...), one column per indicator, often below a title block, beside a notes sheet.
A **mapping file** per provider (YAML, ``<nom>.mapping.yml`` beside the data files) says which
columns are which indicator of the project's dictionary, with unit and millésime: a user adds a
provider by writing a mapping, not code. Format (every key but ``fournisseur`` and
``colonnes`` is optional)::

    fournisseur: COMPAS                  # becomes the `source` column (upper case)
    fichiers: ["COMPAS_indicateurs*.xlsx"]  # globs relative to the mapping's folder
                                         # (default: files whose name starts like the mapping)
    feuille: "Indicateurs*"              # sheet name or glob (default: the sheet with the header)
    millesime: 2022                      # default: year in the sheet name, then in the file name
    territoire:
      code: Code territoire              # default: the column whose values are territory codes
      libelle: Libellé territoire
      type: Type                         # column giving the territory type, if any
      types: {Quartier: qpv}             # extra values of that column -> project type
      code_9_chiffres: epci              # epci (default) or iris, for 9-digit codes without type
    secret: ["<5"]                       # extra markers of statistical secrecy
    ignorer: ["Territoire de contrat"]   # descriptive columns not to load
    colonnes:
      "Part des familles monoparentales (%)":
        indicateur: part_familles_monoparentales
        unite: "%"
        facteur: 1                       # valeur = cell x facteur (100 for a share stored 0.35)
        millesime: 2021                  # a column of another millésime
      "Nombre d'allocataires CAF": allocataires_caf     # short form

Headers are matched without regard to case, accents, spaces and punctuation. Columns neither
mapped nor ignored are kept with ``indicateur`` NULL (never dropped). An XLSX cell formatted as a
percentage (0.35 shown as 35 %) is multiplied by 100 unless the column gives its own ``facteur``.
Cells under secret (blank, ``s``, ``nd``... and the mapping's markers) give NULL with
``secret = true``; rows and cells that cannot be read go to ``rejects`` with their reason.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from pipelines.lib.cells import fold
from pipelines.lib.files import TABLE_SUFFIXES, list_files
from pipelines.lib.files import is_data_file as _is_data_file
from pipelines.lib.tables import IngestionError, decode_text

MAPPING_SUFFIXES = (".mapping.yml", ".mapping.yaml")

TERRITORY_TYPES = ("qpv", "iris", "commune", "epci", "departement", "region", "france")


@dataclass
class ColumnMap:
    """What the mapping says about one column of the table."""

    header: str
    indicateur: str | None
    unite: str | None = None
    facteur: float | None = None
    millesime: int | None = None


@dataclass
class Mapping:
    """A parsed mapping file."""

    path: Path
    fournisseur: str
    fichiers: list[str]
    feuille: str | None
    millesime: int | None
    code: str | None
    libelle: str | None
    type_column: str | None
    types: dict[str, str]
    code_9_chiffres: str
    secret: set[str]
    ignorer: list[str]
    colonnes: list[ColumnMap]

    def column(self, header: str) -> ColumnMap | None:
        key = fold(header)
        return next((c for c in self.colonnes if fold(c.header) == key), None)

    def files(self) -> list[Path]:
        """Data files of the mapping's folder this mapping applies to, sorted."""
        folder = self.path.parent
        out = []
        # through list_files: names and links checked like every raw file
        for path in list_files(folder, TABLE_SUFFIXES):
            if path.parent != folder:
                continue
            if any(fnmatch.fnmatch(path.name.lower(), g.lower()) for g in self.fichiers):
                out.append(path)
        return out


def is_data_file(path: Path) -> bool:
    """A table a mapping may describe (CSV or XLSX, not hidden, not a readme)."""
    return _is_data_file(path, TABLE_SUFFIXES)


def find_mappings(folder: Path) -> list[Path]:
    """Mapping files (``*.mapping.yml``) under a folder, sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(MAPPING_SUFFIXES)
    )


def _mapping_stem(path: Path) -> str:
    name = path.name
    for suffix in MAPPING_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_mapping(path: Path) -> Mapping:
    """Parse and validate a mapping file. Raises IngestionError naming the file."""
    import yaml

    path = Path(path)
    text = decode_text(path)  # UTF-8 only, like every raw file (refused with the line otherwise)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise IngestionError(f"{path}: mapping illisible ({err})".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise IngestionError(f"{path}: mapping vide ou mal formé (un dictionnaire YAML attendu)")

    def fail(message: str) -> IngestionError:
        return IngestionError(f"{path}: {message}")

    known = {
        "fournisseur",
        "fichiers",
        "feuille",
        "millesime",
        "territoire",
        "secret",
        "ignorer",
        "colonnes",
        "description",
        "source",
        "licence",
        "note",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise fail(f"clé(s) inconnue(s) {unknown} (clés possibles : {sorted(known)})")
    fournisseur = str(data.get("fournisseur") or "").strip()
    if not fournisseur:
        raise fail("« fournisseur » manquant (ex. fournisseur: COMPAS)")
    fichiers = data.get("fichiers") or [f"{_mapping_stem(path)}*"]
    if isinstance(fichiers, str):
        fichiers = [fichiers]
    millesime = _year(data.get("millesime"), fail, "millesime")
    territoire = data.get("territoire") or {}
    if not isinstance(territoire, dict):
        raise fail("« territoire » doit être un dictionnaire (code, libelle, type, types)")
    types = {}
    for value, kind in (territoire.get("types") or {}).items():
        kind = str(kind).strip().lower()
        if kind not in (*TERRITORY_TYPES, "ensemble_qpv"):
            raise fail(f"territoire.types: type « {kind} » inconnu ({', '.join(TERRITORY_TYPES)})")
        types[fold(str(value))] = kind
    code_9 = str(territoire.get("code_9_chiffres") or "epci").strip().lower()
    if code_9 not in {"epci", "iris"}:
        raise fail("territoire.code_9_chiffres vaut epci ou iris")
    colonnes_raw = data.get("colonnes")
    if not isinstance(colonnes_raw, dict) or not colonnes_raw:
        raise fail("« colonnes » manquant : en-tête de colonne -> indicateur du dictionnaire")
    colonnes = []
    for header, spec in colonnes_raw.items():
        if isinstance(spec, str) or spec is None:
            spec = {"indicateur": spec}
        if not isinstance(spec, dict):
            raise fail(f"colonne « {header} » : indicateur ou dictionnaire attendu")
        extra = sorted(set(spec) - {"indicateur", "unite", "facteur", "millesime", "note"})
        if extra:
            raise fail(f"colonne « {header} » : clé(s) inconnue(s) {extra}")
        indicateur = str(spec.get("indicateur") or "").strip() or None
        if indicateur is None:
            raise fail(f"colonne « {header} » : « indicateur » manquant")
        facteur = spec.get("facteur")
        if facteur is not None:
            try:
                facteur = float(facteur)
            except (TypeError, ValueError):
                raise fail(f"colonne « {header} » : facteur non numérique ({facteur})") from None
        unite = spec.get("unite")
        colonnes.append(
            ColumnMap(
                header=str(header),
                indicateur=indicateur,
                unite=None if unite is None else str(unite).strip(),
                facteur=facteur,
                millesime=_year(spec.get("millesime"), fail, f"colonne « {header} » : millesime"),
            )
        )
    folded = [fold(c.header) for c in colonnes]
    dups = sorted({h for h in folded if folded.count(h) > 1})
    if dups:
        raise fail(f"colonnes en double dans le mapping : {dups}")
    secret = data.get("secret") or []
    if isinstance(secret, str):
        secret = [secret]
    ignorer = data.get("ignorer") or []
    if isinstance(ignorer, str):
        ignorer = [ignorer]
    return Mapping(
        path=path,
        fournisseur=fournisseur.upper(),
        fichiers=[str(f) for f in fichiers],
        feuille=str(data["feuille"]) if data.get("feuille") else None,
        millesime=millesime,
        code=_opt(territoire.get("code")),
        libelle=_opt(territoire.get("libelle")),
        type_column=_opt(territoire.get("type")),
        types=types,
        code_9_chiffres=code_9,
        secret={str(s).strip().lower() for s in secret},
        ignorer=[str(i) for i in ignorer],
        colonnes=colonnes,
    )


def _opt(value) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _year(value, fail, what: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        year = int(str(value).strip())
    except ValueError:
        raise fail(f"{what} : année sur 4 chiffres attendue ({value})") from None
    if not 1980 <= year <= 2100:
        raise fail(f"{what} : année invraisemblable ({year})")
    return year


def check_mapping(mapping: Mapping, dictionary: dict[str, str]) -> list[str]:
    """Problems of a mapping against the indicator dictionary {indicateur: unite}."""
    problems = []
    for col in mapping.colonnes:
        if col.indicateur not in dictionary:
            problems.append(
                f"colonne « {col.header} » : indicateur « {col.indicateur} » absent du "
                "dictionnaire (dbt_project/seeds/indicateurs/ref_indicateurs.csv)"
            )
        elif col.unite and _unit_key(col.unite) != _unit_key(dictionary[col.indicateur]):
            problems.append(
                f"colonne « {col.header} » : unité « {col.unite} » différente de celle du "
                f"dictionnaire pour {col.indicateur} (« {dictionary[col.indicateur]} »)"
            )
    return problems


def _unit_key(unit: str) -> str:
    """Units compared loosely: 'indice base 100 = France' is an 'indice', 'effectif' a 'nombre'."""
    text = fold(unit)
    if unit.strip().startswith("%") or text.startswith(("pourcent", "part", "taux")):
        return "%"
    if text.startswith(("indice", "ratio", "rapport")):
        return "indice"
    if text.startswith(("euro", "eur")) or "€" in unit:
        return "euros"
    if text.startswith(("nombre", "effectif", "nb")):
        return "nombre"
    return text


def unmapped_files(folder: Path, mappings: list[Mapping]) -> list[Path]:
    """Data files of a provider folder that no mapping covers (reported, never guessed)."""
    covered = {p for m in mappings for p in m.files()}
    return [p for p in list_files(folder, TABLE_SUFFIXES) if p not in covered]
