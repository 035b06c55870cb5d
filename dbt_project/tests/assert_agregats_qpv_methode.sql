-- An aggregate over several QPV is only made of counts (summed) or weighted rates: never an
-- indicator the dictionary marks non_agregeable, and a published value needs every QPV.
select
    agregats.niveau,
    agregats.code_territoire,
    agregats.millesime,
    agregats.indicateur,
    agregats.agregation,
    agregats.complet
from {{ ref('agregats_qpv') }} as agregats
left join {{ ref('ref_indicateurs') }} as dico on agregats.indicateur = dico.indicateur
where
    dico.agregation is distinct from agregats.agregation
    or agregats.agregation not in ('somme', 'moyenne_ponderee')
    or (agregats.valeur is not null and not agregats.complet)
    or agregats.nb_qpv_avec_valeur > agregats.nb_qpv
