"""National synthetic input of the build benchmark (FICTITIOUS programmations, bilans, lieux).

At scale 1 (``echelle``) it writes what the issue measured: the 1,584 real QPV contours (or
synthetic squares when ``../shared/data`` is absent), 10 millésimes × 3 INSEE bases for every
QPV in the real physical format (the real national files' bytes, one template per base and
parity of the year), 5 years × 100,000 action × financeur lines of programmations over every
EPCI holding a QPV (one Dauphin-like CSV per EPCI and year, attached by the code in its
« Territoire » column to the EPCI's territory folder, ``territoires/E<SIREN>/``, which lists its
QPV and gives its orientation hierarchy, action statuses and funding rules:
:mod:`tools.bench.territories`), the bilans of the granted actions, and 10 M lieux (one CSV).
Each programmation line names its objectif in the territory's hierarchy and its status (new
action, or a reconduction of an action of the previous year: same porteur and intitulé), some
actions are under a CPO, and the bilans are handed in from February to July of the next year,
so that every rule of the territories is evaluated. The volumes of programmations, bilans and
lieux scale with ``echelle``; contours and INSEE files do not. The programmations and bilans of
one more year (the added year) are written apart (``annee_ajoutee/``) for the ``--annee`` step.

Everything is deterministic (seeded ``random`` and DuckDB's ``hash``): the same parameters give
the same bytes.
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.settings import DEMO_DIR, PROJECT_ROOT, REFERENTIELS_DIR
from tools.bench.territories import (
    STATUTS,
    THEMES,
    Territory,
    objectif_codes,
    write_territories,
)

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
CONTOURS_NAME = "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"
#: First programmation year: the contracts of the 2024 geography (« Quartiers 2030 »), whose QPV
#: codes (QN…) the programmations and perimeters carry. Years before 2024 would make every line a
#: « qpv_geographie » anomaly (a 2024 code in a programmation of the 2015 geography): 715,277
#: anomalies for 500,000 lines when the bench started in 2019.
FIRST_YEAR = 2024
INSEE_BASES = ("IPRO", "DEMO", "REVN")

#: National volume (scale 1), as measured in the issue.
PROGRAMMATION_LINES_PER_YEAR = 100_000
LIEUX = 10_000_000

#: financeurs as written in the files (each one an alias of ref_financeurs_alias_communs.csv;
#: the territory's own name, the EPCI, is added per territory)
FINANCEURS = (
    "État - Politique de la ville",
    "État (droit commun)",
    "Région",
    "Département",
    "CAF",
    "Commune",
    "Bailleur",
)
#: share of the actions of a year (after the first) that carry on an action of the previous
#: year of the same territory (same porteur and intitulé, status « Reconduction »)
RECONDUCTION = 0.4
#: share of the new actions under a convention pluriannuelle d'objectifs (« Durée de la CPO »)
CPO = 0.2
PROGRAMMATION_HEADER = [
    "Territoire",
    "N° dossier",
    "Exercice",
    "Code SIRET",
    "Raison sociale du porteur",
    "Intitulé de l'action",
    "Orientation",
    "Quartier(s) concerné(s)",
    "Statut de l'action",
    "Coût total de l'action",
    "Financeur",
    "Montant demandé",
    "Montant accordé",
    "Date de fin de l'action",
    "Durée de la CPO",
]
BILAN_COUNTS = ["Femmes", "Hommes", "Sexe non renseigné"]
BILAN_HEADER = [
    "Territoire",
    "N° dossier",
    "Intitulé de l'action",
    "Action réalisée",
    "QPV de résidence",
    *BILAN_COUNTS,
    "Date de dépôt du bilan",
]
MENTION = "DONNÉES FICTIVES DE BANC D'ESSAI"


@dataclass
class Inventory:
    """What was written: files and data lines per source (for rows in per step)."""

    echelle: float
    graine: int
    contours: str
    annees: list[int]
    annee_ajoutee: int
    lignes: dict[str, int] = field(default_factory=dict)
    fichiers: dict[str, int] = field(default_factory=dict)
    lignes_annee_ajoutee: dict[str, int] = field(default_factory=dict)
    territoires: int = 0
    qpv: int = 0

    def add(self, source: str, lines: int, added_year: bool = False) -> None:
        target = self.lignes_annee_ajoutee if added_year else self.lignes
        target[source] = target.get(source, 0) + lines
        if not added_year:
            self.fichiers[source] = self.fichiers.get(source, 0) + 1

    def to_json(self) -> dict:
        return asdict(self)


def _fr_amount(value: float, rng: random.Random) -> str:
    if rng.random() < 0.3:
        return str(round(value))
    return f"{value:,.2f}".replace(",", " ").replace(".", ",") + " €"


def _siret(rng: random.Random) -> str:
    """A fictitious SIRET (SIREN beginning with 99) with valid keys, as the porteurs' SIRET of a
    real export mostly are; one in twenty is mistyped (last digit changed: a « siret_invalide »
    anomaly)."""
    from stdnum import luhn

    siren = "99" + "".join(rng.choice("0123456789") for _ in range(6))
    siren += luhn.calc_check_digit(siren)
    siret = siren + "".join(rng.choice("0123456789") for _ in range(4))
    siret += luhn.calc_check_digit(siret)
    if rng.random() < 0.05:
        siret = siret[:-1] + str((int(siret[-1]) + 1) % 10)
    return siret


# -- contours and territories -----------------------------------------------------------------


def synthetic_contours(n: int, rng: random.Random) -> dict:
    """``n`` square QPV (about 1 km) over communes of real EPCI (the référentiel), each with a
    valid 2024 code of its commune's département."""
    with (REFERENTIELS_DIR / "ref_epci_communes.csv").open(encoding="utf-8") as fh:
        communes = [r for r in csv.DictReader(fh) if r["code_commune"][:2] not in ("2A", "2B")]
    communes = [c for c in communes if c["code_commune"] < "96"]
    rng.shuffle(communes)
    features = []
    per_dep: dict[str, int] = {}
    for i in range(n):
        commune = communes[i % max(1, min(len(communes), max(3, n // 4)))]
        dep = commune["code_commune"][:2]
        per_dep[dep] = per_dep.get(dep, 0) + 1
        code = f"QN0{dep}{per_dep[dep] % 100:02d}M"
        lon, lat = -1.5 + 7.0 * rng.random(), 43.5 + 6.5 * rng.random()
        d = 0.006
        ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "code_qp": code,
                    "lib_qp": f"Quartier fictif {i + 1}",
                    "insee_com": commune["code_commune"],
                    "lib_com": commune["nom_commune"],
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    unique = {f["properties"]["code_qp"]: f for f in features}
    return {"type": "FeatureCollection", "name": "QP2024_bench", "features": list(unique.values())}


def territories_of(collection: dict) -> list[Territory]:
    """EPCI holding at least one QPV of the contours (through the commune of each QPV)."""
    with (REFERENTIELS_DIR / "ref_epci_communes.csv").open(encoding="utf-8") as fh:
        epci_of = {r["code_commune"]: r["siren_epci"] for r in csv.DictReader(fh)}
    with (REFERENTIELS_DIR / "ref_epci.csv").open(encoding="utf-8") as fh:
        names = {r["siren"]: r["nom"] for r in csv.DictReader(fh)}
    out: dict[str, Territory] = {}
    for feature in collection["features"]:
        props = feature["properties"]
        # a QPV over communes of two EPCI goes to the EPCI of its first commune (one perimeter)
        first = str(props.get("insee_com") or "").replace(";", ",").split(",")[0].strip()
        siren = epci_of.get(first)
        if siren is None:
            continue
        territory = out.setdefault(siren, Territory(siren, names.get(siren, siren)))
        territory.qpv.append((props["code_qp"], props.get("lib_qp") or props["code_qp"]))
    return sorted(out.values(), key=lambda t: t.siren)


def centroids(collection: dict) -> list[tuple[float, float]]:
    """Mean of the outer ring's vertices of each QPV (enough to place points near it)."""
    out = []
    for feature in collection["features"]:
        geometry = feature["geometry"]
        rings = geometry["coordinates"]
        ring = rings[0][0] if geometry["type"] == "MultiPolygon" else rings[0]
        out.append((sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)))
    return out


# -- writers ------------------------------------------------------------------------------------


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Dauphin-like CSV: ``;``, UTF-8 with BOM, CRLF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def _allocate(total: int, territories: list[Territory]) -> list[int]:
    """Lines per territory, proportional to its number of QPV (largest remainders)."""
    weights = [len(t.qpv) for t in territories]
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    counts = [math.floor(s) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: shares[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def write_year(
    raw_dir: Path,
    territories: list[Territory],
    year: int,
    lines: int,
    rng: random.Random,
    previous: dict[str, list[tuple[str, str, int, str, str]]] | None = None,
) -> tuple[int, int, int]:
    """Programmations and bilans of one year; returns (files, programmation lines, bilan
    lines). ``previous`` (territory SIREN -> its actions of the previous year: porteur, SIRET,
    theme, intitulé, CPO duration) is read for the reconductions and replaced by this year's
    actions."""
    previous = {} if previous is None else previous
    objectifs = objectif_codes()
    files = prog_total = bilan_total = 0
    for territory, n in zip(territories, _allocate(lines, territories), strict=True):
        if n == 0:
            continue
        porteurs = [(f"Association fictive {territory.siren}-{k}", _siret(rng)) for k in range(12)]
        before = previous.get(territory.siren, [])
        current: list[tuple[str, str, int, str, str]] = []
        prog: list[list[str]] = []
        bilans: list[list[str]] = []
        seq = 0
        while len(prog) < n:
            seq += 1
            dossier = f"{year}-{seq:05d}"
            if before and rng.random() < RECONDUCTION:
                porteur, siret, theme, intitule, cpo = rng.choice(before)
                statut = STATUTS[1][1]
            else:
                porteur, siret = rng.choice(porteurs)
                theme = rng.randrange(len(THEMES))
                intitule = f"{THEMES[theme]} {seq}"
                cpo = str(rng.choice((2, 3, 3, 4))) if rng.random() < CPO else ""
                statut = STATUTS[0][1]
            current.append((porteur, siret, theme, intitule, cpo))
            orientation = f"{objectifs[theme]} - {THEMES[theme]}"
            quartiers = rng.sample(territory.qpv, min(len(territory.qpv), rng.choice((1, 1, 2))))
            cell = " ; ".join(f"{c} - {name}" for c, name in quartiers)
            cout = rng.randint(2, 120) * 500.0
            k = min(n - len(prog), rng.choice((1, 2, 2, 3, 3, 4)))
            granted_any = False
            for financeur in rng.sample((*FINANCEURS, territory.name), k):
                demande = round(cout / (k + 1), 2)
                decision = rng.random()
                accorde = (
                    "" if decision < 0.05 else "0" if decision < 0.12 else _fr_amount(demande, rng)
                )
                granted_any |= decision >= 0.12
                prog.append(
                    [
                        territory.code,
                        dossier,
                        str(year),
                        siret,
                        porteur,
                        intitule,
                        orientation,
                        cell,
                        statut,
                        _fr_amount(cout, rng),
                        financeur,
                        _fr_amount(demande, rng),
                        accorde,
                        f"31/12/{year}",
                        cpo,
                    ]
                )
            if granted_any and rng.random() < 0.85:
                places = [c for c, _ in quartiers] + ["Hors QPV"]
                # handed in from February to July of the next year: before or after the
                # deadline of the territory's bilan rule
                deposit = f"{rng.randint(1, 28):02d}/{rng.randint(2, 7):02d}/{year + 1}"
                for place in places:
                    women, men = rng.randint(0, 60), rng.randint(0, 50)
                    bilans.append(
                        [
                            territory.code,
                            dossier,
                            intitule,
                            "Oui",
                            place,
                            str(women),
                            str(men),
                            str(rng.randint(0, 3)),
                            deposit,
                        ]
                    )
        previous[territory.siren] = current
        _write_rows(
            raw_dir / "programmations" / f"programmation_{territory.siren}_{year}.csv",
            PROGRAMMATION_HEADER,
            prog,
        )
        files += 1
        prog_total += len(prog)
        if bilans:
            _write_rows(
                raw_dir / "bilans" / f"bilans_{territory.siren}_{year}.csv", BILAN_HEADER, bilans
            )
            bilan_total += len(bilans)
    return files, prog_total, bilan_total


def insee_templates(shared: Path) -> dict[tuple[str, int], Path]:
    """(base, parity of the year) -> a real INSEE file: the national ones when present, else
    the demo's extract (same physical format)."""
    folder = shared / "insee_qpv2015"
    if not (folder / "IPRO_2022.csv").is_file():
        folder = DEMO_DIR / "insee"
    return {(b, y % 2): folder / f"{b}_{y}.csv" for b in INSEE_BASES for y in (2021, 2022)}


def write_lieux(path: Path, n: int, points_near: list[tuple[float, float]]) -> None:
    """``n`` points (``identifiant;lon;lat``): half within about 600 m of a QPV centroid, half
    uniform over metropolitan France; DuckDB's ``hash`` makes them deterministic."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("create table c (k bigint, lon double, lat double)")
        con.executemany(
            "insert into c values (?, ?, ?)", [(i, x, y) for i, (x, y) in enumerate(points_near)]
        )
        m = len(points_near)
        scale = float(2**64)
        con.execute(
            f"""
            copy (
                with p as (
                    select range as i,
                        hash(range, 'u') / {scale} as u,
                        hash(range, 'x') / {scale} as ux,
                        hash(range, 'y') / {scale} as uy,
                        hash(range, 'k') % {m} as k
                    from range({n})
                )
                select
                    'L' || lpad(cast(i as varchar), 9, '0') as identifiant,
                    round(case when u < 0.5 then c.lon + (ux - 0.5) * 0.016
                        else -4.5 + ux * 12.0 end, 6) as lon,
                    round(case when u < 0.5 then c.lat + (uy - 0.5) * 0.011
                        else 42.5 + uy * 8.5 end, 6) as lat
                from p join c on c.k = p.k
                order by i
            ) to '{path}' (header, delimiter ';')
            """
        )
    finally:
        con.close()


def generate(
    raw_dir: Path,
    added_dir: Path,
    echelle: float = 1.0,
    seed: int = 20261202,
    years: int = 5,
    first_year: int = FIRST_YEAR,
    millesimes: int = 10,
    synthetic_qpv: int | None = None,
    shared: Path = SHARED_DATA,
) -> Inventory:
    """Write the raw folder of the benchmark (``raw_dir``, emptied first) and the files of the
    added year (``added_dir``); returns what was written."""
    for folder in (raw_dir, added_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    rng = random.Random(seed)
    contours_file = shared / "anct" / CONTOURS_NAME
    if synthetic_qpv is None and contours_file.is_file():
        target = raw_dir / "sig_ville" / CONTOURS_NAME
        target.parent.mkdir(parents=True)
        shutil.copyfile(contours_file, target)
        collection = json.loads(contours_file.read_text(encoding="utf-8"))
        origin = "réels (ANCT, 1 584 QPV)"
    else:
        n = synthetic_qpv or max(12, round(1584 * echelle))
        collection = synthetic_contours(n, rng)
        target = raw_dir / "sig_ville" / "QP2024_bench_synthetique_WGS84.geojson"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
        origin = f"synthétiques ({len(collection['features'])} carrés)"
    territories = territories_of(collection)
    inventory = Inventory(
        echelle=echelle,
        graine=seed,
        contours=origin,
        annees=list(range(first_year, first_year + years)),
        annee_ajoutee=first_year + years,
        territoires=len(territories),
        qpv=len(collection["features"]),
    )
    inventory.add("sig_ville", len(collection["features"]))
    inventory.add("territoires", write_territories(raw_dir, territories, seed, first_year))
    templates = insee_templates(shared)
    for year in range(2022 - millesimes + 1, 2023):  # the last real millésime is 2022
        for base in INSEE_BASES:
            source = templates[(base, year % 2)]
            target = raw_dir / "insee" / f"{base}_{year}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            inventory.add("insee", len(source.read_bytes().splitlines()) - 1)
    lines = max(1, round(PROGRAMMATION_LINES_PER_YEAR * echelle))
    previous: dict[str, list] = {}
    for year in [*inventory.annees, inventory.annee_ajoutee]:
        added = year == inventory.annee_ajoutee
        _files, prog, bilans = write_year(
            added_dir if added else raw_dir, territories, year, lines, rng, previous
        )
        inventory.add("programmations", prog, added)
        inventory.add("bilans", bilans, added)
    n_lieux = max(100, round(LIEUX * echelle))
    write_lieux(raw_dir / "lieux" / "lieux_bench.csv", n_lieux, centroids(collection))
    inventory.add("lieux", n_lieux)
    for source in ("programmations", "bilans", "territoires"):
        inventory.fichiers[source] = sum(1 for p in (raw_dir / source).rglob("*") if p.is_file())
    (raw_dir.parent / "LISEZMOI.txt").write_text(
        f"{raw_dir.name}/ et {added_dir.name}/ : {MENTION}, écrites par tools/bench (graine "
        f"{seed}, échelle {echelle}). Contours {origin} ; bases INSEE réelles recopiées sous "
        f"{millesimes} millésimes ; programmations, bilans et lieux INVENTÉS.\n",
        encoding="utf-8",
    )
    return inventory
