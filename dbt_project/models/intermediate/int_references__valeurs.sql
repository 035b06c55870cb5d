-- Reference values (France, EPCI, communes, all QPV...) from four places: the reference file of
-- the project (seed: values printed in the contract documents), the user's reference files
-- (data/raw/referentiels/), the non-QPV rows of the INSEE files themselves (the "Ensemble des
-- quartiers prioritaires" row, communes, EPCI, France) and the non-QPV rows of the local
-- providers' tables (EPCI, communes... of a Compas workbook).
with

seeds as (

    select
        lower(territoire_type) as territoire_type,
        cast(territoire_code as varchar) as territoire_code,
        try_cast(millesime as integer) as millesime,
        indicateur,
        cast(valeur as double) as valeur,
        source,
        nullif(cast(territoire_source as varchar), '') as territoire_source,
        'seed des contrats' as origine
    from {{ ref('ref_valeurs_reference') }}

),

fichiers as (

    select
        territoire_type,
        territoire_code,
        millesime,
        indicateur,
        valeur,
        source,
        cast(null as varchar) as territoire_source,
        'fichier de référence' as origine
    from {{ ref('stg_references__valeurs') }}

),

publiees as (

    select
        type_territoire as territoire_type,
        code_territoire as territoire_code,
        millesime,
        indicateur,
        valeur,
        case
            when origine = 'INSEE' then 'INSEE ' || source || ' ' || millesime
            else source || ' ' || millesime || ' (' || variable || ')'
        end as source,
        cast(null as varchar) as territoire_source,
        origine
    from {{ ref('int_indicateurs__valeurs') }}
    where
        type_territoire <> 'qpv'
        and indicateur is not null
        and valeur is not null

)

select * from seeds
union all
select * from fichiers
union all
select * from publiees
