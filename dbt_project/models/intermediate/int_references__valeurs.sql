-- Reference values (France, EPCI, all QPV...) from two places: the reference file of the
-- project (seeds, values printed in the contract documents) and the non-QPV rows of the INSEE
-- files themselves (the "Ensemble des quartiers prioritaires" row, communes, EPCI, France).
with

seeds as (

    select
        lower(territoire_type) as territoire_type,
        cast(territoire_code as varchar) as territoire_code,
        try_cast(millesime as integer) as millesime,
        indicateur,
        cast(valeur as double) as valeur,
        source,
        nullif(cast(territoire_source as varchar), '') as territoire_source
    from {{ ref('ref_valeurs_reference') }}

),

insee as (

    select
        case type_territoire
            when 'ensemble_qpv' then 'ensemble_qpv'
            else type_territoire
        end as territoire_type,
        code_territoire as territoire_code,
        millesime,
        indicateur,
        valeur,
        'INSEE ' || source || ' ' || millesime as source,
        cast(null as varchar) as territoire_source
    from {{ ref('int_insee__valeurs_indicateurs') }}
    where
        type_territoire <> 'qpv'
        and indicateur is not null
        and valeur is not null

)

select * from seeds
union all
select * from insee
