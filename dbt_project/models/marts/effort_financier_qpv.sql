-- Amount granted per QPV inhabitant and year: the granted amounts of each action (all its
-- financeurs) split between the QPV it targets (int_suivi__actions_qpv: population share when
-- INSEE gives every targeted QPV a population, else an equal split, flagged), summed by QPV, and
-- divided by the QPV's population (int_suivi__qpv_insee: published in the QPV's geography, else
-- carried from its 2015 predecessors through the crosswalk; methode_population says which).
-- Amounts of actions without a QPV code go to one row
-- code_qpv = 'SANS_QPV' per territory and year, so that the territory's total is complete.
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

perimetre as (

    select
        territoire,
        code_qpv,
        cast(geographie as varchar) as geographie,
        libelle_qpv
    from {{ ref('ref_perimetre_qpv') }}

),

insee as (

    select * from {{ ref('int_suivi__qpv_insee') }}

),

reparti as (

    select
        cibles.territoire,
        cibles.annee,
        cibles.code_qpv,
        cibles.dossier,
        cibles.cle_repartition,
        actions.montant_accorde * cibles.part_action as montant_accorde,
        actions.montant_accorde_credits_specifiques * cibles.part_action
            as montant_accorde_credits_specifiques,
        actions.montant_accorde_droit_commun * cibles.part_action as montant_accorde_droit_commun
    from cibles
    inner join actions
        on
            cibles.territoire = actions.territoire
            and cibles.annee = actions.annee
            and cibles.dossier = actions.dossier

),

grouped as (

    select
        territoire,
        annee,
        code_qpv,
        count(distinct dossier) as nb_actions,
        count(distinct dossier) filter (where montant_accorde > 0) as nb_actions_financees,
        sum(montant_accorde) as montant_accorde,
        sum(montant_accorde_credits_specifiques) as montant_accorde_credits_specifiques,
        sum(montant_accorde_droit_commun) as montant_accorde_droit_commun,
        coalesce(sum(montant_accorde) filter (where cle_repartition = 'egale'), 0)
            as montant_reparti_egalement
    from reparti
    group by territoire, annee, code_qpv

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
        case
            when grouped.code_qpv like 'QP%' then '2015'
            when grouped.code_qpv like 'QN%' then '2024'
        end as geographie,
        grouped.nb_actions,
        grouped.nb_actions_financees,
        cast(grouped.montant_accorde as decimal(18, 2)) as montant_accorde,
        cast(grouped.montant_accorde_credits_specifiques as decimal(18, 2))
            as montant_accorde_credits_specifiques,
        cast(grouped.montant_accorde_droit_commun as decimal(18, 2))
            as montant_accorde_droit_commun,
        cast(grouped.montant_reparti_egalement as decimal(18, 2)) as montant_reparti_egalement,
        grouped.montant_reparti_egalement > 0 as repartition_egale,
        insee.population,
        insee.millesime_population,
        insee.methode_population,
        insee.source_population,
        round(grouped.montant_accorde / nullif(insee.population, 0), 2) as euros_par_habitant,
        round(grouped.montant_accorde_credits_specifiques / nullif(insee.population, 0), 2)
            as euros_par_habitant_credits_specifiques
    from grouped
    left join perimetre
        on
            grouped.territoire = perimetre.territoire
            and grouped.code_qpv = perimetre.code_qpv
    left join insee
        on
            grouped.annee = insee.annee
            and grouped.code_qpv = insee.code_qpv

)

select * from final
