-- Spending by territory, year, financeur and credit type, all orientations together: number of
-- actions the financeur funds or is asked to fund, amounts requested and granted (euros), share
-- of the year's total granted in the territory. The same lines as depenses_orientation, rolled up
-- over the orientation (a test checks that both give the same totals).
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
        financeur,
        any_value(financeur_nom) as financeur_nom,
        type_credit,
        count(distinct dossier) as nb_actions,
        cast(coalesce(sum(montant_demande), 0) as decimal(18, 2)) as montant_demande,
        cast(coalesce(sum(montant_accorde), 0) as decimal(18, 2)) as montant_accorde
    from lignes
    group by territoire, annee, financeur, type_credit

)

select
    *,
    round(
        montant_accorde
        / nullif(sum(montant_accorde) over (partition by territoire, annee), 0),
        4
    ) as part_accorde_annee
from grouped
