"""French column headers of the published spreadsheets, from the marts' column names.

The marts' columns are French snake_case (``montant_accorde``, ``nb_qpv_concernes``): the
workbooks and CSV show them as a person reads them (« Montant accordé », « Nombre de QPV
concernés »), word by word with the accents the names leave out. The SCDL columns
(``nomBeneficiaire``...) are a national standard's names and stay as they are. The technical
name of every column is kept in the « Colonnes » sheet of each workbook, beside its label and its
description (the marts' YAML).
"""

from __future__ import annotations

import re

#: Words of the column names, as written in a header (accents, acronyms, abbreviations).
WORDS = {
    "aah": "AAH",
    "abc": "ABC",
    "abcde": "ABCDE",
    "accorde": "accordé",
    # bilans read in full (issue 15)
    "evaluation": "évaluation",
    "incoherente": "incohérente",
    "modalite": "modalité",
    "pct": "(%)",
    "prevision": "prévision",
    "prevus": "prévus",
    "realisation": "réalisation",
    "realisees": "réalisées",
    "recus": "reçus",
    "renseignee": "renseignée",
    "resultats": "résultats",
    "allocataires": "allocataires",
    "ambigus": "ambigus",
    "annee": "année",
    "beneficiaires": "bénéficiaires",
    "c2s": "C2S",
    "caf": "CAF",
    "categorie": "catégorie",
    "centroide": "centroïde",
    "cle": "clé",
    "cnam": "CNAM",
    "comparabilite": "comparabilité",
    "controle": "contrôle",
    "cpo": "CPO",
    "credits": "crédits",
    "crs": "système de coordonnées",
    "declare": "déclaré",
    "decision": "décision",
    "demande": "demandé",
    "demandeurs": "demandeurs",
    "densite": "densité",
    "departement": "département",
    "dependants": "dépendants",
    "ecart": "écart",
    "eligible": "éligible",
    "emplois": "emplois",
    "epci": "EPCI",
    "etrangers": "étrangers",
    "evolution": "évolution",
    "fragilite": "fragilité",
    "geographie": "géographie",
    "geometrie": "géométrie",
    "hab": "hab.",
    "imposes": "imposés",
    "km2": "km²",
    "lat": "latitude",
    "lib": "libellé",
    "libelle": "libellé",
    "lon": "longitude",
    "marqueur": "marqueur",
    "median": "médian",
    "menages": "ménages",
    "methode": "méthode",
    "millesime": "millésime",
    "montant": "montant",
    "nb": "nombre de",
    "periode": "période",
    "plus": "et plus",
    "precaires": "précaires",
    "precedent": "précédent",
    "qpv": "QPV",
    "reconnu": "reconnu",
    "reconnue": "reconnue",
    "reference": "référence",
    "referentiel": "référentiel",
    "regle": "règle",
    "reparee": "réparée",
    "repartition": "répartition",
    "reparti": "réparti",
    "renseigne": "renseigné",
    "representation": "représentation",
    "resultat": "résultat",
    "rsa": "RSA",
    "secret": "secret",
    "siren": "SIREN",
    "specifiques": "spécifiques",
    "statistique": "statistique",
    "uc": "par UC",
    "unite": "unité",
    "valeur": "valeur",
    "observee": "observée",
    "operateur": "opérateur",
    "priorite": "priorité",
    "publies": "publiés",
    "secrets": "secrets",
    "concernes": "concernés",
    "financees": "financées",
    "dossiers": "dossiers",
    "depenses": "dépenses",
    "egalite": "égalité",
    "synthese": "synthèse",
    "controles": "contrôles",
    "indicateurs": "indicateurs",
    "lieux": "lieux",
    "residence": "résidence",
    "residents": "résidents",
    "renseignees": "renseignées",
    "completer": "compléter",
    "document": "document",
    "seed": "référentiel du projet",
}

#: Whole names whose word-by-word reading is wrong or clumsy.
NAMES = {
    "code_qpv": "Code QPV",
    "libelle_qpv": "Nom du QPV",
    "territoire": "Territoire (code)",
    "territoire_nom": "Territoire",
    "euros_par_habitant": "Euros par habitant",
    "euros_par_habitant_credits_specifiques": "Euros par habitant (crédits spécifiques)",
    "densite_hab_km2": "Densité (hab./km²)",
    "surface_km2": "Surface (km²)",
    "surface_km2_2024": "Surface 2024 (km²)",
    "part_0_17": "Part des 0-17 ans",
    "part_0_24": "Part des 0-24 ans",
    "part_60_plus": "Part des 60 ans et plus",
    "part_75_plus": "Part des 75 ans et plus",
    "demandeurs_emploi_abc_50_plus": "Demandeurs d'emploi ABC de 50 ans et plus",
    "demandeurs_emploi_abc_moins_25": "Demandeurs d'emploi ABC de moins de 25 ans",
    "taux_pauvrete_60": "Taux de pauvreté au seuil de 60 %",
    "pop_municipale": "Population municipale",
    "nb_actions": "Nombre d'actions",
    "nb_actions_cpo": "Nombre d'actions en CPO",
    "nb_actions_cpo_renseigne": "Nombre d'actions au statut CPO renseigné",
    "nb_actions_financees": "Nombre d'actions financées",
    "nb_indicateurs_publies": "Nombre d'indicateurs publiés",
    "nb_indicateurs_secrets": "Nombre d'indicateurs sous secret",
    "secret_statistique": "Secret statistique appliqué",
    "source_fichier": "Fichier source",
    "source_ligne": "Ligne du fichier source",
    "source_seed": "Référentiel du projet",
    "qpv_residence": "QPV de résidence",
    "type_lien": "Type de lien",
    "type_credit": "Type de crédit",
    "part_type": "Part du type",
    "rang": "Rang",
    "nb_realisees": "Actions réalisées",
    "nb_partiellement_realisees": "Actions partiellement réalisées",
    "nb_non_realisees": "Actions non réalisées",
    "beneficiaires_realises": "Bénéficiaires réels",
    "beneficiaires_realises_prevus": "Bénéficiaires réels des actions avec prévision",
    "motifs_non_realisation_principaux": "Principaux motifs de non-réalisation",
}

#: Sheet titles of the marts in the workbooks (at most 31 characters, Excel's limit); a mart
#: not listed gets its name read word by word.
SHEETS = {
    "agregats_qpv": "Agrégats des QPV",
    "beneficiaires_genre": "Bénéficiaires par sexe",
    "beneficiaires_genre_orientation": "Bénéficiaires sexe-orientation",
    "beneficiaires_age_public": "Bénéficiaires âge-public",
    "beneficiaires_age_public_orientation": "Âge-public par orientation",
    "bilans_realisation": "Réalisation des actions",
    "participation_habitants": "Participation des habitants",
    "bridge_qpv_commune": "QPV et communes",
    "carte_effort_qpv": "Carte effort financier",
    "carte_taux_emploi": "Carte taux d'emploi",
    "controles_programmation": "Contrôles programmation",
    "croisement_qpv_annee": "Financements et quartiers",
    "croisement_qpv_orientation_financeur": "QPV × orientation × financeur",
    "depenses_statut_echelle": "Dépenses par statut et échelle",
    "depenses_zonage": "Dépenses par zonage",
    "tableau_bord_objectifs": "Tableau de bord des objectifs",
    "indicateurs_resultat": "Indicateurs de résultats",
    "depenses_thematique_transversale": "Dépenses par thème transversal",
    "depenses_financeur": "Dépenses par financeur",
    "depenses_objectif": "Dépenses par objectif",
    "depenses_orientation": "Dépenses par orientation",
    "dim_qpv": "Quartiers (QPV)",
    "effort_financier_qpv": "Effort financier par QPV",
    "egalite_marqueur": "Marqueur égalité",
    "fiche_quartier": "Fiche quartier",
    "indicateurs_qpv": "Indicateurs des QPV",
    "indicateurs_references": "Valeurs de référence",
    "lieux_qpv": "Lieux par QPV",
    "passage_qpv_2015_2024": "Passage QPV 2015-2024",
    "porteurs_programmation": "Porteurs",
    "regles_non_verifiables": "Règles non vérifiables",
    "subventions_scdl": "Subventions (SCDL)",
    "synthese_programmation": "Synthèse programmation",
    "taux_emploi_quartier": "Taux d'emploi par quartier",
}

_CAMEL = re.compile(r"[a-z][A-Z]")


def column_label(name: str) -> str:
    """« Montant accordé » for ``montant_accorde``; SCDL names (camelCase) unchanged."""
    if name in NAMES:
        return NAMES[name]
    if _CAMEL.search(name):
        return name
    words = [WORDS.get(w, w) for w in name.split("_") if w]
    if not words:
        return name
    text = " ".join(words)
    return text[0].upper() + text[1:]


def sheet_title(mart: str) -> str:
    """The title of a mart's sheet (31 characters at most)."""
    return (SHEETS.get(mart) or column_label(mart))[:31]
