-- Spending one level below depenses_orientation: by territory, year, orientation, objectif
-- (level 2 of the territory's hierarchy: VM and CAMVS objectifs, CABBALR priorités; a code typed
-- at level 3 is rolled up to its objectif), financeur and credit type. Same measures as
-- depenses_orientation, plus the share of the orientation's total granted.
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
        coalesce(objectif_n2_code, objectif_code, 'NON_RENSEIGNE') as objectif_code,
        coalesce(any_value(objectif_n2_libelle), any_value(objectif_libelle)) as objectif_libelle,
        coalesce(bool_and(objectif_n2_code is not null), false) as objectif_reconnu,
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
    ) as part_accorde_annee,
    round(
        montant_accorde
        / nullif(
            sum(montant_accorde) over (partition by territoire, annee, orientation_code), 0
        ),
        4
    ) as part_accorde_orientation
from grouped
