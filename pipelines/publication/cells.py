"""Cells of the files the project publishes for spreadsheets (CSV, XLSX).

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel or LibreOffice (« formula injection »: a porteur named ``=cmd|' /C calc'!A0``
would run a command on the reader's machine). OWASP's rule: such a *text* cell is written with a
leading ``'``, which spreadsheets show as text and do not evaluate. Numbers are written by their
own formatting and never pass here: a negative amount stays a number.
"""

from __future__ import annotations

#: First characters a spreadsheet takes for the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """``text`` prefixed with ``'`` when a spreadsheet would evaluate it, else unchanged."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
