-- Every granted subsidy (action x financeur with a granted amount > 0) with what the SCDL
-- « subventions » publication needs, and whether it may be published: the attributing body must
-- be identified (nom_attribuant of ref_financeurs, or the contract's EPCI for a financeur of
-- nature EPCI) and the beneficiary must be a legal person (no natural person is ever published:
-- a porteur whose type reads as a natural person, or with neither a valid SIRET/SIREN nor a
-- porteur type, is held back).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

financements as (

    select * from {{ ref('int_suivi__actions_financeurs') }}
    where montant_accorde > 0 and {{ annees_reconstruites() }}

),

actions as (

    select * from {{ ref('int_suivi__actions') }}
    where {{ annees_reconstruites() }}

),

financeurs as (

    select * from {{ ref('ref_financeurs') }}

),

territoires as (

    select
        territoire,
        nom,
        cast(siren as varchar) as siren
    from {{ ref('ref_territoires') }}

),

joined as (

    select
        financements.territoire,
        financements.annee,
        financements.dossier,
        financements.financeur,
        financements.montant_accorde,
        actions.porteur_nom,
        actions.porteur_siret,
        actions.porteur_siren,
        actions.siret_valide,
        actions.porteur_type,
        actions.intitule,
        actions.cpo,
        case
            when financeurs.nature = 'EPCI' then territoires.nom
            else nullif(financeurs.nom_attribuant, '')
        end as nom_attribuant,
        coalesce(
            nullif(cast(financeurs.siret_attribuant as varchar), ''),
            case when financeurs.nature = 'EPCI' then territoires.siren end
        ) as id_attribuant,
        regexp_full_match(
            {{ normalise_libelle('actions.porteur_type') }},
            '.*(personne physique|particulier|individu|entrepreneur individuel'
            || '|micro entrepr|auto entrepr|benevole|habitant).*'
        ) as porteur_personne_physique
    from financements
    inner join actions
        on
            financements.territoire = actions.territoire
            and financements.annee = actions.annee
            and financements.dossier = actions.dossier
    left join financeurs on financements.financeur = financeurs.financeur
    left join territoires on financements.territoire = territoires.territoire

),

final as (

    select
        *,
        case
            when porteur_personne_physique
                then 'bénéficiaire personne physique (type de porteur) : jamais publié'
            when not coalesce(siret_valide, false) and porteur_type is null
                then
                    'bénéficiaire non identifié (ni SIRET/SIREN valide ni type de porteur) : '
                    || 'peut être une personne physique'
            when nom_attribuant is null
                then 'attribuant non identifié : renseigner ref_financeurs.nom_attribuant'
        end as motif_non_publication
    from joined

)

select
    *,
    motif_non_publication is null as publiable
from final
