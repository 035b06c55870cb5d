-- Spending by territory, zoning, year and orientation (level 1 of the territory's hierarchy):
-- the suivi read through the zonings other than the QPV (ref_zonages).
-- How an action counts in a zoning: it counts when at least one of the QPV it targets
-- (int_suivi__actions_qpv: its codes, or every QPV of the perimeter for 'TOUS') is covered by the
-- zoning that year (int_zonages__qpv: a QPV named by the zoning, or a QPV of a commune it names,
-- within annee_debut..annee_fin); a quartier d'intérêt communautaire is reached when its name
-- appears in the action's quartier text. nb_actions and montant_accorde_actions count such an
-- action whole (an action touching two zonings counts in both: never sum them across zonings);
-- montant_accorde_zonage counts only the share of the action assigned to the zoning's QPV (the
-- population split of int_suivi__actions_qpv, as effort_financier_qpv), 1 for a QIC reached by
-- name. Amounts in euros, DECIMAL(18, 2).
with

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

orientations as (

    select
        territoire,
        annee,
        dossier,
        any_value(coalesce(orientation_n1_code, orientation_code)) as orientation_code,
        any_value(
            coalesce(orientation_n1_libelle, orientation_libelle_referentiel, orientation_libelle)
        ) as orientation_libelle
    from {{ ref('int_suivi__programmations') }}
    group by territoire, annee, dossier

),

actions_qpv as (

    select * from {{ ref('int_suivi__actions_qpv') }}

),

zonages_qpv as (

    select * from {{ ref('int_zonages__qpv') }}

),

qic as (

    select
        territoire,
        code_zonage,
        type_zonage,
        type_zonage_libelle,
        nom as nom_zonage,
        {{ normalise_libelle('nom') }} as cle_nom
    from {{ ref('ref_zonages') }}
    where type_zonage = 'quartier_interet_communautaire' and unite_couverte = 'nom'

),

par_qpv as (

    select
        actions_qpv.territoire,
        actions_qpv.annee,
        actions_qpv.dossier,
        zonages_qpv.code_zonage,
        zonages_qpv.type_zonage,
        zonages_qpv.type_zonage_libelle,
        zonages_qpv.nom_zonage,
        count(*) as nb_qpv_zonage,
        sum(actions_qpv.part_action) as part_zonage
    from actions_qpv
    inner join zonages_qpv
        on
            actions_qpv.territoire = zonages_qpv.territoire
            and actions_qpv.code_qpv = zonages_qpv.code_qpv
            and actions_qpv.annee >= coalesce(zonages_qpv.annee_debut, actions_qpv.annee)
            and actions_qpv.annee <= coalesce(zonages_qpv.annee_fin, actions_qpv.annee)
    group by all

),

par_nom as (

    select
        actions.territoire,
        actions.annee,
        actions.dossier,
        qic.code_zonage,
        qic.type_zonage,
        qic.type_zonage_libelle,
        qic.nom_zonage,
        0 as nb_qpv_zonage,
        1.0 as part_zonage
    from actions
    inner join qic
        on
            actions.territoire = qic.territoire
            and {{ normalise_libelle('actions.qpv_texte') }} like '%' || qic.cle_nom || '%'

),

action_zonage as (

    select * from par_qpv
    union all
    select * from par_nom

),

final as (

    select
        action_zonage.territoire,
        action_zonage.code_zonage,
        any_value(action_zonage.type_zonage) as type_zonage,
        any_value(action_zonage.type_zonage_libelle) as type_zonage_libelle,
        any_value(action_zonage.nom_zonage) as nom_zonage,
        action_zonage.annee,
        coalesce(orientations.orientation_code, 'NON_RENSEIGNE') as orientation_code,
        coalesce(any_value(orientations.orientation_libelle), 'Orientation non renseignée')
            as orientation_libelle,
        count(*) as nb_actions,
        cast(coalesce(sum(actions.montant_demande), 0) as decimal(18, 2))
            as montant_demande_actions,
        cast(coalesce(sum(actions.montant_accorde), 0) as decimal(18, 2))
            as montant_accorde_actions,
        cast(coalesce(sum(actions.montant_accorde_credits_specifiques), 0) as decimal(18, 2))
            as montant_accorde_credits_specifiques_actions,
        cast(coalesce(sum(actions.montant_accorde_droit_commun), 0) as decimal(18, 2))
            as montant_accorde_droit_commun_actions,
        cast(
            coalesce(sum(actions.montant_accorde * action_zonage.part_zonage), 0)
            as decimal(18, 2)
        ) as montant_accorde_zonage
    from action_zonage
    inner join actions
        on
            action_zonage.territoire = actions.territoire
            and action_zonage.annee = actions.annee
            and action_zonage.dossier = actions.dossier
    left join orientations
        on
            action_zonage.territoire = orientations.territoire
            and action_zonage.annee = orientations.annee
            and action_zonage.dossier = orientations.dossier
    group by
        action_zonage.territoire,
        action_zonage.code_zonage,
        action_zonage.annee,
        coalesce(orientations.orientation_code, 'NON_RENSEIGNE')

)

select * from final
