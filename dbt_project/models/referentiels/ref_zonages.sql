-- The territories' zonings other than the QPV (zonages.csv of their folders), one row per
-- zoning x covered unit (a QPV code or a commune code), plus the quartiers d'intérêt
-- communautaire of quartiers_interet_communautaire.csv read as zonings of that type (covered
-- unit: the commune's name only, no code). A zoning without code_zonage is keyed by its type
-- and name.
with

zonages as (

    select
        territoire,
        type_zonage,
        coalesce(code_zonage, upper(type_zonage) || ':' || nom) as code_zonage,
        nom,
        code_qpv,
        code_commune,
        commune,
        cast(annee_debut as integer) as annee_debut,
        cast(annee_fin as integer) as annee_fin,
        cast(population as integer) as population,
        source_seed,
        source_libelle,
        citation,
        note,
        fichier_source,
        ligne
    from {{ source('raw', 'territoires_zonages') }}

),

quartiers_interet_communautaire as (

    select
        territoire,
        'quartier_interet_communautaire' as type_zonage,
        'QIC:' || nom as code_zonage,
        nom,
        cast(null as varchar) as code_qpv,
        cast(null as varchar) as code_commune,
        commune,
        cast(null as integer) as annee_debut,
        cast(null as integer) as annee_fin,
        cast(population as integer) as population,
        source_seed,
        'quartiers_interet_communautaire.csv' as source_libelle,
        cast(null as varchar) as citation,
        note,
        fichier_source,
        ligne
    from {{ source('raw', 'territoires_quartiers_interet_communautaire') }}

),

unis as (

    select * from zonages
    union all
    select * from quartiers_interet_communautaire

)

select
    unis.territoire,
    unis.type_zonage,
    case unis.type_zonage
        when 'quartier_veille_active' then 'quartier de veille active'
        when 'quartier_interet_communautaire' then 'quartier d''intérêt communautaire'
        when 'site_renouvellement_urbain' then 'site NPNRU/PNRU'
        when 'cite_educative' then 'cité éducative'
        when 'programme_reussite_educative' then 'programme de réussite éducative (PRE)'
        when 'cite_emploi' then 'cité de l''emploi'
        else 'autre zonage'
    end as type_zonage_libelle,
    unis.code_zonage,
    unis.nom,
    case
        when unis.code_qpv is not null then 'qpv'
        when unis.code_commune is not null then 'commune'
        else 'nom'
    end as unite_couverte,
    unis.code_qpv,
    unis.code_commune,
    unis.commune,
    unis.annee_debut,
    unis.annee_fin,
    unis.population,
    unis.source_seed,
    unis.source_libelle,
    unis.citation,
    unis.note,
    unis.fichier_source,
    unis.ligne
from unis
