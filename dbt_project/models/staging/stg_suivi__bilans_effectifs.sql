-- The age bands and types of public of each bilan line, one row each, as declared in the file
-- (raw.bilans.effectifs_declares, written by pipelines/sources/bilans).
with

bilans as (

    select * from {{ ref('stg_suivi__bilans') }}
    where effectifs_declares is not null

),

unnested as (

    select
        territoire,
        annee,
        dossier,
        qpv_residence,
        source_fichier,
        source_ligne,
        unnest(
            from_json(
                effectifs_declares,
                '[{"dimension": "VARCHAR", "code": "VARCHAR", "libelle": "VARCHAR",
                "libelle_fichier": "VARCHAR", "effectif": "BIGINT"}]'
            )
        ) as declare
    from bilans

)

select
    unnested.territoire,
    unnested.annee,
    unnested.dossier,
    unnested.qpv_residence,
    declare.dimension,
    declare.code as modalite_code,
    declare.libelle as modalite_libelle,
    declare.libelle_fichier,
    declare.code is null as hors_referentiel,
    declare.effectif,
    unnested.source_fichier,
    unnested.source_ligne
from unnested
