-- Spending by territory, year, orientation (level 1 of the territory's own hierarchy: a code
-- typed at a deeper level is rolled up to its orientation), financeur and credit type: number
-- of actions, amounts requested and granted (euros), share of the year's total granted in the
-- territory. The objectif level is in depenses_objectif.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

lignes as (

    select * from {{ ref('int_suivi__programmations') }}
    where {{ annees_reconstruites() }}

),

grouped as (

    select
        territoire,
        annee,
        referentiel,
        coalesce(orientation_n1_code, orientation_code, 'NON_RENSEIGNE') as orientation_code,
        coalesce(
            any_value(orientation_n1_libelle),
            any_value(orientation_libelle_referentiel),
            any_value(orientation_libelle)
        ) as orientation_libelle,
        bool_and(orientation_reconnue) as orientation_reconnue,
        financeur,
        any_value(financeur_nom) as financeur_nom,
        type_credit,
        count(distinct dossier) as nb_actions,
        cast(coalesce(sum(montant_demande), 0) as decimal(18, 2)) as montant_demande,
        cast(coalesce(sum(montant_accorde), 0) as decimal(18, 2)) as montant_accorde
    from lignes
    group by all

)

select
    *,
    round(
        montant_accorde
        / nullif(sum(montant_accorde) over (partition by territoire, annee), 0),
        4
    ) as part_accorde_annee
from grouped
