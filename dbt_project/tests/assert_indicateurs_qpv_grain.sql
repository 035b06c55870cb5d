-- Grain of indicateurs_qpv: one value per QPV, millésime, base and variable. Two files of the
-- same base and millésime (or a QPV listed twice in a file) break it: a data problem to fix in
-- data/raw, hence a warning.
{{ config(severity='warn') }}

select
    code_qpv,
    millesime,
    source,
    variable,
    count(*) as nb_lignes,
    string_agg(distinct source_fichier, ', ') as fichiers
from {{ ref('indicateurs_qpv') }}
group by code_qpv, millesime, source, variable
having count(*) > 1
