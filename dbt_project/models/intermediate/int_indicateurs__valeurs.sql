-- Every published value of every indicator file, INSEE bases and local providers (Compas...),
-- all territory types, with the dictionary entry of its indicator. A variable outside the
-- dictionary is kept with indicateur NULL, never dropped.
with

insee as (

    select
        'INSEE' as origine,
        source,
        millesime,
        fichier,
        feuille,
        ligne,
        type_territoire,
        code_territoire,
        libelle_territoire,
        geographie,
        variable,
        variable_fichier,
        indicateur,
        valeur,
        secret,
        marqueur_secret
    from {{ ref('int_insee__valeurs_indicateurs') }}

),

locales as (

    select
        'fournisseur local' as origine,
        source,
        millesime,
        fichier,
        feuille,
        ligne,
        type_territoire,
        code_territoire,
        libelle_territoire,
        geographie,
        variable,
        variable_fichier,
        indicateur,
        valeur,
        secret,
        marqueur_secret
    from {{ ref('stg_indicateurs__locaux') }}

),

unioned as (

    select * from insee
    union all
    select * from locales

),

indicateurs as (

    select * from {{ ref('ref_indicateurs') }}

),

joined as (

    select
        unioned.*,
        indicateurs.libelle,
        indicateurs.unite,
        indicateurs.theme
    from unioned
    left join indicateurs on unioned.indicateur = indicateurs.indicateur

)

select * from joined
