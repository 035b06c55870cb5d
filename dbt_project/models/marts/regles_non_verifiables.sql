-- The funding rules in force that the loaded data cannot check, per territory and programmation
-- year: rules no programmation can show (controle = 'aucun': a permission or a duty of the
-- contract) and action rules with at least one evaluation 'non_verifiable' (previous year's
-- programmation not loaded, previous action not found, a date column absent from every file of
-- the year). Such a rule is never counted as respected: the report lists it apart.
with

regles as (

    select * from {{ ref('int_suivi__regles') }}

),

controles as (

    select * from {{ ref('int_suivi__controles_actions') }}

),

annees as (

    select distinct
        territoire,
        annee
    from {{ ref('int_suivi__actions') }}

),

non_controlables as (

    select
        regles.territoire,
        annees.annee,
        regles.regle_cle,
        regles.regle,
        regles.financeur,
        regles.controle,
        'non_controlable' as statut,
        cast(null as bigint) as nb_actions_concernees,
        cast(null as bigint) as nb_actions_non_verifiables,
        'non contrôlable sur une programmation (permission ou obligation du contrat)' as motif,
        regles.description,
        regles.source_seed,
        regles.source_libelle,
        regles.citation
    from regles
    inner join annees
        on
            regles.territoire = annees.territoire
            and annees.annee >= regles.annee_debut
            and annees.annee <= coalesce(regles.annee_fin, annees.annee)
    where regles.niveau_controle = 'non_controlable'

),

non_verifiees as (

    select
        territoire,
        annee,
        regle_cle,
        any_value(regle) as regle,
        any_value(financeur) as financeur,
        any_value(controle) as controle,
        case
            when count(*) filter (where resultat <> 'non_verifiable') = 0
                then 'non_verifiable'
            else 'partiellement_verifiable'
        end as statut,
        count(*) as nb_actions_concernees,
        count(*) filter (where resultat = 'non_verifiable') as nb_actions_non_verifiables,
        string_agg(distinct motif_non_verifiable, ' ; ' order by motif_non_verifiable) as motif,
        any_value(description) as description,
        any_value(source_seed) as source_seed,
        any_value(source_libelle) as source_libelle,
        any_value(citation) as citation
    from controles
    group by territoire, annee, regle_cle
    having count(*) filter (where resultat = 'non_verifiable') > 0

),

final as (

    select * from non_controlables
    union all
    select * from non_verifiees

)

select * from final
order by territoire, annee, regle_cle
