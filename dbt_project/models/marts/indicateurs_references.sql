-- Reference values (France, EPCI, communes, all QPV of France...) with their dictionary entry:
-- the territories a QPV is compared with (int_references__valeurs). Each row has a level
-- (territoire_type), a millésime (millesime_libelle says when the source gives none), a source
-- and a nature: 'publiee' or 'citee' (a figure quoted by a contract document, with the document).
select
    refs.territoire_type,
    refs.territoire_code,
    refs.libelle_territoire,
    refs.millesime,
    refs.millesime_libelle,
    refs.indicateur,
    dico.libelle,
    dico.unite,
    dico.theme,
    refs.valeur,
    refs.nature,
    refs.origine,
    refs.source,
    refs.document,
    refs.annee_document,
    refs.siren_document
from {{ ref('int_references__valeurs') }} as refs
left join {{ ref('ref_indicateurs') }} as dico on refs.indicateur = dico.indicateur
