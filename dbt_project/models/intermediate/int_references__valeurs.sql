-- Reference values (France, EPCI, communes, all QPV...): every value has a level
-- (territoire_type), a millésime (or says the source gives none) and a source, and a nature:
-- * 'publiee': published by a producer, with its millésime: the non-QPV rows of the INSEE files
--   themselves (the "Ensemble des quartiers prioritaires" row, communes, EPCI, France), the
--   communes' and EPCI's populations of the Etalab référentiel (INSEE populations légales), the
--   user's reference files (data/raw/referentiels/) and the non-QPV rows of the local providers'
--   tables (EPCI, communes... of a Compas workbook);
-- * 'citee': a figure quoted by a contract document (seed ref_valeurs_reference), with the
--   document, its year and the EPCI whose document it is (siren_document); never mixed with a
--   published value: the marts choose a published value first and show the nature.
-- Populations légales of the Etalab package @etalab/decoupage-administratif 6.0.0: "année 2026"
-- of its README, i.e. INSEE's populations légales millésime 2023 (in force on 1 January 2026).
{% set millesime_etalab = 2023 %}
with

citees as (

    select
        lower(territoire_type) as territoire_type,
        cast(territoire_code as varchar) as territoire_code,
        try_cast(millesime as integer) as millesime,
        indicateur,
        cast(valeur as double) as valeur,
        'citee' as nature,
        source,
        document,
        cast(annee_document as integer) as annee_document,
        cast(siren_document as varchar) as siren_document,
        'document de contrat' as origine
    from {{ ref('ref_valeurs_reference') }}

),

fichiers as (

    select
        territoire_type,
        territoire_code,
        millesime,
        indicateur,
        valeur,
        'publiee' as nature,
        source,
        cast(null as varchar) as document,
        cast(null as integer) as annee_document,
        cast(null as varchar) as siren_document,
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
        'publiee' as nature,
        case
            when origine = 'INSEE' then 'INSEE ' || source || ' ' || millesime
            else source || ' ' || millesime || ' (' || variable || ')'
        end as source,
        cast(null as varchar) as document,
        cast(null as integer) as annee_document,
        cast(null as varchar) as siren_document,
        origine
    from {{ ref('int_indicateurs__valeurs') }}
    where
        type_territoire <> 'qpv'
        and indicateur is not null
        and valeur is not null

),

etalab as (

    select
        'epci' as territoire_type,
        cast(siren as varchar) as territoire_code,
        population_municipale as valeur
    from {{ ref('ref_epci') }}
    where population_municipale is not null
    union all
    select distinct
        'commune' as territoire_type,
        cast(code_commune as varchar) as territoire_code,
        population_municipale as valeur
    from {{ ref('ref_epci_communes') }}
    where population_municipale is not null

),

populations as (

    select
        territoire_type,
        territoire_code,
        {{ millesime_etalab }} as millesime,
        'pop_municipale' as indicateur,
        cast(valeur as double) as valeur,
        'publiee' as nature,
        'INSEE, populations légales millésime {{ millesime_etalab }} (référentiel Etalab '
        || 'découpage administratif 6.0.0)' as source,
        cast(null as varchar) as document,
        cast(null as integer) as annee_document,
        cast(null as varchar) as siren_document,
        'référentiel Etalab' as origine
    from etalab

),

unioned as (

    select * from citees
    union all
    select * from fichiers
    union all
    select * from publiees
    union all
    select * from populations

),

epci as (

    select
        cast(siren as varchar) as siren,
        nom
    from {{ ref('ref_epci') }}

),

communes as (

    select distinct
        cast(code_commune as varchar) as code_commune,
        nom_commune
    from {{ ref('ref_epci_communes') }}

),

final as (

    select
        unioned.territoire_type,
        unioned.territoire_code,
        case unioned.territoire_type
            when 'france' then 'France'
            when 'ensemble_qpv' then 'Ensemble des quartiers prioritaires'
            when 'epci' then coalesce(epci.nom, 'EPCI ' || unioned.territoire_code)
            when 'qpv_epci'
                then
                    'Ensemble des QPV de '
                    || coalesce(epci.nom, 'l''EPCI ' || unioned.territoire_code)
            when 'commune' then coalesce(communes.nom_commune, unioned.territoire_code)
            else unioned.territoire_type || ' ' || unioned.territoire_code
        end as libelle_territoire,
        unioned.millesime,
        case
            when unioned.millesime is not null then cast(unioned.millesime as varchar)
            when unioned.annee_document is not null
                then
                    'non indiqué (document de '
                    || cast(unioned.annee_document as varchar) || ')'
            else 'non indiqué par la source'
        end as millesime_libelle,
        unioned.indicateur,
        unioned.valeur,
        unioned.nature,
        unioned.origine,
        unioned.source,
        unioned.document,
        unioned.annee_document,
        unioned.siren_document
    from unioned
    -- equi-joins on a key that is NULL outside the level: a hash join (a level test in the
    -- ON clause made DuckDB choose a nested loop, 36,000 × 35,000 comparisons)
    left join epci
        on
            epci.siren = case
                when unioned.territoire_type in ('epci', 'qpv_epci')
                    then unioned.territoire_code
            end
    left join communes
        on
            communes.code_commune = case
                when unioned.territoire_type = 'commune' then unioned.territoire_code
            end

)

select * from final
