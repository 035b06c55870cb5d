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

ranked as (

    select
        *,
        row_number() over (
            partition by code_territoire, millesime, indicateur
            order by
                secret asc,
                case when origine = 'INSEE' then 0 else 1 end asc,
                source asc,
                variable asc
        ) as rang
    from valeurs

),

sources as (

    select
        code_territoire,
        millesime,
        indicateur,
        count(*) as nb_sources,
        string_agg(distinct source || '.' || variable, ', ' order by source || '.' || variable)
            as sources
    from valeurs
    group by code_territoire, millesime, indicateur

),

final as (

    select
        ranked.code_territoire as code_qpv,
        ranked.geographie,
        ranked.millesime,
        ranked.indicateur,
        ranked.libelle,
        ranked.unite,
        ranked.theme,
        ranked.valeur,
        ranked.secret,
        ranked.source,
        ranked.variable,
        ranked.fichier,
        sources.nb_sources,
        sources.sources
    from ranked
    inner join sources
        on
            ranked.code_territoire = sources.code_territoire
            and ranked.millesime = sources.millesime
            and ranked.indicateur = sources.indicateur
    where ranked.rang = 1

)

select * from final
