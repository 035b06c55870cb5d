-- Companion of croisement_qpv_annee, in long format for a pivot table: amounts requested and
-- granted per territory x year x QPV x orientation (level 1) x financeur x credit type. Each
-- action's amounts per financeur (int_suivi__actions_financeurs) are split between the QPV it
-- targets with the share of int_suivi__actions_qpv (the key of effort_financier_qpv: population,
-- else equal split, flagged; 'TOUS' = every QPV of the perimeter; no code: 'SANS_QPV'), so that
-- the sum over orientations and financeurs of a QPV is its montant_accorde in
-- croisement_qpv_annee and effort_financier_qpv (to the cent of rounding).
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

cibles as (

    select * from {{ ref('int_suivi__actions_qpv') }}
    where {{ annees_reconstruites() }}

),

financements as (

    select * from {{ ref('int_suivi__actions_financeurs') }}
    where {{ annees_reconstruites() }}

),

perimetre as (

    select
        territoire,
        code_qpv,
        libelle_qpv
    from {{ ref('ref_perimetre_qpv') }}

),

reparti as (

    select
        cibles.territoire,
        cibles.annee,
        cibles.code_qpv,
        cibles.dossier,
        cibles.cle_repartition,
        coalesce(actions.orientation_code, 'NON_RENSEIGNE') as orientation_code,
        actions.orientation_libelle,
        financements.financeur,
        financements.financeur_nom,
        financements.type_credit,
        financements.montant_demande * cibles.part_action as montant_demande,
        financements.montant_accorde * cibles.part_action as montant_accorde
    from cibles
    inner join actions
        on
            cibles.territoire = actions.territoire
            and cibles.annee = actions.annee
            and cibles.dossier = actions.dossier
    inner join financements
        on
            cibles.territoire = financements.territoire
            and cibles.annee = financements.annee
            and cibles.dossier = financements.dossier

),

grouped as (

    select
        territoire,
        annee,
        code_qpv,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        financeur,
        any_value(financeur_nom) as financeur_nom,
        type_credit,
        count(distinct dossier) as nb_actions,
        cast(coalesce(sum(montant_demande), 0) as decimal(18, 2)) as montant_demande,
        cast(coalesce(sum(montant_accorde), 0) as decimal(18, 2)) as montant_accorde,
        bool_or(cle_repartition = 'egale') as repartition_egale
    from reparti
    group by territoire, annee, code_qpv, orientation_code, financeur, type_credit

),

final as (

    select
        grouped.territoire,
        grouped.annee,
        grouped.code_qpv,
        case
            when grouped.code_qpv = 'SANS_QPV'
                then
                    'Actions sans QPV identifié (quartier d''intérêt communautaire, '
                    || 'hors QPV ou non renseigné)'
            else perimetre.libelle_qpv
        end as libelle_qpv,
        grouped.orientation_code,
        grouped.orientation_libelle,
        grouped.financeur,
        grouped.financeur_nom,
        grouped.type_credit,
        case grouped.type_credit
            when 'credits_specifiques' then 'Crédits spécifiques politique de la ville'
            when 'droit_commun' then 'Droit commun'
            else 'Type de crédits non renseigné'
        end as type_credit_libelle,
        grouped.nb_actions,
        grouped.montant_demande,
        grouped.montant_accorde,
        grouped.repartition_egale,
        round(
            grouped.montant_accorde
            / nullif(
                sum(grouped.montant_accorde) over (
                    partition by grouped.territoire, grouped.annee, grouped.code_qpv
                ),
                0
            ),
            4
        ) as part_accorde_qpv
    from grouped
    left join perimetre
        on
            grouped.territoire = perimetre.territoire
            and grouped.code_qpv = perimetre.code_qpv

)

select * from final
