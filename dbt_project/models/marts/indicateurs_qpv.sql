-- Every published value of every INSEE base, one row per QPV x millésime x source variable,
-- as published (rates in %, counts, euros), NULL with secret = true under statistical secrecy.
select
    code_territoire as code_qpv,
    libelle_territoire as libelle_qpv,
    geographie,
    millesime,
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
from {{ ref('int_insee__valeurs_indicateurs') }}
where type_territoire = 'qpv'
