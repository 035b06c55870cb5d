"""French number formats of the report: narrow no-break space for thousands, decimal comma.

Formatting only: a value is never rounded for anything but display, and a missing value (NULL in
the mart, or masked by statistical secrecy) is printed as a dash or a secret mark, never 0.
"""

from __future__ import annotations

import math

MILLIERS = "\u202f"  # espace fine insécable
SECRET = "s"  # cellule masquée (secret statistique)
MANQUANT = "–"


def _manquant(valeur) -> bool:
    if valeur is None:
        return True
    try:
        return math.isnan(float(valeur))
    except (TypeError, ValueError):
        return False


def nombre(valeur, decimales: int = 0) -> str:
    if _manquant(valeur):
        return MANQUANT
    texte = f"{float(valeur):,.{decimales}f}"
    return texte.replace(",", MILLIERS).replace(".", ",")


def euros(valeur, decimales: int = 0) -> str:
    return MANQUANT if _manquant(valeur) else f"{nombre(valeur, decimales)}\u00a0€"


def part(valeur, decimales: int = 1) -> str:
    """A share stored as 0-1 in the marts, printed as a percentage."""
    return MANQUANT if _manquant(valeur) else f"{nombre(100 * float(valeur), decimales)}\u00a0%"


def pourcent(valeur, decimales: int = 1) -> str:
    """A value already in percent (INSEE rates), printed with its sign."""
    return MANQUANT if _manquant(valeur) else f"{nombre(valeur, decimales)}\u00a0%"


def points(valeur, decimales: int = 1) -> str:
    if _manquant(valeur):
        return MANQUANT
    signe = "+" if float(valeur) > 0 else ""
    return f"{signe}{nombre(valeur, decimales)}\u00a0pt"


def compte(valeur, masque: bool = False) -> str:
    """A count of people: the secret mark when statistical secrecy masked it."""
    if masque or _manquant(valeur):
        return SECRET if masque else MANQUANT
    return nombre(valeur, 0)
