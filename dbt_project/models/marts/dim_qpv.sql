-- One row per QPV and geography generation, with its communes, EPCI, contract territory,
-- surface (computed in a projected CRS at ingestion), population and WGS84 geometry. Population:
-- int_qpv__populations, a published value first (latest millésime), else the latest one carried
-- from the 2015 predecessors (method in methode_population); density wherever a population and
-- a surface are known.
with

sources as (

    select * from {{ ref('int_qpv__sources') }}

),

attributs as (

    select
        code_qpv,
        arg_min(libelle_qpv, priorite) filter (where libelle_qpv is not null) as libelle_qpv,
        arg_min(geographie, priorite) filter (where geographie is not null) as geographie,
        arg_min(insee_com, priorite) filter (where insee_com is not null) as codes_communes,
        arg_min(lib_com, priorite) filter (where lib_com is not null) as noms_communes,
        string_agg(distinct origine, ', ' order by origine) as origines
    from sources
    group by code_qpv

),

contours as (

    select * from {{ ref('stg_sig_ville__contours') }}

),

liste as (

    select * from {{ ref('stg_sig_ville__liste_qpv') }}

),

perimetre as (

    -- a QPV over two EPCI is in both perimeters: dim_qpv names the first territory (both are in
    -- ref_perimetre_qpv)
    select * from {{ ref('ref_perimetre_qpv') }}
    qualify row_number() over (partition by code_qpv order by territoire) = 1

),

territoires as (

    select * from {{ ref('ref_territoires') }}

),

population as (

    select
        code_qpv,
        population,
        millesime as millesime_population,
        methode_population,
        source_population
    from {{ ref('int_qpv__populations') }}
    qualify row_number() over (
        partition by code_qpv
        order by methode_population = 'publiee' desc, millesime desc
    ) = 1

),

final as (

    select
        attributs.code_qpv,
        attributs.libelle_qpv,
        attributs.geographie,
        case
            when substr(attributs.code_qpv, 3, 3) in ('02A', '02B')
                then substr(attributs.code_qpv, 4, 2)
            when substr(attributs.code_qpv, 3, 3) like '0%'
                then substr(attributs.code_qpv, 4, 2)
            else substr(attributs.code_qpv, 3, 3)
        end as code_departement,
        attributs.codes_communes,
        attributs.noms_communes,
        len(string_split(coalesce(attributs.noms_communes, attributs.codes_communes), ';'))
            as nb_communes,
        coalesce(liste.siren_epci, cast(territoires.siren as varchar)) as siren_epci,
        coalesce(liste.lib_epci, territoires.nom) as lib_epci,
        perimetre.territoire,
        territoires.nom as territoire_nom,
        contours.surface_km2,
        contours.crs_surface,
        contours.centroide_lon,
        contours.centroide_lat,
        population.population,
        population.millesime_population,
        population.methode_population,
        population.source_population,
        population.population / nullif(contours.surface_km2, 0) as densite_hab_km2,
        contours.geometrie_reparee,
        contours.source_fichier as source_contours,
        attributs.origines,
        contours.geom
    from attributs
    left join contours on attributs.code_qpv = contours.code_qpv
    left join liste on attributs.code_qpv = liste.code_qpv
    left join perimetre on attributs.code_qpv = perimetre.code_qpv
    left join territoires on perimetre.territoire = territoires.territoire
    left join population on attributs.code_qpv = population.code_qpv

)

select * from final
