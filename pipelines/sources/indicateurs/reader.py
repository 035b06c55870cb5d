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

import csv
import fnmatch
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.lib.tables import (
    QPV_ANY,
    REJECT_COLUMNS,
    SECRET_MARKERS,
    IngestionError,
    Reject,
    decode_text,
    fold,
    geographie_of,
    millesime_from_name,
    parse_number,
    sniff_delimiter,
)
from pipelines.sources.insee.reader import KEY_COLUMNS

SOURCE = "indicateurs_locaux"
DATA_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}
MAPPING_SUFFIXES = (".mapping.yml", ".mapping.yaml")

LONG_COLUMNS = [
    *KEY_COLUMNS,
    "indicateur",
    "unite",
    "facteur",
    "valeur",
    "valeur_fichier",
    "secret",
    "marqueur_secret",
    "mapping",
]

TERRITORY_TYPES = ("qpv", "iris", "commune", "epci", "departement", "region", "france")
# Values of a "type" column -> project type (compared after fold()).
TYPE_SYNONYMS = {
    "qpv": "qpv",
    "qp": "qpv",
    "quartier": "qpv",
    "quartier prioritaire": "qpv",
    "quartier prioritaire de la politique de la ville": "qpv",
    "iris": "iris",
    "commune": "commune",
    "com": "commune",
    "ville": "commune",
    "epci": "epci",
    "interco": "epci",
    "intercommunalite": "epci",
    "agglomeration": "epci",
    "ept": "epci",
    "departement": "departement",
    "dep": "departement",
    "region": "region",
    "reg": "region",
    "france": "france",
    "france metropolitaine": "france",
    "national": "france",
    "ensemble des qpv": "ensemble_qpv",
    "ensemble des quartiers prioritaires": "ensemble_qpv",
    "ensemble qpv": "ensemble_qpv",
}
_CODE_PATTERNS = {
    "commune": re.compile(r"^(\d{5}|2[AB]\d{3})$"),
    "iris": re.compile(r"^(\d{5}|2[AB]\d{3})\d{4}$"),
    "epci": re.compile(r"^\d{9}$"),
    "departement": re.compile(r"^(\d{2,3}|2[AB])$"),
    "region": re.compile(r"^\d{2}$"),
}
_FRANCE_CODES = {"FRANCE", "FR", "FRM", "FE", "FM", "FRANCE METROPOLITAINE", "METRO"}
_ENSEMBLE = re.compile(r"ensemble des (quartiers|qpv)|tous les qpv|france des qp", re.IGNORECASE)


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
        for path in sorted(folder.iterdir()):
            if not is_data_file(path):
                continue
            if any(fnmatch.fnmatch(path.name.lower(), g.lower()) for g in self.fichiers):
                out.append(path)
        return out


@dataclass
class LocalTable:
    """What one file gave: long values, rejects and counts."""

    path: Path
    mapping: Mapping
    values: pd.DataFrame
    rejects: pd.DataFrame
    report: dict = field(default_factory=dict)


def is_data_file(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in DATA_SUFFIXES
        and not path.name.startswith((".", "~$"))
        and fold(path.stem) not in {"readme", "lisez moi", "lisezmoi"}
    )


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
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
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


# -- reading ---------------------------------------------------------------------------------


@dataclass
class _Cell:
    value: object
    percent: bool = False

    @property
    def text(self) -> str:
        v = self.value
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()


@dataclass
class _Table:
    sheet: str | None
    header_line: int
    header: list[str]
    rows: list[tuple[int, list[_Cell]]]


def _score(cells: list[str], mapping: Mapping) -> int:
    wanted = {fold(c.header) for c in mapping.colonnes}
    wanted |= {fold(h) for h in (mapping.code, mapping.libelle, mapping.type_column) if h}
    return sum(1 for c in cells if c and fold(c) in wanted)


def _pick_header(rows: list[tuple[int, list[_Cell]]], mapping: Mapping) -> int | None:
    """Index of the row holding the most headers named by the mapping (the header may move)."""
    best, best_score = None, 0
    # a notes sheet may quote one column name: a header names the code column or two columns
    needed = 1 if len(mapping.colonnes) == 1 else 2
    for k, (_, cells) in enumerate(rows[:200]):
        score = _score([c.text for c in cells], mapping)
        if mapping.code and fold(mapping.code) not in {fold(c.text) for c in cells}:
            score = 0
        if score > best_score and (score >= needed or mapping.code):
            best, best_score = k, score
    return best


def _xlsx_tables(path: Path, mapping: Mapping) -> list[_Table]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises many kinds
        raise IngestionError(f"{path}: classeur illisible ({err})") from None
    tables = []
    try:
        for ws in wb.worksheets:
            if mapping.feuille and not fnmatch.fnmatch(ws.title.lower(), mapping.feuille.lower()):
                continue
            rows = []
            for i, row in enumerate(ws.iter_rows(), start=1):
                cells = [
                    _Cell(
                        getattr(c, "value", None),
                        "%" in str(getattr(c, "number_format", "") or ""),
                    )
                    for c in row
                ]
                rows.append((i, cells))
            k = _pick_header(rows, mapping)
            if k is None:
                continue
            header = [c.text for c in rows[k][1]]
            tables.append(_Table(ws.title, rows[k][0], header, rows[k + 1 :]))
    finally:
        wb.close()
    return tables


def _csv_tables(path: Path, mapping: Mapping) -> list[_Table]:
    text = decode_text(path).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    best, best_score, delimiter = None, 0, ";"
    for k, line in enumerate(lines[:200]):
        if not line.strip():
            continue
        delim = sniff_delimiter(line)
        cells = next(csv.reader([line], delimiter=delim))
        score = _score(cells, mapping)
        if score > best_score:
            best, best_score, delimiter = k, score, delim
    if best is None:
        return []
    reader = csv.reader(io.StringIO("\n".join(lines[best:]), newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows = []
    try:
        for record in reader:
            line = best + reader.line_num - sum(c.count("\n") for c in record)
            if header is None:
                header = [c.strip() for c in record]
                continue
            rows.append((line, [_Cell(c) for c in record]))
    except csv.Error as err:
        raise IngestionError(
            f"{path}: ligne {best + reader.line_num}: CSV illisible ({err})"
        ) from None
    return [_Table(None, best + 1, header or [], rows)]


def _code_text(cell: _Cell) -> str:
    text = cell.text.strip().upper()
    return text.replace("\u00a0", "").replace(" ", "") if re.match(r"^[\d\s]+$", text) else text


def _classify(
    code: str, kind_text: str | None, label: str | None, mapping: Mapping
) -> tuple[str | None, str | None, str | None]:
    """(type_territoire, code_territoire, motif de rejet)."""
    if kind_text is not None:
        key = fold(kind_text)
        kind = mapping.types.get(key) or TYPE_SYNONYMS.get(key)
        if kind is None:
            return None, None, f"type de territoire « {kind_text} » inconnu (territoire.types)"
    else:
        kind = None
    if kind is None:
        if QPV_ANY.match(code) and geographie_of(code):
            kind = "qpv"
        elif _ENSEMBLE.search(label or "") or _ENSEMBLE.search(code):
            kind = "ensemble_qpv"
        elif code in _FRANCE_CODES:
            kind = "france"
        elif _CODE_PATTERNS["commune"].match(code) or re.match(r"^\d{4}$", code):
            kind = "commune"
        elif _CODE_PATTERNS["epci"].match(code):
            kind = mapping.code_9_chiffres
        else:
            return None, None, "code territoire non reconnu (ni QPV, IRIS, commune, EPCI, France)"
    if kind == "ensemble_qpv":
        return kind, "ENSEMBLE_QPV", None
    if kind == "france":
        return kind, "FRANCE", None
    if kind == "qpv":
        if not (QPV_ANY.match(code) and geographie_of(code)):
            return None, None, f"code QPV invalide « {code} »"
        return kind, code, None
    if kind in ("commune", "iris") and re.match(r"^\d+$", code):
        code = code.zfill(5 if kind == "commune" else 9)  # leading zero lost by a spreadsheet
    if kind == "departement" and re.match(r"^\d$", code):
        code = code.zfill(2)
    if not _CODE_PATTERNS[kind].match(code):
        return None, None, f"code « {code} » invalide pour un territoire de type {kind}"
    return kind, code, None


def read_local_table(path: Path, mapping: Mapping) -> LocalTable:
    """Read one data file through its mapping into long values. Raises IngestionError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        tables = _xlsx_tables(path, mapping)
    elif suffix in {".csv", ".txt", ".tsv"}:
        tables = _csv_tables(path, mapping)
    else:
        raise IngestionError(f"{path}: format non pris en charge ({path.suffix}) : CSV ou XLSX")
    if not tables:
        what = f"feuille « {mapping.feuille} »" if mapping.feuille else "aucune feuille"
        raise IngestionError(
            f"{path}: en-têtes du mapping {mapping.path.name} introuvables ({what}) : vérifier "
            "les noms de colonnes (territoire.code, colonnes)"
        )
    markers = SECRET_MARKERS | mapping.secret
    out: dict[str, list] = {k: [] for k in LONG_COLUMNS}
    rejects: list[dict] = []
    read = loaded = rejected = 0
    seen: set[tuple] = set()
    missing_columns: list[str] = []
    unmapped: list[str] = []

    def reject(sheet, line, column, raw, motif):
        rejects.append(Reject(SOURCE, str(path), sheet, line, column, raw, motif).as_dict())

    for table in tables:
        folded = [fold(h) for h in table.header]
        ignored = {fold(i) for i in mapping.ignorer}

        def find(name: str | None, folded: list[str] = folded) -> int | None:
            if not name:
                return None
            key = fold(name)
            return folded.index(key) if key in folded else None

        code_col = find(mapping.code)
        label_col = find(mapping.libelle)
        type_col = find(mapping.type_column)
        for what, name, col in (
            ("territoire.libelle", mapping.libelle, label_col),
            ("territoire.type", mapping.type_column, type_col),
        ):
            if name and col is None:
                raise IngestionError(
                    f"{path}: colonne « {name} » ({what} du mapping {mapping.path.name}) absente "
                    f"de la ligne d'en-tête {table.header_line}"
                )
        width = max([len(table.header)] + [len(r) for _, r in table.rows])
        cells_by_col = [
            [r[j] if j < len(r) else _Cell(None) for _, r in table.rows] for j in range(width)
        ]
        if code_col is None:
            code_col = _guess_code_column(cells_by_col, table.header, mapping)
            if code_col is None and len(tables) > 1:
                reject(
                    table.sheet,
                    table.header_line,
                    None,
                    None,
                    "onglet ignoré : aucune colonne de codes territoire",
                )
                continue
            if code_col is None:
                raise IngestionError(
                    f"{path}: colonne des codes territoire introuvable (préciser territoire.code "
                    f"dans {mapping.path.name})"
                )
        for col in mapping.colonnes:
            if find(col.header) is None and col.header not in missing_columns:
                missing_columns.append(col.header)
                reject(
                    table.sheet,
                    table.header_line,
                    col.header,
                    None,
                    f"colonne du mapping {mapping.path.name} absente du fichier",
                )
        value_cols = []
        for j, name in enumerate(table.header[:width] + [""] * (width - len(table.header))):
            if j in (code_col, label_col, type_col) or fold(name) in ignored:
                continue
            if not name.strip() and not any(c.text for c in cells_by_col[j]):
                continue  # empty trailing column
            spec = mapping.column(name) if name.strip() else None
            if spec is None:
                if not any(c.text for c in cells_by_col[j]):
                    continue
                unmapped.append(name or f"colonne {j + 1}")
            value_cols.append((j, name.strip() or f"COLONNE_{j + 1}", name, spec))
        sheet_year = millesime_from_name(table.sheet or "")
        default_year = mapping.millesime or sheet_year or millesime_from_name(path.name)
        for i, (line, _) in enumerate(table.rows):
            row_cells = [cells_by_col[j][i] for j in range(width)]
            if not any(c.text for c in row_cells):
                continue
            read += 1
            code = _code_text(row_cells[code_col])
            label = row_cells[label_col].text or None if label_col is not None else None
            kind_text = row_cells[type_col].text if type_col is not None else None
            if not code and not label:
                rejected += 1
                reject(
                    table.sheet,
                    line,
                    table.header[code_col] if code_col < len(table.header) else None,
                    row_cells[0].text or None,
                    "ligne sans code territoire (note, titre ou total ?)",
                )
                continue
            kind, code_t, motif = _classify(code, kind_text or None, label, mapping)
            if kind is None:
                rejected += 1
                reject(table.sheet, line, table.header[code_col], row_cells[code_col].text, motif)
                continue
            loaded += 1
            for j, variable, raw_name, spec in value_cols:
                cell = row_cells[j]
                year = (spec.millesime if spec and spec.millesime else None) or default_year
                if year is None:
                    raise IngestionError(
                        f"{path}: millésime introuvable : le donner dans {mapping.path.name} "
                        "(millesime: 2022) ou dans le nom de la feuille ou du fichier"
                    )
                key = (kind, code_t, year, fold(variable))
                if key in seen:
                    reject(
                        table.sheet,
                        line,
                        raw_name,
                        cell.text or None,
                        f"doublon : {code_t} a déjà une valeur pour cette colonne et ce "
                        "millésime (première valeur gardée)",
                    )
                    continue
                text = cell.text
                secret = isinstance(cell.value, str | type(None)) and text.lower() in markers
                valeur_fichier = None
                if not secret:
                    if isinstance(cell.value, int | float) and not isinstance(cell.value, bool):
                        valeur_fichier = float(cell.value)
                    else:
                        try:
                            valeur_fichier = parse_number(text)
                        except ValueError:
                            valeur_fichier = None
                    if valeur_fichier is None:
                        reject(table.sheet, line, raw_name, text, "valeur non numérique")
                        continue
                seen.add(key)
                facteur = (
                    spec.facteur
                    if spec and spec.facteur is not None
                    else (100.0 if cell.percent else 1.0)
                )
                out["source"].append(mapping.fournisseur)
                out["millesime"].append(year)
                out["fichier"].append(str(path))
                out["feuille"].append(table.sheet)
                out["ligne"].append(line)
                out["type_territoire"].append(kind)
                out["code_territoire"].append(code_t)
                out["libelle_territoire"].append(label)
                out["geographie"].append(geographie_of(code_t) if kind == "qpv" else None)
                out["variable"].append(variable)
                out["variable_fichier"].append(raw_name)
                out["indicateur"].append(spec.indicateur if spec else None)
                out["unite"].append(spec.unite if spec else None)
                out["facteur"].append(facteur)
                out["valeur"].append(None if secret else valeur_fichier * facteur)
                out["valeur_fichier"].append(valeur_fichier)
                out["secret"].append(secret)
                out["marqueur_secret"].append((text.lower() or "vide") if secret else None)
                out["mapping"].append(str(mapping.path))
    frame = pd.DataFrame(out, columns=LONG_COLUMNS)
    frame = frame.astype(
        {"millesime": "int32", "ligne": "int64", "valeur": "float64", "secret": bool}
    )
    report = {
        "fichier": str(path),
        "mapping": str(mapping.path),
        "source": mapping.fournisseur,
        "lignes_lues": read,
        "lignes_chargees": loaded,
        "lignes_rejetees": rejected,
        "valeurs": len(frame),
        "valeurs_secretes": int(frame["secret"].sum()),
        "colonnes_hors_mapping": sorted(set(unmapped)),
        "colonnes_mapping_absentes": missing_columns,
    }
    return LocalTable(path, mapping, frame, pd.DataFrame(rejects, columns=REJECT_COLUMNS), report)


def _guess_code_column(
    columns: list[list[_Cell]], header: list[str], mapping: Mapping
) -> int | None:
    """The unmapped column whose values look most like territory codes."""
    best, best_hits = None, 0
    for j, cells in enumerate(columns):
        if j < len(header) and mapping.column(header[j]):
            continue
        values = [_code_text(c) for c in cells[:500] if c.text]
        hits = sum(
            1
            for v in values
            if QPV_ANY.match(v)
            or _CODE_PATTERNS["commune"].match(v)
            or _CODE_PATTERNS["epci"].match(v)
        )
        if hits > best_hits and hits >= max(1, len(values) // 2):
            best, best_hits = j, hits
    return best


def unmapped_files(folder: Path, mappings: list[Mapping]) -> list[Path]:
    """Data files of a provider folder that no mapping covers (reported, never guessed)."""
    if not folder.is_dir():
        return []
    covered = {p for m in mappings for p in m.files()}
    return sorted(p for p in folder.rglob("*") if is_data_file(p) and p not in covered)
