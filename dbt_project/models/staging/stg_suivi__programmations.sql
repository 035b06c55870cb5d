with

source as (

    select * from {{ source('raw', 'programmations') }}

),

renamed as (

    select
        upper(trim(territoire)) as territoire,
        cast(annee as integer) as annee,
        dossier,
        dossier_base,
        cast(serie_pluriannuelle as boolean) as serie_pluriannuelle,
        porteur_nom,
        porteur_siret,
        porteur_siren,
        cast(siret_valide as boolean) as siret_valide,
        nullif(trim(porteur_type), '') as porteur_type,
        intitule,
        trim(orientation_code) as orientation_code,
        orientation_libelle,
        trim(objectif_code) as objectif_code,
        objectif_libelle,
        nullif(trim(objectif_parent_code), '') as objectif_parent_code,
        qpv_codes,
        qpv_texte,
        nullif(trim(echelle), '') as echelle,
        statut_libelle,
        nullif(trim(thematique_transversale_code), '') as thematique_transversale_code,
        nullif(trim(thematique_transversale_libelle), '') as thematique_transversale_libelle,
        cast(projet_quartier as boolean) as projet_quartier,
        cast(cout_total as decimal(18, 2)) as cout_total,
        cast(couts_indirects as decimal(18, 2)) as couts_indirects,
        cast(achats as decimal(18, 2)) as achats,
        financeur_libelle,
        cast(montant_demande as decimal(18, 2)) as montant_demande,
        cast(montant_accorde as decimal(18, 2)) as montant_accorde,
        nullif(trim(nature_subvention), '') as nature_subvention,
        nullif(trim(type_credits), '') as type_credits,
        nullif(trim(volet_regional), '') as volet_regional,
        cast(rang_financement as integer) as rang_financement,
        cast(cpo as boolean) as cpo,
        cast(cpo_duree as integer) as cpo_duree,
        marqueur_egalite,
        cast(part_public_qpv as double) as part_public_qpv,
        cast(date_debut_action as date) as date_debut_action,
        cast(date_fin_action as date) as date_fin_action,
        cast(date_bilan as date) as date_bilan,
        cast(date_bilan_intermediaire as date) as date_bilan_intermediaire,
        cast(date_demande_report as date) as date_demande_report,
        cast(nombre_reunions_suivi as integer) as nombre_reunions_suivi,
        cast(suivi_renforce as boolean) as suivi_renforce,
        source_fichier,
        source_feuille,
        cast(source_ligne as bigint) as source_ligne
    from source

)

select * from renamed
