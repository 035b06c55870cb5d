-- Granted subsidies in the OpenDataFrance SCDL « subventions » format, version 2.1 (16 fields, in
-- the schema's order, named as the schema names them), one row per action x attributing
-- financeur, for the subsidies int_suivi__subventions marks as publishable (identified
-- attributor, beneficiary a legal person). pipelines/publication/scdl.py writes one CSV per
-- fichier_scdl (territory x financeur x year). Fields the programmation does not hold are left
-- empty and listed in champs_a_completer.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

subventions as (

    select * from {{ ref('int_suivi__subventions') }}
    where publiable and {{ annees_reconstruites() }}

),

-- The SCDL field names are camelCase (DuckDB keeps the case of unquoted identifiers).
-- noqa: disable=CP02
final as (

    select
        nom_attribuant as nomAttribuant,
        id_attribuant as idAttribuant,
        cast(null as date) as dateConvention,
        dossier as referenceDecision,
        porteur_nom as nomBeneficiaire,
        case
            when siret_valide and regexp_full_match(porteur_siret, '[0-9]{14}')
                then porteur_siret
        end as idBeneficiaire,
        case
            when regexp_full_match(upper(trim(porteur_siret)), 'W[0-9]{9}')
                then upper(trim(porteur_siret))
        end as rnaBeneficiaire,
        left(intitule, 255) as objet,
        cast(montant_accorde as decimal(18, 2)) as montant,
        'aide en numéraire' as nature,
        case when cpo then 'échelonné' else 'unique' end as conditionsVersement,
        cast(make_date(annee, 1, 1) as varchar) || '/' || cast(make_date(annee, 12, 31) as varchar)
            as datesPeriodeVersement,
        cast(null as varchar) as idRAE,
        false as notificationUE,
        1.0 as pourcentageSubvention,
        cast(null as varchar) as dispositifAide,
        territoire,
        annee,
        financeur,
        'subventions_' || territoire || '_' || financeur || '_' || cast(annee as varchar) || '.csv'
            as fichier_scdl,
        concat_ws(
            ', ',
            'dateConvention',
            case
                when not regexp_full_match(coalesce(id_attribuant, ''), '[0-9]{14}')
                    then 'idAttribuant'
            end,
            case
                when not (siret_valide and regexp_full_match(porteur_siret, '[0-9]{14}'))
                    then 'idBeneficiaire'
            end
        ) as champs_a_completer
    from subventions

)
-- noqa: enable=CP02

select * from final
