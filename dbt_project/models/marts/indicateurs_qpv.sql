-- Every published value of every indicator file (INSEE bases and local providers through their
-- mapping), one row per QPV x millésime x source x variable, as published (rates in %, counts,
-- euros), NULL with secret = true under statistical secrecy. Non-QPV rows (the "Ensemble des
-- quartiers prioritaires" row, communes, EPCI, France) are reference values, never QPV rows:
-- they are in indicateurs_references.
select
    code_territoire as code_qpv,
    libelle_territoire as libelle_qpv,
    geographie,
    millesime,
    origine,
    source,
    variable,
    indicateur,
    libelle,
    unite,
    theme,
    valeur,
    secret,
    marqueur_secret,
    fichier as source_fichier,
    ligne as source_ligne
from {{ ref('int_indicateurs__valeurs') }}
where type_territoire = 'qpv'
