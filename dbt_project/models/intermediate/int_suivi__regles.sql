-- The funding rules of ref_regles_financement, typed: one row per rule parameter with a key, the
-- level it is judged at (an action, a territory's year, or nothing the programmation can show)
-- and its threshold as a number, a date (fixed, or month-day of year N+1) or a marqueur level.
with

regles as (

    select * from {{ ref('ref_regles_financement') }}

),

final as (

    select
        concat_ws(
            '|',
            territoire,
            regle,
            coalesce(financeur, ''),
            cast(annee_debut as varchar),
            coalesce(condition_statut, '')
        ) as regle_cle,
        territoire,
        regle,
        financeur,
        cast(annee_debut as integer) as annee_debut,
        cast(annee_fin as integer) as annee_fin,
        condition_statut,
        cast(condition_rang as integer) as condition_rang,
        condition_nature,
        condition_volet,
        condition_quartier,
        exception_porteur,
        controle,
        sens,
        coalesce(cast(tolerance as double), 0) as tolerance,
        valeur,
        unite,
        case
            when controle = 'aucun' then 'non_controlable'
            when
                controle in (
                    'part_actions_cpo',
                    'nombre_actions_suivi_renforce',
                    'nombre_actions_suivi_renforce_periode',
                    'part_montant_volet'
                )
                then 'territoire'
            else 'action'
        end as niveau_controle,
        case
            when unite in ('EUR', 'part', 'annees', 'nombre') then try_cast(valeur as double)
        end as seuil_nombre,
        case when unite = 'date' then try_cast(valeur as date) end as seuil_date,
        case
            when
                unite in ('date_n', 'date_n_plus_1')
                then try_cast(split_part(valeur, '-', 1) as integer)
        end as seuil_mois,
        case
            when
                unite in ('date_n', 'date_n_plus_1')
                then try_cast(split_part(valeur, '-', 2) as integer)
        end as seuil_jour,
        case when unite = 'niveau' then valeur end as seuil_niveau,
        description,
        source_seed,
        source_libelle,
        citation
    from regles

)

select * from final
