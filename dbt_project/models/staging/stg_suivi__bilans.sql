with

source as (

    select * from {{ source('raw', 'bilans') }}

),

renamed as (

    select
        upper(trim(territoire)) as territoire,
        cast(annee as integer) as annee,
        dossier,
        cast(action_realisee as boolean) as action_realisee,
        qpv_residence,
        cast(femmes as bigint) as femmes,
        cast(hommes as bigint) as hommes,
        cast(sexe_non_renseigne as bigint) as sexe_non_renseigne,
        cast(age_moins_16 as bigint) as age_moins_16,
        cast(age_16_25 as bigint) as age_16_25,
        cast(age_26_64 as bigint) as age_26_64,
        cast(age_65_plus as bigint) as age_65_plus,
        cast(age_non_renseigne as bigint) as age_non_renseigne,
        cast(demandeurs_emploi as bigint) as demandeurs_emploi,
        cast(beneficiaires_rsa as bigint) as beneficiaires_rsa,
        cast(familles_monoparentales as bigint) as familles_monoparentales,
        cast(personnes_handicap as bigint) as personnes_handicap,
        cast(date_bilan as date) as date_bilan,
        realisation,
        motif_non_realisation,
        cast(total_beneficiaires as bigint) as total_beneficiaires,
        cast(beneficiaires_prevus as bigint) as beneficiaires_prevus,
        indicateur_resultat,
        cast(resultat_attendu as bigint) as resultat_attendu,
        cast(resultat_obtenu as bigint) as resultat_obtenu,
        cast(participation_habitants as boolean) as participation_habitants,
        participation_modalites,
        participation_formes,
        mobilisation_publics,
        effectifs_declares,
        source_fichier,
        source_feuille,
        cast(source_ligne as bigint) as source_ligne
    from source

)

select * from renamed
