"""FICTITIOUS places geocoded by the BAN: the CSV that adresse.data.gouv.fr's batch geocoder
(``/search/csv``) returns for a list of équipements and lieux d'action of the three demo
territories, so that the demo's ``lieux_qpv`` is not empty.

The file is what the geocoder sends back, read as it is by the build: the columns the user sent
(``identifiant``, ``nom``, ``adresse``, ``code_postal``, ``commune``, ``type``), then the
geocoder's (:data:`BAN_COLUMNS`), ``;``-separated, UTF-8. Names (« ... fictif »), house numbers and
coordinates are INVENTED; the streets are common French street names, the communes and postcodes
those of the demo QPV (Etalab, découpage administratif, Licence Ouverte). Each QPV of the demo
contours (``data/demo/sig_ville/``) gets places well inside it (at least about 50 m from its
edge and in no other QPV), and each commune places outside every QPV; a share of the addresses
are badly written and come back with a score under 0,5 (some of them inside a QPV: the build
must not count them), a few are not found at all (``result_status`` ``not-found``).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from pipelines.settings import DEMO_DIR

from .formats import _readme

#: File written (its name says it is fictitious).
FILE_NAME = "DEMO_FICTIF_lieux_geocodes_BAN.csv"
#: The demo's QPV contours (real, ANCT).
CONTOURS = DEMO_DIR / "sig_ville" / "QP2024_demo_3_territoires_WGS84.geojson"
#: The columns the BAN geocoder adds to the user's (addok-csv, /search/csv).
BAN_COLUMNS = [
    "latitude",
    "longitude",
    "result_label",
    "result_score",
    "result_score_next",
    "result_type",
    "result_id",
    "result_housenumber",
    "result_name",
    "result_street",
    "result_postcode",
    "result_city",
    "result_context",
    "result_citycode",
    "result_oldcitycode",
    "result_oldcity",
    "result_district",
    "result_status",
]
INPUT_COLUMNS = ["identifiant", "nom", "adresse", "code_postal", "commune", "type"]

#: Communes of the demo QPV: INSEE code -> (name, main postcode) (Etalab, Licence Ouverte).
COMMUNES = {
    "59014": ("Anzin", "59410"),
    "59033": ("Aulnoye-Aymeries", "59620"),
    "59079": ("Beuvrages", "59192"),
    "59112": ("Bruay-sur-l'Escaut", "59860"),
    "59153": ("Condé-sur-l'Escaut", "59163"),
    "59207": ("Escautpont", "59278"),
    "59225": ("Feignies", "59750"),
    "59230": ("Ferrière-la-Grande", "59680"),
    "59253": ("Fresnes-sur-Escaut", "59970"),
    "59291": ("Hautmont", "59330"),
    "59324": ("Jeumont", "59460"),
    "59365": ("Louvroil", "59720"),
    "59383": ("Marly", "59770"),
    "59392": ("Maubeuge", "59600"),
    "59424": ("Neuf-Mesnil", "59330"),
    "59447": ("Onnaing", "59264"),
    "59484": ("Quiévrechain", "59920"),
    "59491": ("Raismes", "59590"),
    "59544": ("Saint-Saulve", "59880"),
    "59564": ("La Sentinelle", "59174"),
    "59606": ("Valenciennes", "59300"),
    "59613": ("Vicq", "59970"),
    "59616": ("Vieux-Condé", "59690"),
    "62048": ("Auchel", "62260"),
    "62083": ("Barlin", "62620"),
    "62119": ("Béthune", "62400"),
    "62126": ("Beuvry", "62660"),
    "62178": ("Bruay-la-Buissière", "62700"),
    "62188": ("Burbure", "62151"),
    "62194": ("Calonne-Ricouart", "62470"),
    "62217": ("Cauchy-à-la-Tour", "62260"),
    "62270": ("Divion", "62460"),
    "62276": ("Douvrin", "62138"),
    "62400": ("Haillicourt", "62940"),
    "62401": ("Haisnes", "62138"),
    "62443": ("Hersin-Coupigny", "62530"),
    "62457": ("Houdain", "62150"),
    "62464": ("Hulluch", "62410"),
    "62480": ("Labourse", "62113"),
    "62516": ("Lillers", "62190"),
    "62555": ("Marles-les-Mines", "62540"),
    "62617": ("Nœux-les-Mines", "62290"),
    "62848": ("Verquin", "62131"),
}
DEPARTEMENTS = {"59": "59, Nord, Hauts-de-France", "62": "62, Pas-de-Calais, Hauts-de-France"}

STREETS = [
    "Rue Jean Jaurès",
    "Avenue de la République",
    "Rue Victor Hugo",
    "Place du 8 Mai 1945",
    "Rue Pasteur",
    "Rue Jules Ferry",
    "Boulevard Gambetta",
    "Rue Émile Zola",
    "Rue de la Gare",
    "Rue Roger Salengro",
    "Rue Jean Moulin",
    "Rue du Marais",
    "Allée des Tilleuls",
    "Rue Léon Blum",
    "Rue Anatole France",
    "Rue Paul Vaillant-Couturier",
]
#: Kinds of place: (type written by the user, words of the fictitious name).
KINDS = [
    ("Équipement", ["Maison de quartier", "Médiathèque", "Centre social", "Gymnase"]),
    ("Lieu d'action", ["Local associatif", "Salle polyvalente", "Jardin partagé"]),
]
#: Share of the places whose address comes back under the score threshold, and not found.
LOW_SCORE_SHARE = 0.15
NOT_FOUND = 3


def _features() -> list[tuple[str, str, object]]:
    """(code QPV, first commune's INSEE code, repaired shapely geometry) of the demo contours."""
    import shapely
    from shapely.geometry import shape

    data = json.loads(CONTOURS.read_text(encoding="utf-8"))
    out = []
    for feature in data["features"]:
        props = feature["properties"]
        geometry = shapely.make_valid(shape(feature["geometry"]))
        out.append((props["code_qp"], props["insee_com"].split(";")[0].strip(), geometry))
    return sorted(out, key=lambda item: item[0])


def _point_inside(rng: random.Random, geometry, others) -> tuple[float, float]:
    from shapely.geometry import Point

    core = geometry.buffer(-0.0006)  # about 50 m inside the edge
    if core.is_empty:
        core = geometry
    x0, y0, x1, y1 = core.bounds
    for _ in range(10000):
        x, y = round(rng.uniform(x0, x1), 6), round(rng.uniform(y0, y1), 6)
        point = Point(x, y)
        if core.contains(point) and not any(g.intersects(point) for g in others):
            return x, y
    raise RuntimeError("aucun point trouvé à l'intérieur du QPV")


def _point_outside(rng: random.Random, geometry, every) -> tuple[float, float]:
    from shapely.geometry import Point

    x0, y0, x1, y1 = geometry.bounds
    for _ in range(10000):
        x = round(rng.uniform(x0 - 0.02, x1 + 0.02), 6)
        y = round(rng.uniform(y0 - 0.015, y1 + 0.015), 6)
        point = Point(x, y)
        if all(g.distance(point) > 0.001 for g in every):
            return x, y
    raise RuntimeError("aucun point trouvé hors des QPV")


def _ban_row(rng, number, street, citycode, x, y, score, kind="housenumber") -> dict:
    name, postcode = COMMUNES[citycode]
    label_name = f"{number} {street}" if kind == "housenumber" else street
    return {
        "latitude": f"{y:.6f}",
        "longitude": f"{x:.6f}",
        "result_label": f"{label_name} {postcode} {name}",
        "result_score": f"{score:.4f}",
        "result_score_next": f"{max(score - rng.uniform(0.05, 0.3), 0.1):.4f}",
        "result_type": kind,
        "result_id": f"{citycode}_{rng.randrange(16**4):04x}"
        + (f"_{number:05d}" if kind == "housenumber" else ""),
        "result_housenumber": str(number) if kind == "housenumber" else "",
        "result_name": label_name,
        "result_street": street,
        "result_postcode": postcode,
        "result_city": name,
        "result_context": DEPARTEMENTS[citycode[:2]],
        "result_citycode": citycode,
        "result_oldcitycode": "",
        "result_oldcity": "",
        "result_district": "",
        "result_status": "ok",
    }


def write_lieux_ban(raw_dir: Path, rng: random.Random) -> list[Path]:
    """Write ``lieux/DEMO_FICTIF_lieux_geocodes_BAN.csv`` and its README; return their paths."""
    features = _features()
    geometries = [g for _, _, g in features]
    rows: list[dict] = []
    counts = {"dans": 0, "hors": 0, "bas": 0, "absent": 0}

    def place(citycode: str) -> dict:
        kind, words = rng.choice(KINDS)
        number, street = rng.randint(1, 120), rng.choice(STREETS)
        name, postcode = COMMUNES[citycode]
        return {
            "identifiant": f"LIEU-{len(rows) + 1:04d}",
            "nom": f"{rng.choice(words)} {street.split()[-1]} (lieu fictif)",
            "adresse": f"{number} {street}",
            "code_postal": postcode,
            "commune": name,
            "type": kind,
            "_number": number,
            "_street": street,
        }

    for code, citycode, geometry in features:
        others = [g for c, _, g in features if c != code]
        for draw in range(rng.randint(2, 4) + 1):
            row = place(citycode)
            if draw == 0:
                x, y = _point_outside(rng, geometry, geometries)
                where = "hors"
            else:
                x, y = _point_inside(rng, geometry, others)
                where = "dans"
            if rng.random() < LOW_SCORE_SHARE:
                # badly written: the geocoder found only the street, with a low score
                row["adresse"] = f"bat {rng.choice('ABCD')} resid. {row['_street'].split()[-1]}"
                ban = _ban_row(
                    rng,
                    row["_number"],
                    row["_street"],
                    citycode,
                    x,
                    y,
                    rng.uniform(0.25, 0.49),
                    kind="street",
                )
                counts["bas"] += 1
            else:
                ban = _ban_row(
                    rng, row["_number"], row["_street"], citycode, x, y, rng.uniform(0.55, 0.99)
                )
                counts[where] += 1
            rows.append({**row, **ban})
    for _ in range(NOT_FOUND):
        citycode = rng.choice(features)[1]
        row = place(citycode)
        row["adresse"] = rng.choice(["lieu-dit inconnu", "voir mairie", "s/n"])
        rows.append({**row, **dict.fromkeys(BAN_COLUMNS, ""), "result_status": "not-found"})
        counts["absent"] += 1
    rng.shuffle(rows)
    for index, row in enumerate(rows, start=1):
        row["identifiant"] = f"LIEU-{index:04d}"
    folder = raw_dir / "lieux"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(
            fh,
            INPUT_COLUMNS + BAN_COLUMNS,
            delimiter=";",
            extrasaction="ignore",
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(rows)
    readme = _readme(
        folder,
        "lieux géocodés par la Base Adresse Nationale",
        [
            "Fichier INVENTÉ par tools/demo/synthetic/lieux.py (graine fixe), tel que le renvoie",
            "le géocodeur par lot de la BAN (adresse.data.gouv.fr, /search/csv) : les colonnes",
            "envoyées (identifiant, nom, adresse, code_postal, commune, type) puis latitude,",
            "longitude, result_label, result_score, ..., result_status. Noms « ... fictif »,",
            "numéros et coordonnées inventés ; rues courantes ; communes et codes postaux réels",
            "des QPV de la démo.",
            f"- {FILE_NAME} : {len(rows)} lieux ; {counts['dans']} dans un QPV et "
            f"{counts['hors']} hors QPV avec un score d'au moins 0,55 ; {counts['bas']} adresses "
            "mal écrites revenues avec un score inférieur à 0,5 (certaines dans un QPV : non "
            f"affectées, dans raw.rejets) ; {counts['absent']} adresses non trouvées "
            "(result_status = not-found).",
        ],
    )
    return [path, readme]
