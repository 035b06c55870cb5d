-- Programmation lines (action x financeur) with the canonical financeur and credit type
-- (matched on the alias référentiel, territory-specific aliases first), and the orientation of
-- the territory's hierarchy in force that year (matched on its code at any level: CABBALR's
-- programmations name a priorité, Valenciennes' an orientation). Unmatched financeurs and
-- orientations are kept, with financeur = 'NON_RECONNU' / orientation_reconnue = false, for the
-- controls to report.
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
            and (alias.territoire is null or programmations.territoire = alias.territoire)

),

referentiels as (

    select distinct
        territoire,
        referentiel,
        cast(annee_debut as integer) as annee_debut,
        cast(annee_fin as integer) as annee_fin
    from orientations

),

annees as (

    select distinct
        territoire,
        annee
    from programmations

),

-- The hierarchy in force: the one whose period covers the year, else the latest one that
-- started before (a contract extended beyond its printed period), flagged as such.
referentiel_annee as (

    select
        annees.territoire,
        annees.annee,
        referentiels.referentiel,
        annees.annee > referentiels.annee_fin as referentiel_proroge,
        row_number() over (
            partition by annees.territoire, annees.annee
            order by
                annees.annee between referentiels.annee_debut and referentiels.annee_fin desc,
                referentiels.annee_debut desc
        ) as rang
    from annees
    inner join referentiels
        on
            annees.territoire = referentiels.territoire
            and annees.annee >= referentiels.annee_debut

),

noeuds as (

    select
        referentiel,
        cast(code as varchar) as code,
        cast(niveau as integer) as niveau,
        libelle
    from orientations

),

final as (

    select
        programmations.*,
        coalesce(financeur_match.financeur, 'NON_RECONNU') as financeur,
        coalesce(financeurs.libelle, programmations.financeur_libelle) as financeur_nom,
        coalesce(financeurs.type_credit, 'non_renseigne') as type_credit,
        referentiel_annee.referentiel,
        coalesce(referentiel_annee.referentiel_proroge, false) as referentiel_proroge,
        orientation.niveau as orientation_niveau,
        orientation.libelle as orientation_libelle_referentiel,
        orientation.code is not null as orientation_reconnue,
        objectif.niveau as objectif_niveau,
        objectif.libelle as objectif_libelle_referentiel
    from programmations
    left join financeur_match
        on
            programmations.source_fichier = financeur_match.source_fichier
            and programmations.source_feuille is not distinct from financeur_match.source_feuille
            and programmations.source_ligne = financeur_match.source_ligne
            and programmations.financeur_libelle
            is not distinct from financeur_match.financeur_libelle
            and financeur_match.rang = 1
    left join financeurs on financeur_match.financeur = financeurs.financeur
    left join referentiel_annee
        on
            programmations.territoire = referentiel_annee.territoire
            and programmations.annee = referentiel_annee.annee
            and referentiel_annee.rang = 1
    left join noeuds as orientation
        on
            referentiel_annee.referentiel = orientation.referentiel
            and programmations.orientation_code = orientation.code
    left join noeuds as objectif
        on
            referentiel_annee.referentiel = objectif.referentiel
            and programmations.objectif_code = objectif.code

)

select * from final
