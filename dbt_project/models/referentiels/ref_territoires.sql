-- The territories of the build. With territory folders (data/raw/territoires/<code>/): the
-- territories they declare. Without any: every EPCI holding a loaded QPV (contours or official
-- list). In both cases, every EPCI a programmation or a bilan names by its SIREN or name (the
-- ingestion attaches the lines to its SIREN). An EPCI no folder declares is named from Etalab's
-- référentiel (ref_epci), its code being its SIREN and its perimeter the official one.
with

declares as (

    select
        territoire,
        nom,
        coalesce(type, 'EPCI') as type,
        siren,
        departement,
        contrat,
        source_seed,
        cast(annee_debut as integer) as annee_debut,
        cast(annee_fin as integer) as annee_fin,
        perimetre,
        'dossier_territoire' as origine
    from {{ source('raw', 'territoires') }}

),

epci_qpv as (

    select
        siren_epci,
        count(distinct code_qpv) as nb_qpv
    from {{ ref('int_qpv__epci') }}
    group by siren_epci

),

suivi as (

    select territoire from {{ source('raw', 'programmations') }}
    union
    select territoire from {{ source('raw', 'bilans') }}

),

deduits as (

    select
        epci.siren as territoire,
        epci.nom,
        'EPCI' as type,
        epci.siren,
        lpad(split_part(epci.departements, ';', 1), 3, '0') as departement,
        cast(null as varchar) as contrat,
        'ref_epci (Etalab, découpage administratif)' as source_seed,
        cast(null as integer) as annee_debut,
        cast(null as integer) as annee_fin,
        'officiel' as perimetre,
        'referentiel_epci' as origine
    from {{ ref('ref_epci') }} as epci
    where
        epci.siren not in (
            select declares.siren from declares
            where declares.siren is not null
        )
        and (
            (
                epci.siren in (select epci_qpv.siren_epci from epci_qpv)
                and not exists (select 1 from declares)
            )
            or epci.siren in (select suivi.territoire from suivi)
        )

)

select * from declares
union all
select * from deduits
