"""What a bilan says beyond the counts by sex: age bands, publics, realisation, participation.

Référentiels (data beside this module, with their seed and quote):

* ``tranches_age.csv``: the canonical age bands (moins de 16 ans, 16-25, 26-64, 65 ans et plus,
  âge non renseigné). A band declared in a file (a column header in the wide layout, a value of
  the « Tranche d'âge ou public » column in the long layout) is read by :func:`parse_band`
  (``0-5 ans``, ``De 6 à 15 ans``, ``Moins de 6 ans``, ``60 ans et plus``, ``+ de 65 ans``...)
  and attached to the canonical band that contains it; a band that straddles two canonical
  bands (``60 ans et plus``) is kept as declared, outside the référentiel, and reported.
* ``types_public.csv``: the types of public of the seed 004 bilan (demandeurs d'emploi,
  bénéficiaires du RSA, familles monoparentales, personnes en situation de handicap).

Realisation: ``oui`` / ``non`` / ``partiellement`` (:func:`parse_realisation`). Residents'
participation: yes/no and its forms (co-construction, suivi, évaluation, autre:
:func:`participation_forms`), the words of seed 004 « co-construction, suivi et évaluation ».
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.lib.cells import cell_text, fold, is_empty

HERE = Path(__file__).parent
BANDS_FILE = HERE / "tranches_age.csv"
PUBLICS_FILE = HERE / "types_public.csv"


@dataclass(frozen=True)
class Band:
    code: str
    libelle: str
    age_min: int | None
    age_max: int | None  # None: no upper bound
    colonne: str


@functools.cache
def canonical_bands() -> tuple[Band, ...]:
    with BANDS_FILE.open(encoding="utf-8") as fh:
        return tuple(
            Band(
                r["code"],
                r["libelle"],
                int(r["age_min"]) if r["age_min"] else None,
                int(r["age_max"]) if r["age_max"] else None,
                r["colonne"],
            )
            for r in csv.DictReader(fh)
        )


@functools.cache
def public_types() -> dict[str, str]:
    """Column (field) -> French label of each type of public."""
    with PUBLICS_FILE.open(encoding="utf-8") as fh:
        return {r["colonne"]: r["libelle"] for r in csv.DictReader(fh)}


def band_of_column(colonne: str) -> Band:
    return next(b for b in canonical_bands() if b.colonne == colonne)


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(text.replace("–", "-").replace("—", "-").split())


_PREFIX = re.compile(
    r"^(?:nombre de |nb de |nb |dont |beneficiaires |participants |personnes |public |"
    r"tranche d'age |tranche |age |ages |: )+"
)
_RANGE = re.compile(r"^(?:de )?(\d{1,3}) ?(?:-|a|/|au) ?(\d{1,3}) ?ans?$")
_UNDER = re.compile(r"^(?:moins de|- de|-de|< ?|<= ?|jusqu'a) ?(\d{1,3}) ?ans?$")
_OVER = re.compile(
    r"^(?:(\d{1,3}) ?ans? ?(?:et|ou) ?(?:plus|\+)|(?:plus de|\+ ?de|>=?) ?(\d{1,3}) ?ans?"
    r"|(\d{1,3}) ?ans? ?\+|(\d{1,3}) ?\+ ?(?:ans?)?)$"
)


def parse_band(text: Any) -> tuple[int, int | None] | None:
    """``(age_min, age_max)`` of a declared age band (``age_max`` None: and over), None when
    the text is not an age band. ``Moins de 16 ans`` is (0, 15); ``Plus de 65 ans`` and ``65
    ans et plus`` are both (65, None) (exports write one for the other)."""
    raw = cell_text(text)
    if raw is None:
        return None
    plain = _PREFIX.sub("", _plain(raw).strip(" ()"))
    if m := _RANGE.match(plain):
        low, high = int(m.group(1)), int(m.group(2))
        return (low, high) if low <= high else None
    if m := _UNDER.match(plain):
        return (0, int(m.group(1)) - 1) if int(m.group(1)) > 0 else None
    if m := _OVER.match(plain):
        return (int(next(g for g in m.groups() if g)), None)
    return None


def canonical_band(bounds: tuple[int, int | None]) -> Band | None:
    """The canonical band containing a declared band, None when it straddles two."""
    low, high = bounds
    for band in canonical_bands():
        if band.age_min is None:
            continue
        top = band.age_max
        if low >= band.age_min and (top is None or (high is not None and high <= top)):
            return band
    return None


_REALISATION = {
    "oui": "oui",
    "o": "oui",
    "x": "oui",
    "1": "oui",
    "vrai": "oui",
    "yes": "oui",
    "y": "oui",
    "true": "oui",
    "realisee": "oui",
    "action realisee": "oui",
    "totalement": "oui",
    "en totalite": "oui",
    "non": "non",
    "n": "non",
    "0": "non",
    "faux": "non",
    "no": "non",
    "false": "non",
    "non realisee": "non",
    "annulee": "non",
    "reportee": "non",
    "abandonnee": "non",
    "partiellement": "partiellement",
    "partielle": "partiellement",
    "en partie": "partiellement",
    "partiellement realisee": "partiellement",
    "oui partiellement": "partiellement",
    "realisee partiellement": "partiellement",
}


def parse_realisation(value: Any) -> str | None:
    """``oui`` / ``non`` / ``partiellement`` (usual wordings), None for an empty cell;
    ValueError otherwise."""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if is_empty(value):
        return None
    text = fold(cell_text(value) or "")
    if text in _REALISATION:
        return _REALISATION[text]
    if text.startswith("partiel") or "partiellement" in text:
        return "partiellement"
    if text.startswith("oui"):
        return "oui"
    if text.startswith("non"):
        return "non"
    raise ValueError("réalisation attendue : oui, non ou partiellement")


#: Forms of residents' participation (seed 004: « co-construction, suivi et évaluation »).
PARTICIPATION_FORMS = {
    "co_construction": ("Co-construction", ("co constru", "coconstru", "concept", "elabor")),
    "suivi": ("Suivi", ("suivi", "comite", "pilotage")),
    "evaluation": ("Évaluation", ("evalu", "bilan")),
}
OTHER_FORM = "autre"


def participation_forms(text: Any) -> list[str]:
    """The codes of the forms of participation a free text names (``autre`` when none)."""
    raw = cell_text(text)
    if raw is None or is_empty(raw):
        return []
    folded = fold(raw)
    found = [
        code for code, (_, words) in PARTICIPATION_FORMS.items() if any(w in folded for w in words)
    ]
    return found or [OTHER_FORM]
