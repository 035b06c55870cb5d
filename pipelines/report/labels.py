"""French labels of the codes the marts carry, for the rapport annuel.

The marts keep codes (``HORS_QPV``, ``credits_specifiques``, ``un_pour_un``, a rule's key, an
INSEE base's short name): a report read by a COPIL or a conseil citoyen shows what they mean.
Labels come from the référentiels where one exists (a rule's description, an orientation's
libellé, a QPV's name: read by :mod:`pipelines.report.data`); the fixed vocabularies of the
warehouse are labelled here. A code without a label is shown as it is, never hidden.
"""

from __future__ import annotations

import datetime as dt
import re

RESIDENCE = {
    "HORS_QPV": "hors QPV",
    "NON_RENSEIGNE": "résidence non renseignée",
    "SANS_QPV": "sans QPV désigné",
}

CREDIT_TYPES = {
    "credits_specifiques": "crédits spécifiques",
    "droit_commun": "droit commun",
    "non_renseigne": "type de crédit non renseigné",
}

LINK_TYPES = {
    "un_pour_un": "reconduit (un QPV 2015 pour un QPV 2024)",
    "fusion": "fusion de plusieurs QPV 2015",
    "scission": "issu de la scission d'un QPV 2015",
    "recomposition": "recomposition (plusieurs liens)",
    "entree": "nouveau QPV 2024",
    "entre_ou_non_relie": "nouveau QPV 2024 ou lien absent de la table",
    "sortie": "sorti de la géographie prioritaire",
    "sorti_ou_non_relie": "sorti ou lien absent de la table",
}

CONTROL_LEVELS = {
    "action": "action",
    "dossier": "dossier",
    "porteur": "porteur",
    "programmation": "programmation",
    "territoire": "territoire",
}

RULE_STATUS = {
    "non_controlable": "non contrôlable sur une programmation",
    "non_verifiable": "non vérifiable",
    "partiellement_verifiable": "vérifiable en partie",
}

AGE_PUBLIC_DIMENSIONS = {
    "tranche_age": "Tranche d'âge",
    "public": "Type de public",
    "inconnue": "Non reconnue",
}

#: Public names of the sources of the ingestion log (a file's base name, without its year).
INSEE_BASES = {
    "DEMO": "INSEE, base démographie des QPV",
    "IPRO": "INSEE, base activité-emploi (IPRO) des QPV",
    "REVN": "INSEE, base revenus (Filosofi) des QPV",
    "EMPLOI": "INSEE, base emploi des QPV",
}
SOURCES = {
    "bilans": "Bilans des actions (porteurs, via les financeurs)",
    "programmations": "Programmations annuelles des financeurs",
    "indicateurs_locaux": "Indicateurs locaux (observatoire local, type Compas)",
    "sig_ville": "ANCT, contours des QPV (SIG Ville)",
    "communes": "Contours des communes (IGN ADMIN EXPRESS ou SIG de la collectivité)",
    "territoires": "Référentiels du territoire (contrat, notes de cadrage)",
    "lieux": "Lieux géocodés (Base Adresse Nationale)",
    "valeurs_reference": "Valeurs de référence publiées",
    "correspondance": "ANCT, table de passage des QPV 2015 → 2024",
    "etalab": "Etalab, découpage administratif (populations légales INSEE)",
}
FICHE_SOURCES = {
    "DEMO": "INSEE démographie",
    "IPRO": "INSEE activité-emploi",
    "REVN": "INSEE revenus",
    "COMPAS": "indicateurs locaux (Compas)",
}
#: Technical words of the marts' free-text columns (methods, origins) and their French reading.
TEXT_WORDS = [
    ("par pop_municipale", "par la population municipale"),
    ("par allocataires_caf", "par les allocataires CAF"),
    ("pop_municipale", "population municipale"),
    ("allocataires_caf", "allocataires CAF"),
]

MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
]  # fmt: skip


def label(vocabulary: dict[str, str], code) -> str:
    """The label of ``code`` in ``vocabulary``, else the code itself (never hidden)."""
    if code is None or code != code:  # None or NaN
        return "–"
    return vocabulary.get(str(code), str(code))


def residence(code: str, names: dict[str, str]) -> str:
    """A residence of beneficiaries: the QPV's name (its code after it), or hors QPV..."""
    if code in RESIDENCE:
        return RESIDENCE[code]
    name = names.get(code)
    return f"{name} ({code})" if name else str(code)


def clean_text(text) -> str:
    """A free text of a mart as a person reads it: no project-internal reference (« seed 004 »)
    and no column name (« pondérée par pop_municipale »)."""
    if text is None or text != text:
        return ""
    out = str(text)
    out = re.sub(r"\(seed \d+[^,;)]*[,;]\s*", "(", out)
    out = re.sub(r"\s*\(seed [^)]*\)", "", out)
    out = re.sub(r"^seed \(([^)]*)\)$", r"rapprochement par \1", out)
    out = re.sub(r"^seed\b\s*", "référentiel du projet ", out)
    out = re.sub(r"^dim_qpv \((.*)\)$", r"\1", out)
    out = re.sub(r"\b[Ll]a seed\b", "le document source", out)
    out = re.sub(r"\b[Ll]es seeds\b", "les documents sources", out)
    out = re.sub(r"\bseeds? \d+(?: et \d+)*", "le document source", out)
    out = re.sub(r"\bseeds?\b", "document source", out)
    for word, reading in TEXT_WORDS:
        out = out.replace(word, reading)
    # a decimal number in a sentence is written the French way (« 40,0 = 40 % »), not a
    # version number (« 6.0.0 »)
    return re.sub(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])", r"\1,\2", out)


def communes(names) -> str:
    """The communes of a QPV as a person reads them (« Anzin, Raismes »), not the mart's list
    separated by semicolons."""
    if names is None or names != names:
        return ""
    return ", ".join(part.strip() for part in str(names).split(";") if part.strip())


def source_name(source: str, file_name: str) -> str:
    """The public name of a loaded file: « INSEE, base activité-emploi (IPRO) des QPV 2022 »."""
    base = re.sub(r"\.[A-Za-z0-9]+$", "", file_name or "")
    if source == "insee":
        m = re.match(r"([A-Z]+)_(\d{4})", base)
        if m:
            name = INSEE_BASES.get(m.group(1), f"INSEE, base {m.group(1)} des QPV")
            return f"{name}, millésime {m.group(2)}"
    name = SOURCES.get(source, source)
    year = re.search(r"_(\d{4})(?:_|$)", base)
    if source in {"bilans", "programmations"} and year:
        name = f"{name} {year.group(1)}"
    territory = re.match(r"([A-Z]+)_", base)
    if source in {"bilans", "programmations"} and territory:
        name = f"{name}, territoire {territory.group(1)}"
    return name


def fiche_sources(codes) -> str:
    """« DEMO, IPRO, REVN » of fiche_quartier as public names."""
    if not codes or codes != codes:
        return "–"
    return ", ".join(FICHE_SOURCES.get(c.strip(), c.strip()) for c in str(codes).split(","))


def french_date(value) -> str:
    """A date as « 3 décembre 2026 » (an ISO text or a date); other values as they are."""
    if value is None or value != value:
        return "–"
    if isinstance(value, (dt.date, dt.datetime)):
        d = value
    else:
        try:
            d = dt.date.fromisoformat(str(value)[:10])
        except ValueError:
            return str(value)
    day = "1er" if d.day == 1 else str(d.day)
    return f"{day} {MONTHS[d.month - 1]} {d.year}"
