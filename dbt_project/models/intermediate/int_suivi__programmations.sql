-- Programmation lines (action x financeur) with the canonical financeur and credit type (matched
-- on the alias référentiel, territory-specific aliases first), and the orientation of the
-- territory's hierarchy in force that year. Unmatched financeurs and orientations are kept, with
-- financeur = 'NON_RECONNU' / orientation_reconnue = false, for the controls to report.
with

programmations as (

    select * from {{ ref('stg_suivi__programmations') }}

),

financeurs as (

    select * from {{ ref('ref_financeurs') }}

),

alias as (

    select
        {{ normalise_libelle('alias') }} as cle,
        financeur,
        nullif(cast(territoire as varchar), '') as territoire
    from {{ ref('ref_financeurs_alias') }}
    union all
    select
        {{ normalise_libelle('financeur') }} as cle,
        financeur,
        nullif(cast(territoire as varchar), '') as territoire
    from financeurs
    union all
    select
        {{ normalise_libelle('libelle') }} as cle,
        financeur,
        nullif(cast(territoire as varchar), '') as territoire
    from financeurs

),

orientations as (

    select * from {{ ref('ref_orientations') }}

),

financeur_match as (

    select
        programmations.source_fichier,
        programmations.source_feuille,
        programmations.source_ligne,
        programmations.financeur_libelle,
        alias.financeur,
        row_number() over (
            partition by
                programmations.source_fichier,
                programmations.source_feuille,
                programmations.source_ligne,
                programmations.financeur_libelle
            order by alias.territoire nulls last, alias.financeur
        ) as rang
    from programmations
    inner join alias
        on
            {{ normalise_libelle('programmations.financeur_libelle') }} = alias.cle
            and (alias.territoire is null or alias.territoire = programmations.territoire)

),

referentiels as (

    select distinct
        territoire,
        referentiel,
        cast(annee_debut as integer) as annee_debut,
        cast(annee_fin as integer) as annee_fin
    from orientations

),

final as (

    select
        programmations.*,
        coalesce(financeur_match.financeur, 'NON_RECONNU') as financeur,
        coalesce(financeurs.libelle, programmations.financeur_libelle) as financeur_nom,
        coalesce(financeurs.type_credit, 'non_renseigne') as type_credit,
        referentiels.referentiel,
        niveau1.libelle as orientation_libelle_referentiel,
        niveau1.code is not null as orientation_reconnue,
        objectif.libelle as objectif_libelle_referentiel
    from programmations
    left join financeur_match
        on
            programmations.source_fichier = financeur_match.source_fichier
            and programmations.source_feuille is not distinct from financeur_match.source_feuille
            and programmations.source_ligne = financeur_match.source_ligne
            and programmations.financeur_libelle is not distinct from financeur_match.financeur_libelle
            and financeur_match.rang = 1
    left join financeurs on financeur_match.financeur = financeurs.financeur
    left join referentiels
        on
            programmations.territoire = referentiels.territoire
            and programmations.annee between referentiels.annee_debut and referentiels.annee_fin
    left join orientations as niveau1
        on
            referentiels.referentiel = niveau1.referentiel
            and cast(niveau1.niveau as integer) = 1
            and programmations.orientation_code = cast(niveau1.code as varchar)
    left join orientations as objectif
        on
            referentiels.referentiel = objectif.referentiel
            and cast(objectif.niveau as integer) > 1
            and programmations.objectif_code = cast(objectif.code as varchar)

)

select * from final
