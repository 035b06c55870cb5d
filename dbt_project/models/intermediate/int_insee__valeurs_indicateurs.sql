-- Every published INSEE value with its dictionary indicator (NULL when the variable is not in
-- the dictionary yet: such values are kept, never dropped). The base (source) of each value is
-- resolved when the file is read (pipelines/sources/insee): the file's name or parameters, or,
-- for a file naming no base, the one base publishing the variable's name.
with

valeurs as (

    select * from {{ ref('stg_insee__valeurs') }}
    where valeur_texte is null

),

variables as (

    select * from {{ ref('ref_indicateurs_variables') }}

),

indicateurs as (

    select * from {{ ref('ref_indicateurs') }}

),

joined as (

    select
        valeurs.*,
        variables.indicateur,
        indicateurs.libelle,
        indicateurs.unite,
        indicateurs.theme
    from valeurs
    left join variables
        on
            valeurs.source = variables.source
            and valeurs.variable = variables.variable
            and valeurs.millesime >= coalesce(variables.millesime_debut, 0)
            and valeurs.millesime <= coalesce(variables.millesime_fin, 9999)
    left join indicateurs
        on variables.indicateur = indicateurs.indicateur

)

select * from joined
