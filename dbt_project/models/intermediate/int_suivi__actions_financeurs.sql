-- One row per action x canonical financeur: the amounts requested and granted summed over the
-- action's lines for that financeur (a duplicated request is summed and reported in
-- raw.anomalies), with the nature of the subsidy and the regional volet of the first line.
with

lignes as (

    select * from {{ ref('int_suivi__programmations') }}

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
        sum(montant_demande) as montant_demande,
        sum(montant_accorde) as montant_accorde
    from lignes
    group by territoire, annee, dossier, financeur

)

select * from final
