-- Grain of fiche_quartier: one row per QPV and millésime.
select
    code_qpv,
    millesime,
    count(*) as nb_lignes
from {{ ref('fiche_quartier') }}
group by code_qpv, millesime
having count(*) > 1
