-- synthese_programmation has one row per territory x year, and its amount granted equals the
-- total of depenses_orientation and its porteurs add up to porteurs_programmation.
with

synthese as (

    select * from {{ ref('synthese_programmation') }}

),

depenses as (

    select
        territoire,
        annee,
        sum(montant_accorde) as montant_accorde
    from {{ ref('depenses_orientation') }}
    group by territoire, annee

),

porteurs as (

    select
        territoire,
        annee,
        count(*) as nb_porteurs,
        sum(nb_actions) as nb_actions
    from {{ ref('porteurs_programmation') }}
    group by territoire, annee

),

grain as (

    select
        territoire,
        annee
    from synthese
    group by territoire, annee
    having count(*) > 1

)

select
    synthese.territoire,
    synthese.annee,
    'montants ou porteurs non réconciliés' as probleme
from synthese
left join depenses
    on synthese.territoire = depenses.territoire and synthese.annee = depenses.annee
left join porteurs
    on synthese.territoire = porteurs.territoire and synthese.annee = porteurs.annee
where
    abs(coalesce(synthese.montant_accorde, 0) - coalesce(depenses.montant_accorde, 0)) > 0.01
    or synthese.nb_porteurs <> porteurs.nb_porteurs
    or synthese.nb_actions <> porteurs.nb_actions
union all
select
    territoire,
    annee,
    'ligne en double' as probleme
from grain
