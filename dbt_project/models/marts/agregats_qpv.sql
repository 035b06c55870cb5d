-- Indicators over all the QPV of a territory (contract territory, EPCI), recomputed from the QPV
-- values, never as a naive sum or mean: counts (agregation = 'somme') are summed; rates whose
-- denominator is known are averaged with the weight given by the dictionary (poids, e.g. the
-- population municipale of the same millésime: 'moyenne_ponderee'); the other indicators
-- (medians, rates without a published denominator: 'non_agregeable') are not aggregated. The
-- value is published only when every QPV of the territory has a value (and a weight): otherwise
-- valeur is NULL and valeur_qpv_publies gives the figure over the QPV with a value.
with

qpv as (

    select * from {{ ref('dim_qpv') }}

),

appartenances as (

    select
        'territoire_contrat' as niveau,
        territoire as code_territoire,
        territoire_nom as libelle_territoire,
        geographie,
        code_qpv
    from qpv
    where territoire is not null

    union all

    select
        'epci' as niveau,
        unnest(string_split(siren_epci, ';')) as code_territoire,
        unnest(string_split(lib_epci, ';')) as libelle_territoire,
        geographie,
        code_qpv
    from qpv
    where siren_epci is not null and siren_epci <> ''

),

dictionnaire as (

    select * from {{ ref('ref_indicateurs') }}
    where agregation in ('somme', 'moyenne_ponderee')

),

valeurs as (

    select * from {{ ref('int_indicateurs__qpv_valeurs') }}

),

-- millésimes x indicators present among the QPV of each territory
presents as (

    select distinct
        appartenances.niveau,
        appartenances.code_territoire,
        appartenances.geographie,
        valeurs.millesime,
        valeurs.indicateur
    from appartenances
    inner join valeurs on appartenances.code_qpv = valeurs.code_qpv
    inner join dictionnaire on valeurs.indicateur = dictionnaire.indicateur

),

cellules as (

    select
        appartenances.niveau,
        appartenances.code_territoire,
        appartenances.libelle_territoire,
        appartenances.geographie,
        presents.millesime,
        dictionnaire.indicateur,
        dictionnaire.libelle,
        dictionnaire.unite,
        dictionnaire.agregation,
        dictionnaire.poids,
        dictionnaire.poids_exact,
        appartenances.code_qpv,
        valeur.valeur,
        coalesce(valeur.secret, false) as secret,
        poids.valeur as poids_valeur
    from appartenances
    inner join presents
        on
            appartenances.niveau = presents.niveau
            and appartenances.code_territoire = presents.code_territoire
            and appartenances.geographie = presents.geographie
    inner join dictionnaire on presents.indicateur = dictionnaire.indicateur
    left join valeurs as valeur
        on
            appartenances.code_qpv = valeur.code_qpv
            and presents.millesime = valeur.millesime
            and presents.indicateur = valeur.indicateur
    left join valeurs as poids
        on
            appartenances.code_qpv = poids.code_qpv
            and presents.millesime = poids.millesime
            and dictionnaire.poids = poids.indicateur

),

agreges as (

    select
        niveau,
        code_territoire,
        max(libelle_territoire) as libelle_territoire,
        geographie,
        millesime,
        indicateur,
        max(libelle) as libelle,
        max(unite) as unite,
        max(agregation) as agregation,
        max(poids) as poids,
        bool_and(coalesce(poids_exact, false)) as poids_exact,
        count(*) as nb_qpv,
        count(valeur) as nb_qpv_avec_valeur,
        count(*) filter (where secret) as nb_qpv_secret,
        count(*) filter (where valeur is not null and poids_valeur is not null)
            as nb_qpv_avec_valeur_et_poids,
        case
            when max(agregation) = 'somme' then sum(valeur)
            else
                sum(valeur * poids_valeur)
                / nullif(sum(poids_valeur) filter (where valeur is not null), 0)
        end as valeur_qpv_publies,
        sum(poids_valeur) filter (where valeur is not null) as poids_couvert,
        sum(poids_valeur) as poids_total
    from cellules
    group by niveau, code_territoire, geographie, millesime, indicateur

),

final as (

    select
        niveau,
        code_territoire,
        libelle_territoire,
        geographie,
        millesime,
        indicateur,
        libelle,
        unite,
        agregation,
        case
            when agregation = 'somme' then 'somme des effectifs des QPV'
            when poids_exact
                then 'moyenne des QPV pondérée par ' || poids || ' (dénominateur du taux)'
            else
                'moyenne des QPV pondérée par ' || poids
                || ' (approximation : le dénominateur exact du taux n''est pas publié)'
        end as methode,
        case when agregation = 'somme' then null else poids end as poids,
        case
            when agregation = 'somme' then nb_qpv_avec_valeur = nb_qpv
            else nb_qpv_avec_valeur_et_poids = nb_qpv
        end as complet,
        case
            when
                (agregation = 'somme' and nb_qpv_avec_valeur = nb_qpv)
                or (agregation = 'moyenne_ponderee' and nb_qpv_avec_valeur_et_poids = nb_qpv)
                then round(valeur_qpv_publies, 6)
        end as valeur,
        round(valeur_qpv_publies, 6) as valeur_qpv_publies,
        nb_qpv,
        nb_qpv_avec_valeur,
        nb_qpv_secret,
        poids_couvert,
        poids_total,
        round(poids_couvert / nullif(poids_total, 0), 4) as part_poids_couvert
    from agreges

)

select * from final
