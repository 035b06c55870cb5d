-- One row per action x canonical financeur: the amounts requested and granted summed over the
-- action's lines for that financeur (two labels of one financeur, as « État » and « BOP 147 »;
-- a repeated request is not summed: the reader keeps the last line), in euros DECIMAL(18, 2), with the nature of the subsidy and the regional volet of the first line.
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

final as (

    select
        territoire,
        annee,
        dossier,
        financeur,
        arg_min(financeur_nom, source_ligne) as financeur_nom,
        arg_min(financeur_libelle_court, source_ligne) as financeur_libelle_court,
        arg_min(type_credit, source_ligne) as type_credit,
        arg_min(nature_subvention, source_ligne) as nature_subvention,
        arg_min(volet_regional, source_ligne) as volet_regional,
        count(*) as nb_lignes,
        cast(sum(montant_demande) as decimal(18, 2)) as montant_demande,
        cast(sum(montant_accorde) as decimal(18, 2)) as montant_accorde
    from lignes
    group by territoire, annee, dossier, financeur

)

select * from final
