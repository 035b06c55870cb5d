-- Every QPV known to the warehouse, once per source that names it, with the source's priority
-- for labels and communes: contours (1) > official list (2) > INSEE bases (3) > perimeter of a
-- territory folder (4).
with

contours as (

    select
        code_qpv,
        libelle_qpv,
        geographie,
        insee_com,
        lib_com,
        1 as priorite,
        'contours' as origine
    from {{ ref('stg_sig_ville__contours') }}

),

liste as (

    select
        code_qpv,
        libelle_qpv,
        case when code_qpv like 'QN%' then '2024' else '2015' end as geographie,
        insee_com,
        lib_com,
        2 as priorite,
        'liste_officielle' as origine
    from {{ ref('stg_sig_ville__liste_qpv') }}

),

insee_communes as (

    select
        code_territoire as code_qpv,
        -- INSEE lists the communes of a multi-commune QPV separated by ', '
        replace(max(valeur_texte), ', ', ';') as lib_com
    from {{ ref('stg_insee__valeurs') }}
    where type_territoire = 'qpv' and variable in ('LIB_COM', 'LIBCOM', 'COMMUNE', 'COMMUNE_QP')
    group by code_territoire

),

insee as (

    select
        valeurs.code_territoire as code_qpv,
        max(valeurs.libelle_territoire) as libelle_qpv,
        max(valeurs.geographie) as geographie,
        cast(null as varchar) as insee_com,
        max(insee_communes.lib_com) as lib_com,
        3 as priorite,
        'insee' as origine
    from {{ ref('stg_insee__valeurs') }} as valeurs
    left join insee_communes on valeurs.code_territoire = insee_communes.code_qpv
    where valeurs.type_territoire = 'qpv'
    group by valeurs.code_territoire

),

perimetre as (

    select
        code_qpv,
        nullif(libelle_qpv, '') as libelle_qpv,
        cast(geographie as varchar) as geographie,
        cast(null as varchar) as insee_com,
        cast(null as varchar) as lib_com,
        4 as priorite,
        'perimetre_contrat' as origine
    from {{ ref('stg_territoires__perimetre_qpv') }}

)

select * from contours
union all
select * from liste
union all
select * from insee
union all
select * from perimetre
