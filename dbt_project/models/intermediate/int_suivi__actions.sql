-- One row per action (territoire x annee x dossier): the action's attributes, repeated on each
-- of its financeur lines in the file, taken once (the first line of the file for texts, the
-- largest value for numbers and dates, true if any line says so for flags), its amounts summed
-- over its financeur lines, the date its final bilan was handed in (programmation column, else
-- the earliest date of its bilan rows), whether it targets a quartier d'intérêt communautaire,
-- and its marqueur égalité placed on the scale the territory has in force that year (none for a
-- territory without a marqueur scale). Its transversal theme (int_suivi__programmations, first
-- line) and whether a line says it belongs to a projet de quartier (NULL: no such column).
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

bilans as (

    select
        territoire,
        annee,
        dossier,
        min(date_bilan) as date_bilan
    from {{ ref('stg_suivi__bilans') }}
    where {{ annees_reconstruites() }}
    group by territoire, annee, dossier

),

quartiers_interet_communautaire as (

    select
        territoire,
        {{ normalise_libelle('nom') }} as cle_nom
    from {{ ref('ref_quartiers_interet_communautaire') }}

),

-- The marqueur scales of the territories, each with its period (a territory without a scale
-- has no marqueur: its actions get no scale and no rank).
marqueurs as (

    select
        territoire,
        echelle,
        annee_debut,
        annee_fin,
        niveau,
        rang
    from {{ ref('ref_marqueur_egalite') }}

),

echelles as (

    select distinct
        territoire,
        echelle,
        annee_debut,
        annee_fin
    from marqueurs

),

-- The scale in force for each territory and year of the programmations (a few thousand
-- pairs), joined to the actions by hash: a join on the period compared every action with
-- every scale of the country.
echelles_annees as (

    select
        annees.territoire,
        annees.annee,
        echelles.echelle
    from (
        select distinct
            territoire,
            annee
        from lignes
    ) as annees
    inner join echelles
        on
            annees.territoire = echelles.territoire
            and annees.annee >= echelles.annee_debut
            and annees.annee <= coalesce(echelles.annee_fin, annees.annee)

),

actions as (

    select
        territoire,
        annee,
        dossier,
        arg_min(dossier_base, source_ligne) as dossier_base,
        bool_or(serie_pluriannuelle) as serie_pluriannuelle,
        arg_min(referentiel, source_ligne) as referentiel,
        arg_min(porteur_nom, source_ligne) as porteur_nom,
        arg_min(porteur_siret, source_ligne) as porteur_siret,
        arg_min(porteur_siren, source_ligne) as porteur_siren,
        bool_and(siret_valide) as siret_valide,
        arg_min(porteur_type, source_ligne) as porteur_type,
        arg_min(intitule, source_ligne) as intitule,
        arg_min(orientation_n1_code, source_ligne) as orientation_code,
        arg_min(orientation_n1_libelle, source_ligne) as orientation_libelle,
        arg_min(objectif_n2_code, source_ligne) as objectif_code,
        arg_min(objectif_n2_libelle, source_ligne) as objectif_libelle,
        arg_min(qpv_codes, source_ligne) as qpv_codes,
        arg_min(qpv_texte, source_ligne) as qpv_texte,
        arg_min(echelle, source_ligne) as echelle,
        arg_min(statut_libelle, source_ligne) as statut_libelle,
        arg_min(statut_code, source_ligne) as statut_code,
        arg_min(statut_categorie, source_ligne) as statut_categorie,
        arg_min(thematique_code, source_ligne) as thematique_code,
        arg_min(thematique_libelle, source_ligne) as thematique_libelle,
        bool_or(projet_quartier) as projet_quartier,
        max(cout_total) as cout_total,
        max(couts_indirects) as couts_indirects,
        max(achats) as achats,
        max(rang_financement) as rang_financement,
        coalesce(bool_or(cpo), false) as cpo,
        max(cpo_duree) as cpo_duree,
        arg_min(nullif(trim(marqueur_egalite), ''), source_ligne) as marqueur_egalite,
        max(part_public_qpv) as part_public_qpv,
        max(date_debut_action) as date_debut_action,
        max(date_fin_action) as date_fin_action,
        max(date_bilan) as date_bilan_programmation,
        max(date_bilan_intermediaire) as date_bilan_intermediaire,
        max(date_demande_report) as date_demande_report,
        max(nombre_reunions_suivi) as nombre_reunions_suivi,
        bool_or(suivi_renforce) as suivi_renforce,
        count(*) as nb_lignes,
        count(distinct financeur) as nb_financeurs,
        cast(coalesce(sum(montant_demande), 0) as decimal(18, 2)) as montant_demande,
        cast(coalesce(sum(montant_accorde), 0) as decimal(18, 2)) as montant_accorde,
        cast(
            coalesce(sum(montant_accorde) filter (where type_credit = 'credits_specifiques'), 0)
            as decimal(18, 2)
        ) as montant_accorde_credits_specifiques,
        cast(
            coalesce(sum(montant_accorde) filter (where type_credit = 'droit_commun'), 0)
            as decimal(18, 2)
        ) as montant_accorde_droit_commun,
        arg_min(source_fichier, source_ligne) as source_fichier,
        min(source_ligne) as source_ligne
    from lignes
    group by territoire, annee, dossier

),

final as (

    select
        actions.* exclude (actions.date_bilan_programmation),
        coalesce(actions.date_bilan_programmation, bilans.date_bilan) as date_bilan,
        case
            when actions.date_bilan_programmation is not null then 'programmation'
            when bilans.date_bilan is not null then 'bilans'
        end as date_bilan_source,
        exists(
            select 1 from quartiers_interet_communautaire as qic
            where
                qic.territoire = actions.territoire
                and {{ normalise_libelle('actions.qpv_texte') }} like '%' || qic.cle_nom || '%'
        ) as vise_qic,
        echelles.echelle as echelle_marqueur,
        marqueurs.rang as marqueur_rang
    from actions
    left join bilans
        on
            actions.territoire = bilans.territoire
            and actions.annee = bilans.annee
            and actions.dossier = bilans.dossier
    left join echelles_annees as echelles
        on
            actions.territoire = echelles.territoire
            and actions.annee = echelles.annee
    left join marqueurs
        on
            echelles.territoire = marqueurs.territoire
            and echelles.echelle = marqueurs.echelle
            and actions.marqueur_egalite = marqueurs.niveau

)

select * from final
