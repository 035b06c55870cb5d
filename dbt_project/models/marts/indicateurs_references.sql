-- Reference values (France, EPCI, communes, all QPV of France...) with their dictionary entry:
-- the territories a QPV is compared with (int_references__valeurs).
select
    refs.territoire_type,
    refs.territoire_code,
    refs.millesime,
    refs.indicateur,
    dico.libelle,
    dico.unite,
    dico.theme,
    refs.valeur,
    refs.origine,
    refs.source,
    refs.territoire_source
from {{ ref('int_references__valeurs') }} as refs
left join {{ ref('ref_indicateurs') }} as dico on refs.indicateur = dico.indicateur
