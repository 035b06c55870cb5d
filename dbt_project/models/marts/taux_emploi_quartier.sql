-- Taux d'emploi des 15-64 ans par QPV et millésime, as INSEE publishes it (40.0 = 40 %), NULL
-- under statistical secrecy, with the gap in points to the EPCI and to France when a reference
-- value is known. A reference of the same millésime is preferred, else the latest earlier one,
-- else one whose millésime the source does not state; between equals, the value printed in the
-- QPV's own contract documents. The reference's millésime and source are given beside each gap.
with

valeurs as (

    select * from {{ ref('int_insee__valeurs_indicateurs') }}
    where
        type_territoire = 'qpv'
        and indicateur in ('taux_emploi', 'taux_emploi_femmes', 'taux_emploi_etrangers')

),

pivoted as (

    select
        code_territoire as code_qpv,
        millesime,
        max(geographie) as geographie,
        max(valeur) filter (where indicateur = 'taux_emploi') as taux_emploi,
        max(valeur) filter (where indicateur = 'taux_emploi_femmes') as taux_emploi_femmes,
        max(valeur) filter (where indicateur = 'taux_emploi_etrangers') as taux_emploi_etrangers,
        coalesce(bool_or(secret) filter (where indicateur = 'taux_emploi'), false)
            as secret_taux_emploi,
        max(fichier) as source_fichier
    from valeurs
    group by code_territoire, millesime

),

qpv as (

    select
        code_qpv,
        libelle_qpv,
        territoire,
        siren_epci
    from {{ ref('dim_qpv') }}

),

refs as (

    select * from {{ ref('int_references__valeurs') }}
    where indicateur = 'taux_emploi'

),

candidats as (

    select
        pivoted.code_qpv,
        pivoted.millesime,
        refs.territoire_type,
        refs.valeur,
        refs.millesime as millesime_reference,
        refs.source,
        row_number() over (
            partition by pivoted.code_qpv, pivoted.millesime, refs.territoire_type
            order by
                case
                    when refs.millesime = pivoted.millesime then 0
                    when refs.millesime < pivoted.millesime then 1
                    else 2
                end asc,
                refs.millesime desc nulls last,
                coalesce(refs.territoire_source = qpv.territoire, false) desc,
                refs.source asc
        ) as rang
    from pivoted
    inner join qpv on pivoted.code_qpv = qpv.code_qpv
    inner join refs
        on
            (
                refs.territoire_type = 'france'
                or (
                    refs.territoire_type = 'epci'
                    and (
                        refs.territoire_code = qpv.territoire
                        or list_contains(
                            string_split(coalesce(qpv.siren_epci, ''), ';'), refs.territoire_code
                        )
                    )
                )
                or refs.territoire_type = 'ensemble_qpv'
            )
            and (refs.millesime is null or pivoted.millesime >= refs.millesime)

),

choisis as (

    select * from candidats
    where rang = 1

),

final as (

    select
        pivoted.code_qpv,
        qpv.libelle_qpv,
        pivoted.geographie,
        qpv.territoire,
        pivoted.millesime,
        pivoted.taux_emploi,
        pivoted.taux_emploi_femmes,
        pivoted.taux_emploi_etrangers,
        pivoted.secret_taux_emploi,
        epci.valeur as taux_emploi_epci,
        round(pivoted.taux_emploi - epci.valeur, 1) as ecart_epci_points,
        epci.millesime_reference as millesime_reference_epci,
        epci.source as source_reference_epci,
        france.valeur as taux_emploi_france,
        round(pivoted.taux_emploi - france.valeur, 1) as ecart_france_points,
        france.millesime_reference as millesime_reference_france,
        france.source as source_reference_france,
        ensemble.valeur as taux_emploi_ensemble_qpv,
        round(pivoted.taux_emploi - ensemble.valeur, 1) as ecart_ensemble_qpv_points,
        pivoted.source_fichier
    from pivoted
    left join qpv on pivoted.code_qpv = qpv.code_qpv
    left join choisis as epci
        on
            pivoted.code_qpv = epci.code_qpv
            and pivoted.millesime = epci.millesime
            and epci.territoire_type = 'epci'
    left join choisis as france
        on
            pivoted.code_qpv = france.code_qpv
            and pivoted.millesime = france.millesime
            and france.territoire_type = 'france'
    left join choisis as ensemble
        on
            pivoted.code_qpv = ensemble.code_qpv
            and pivoted.millesime = ensemble.millesime
            and ensemble.territoire_type = 'ensemble_qpv'

)

select * from final
