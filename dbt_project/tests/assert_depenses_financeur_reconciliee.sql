-- depenses_financeur and depenses_orientation are the same lines: same totals per territory,
-- year and financeur.
with

par_financeur as (

    select
        territoire,
        annee,
        financeur,
        sum(montant_accorde) as montant_accorde,
        sum(montant_demande) as montant_demande
    from {{ ref('depenses_financeur') }}
    group by territoire, annee, financeur

),

par_orientation as (

    select
        territoire,
        annee,
        financeur,
        sum(montant_accorde) as montant_accorde,
        sum(montant_demande) as montant_demande
    from {{ ref('depenses_orientation') }}
    group by territoire, annee, financeur

)

select
    coalesce(par_financeur.territoire, par_orientation.territoire) as territoire,
    coalesce(par_financeur.annee, par_orientation.annee) as annee,
    coalesce(par_financeur.financeur, par_orientation.financeur) as financeur
from par_financeur
full outer join par_orientation
    on
        par_financeur.territoire = par_orientation.territoire
        and par_financeur.annee = par_orientation.annee
        and par_financeur.financeur is not distinct from par_orientation.financeur
where
    par_financeur.territoire is null
    or par_orientation.territoire is null
    or abs(par_financeur.montant_accorde - par_orientation.montant_accorde) > 0.01
    or abs(par_financeur.montant_demande - par_orientation.montant_demande) > 0.01
