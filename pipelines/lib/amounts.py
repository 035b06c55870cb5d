"""Amounts in euros, a whole column at a time, and the limits an amount must stay within.

:func:`parse_amounts` gives the same value and the same error as
:func:`pipelines.lib.cells.parse_amount` for every cell, but reads the usual spellings of an
export (``12500``, ``12 500``, ``12 500,00 €``, ``12500,5``) with one compiled pattern (a pandas
string method costs more than it saves on the few distinct cells of a file's column)
and calls :func:`parse_amount` only for the other cells (once per distinct value).

Limits (:func:`amount_problem`): an amount of :data:`AMOUNT_LIMIT` (10⁹ €) or more is not a
politique de la ville subsidy but a typing error (a SIRET pasted in an amount column, a missing
decimal mark): the line is rejected, « montant aberrant ». A negative amount (``-500``,
``(1 200,00)``) is kept, since an export may record a reversal, and reported as an anomaly
``montant_negatif``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from pipelines.lib.cells import parse_amount

#: Amounts of 10⁹ € or more are typing errors (see the module docstring).
AMOUNT_LIMIT = 1_000_000_000
#: The largest amount DECIMAL(18, 2) holds.
DECIMAL_MAX = 10**16 - 0.01

# digits grouped by three with spaces, or plain digits; a decimal comma; an optional euro sign
_USUAL = (
    r"^\s*(?:[0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+|[0-9]+)(?:,[0-9]+)?(?:[ \u00a0\u202f]?€)?\s*$"
)
_DROP = r"[\s\u00a0\u202f€]"
_USUAL_RE = re.compile(_USUAL)
_DROP_RE = re.compile(_DROP)


def parse_amounts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(amounts, reasons) of an array of cells: floats (None for an empty cell) and, where a
    cell cannot be read, None and the reason :func:`parse_amount` gives (``montant illisible``).
    Values are the distinct cells of a column (see
    :func:`pipelines.sources.programmations.columns.map_values`)."""
    values = np.asarray(values, dtype=object)
    n = len(values)
    amounts = np.full(n, None, dtype=object)
    reasons = np.full(n, None, dtype=object)
    usual = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if type(value) is str and _USUAL_RE.fullmatch(value):
            amounts[i] = float(_DROP_RE.sub("", value).replace(",", "."))
            usual[i] = True
    for i in np.flatnonzero(~usual):
        try:
            amounts[i] = parse_amount(values[i])
        except ValueError as err:
            reasons[i] = str(err)
    return amounts, reasons


def amount_problem(value: float | None) -> str | None:
    """The reason an amount read is refused (an absurd one), else None."""
    if value is not None and abs(value) >= AMOUNT_LIMIT:
        return "montant aberrant (1 000 000 000 € ou plus: erreur de saisie ?)"
    return None


def checked(parser: Callable[[Any], float | None]) -> Callable[[Any], float | None]:
    """``parser`` followed by the limit of :func:`amount_problem` (raises ValueError)."""

    def parse(value: Any) -> float | None:
        amount = parser(value)
        problem = amount_problem(amount)
        if problem:
            raise ValueError(problem)
        return amount

    return parse
