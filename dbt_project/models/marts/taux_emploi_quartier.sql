-- Taux d'emploi des 15-64 ans par QPV et millésime, as published (40.0 = 40 %), NULL under
-- statistical secrecy, with:
-- * the gap in points to the commune (single-commune QPV), the EPCI, France and all QPV of
--   France when a reference value is known (int_references__valeurs). A published reference of
--   the same millésime is preferred, else the latest earlier published one, else a published one
--   without millésime, else a value quoted by a document of the QPV's own EPCI (« valeur
--   citée », never one quoted by another territory's document). Beside each gap: the
--   reference's millésime, source and nature, and whether the two millésimes are the same
--   (comparabilite_ecart_*: meme_millesime, millesimes_differents, millesime_reference_non_indique);
-- * the evolution vs the previous comparable millésime. INSEE warns against infra-communal
--   evolutions between consecutive millésimes and across geographies: an evolution is published
--   only against a millésime at least var('ecart_min_millesimes_evolution') (2) years earlier, on
--   the same code (same geography); otherwise the previous value is shown with its flag.
{% set ecart_min = var('ecart_min_millesimes_evolution', 2) %}
with

valeurs as (

    select * from {{ ref('int_indicateurs__qpv_valeurs') }}
    where indicateur in ('taux_emploi', 'taux_emploi_femmes', 'taux_emploi_etrangers')

),

pivoted as (

    select
        code_qpv,
        millesime,
        max(geographie) as geographie,
        max(valeur) filter (where indicateur = 'taux_emploi') as taux_emploi,
        max(valeur) filter (where indicateur = 'taux_emploi_femmes') as taux_emploi_femmes,
        max(valeur) filter (where indicateur = 'taux_emploi_etrangers') as taux_emploi_etrangers,
        coalesce(bool_or(secret) filter (where indicateur = 'taux_emploi'), true)
            as secret_taux_emploi,
        max(source || '.' || variable) filter (where indicateur = 'taux_emploi')
            as source_taux_emploi,
        coalesce(
            max(fichier) filter (where indicateur = 'taux_emploi'), max(fichier)
        ) as source_fichier
    from valeurs
    group by code_qpv, millesime

),

qpv as (

    select
        code_qpv,
        libelle_qpv,
        territoire,
        siren_epci,
        case
            when codes_communes is not null and not contains(codes_communes, ';')
                then codes_communes
        end as code_commune_unique
    from {{ ref('dim_qpv') }}

),

refs as (

    select * from {{ ref('int_references__valeurs') }}
    where indicateur = 'taux_emploi'

),

-- The reference keys of each QPV: its EPCI (territory code or SIREN) and its single commune.
-- With the France and « ensemble des QPV » values (every QPV), these are the only references a
-- QPV can be compared with: joined on them by hash, not every QPV with every reference.
cles as (

    select
        code_qpv,
        'epci' as territoire_type,
        territoire as territoire_code
    from qpv
    where territoire is not null
    union
    select
        qpv.code_qpv,
        'epci' as territoire_type,
        sirens.siren as territoire_code
    from qpv,
        unnest(string_split(coalesce(qpv.siren_epci, ''), ';')) as sirens (siren)
    union
    select
        code_qpv,
        'commune' as territoire_type,
        code_commune_unique as territoire_code
    from qpv
    where code_commune_unique is not null

),

refs_qpv as (

    select
        qpv.code_qpv as code_qpv_cible,
        refs.*
    from qpv
    inner join refs on refs.territoire_type in ('france', 'ensemble_qpv')
    union all
    select
        cles.code_qpv as code_qpv_cible,
        refs.*
    from cles
    inner join refs
        on
            cles.territoire_type = refs.territoire_type
            and cles.territoire_code = refs.territoire_code

),

candidats as (

    select
        pivoted.code_qpv,
        pivoted.millesime,
        refs.territoire_type,
        refs.valeur,
        refs.millesime as millesime_reference,
        refs.source,
        refs.nature,
        case
            when refs.millesime = pivoted.millesime then 'meme_millesime'
            when refs.millesime is not null then 'millesimes_differents'
            else 'millesime_reference_non_indique'
        end as comparabilite,
        row_number() over (
            partition by pivoted.code_qpv, pivoted.millesime, refs.territoire_type
            order by
                case
                    when refs.nature = 'publiee' and refs.millesime = pivoted.millesime then 0
                    when refs.nature = 'publiee' and refs.millesime < pivoted.millesime then 1
                    when refs.nature = 'publiee' then 2
                    else 3
                end asc,
                refs.millesime desc nulls last,
                refs.annee_document desc nulls last,
                refs.source asc
        ) as rang
    from pivoted
    inner join qpv on pivoted.code_qpv = qpv.code_qpv
    inner join refs_qpv as refs
        on
            pivoted.code_qpv = refs.code_qpv_cible
            and (refs.millesime is null or pivoted.millesime >= refs.millesime)
            -- a quoted value only for the QPV of the EPCI whose document quotes it
            and (
                refs.nature = 'publiee'
                or list_contains(
                    string_split(coalesce(qpv.siren_epci, ''), ';'), refs.siren_document
                )
            )

),

choisis as (

    select * from candidats
    where rang = 1

),

-- previous values of the same code (same geography)
precedents as (

    select
        courant.code_qpv,
        courant.millesime,
        max(avant.millesime) as millesime_precedent,
        max(avant.millesime) filter (
            where courant.millesime - avant.millesime >= {{ ecart_min }}
        ) as millesime_comparable
    from pivoted as courant
    inner join pivoted as avant
        on
            courant.code_qpv = avant.code_qpv
            and avant.millesime < courant.millesime
            and avant.taux_emploi is not null
    group by courant.code_qpv, courant.millesime

),

-- for a QPV with no earlier value under its own code: the value of its single predecessor in
-- the other geography (one-to-one link of the crosswalk), shown but never compared
passage as (

    select
        courant.code_qpv,
        courant.millesime,
        arg_max(avant.code_qpv, avant.millesime) as code_qpv_precedent,
        max(avant.millesime) as millesime_precedent,
        arg_max(avant.taux_emploi, avant.millesime) as taux_emploi_precedent
    from pivoted as courant
    inner join {{ ref('int_qpv__passage_2015_2024') }} as lien
        on
            courant.code_qpv = lien.code_qpv_2024
            and lien.type_lien = 'un_pour_un'
    inner join pivoted as avant
        on
            lien.code_qpv_2015 = avant.code_qpv
            and avant.millesime <= courant.millesime
            and avant.taux_emploi is not null
    group by courant.code_qpv, courant.millesime

),

evolutions as (

    select
        pivoted.code_qpv,
        pivoted.millesime,
        case
            when precedents.millesime_comparable is not null then pivoted.code_qpv
            when precedents.millesime_precedent is not null then pivoted.code_qpv
            else passage.code_qpv_precedent
        end as code_qpv_precedent,
        coalesce(
            precedents.millesime_comparable,
            precedents.millesime_precedent,
            passage.millesime_precedent
        ) as millesime_precedent,
        case
            when precedents.millesime_comparable is not null then 'comparable'
            when precedents.millesime_precedent is not null then 'ecart_millesimes_insuffisant'
            when passage.millesime_precedent is not null then 'autre_geographie'
            else 'sans_millesime_precedent'
        end as comparabilite_evolution,
        passage.taux_emploi_precedent as taux_emploi_precedent_passage
    from pivoted
    left join precedents
        on pivoted.code_qpv = precedents.code_qpv and pivoted.millesime = precedents.millesime
    left join passage
        on pivoted.code_qpv = passage.code_qpv and pivoted.millesime = passage.millesime

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
        commune.valeur as taux_emploi_commune,
        round(pivoted.taux_emploi - commune.valeur, 1) as ecart_commune_points,
        commune.millesime_reference as millesime_reference_commune,
        commune.source as source_reference_commune,
        commune.nature as nature_reference_commune,
        case
            when pivoted.taux_emploi is not null then commune.comparabilite
        end as comparabilite_ecart_commune,
        epci.valeur as taux_emploi_epci,
        round(pivoted.taux_emploi - epci.valeur, 1) as ecart_epci_points,
        epci.millesime_reference as millesime_reference_epci,
        epci.source as source_reference_epci,
        epci.nature as nature_reference_epci,
        case
            when pivoted.taux_emploi is not null then epci.comparabilite
        end as comparabilite_ecart_epci,
        france.valeur as taux_emploi_france,
        round(pivoted.taux_emploi - france.valeur, 1) as ecart_france_points,
        france.millesime_reference as millesime_reference_france,
        france.source as source_reference_france,
        france.nature as nature_reference_france,
        case
            when pivoted.taux_emploi is not null then france.comparabilite
        end as comparabilite_ecart_france,
        ensemble.valeur as taux_emploi_ensemble_qpv,
        round(pivoted.taux_emploi - ensemble.valeur, 1) as ecart_ensemble_qpv_points,
        ensemble.millesime_reference as millesime_reference_ensemble_qpv,
        ensemble.source as source_reference_ensemble_qpv,
        ensemble.nature as nature_reference_ensemble_qpv,
        case
            when pivoted.taux_emploi is not null then ensemble.comparabilite
        end as comparabilite_ecart_ensemble_qpv,
        evolutions.code_qpv_precedent,
        evolutions.millesime_precedent,
        coalesce(avant.taux_emploi, evolutions.taux_emploi_precedent_passage)
            as taux_emploi_precedent,
        case
            when evolutions.comparabilite_evolution = 'comparable'
                then round(pivoted.taux_emploi - avant.taux_emploi, 1)
        end as evolution_points,
        evolutions.comparabilite_evolution,
        pivoted.source_taux_emploi,
        pivoted.source_fichier
    from pivoted
    left join qpv on pivoted.code_qpv = qpv.code_qpv
    left join evolutions
        on pivoted.code_qpv = evolutions.code_qpv and pivoted.millesime = evolutions.millesime
    -- every condition names « avant »: one naming only the rows kept by the left join
    -- (evolutions.code_qpv_precedent = pivoted.code_qpv) compared every QPV with every QPV
    left join pivoted as avant
        on
            avant.code_qpv = pivoted.code_qpv
            and avant.millesime = evolutions.millesime_precedent
            and avant.code_qpv = evolutions.code_qpv_precedent
    left join choisis as commune
        on
            pivoted.code_qpv = commune.code_qpv
            and pivoted.millesime = commune.millesime
            and commune.territoire_type = 'commune'
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
