-- egalite_marqueur counts every action of the year once and all its granted amount.
with

marqueur as (

    select
        territoire,
        annee,
        sum(nb_actions) as nb_actions,
        sum(montant_accorde) as montant_accorde
    from {{ ref('egalite_marqueur') }}
    group by territoire, annee

),

actions as (

    select
        territoire,
        annee,
        count(*) as nb_actions,
        sum(montant_accorde) as montant_accorde
    from {{ ref('int_suivi__actions') }}
    group by territoire, annee

)

select
    actions.territoire,
    actions.annee,
    actions.nb_actions,
    marqueur.nb_actions as nb_actions_marqueur
from actions
left join marqueur
    on
        actions.territoire = marqueur.territoire
        and actions.annee = marqueur.annee
where
    marqueur.territoire is null
    or marqueur.nb_actions <> actions.nb_actions
    or abs(marqueur.montant_accorde - actions.montant_accorde) > 0.005
