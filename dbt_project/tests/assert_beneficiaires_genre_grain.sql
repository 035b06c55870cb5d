-- Grain of beneficiaires_genre: territoire x annee x orientation x QPV of residence.
select
    territoire,
    annee,
    orientation_code,
    qpv_residence,
    count(*) as nb_lignes
from {{ ref('beneficiaires_genre') }}
group by territoire, annee, orientation_code, qpv_residence
having count(*) > 1
