-- One row per territory x programmation year x porteur (the organisation carrying actions,
-- never a person: the personal-data filter of the ingestion drops contact fields): number of
-- actions, amounts requested and granted, and its rank by amount granted in the year.
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

    select * from {{ ref('int_suivi__actions') }}
    where {{ annees_reconstruites() }}

),

par_porteur as (

    select
        territoire,
        annee,
        coalesce(porteur_siren, 'NOM:' || lower(trim(porteur_nom))) as porteur_cle,
        any_value(porteur_siren) as porteur_siren,
        min(porteur_nom) as porteur_nom,
        min(porteur_type) as porteur_type,
        count(*) as nb_actions,
        count(*) filter (where cpo) as nb_actions_cpo,
        cast(sum(montant_demande) as decimal(18, 2)) as montant_demande,
        cast(sum(montant_accorde) as decimal(18, 2)) as montant_accorde
    from actions
    group by territoire, annee, porteur_cle

)

select
    territoire,
    annee,
    porteur_cle,
    porteur_siren,
    porteur_nom,
    porteur_type,
    nb_actions,
    nb_actions_cpo,
    montant_demande,
    montant_accorde,
    round(
        montant_accorde / nullif(sum(montant_accorde) over (partition by territoire, annee), 0), 6
    )
        as part_montant_accorde,
    rank() over (
        partition by territoire, annee order by coalesce(montant_accorde, 0) desc
    ) as rang_montant_accorde
from par_porteur
