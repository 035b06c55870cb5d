-- Residents' participation in the actions (seed 004: « La participation des habitants aux
-- actions : co-construction, suivi et évaluation ») by territory, year and orientation: actions
-- with a bilan that say yes / no / nothing, and the forms named.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

actions as (

    select * from {{ ref('int_suivi__bilans_actions') }}
    where {{ annees_reconstruites() }}

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        count(*) as nb_bilans,
        count(*) filter (where participation_habitants) as nb_avec_participation,
        count(*) filter (where not participation_habitants) as nb_sans_participation,
        count(*) filter (where participation_habitants is null)
            as nb_participation_non_renseignee,
        count(*) filter (where participation_formes like '%co_construction%')
            as nb_co_construction,
        count(*) filter (where participation_formes like '%suivi%') as nb_suivi,
        count(*) filter (where participation_formes like '%evaluation%') as nb_evaluation,
        count(*) filter (where participation_formes like '%autre%') as nb_autre_forme
    from actions
    group by territoire, annee, orientation_code

)

select
    *,
    round(
        100.0 * nb_avec_participation / nullif(nb_avec_participation + nb_sans_participation, 0),
        1
    ) as taux_participation
from grouped
