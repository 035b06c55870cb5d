-- total = femmes + hommes + sexe non renseigné, and part_femmes is a percentage (0-100), NULL
-- only when no beneficiary's sex is known.
select
    territoire,
    annee,
    orientation_code,
    qpv_residence,
    femmes,
    hommes,
    sexe_non_renseigne,
    total,
    part_femmes
from {{ ref('beneficiaires_genre') }}
where
    total != femmes + hommes + sexe_non_renseigne
    or part_femmes < 0
    or part_femmes > 100
    or (part_femmes is null) != (femmes + hommes = 0)
