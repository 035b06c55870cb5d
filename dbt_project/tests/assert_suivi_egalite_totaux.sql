-- egalite_marqueur counts every action of the year once and all its granted amount, for every
-- territory-year with a marqueur scale in force (and only those).
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
    where echelle_marqueur is not null
    group by territoire, annee

)

select
    coalesce(actions.territoire, marqueur.territoire) as territoire,
    coalesce(actions.annee, marqueur.annee) as annee,
    actions.nb_actions,
    marqueur.nb_actions as nb_actions_marqueur
from actions
full outer join marqueur
    on
        actions.territoire = marqueur.territoire
        and actions.annee = marqueur.annee
where
    marqueur.territoire is null
    or actions.territoire is null
    or marqueur.nb_actions <> actions.nb_actions
    or abs(marqueur.montant_accorde - actions.montant_accorde) > 0.005
