-- The amounts split between QPV in effort_financier_qpv add up, territory by territory and year
-- by year, to the granted total of depenses_orientation (each QPV amount is rounded to the cent:
-- tolerance one cent per row).
with

effort as (

    select
        territoire,
        annee,
        count(*) as nb_lignes,
        sum(montant_accorde) as montant_accorde
    from {{ ref('effort_financier_qpv') }}
    group by territoire, annee

),

depenses as (

    select
        territoire,
        annee,
        sum(montant_accorde) as montant_accorde
    from {{ ref('depenses_orientation') }}
    group by territoire, annee

)

select
    depenses.territoire,
    depenses.annee,
    depenses.montant_accorde as total_depenses,
    effort.montant_accorde as total_effort
from depenses
left join effort
    on
        depenses.territoire = effort.territoire
        and depenses.annee = effort.annee
where
    effort.territoire is null
    or abs(effort.montant_accorde - depenses.montant_accorde) > 0.01 * effort.nb_lignes
