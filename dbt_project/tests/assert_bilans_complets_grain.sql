-- Grains of the marts of the bilans read in full: bilans_realisation and
-- participation_habitants per territoire x annee x orientation, beneficiaires_age_public per
-- cell x band/public; realised + partial + not + no answer = bilans.
select
    'bilans_realisation' as modele,
    territoire,
    annee,
    orientation_code
from {{ ref('bilans_realisation') }}
group by territoire, annee, orientation_code
having count(*) > 1
union all
select
    'bilans_realisation' as modele,
    territoire,
    annee,
    orientation_code
from {{ ref('bilans_realisation') }}
where
    nb_realisees + nb_partiellement_realisees + nb_non_realisees
    + nb_realisation_non_renseignee != nb_bilans
union all
select
    'participation_habitants' as modele,
    territoire,
    annee,
    orientation_code
from {{ ref('participation_habitants') }}
group by territoire, annee, orientation_code
having count(*) > 1
union all
select
    'beneficiaires_age_public' as modele,
    territoire,
    annee,
    orientation_code
from {{ ref('beneficiaires_age_public') }}
group by
    territoire, annee, orientation_code, qpv_residence, dimension, modalite_code,
    modalite_libelle
having count(*) > 1
