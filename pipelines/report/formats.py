"""French number formats of the report: narrow no-break space for thousands, decimal comma.

Formatting only: a value is never rounded for anything but display, and a missing value (NULL in
the mart, or masked by statistical secrecy) is printed as a dash or a secret mark, never 0.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

THOUSANDS_SEPARATOR = "\u202f"  # narrow no-break space
SECRET = "s"  # cell masked by statistical secrecy
MISSING = "–"


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def number(value, decimals: int = 0) -> str:
    """A number rounded half up (« 959 098,5 » gives « 959 099 », as a reader rounds it, not to
    the even neighbour as binary floats do), in French format."""
    if _is_missing(value):
        return MISSING
    exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{exact:,.{decimals}f}"
    return text.replace(",", THOUSANDS_SEPARATOR).replace(".", ",")


def currency(value, decimals: int = 0) -> str:
    """An amount in euros."""
    return MISSING if _is_missing(value) else f"{number(value, decimals)}\u00a0€"


def share(value, decimals: int = 1) -> str:
    """A share stored as 0-1 in the marts, printed as a percentage."""
    return MISSING if _is_missing(value) else f"{number(100 * float(value), decimals)}\u00a0%"


def percent(value, decimals: int = 1) -> str:
    """A value already in percent (INSEE rates), printed with its sign."""
    return MISSING if _is_missing(value) else f"{number(value, decimals)}\u00a0%"


def points(value, decimals: int = 1) -> str:
    if _is_missing(value):
        return MISSING
    sign = "+" if float(value) > 0 else ""
    return f"{sign}{number(value, decimals)}\u00a0pt"


def count(value, masked: bool = False) -> str:
    """A count of people: the secret mark when statistical secrecy masked it."""
    if masked or _is_missing(value):
        return SECRET if masked else MISSING
    return number(value, 0)
