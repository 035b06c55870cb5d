-- One value per QPV x millésime x indicator, whatever the file that publishes it: the same
-- indicator can come from several bases (allocataires_caf is in DEMO and REVN) or providers
-- (INSEE and Compas). Rule: a published value before a secret one, then INSEE before a local
-- provider, then the first source in alphabetical order. Every source publishing the indicator
-- is listed beside the value.
with

valeurs as (

    select * from {{ ref('int_indicateurs__valeurs') }}
    where type_territoire = 'qpv' and indicateur is not null

),

-- One pass: the value chosen is that of the smallest key (secret, INSEE first, source,
-- variable; none of them is NULL: colonnes_renseignees of int_indicateurs__valeurs), beside the
-- count and the sorted list of the sources (a window then a join back took 13 s at national
-- volume, 1.6 million values; this takes 5 s).
choix as (

    select
        code_territoire,
        millesime,
        indicateur,
        arg_min(
            struct_pack(
                geographie, libelle, unite, theme, valeur, secret, source, variable, fichier
            ),
            struct_pack(
                cle_secret := secret,
                cle_origine := case when origine = 'INSEE' then 0 else 1 end,
                cle_source := source,
                cle_variable := variable
            )
        ) as retenue,
        count(*) as nb_sources,
        nullif(
            array_to_string(list_sort(list_distinct(list(source || '.' || variable))), ', '),
            ''
        ) as sources
    from valeurs
    group by code_territoire, millesime, indicateur

),

final as (

    select
        choix.code_territoire as code_qpv,
        choix.retenue.geographie,
        choix.millesime,
        choix.indicateur,
        choix.retenue.libelle,
        choix.retenue.unite,
        choix.retenue.theme,
        choix.retenue.valeur,
        choix.retenue.secret,
        choix.retenue.source,
        choix.retenue.variable,
        choix.retenue.fichier,
        choix.nb_sources,
        choix.sources
    from choix

)

select * from final
