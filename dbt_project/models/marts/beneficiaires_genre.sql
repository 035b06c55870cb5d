-- Beneficiaries by territory, year, orientation and QPV of residence (a QPV code, HORS_QPV or
-- NON_RENSEIGNE), by sex. part_femmes = femmes / (femmes + hommes): people whose sex is not
-- stated are counted in the total but not in the share. Compared with the share of women in the
-- QPV's population (INSEE DEMO TX_F) where the INSEE bases give it for that code.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

bilans as (

    select * from {{ ref('stg_suivi__bilans') }}
    where {{ annees_reconstruites() }}

),

actions as (

    select
        territoire,
        annee,
        dossier,
        any_value(dossier_base) as dossier_base,
        any_value(orientation_code) as orientation_code,
        any_value(orientation_n1_code) as orientation_n1_code,
        any_value(orientation_n1_libelle) as orientation_n1_libelle,
        any_value(orientation_libelle_referentiel) as orientation_libelle_referentiel,
        any_value(orientation_libelle) as orientation_libelle
    from {{ ref('int_suivi__programmations') }}
    where {{ annees_reconstruites() }}
    group by territoire, annee, dossier

),

insee as (

    select * from {{ ref('int_suivi__qpv_insee') }}

),

joined as (

    select
        bilans.*,
        coalesce(actions.orientation_n1_code, actions.orientation_code, 'NON_RENSEIGNE')
            as orientation_code,
        coalesce(
            actions.orientation_n1_libelle,
            actions.orientation_libelle_referentiel,
            actions.orientation_libelle
        ) as orientation_libelle
    from bilans
    left join actions
        on
            bilans.territoire = actions.territoire
            and bilans.annee = actions.annee
            and bilans.dossier = actions.dossier

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        qpv_residence,
        count(distinct dossier) as nb_actions,
        coalesce(sum(femmes), 0) as femmes,
        coalesce(sum(hommes), 0) as hommes,
        coalesce(sum(sexe_non_renseigne), 0) as sexe_non_renseigne
    from joined
    group by territoire, annee, orientation_code, qpv_residence

),

final as (

    select
        grouped.territoire,
        grouped.annee,
        grouped.orientation_code,
        grouped.orientation_libelle,
        grouped.qpv_residence,
        grouped.nb_actions,
        grouped.femmes,
        grouped.hommes,
        grouped.sexe_non_renseigne,
        grouped.femmes + grouped.hommes + grouped.sexe_non_renseigne as total,
        round(100.0 * grouped.femmes / nullif(grouped.femmes + grouped.hommes, 0), 1)
            as part_femmes,
        insee.part_femmes as part_femmes_population_qpv,
        insee.millesime_part_femmes as millesime_part_femmes_population
    from grouped
    left join insee
        on
            grouped.annee = insee.annee
            and grouped.qpv_residence = insee.code_qpv

)

select
    *,
    round(part_femmes - part_femmes_population_qpv, 1) as ecart_part_femmes_points
from final
