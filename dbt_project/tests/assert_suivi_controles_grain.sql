-- controles_programmation has one row per action (or territory year) x broken rule line.
select
    niveau_controle,
    regle_cle,
    annee,
    dossier,
    count(*) as nb_lignes
from {{ ref('controles_programmation') }}
group by niveau_controle, regle_cle, annee, dossier
having count(*) > 1
