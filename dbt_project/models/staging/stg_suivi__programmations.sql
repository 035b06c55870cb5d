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
        intitule,
        trim(orientation_code) as orientation_code,
        orientation_libelle,
        trim(objectif_code) as objectif_code,
        qpv_codes,
        qpv_texte,
        statut_libelle,
        cast(cout_total as double) as cout_total,
        cast(couts_indirects as double) as couts_indirects,
        cast(achats as double) as achats,
        financeur_libelle,
        cast(montant_demande as double) as montant_demande,
        cast(montant_accorde as double) as montant_accorde,
        cast(cpo as boolean) as cpo,
        cast(cpo_duree as integer) as cpo_duree,
        marqueur_egalite,
        cast(part_public_qpv as double) as part_public_qpv,
        cast(date_bilan as date) as date_bilan,
        source_fichier,
        source_feuille,
        cast(source_ligne as bigint) as source_ligne
    from source

)

select * from renamed
