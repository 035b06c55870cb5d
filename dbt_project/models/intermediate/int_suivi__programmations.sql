-- Programmation lines (action x financeur) with the canonical financeur and credit type
-- (matched on the alias référentiel, territory-specific aliases first; a credit type typed in
-- the file wins), the action status of the territory's vocabulary (ref_statuts_action, matched
-- on its label or code), and the orientation of the territory's hierarchy in force that year
-- (matched on its code at any level: CABBALR's programmations name a priorité, Valenciennes' an
-- orientation), rolled up to the level-1 orientation and the level-2 objectif. Unmatched
-- financeurs and orientations are kept, with financeur = 'NON_RECONNU' / orientation_reconnue =
-- false, for the controls to report. The transversal theme typed in the file (CABBALR's
-- priorité transversale, CAMVS's fil rouge, VM's orientation transversale) is matched on the
-- transversal level-1 nodes of the hierarchy (code, else label): thematique_code / _libelle.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

programmations as (

    select * from {{ ref('stg_suivi__programmations') }}
    where {{ annees_reconstruites() }}

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

-- A status is recognised by its label or its code (ref_statuts_action is unique by territory
-- and code), once per territory and status as written, then joined to the lines by hash: a
-- join testing both keys with an IN compared every line with every status of the country.
statuts as (

    select distinct
        territoire,
        statut_code,
        categorie,
        cle
    from (
        select
            territoire,
            statut_code,
            categorie,
            {{ normalise_libelle('libelle') }} as cle
        from {{ ref('ref_statuts_action') }}
        union all
        select
            territoire,
            statut_code,
            categorie,
            {{ normalise_libelle('statut_code') }} as cle
        from {{ ref('ref_statuts_action') }}
    ) as cles

),

statut_match as (

    select
        libelles.territoire,
        libelles.statut_libelle,
        statuts.statut_code,
        statuts.categorie
    from (
        select distinct
            territoire,
            statut_libelle
        from programmations
    ) as libelles
    inner join statuts
        on
            libelles.territoire = statuts.territoire
            and {{ normalise_libelle('libelles.statut_libelle') }} = statuts.cle

),

-- Matched once per territory and label as written (a few hundred pairs), not once per line.
libelles_financeurs as (

    select distinct
        territoire,
        financeur_libelle
    from programmations

),

financeur_match as (

    select
        libelles_financeurs.territoire,
        libelles_financeurs.financeur_libelle,
        alias.financeur,
        row_number() over (
            partition by libelles_financeurs.territoire, libelles_financeurs.financeur_libelle
            order by alias.territoire nulls last, alias.financeur
        ) as rang
    from libelles_financeurs
    inner join alias
        on
            {{ normalise_libelle('libelles_financeurs.financeur_libelle') }} = alias.cle
            and (
                alias.territoire is null or libelles_financeurs.territoire = alias.territoire
            )

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
        libelle,
        cast(code_parent as varchar) as code_parent
    from orientations

),

-- The transversal themes of each hierarchy (level-1 nodes flagged transversal: VM's
-- orientations transversales, CABBALR's priorités transversales, CAMVS's fils rouges), matched
-- on the code typed in the file, else on its label (a file may give the label alone).
themes as (

    select
        referentiel,
        cast(code as varchar) as code,
        libelle,
        {{ normalise_libelle('libelle') }} as cle_libelle
    from orientations
    where transversal and cast(niveau as integer) = 1

),

-- Each node with its level-1 (orientation) and level-2 (objectif) ancestors; the hierarchies
-- have at most 3 levels (ref_orientations.niveau). CABBALR's priorités (level 2) have no parent
-- pilier in the seed: their level-1 ancestor is NULL.
ancetres as (

    select
        noeud.referentiel,
        noeud.code,
        noeud.niveau,
        case noeud.niveau
            when 1 then noeud.code
            when 2 then parent.code
            when 3 then grand_parent.code
        end as code_n1,
        case noeud.niveau
            when 2 then noeud.code
            when 3 then parent.code
        end as code_n2
    from noeuds as noeud
    left join noeuds as parent
        on
            noeud.referentiel = parent.referentiel
            and noeud.code_parent = parent.code
    left join noeuds as grand_parent
        on
            parent.referentiel = grand_parent.referentiel
            and parent.code_parent = grand_parent.code

),

joined as (

    select
        programmations.*,
        coalesce(financeur_match.financeur, 'NON_RECONNU') as financeur,
        coalesce(financeurs.libelle, programmations.financeur_libelle) as financeur_nom,
        coalesce(financeurs.libelle_court, programmations.financeur_libelle)
            as financeur_libelle_court,
        coalesce(
            case
                when {{ normalise_libelle('programmations.type_credits') }} like '%specifique%'
                    then 'credits_specifiques'
                when {{ normalise_libelle('programmations.type_credits') }} like '%droit commun%'
                    then 'droit_commun'
            end,
            financeurs.type_credit,
            'non_renseigne'
        ) as type_credit,
        statut_match.statut_code,
        statut_match.categorie as statut_categorie,
        referentiel_annee.referentiel,
        coalesce(referentiel_annee.referentiel_proroge, false) as referentiel_proroge,
        orientation.niveau as orientation_niveau,
        orientation.libelle as orientation_libelle_referentiel,
        orientation.code is not null as orientation_reconnue,
        objectif.niveau as objectif_niveau,
        objectif.libelle as objectif_libelle_referentiel,
        objectif.code is not null as objectif_reconnu,
        coalesce(
            orientation_ancetres.code_n1, objectif_ancetres.code_n1, programmations.orientation_code
        ) as orientation_n1_code,
        coalesce(objectif_ancetres.code_n2, orientation_ancetres.code_n2) as objectif_n2_code
    from programmations
    left join financeur_match
        on
            programmations.territoire is not distinct from financeur_match.territoire
            and programmations.financeur_libelle
            is not distinct from financeur_match.financeur_libelle
            and financeur_match.rang = 1
    left join financeurs on financeur_match.financeur = financeurs.financeur
    left join statut_match
        on
            programmations.territoire = statut_match.territoire
            and programmations.statut_libelle is not distinct from statut_match.statut_libelle
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
    left join ancetres as orientation_ancetres
        on
            orientation.referentiel = orientation_ancetres.referentiel
            and orientation.code = orientation_ancetres.code
    left join ancetres as objectif_ancetres
        on
            objectif.referentiel = objectif_ancetres.referentiel
            and objectif.code = objectif_ancetres.code

),

final as (

    select
        joined.*,
        coalesce(orientation_n1.libelle, joined.orientation_libelle)
            as orientation_n1_libelle,
        objectif_n2.libelle as objectif_n2_libelle,
        coalesce(theme_code.code, theme_libelle.code) as thematique_code,
        coalesce(
            theme_code.libelle,
            theme_libelle.libelle,
            joined.thematique_transversale_libelle,
            joined.thematique_transversale_code
        ) as thematique_libelle,
        coalesce(theme_code.code, theme_libelle.code) is not null as thematique_reconnue
    from joined
    left join noeuds as orientation_n1
        on
            joined.referentiel = orientation_n1.referentiel
            and joined.orientation_n1_code = orientation_n1.code
    left join noeuds as objectif_n2
        on
            joined.referentiel = objectif_n2.referentiel
            and joined.objectif_n2_code = objectif_n2.code
    left join themes as theme_code
        on
            joined.referentiel = theme_code.referentiel
            and joined.thematique_transversale_code = theme_code.code
    left join themes as theme_libelle
        on
            joined.referentiel = theme_libelle.referentiel
            and {{ normalise_libelle(
                'coalesce(joined.thematique_transversale_libelle, '
                ~ 'joined.thematique_transversale_code)'
            ) }} = theme_libelle.cle_libelle

)

select * from final
