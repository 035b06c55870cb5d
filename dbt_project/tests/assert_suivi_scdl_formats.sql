-- subventions_scdl follows the formats of the SCDL « subventions » 2.1.0 schema for the fields
-- it fills, and never holds a subsidy to a natural person. The SCDL field names are camelCase.
-- noqa: disable=CP02
with

scdl as (

    select * from {{ ref('subventions_scdl') }}

),

personnes_physiques as (

    select
        territoire,
        annee,
        dossier,
        financeur
    from {{ ref('int_suivi__subventions') }}
    where porteur_personne_physique or not publiable

)

select
    scdl.referenceDecision,
    scdl.financeur,
    'format' as probleme
from scdl
where
    scdl.nomAttribuant is null
    or scdl.nomBeneficiaire is null
    or scdl.objet is null
    or length(scdl.objet) >= 256
    or scdl.montant is null
    or scdl.montant <= 0
    or scdl.nature not in ('aide en numéraire', 'aide en nature')
    or scdl.conditionsVersement not in ('unique', 'échelonné')
    or not regexp_full_match(
        scdl.datesPeriodeVersement, '[0-9]{4}-[0-9]{2}-[0-9]{2}(/[0-9]{4}-[0-9]{2}-[0-9]{2})?'
    )
    or not regexp_full_match(coalesce(scdl.idBeneficiaire, '00000000000000'), '[0-9]{14}')
    or not regexp_full_match(coalesce(scdl.rnaBeneficiaire, 'W000000000'), 'W[0-9]{9}')
    or not regexp_full_match(coalesce(scdl.idAttribuant, '000000000'), '[0-9]{9}|[0-9]{14}')
    or scdl.pourcentageSubvention not between 0.01 and 1
    or scdl.notificationUE is null
union all
select
    scdl.referenceDecision,
    scdl.financeur,
    'non publiable' as probleme
from scdl
inner join personnes_physiques
    on
        scdl.territoire = personnes_physiques.territoire
        and scdl.annee = personnes_physiques.annee
        and scdl.referenceDecision = personnes_physiques.dossier
        and scdl.financeur = personnes_physiques.financeur
