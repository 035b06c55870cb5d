-- QPV 2015 <-> 2024 crosswalk: the official correspondence file when it is loaded, else the
-- seed pairs of the demo territories (by name and serial number, to be confirmed). A seed pair is
-- kept only when neither of its codes is in the official file. The kind of link is computed from
-- the number of partners of each side.
with

officiel as (

    select
        code_qpv_2015,
        code_qpv_2024,
        libelle_qpv_2015,
        libelle_qpv_2024,
        statut,
        'fichier officiel (' || fichier || ')' as origine,
        cast(null as varchar) as note
    from {{ ref('stg_references__passage_qpv') }}

),

seed as (

    select
        code_qpv_2015,
        code_qpv_2024,
        libelle_qpv_2015,
        libelle_qpv_2024,
        cast(null as varchar) as statut,
        origine,
        note
    from {{ ref('ref_passage_qpv_2015_2024') }}
    where
        code_qpv_2015 not in (
            select officiel.code_qpv_2015 from officiel
            where officiel.code_qpv_2015 is not null
        )
        and code_qpv_2024 not in (
            select officiel.code_qpv_2024 from officiel
            where officiel.code_qpv_2024 is not null
        )

),

paires as (

    select distinct on (code_qpv_2015, code_qpv_2024) *
    from (
        select * from officiel
        union all
        select * from seed
    )
    order by code_qpv_2015, code_qpv_2024, origine

),

comptes as (

    select
        *,
        count(code_qpv_2015) over (partition by code_qpv_2024) as nb_qpv_2015_lies,
        count(code_qpv_2024) over (partition by code_qpv_2015) as nb_qpv_2024_lies
    from paires

),

final as (

    select
        code_qpv_2015,
        libelle_qpv_2015,
        code_qpv_2024,
        libelle_qpv_2024,
        case
            when code_qpv_2015 is null then 'entree'
            when code_qpv_2024 is null then 'sortie'
            when nb_qpv_2015_lies = 1 and nb_qpv_2024_lies = 1 then 'un_pour_un'
            when nb_qpv_2024_lies = 1 then 'fusion'
            when nb_qpv_2015_lies = 1 then 'scission'
            else 'recomposition'
        end as type_lien,
        nb_qpv_2015_lies,
        nb_qpv_2024_lies,
        statut,
        origine,
        note
    from comptes

)

select * from final
