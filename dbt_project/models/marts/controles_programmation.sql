-- Funding-rule failures to follow up: one row per action x broken rule (niveau_controle =
-- 'action') and one row per territory year x broken territory-level rule (niveau_controle =
-- 'territoire', dossier NULL), with the threshold, the observed value and a French message an
-- instructor can act on; plus the projects to review (resultat a_examiner, not a breach).
-- Conforming evaluations stay in int_suivi__controles_actions and
-- int_suivi__controles_territoire; rules the loaded data cannot check are in
-- regles_non_verifiables.
{#- French display of a value of the rule's unit (numbers with a space as thousands separator
    and a decimal comma, shares in %, dates dd/mm/yyyy), a template whose placeholders
    __NOMBRE__, __DATE__, __TEXTE__ and __UNITE__ are replaced by column names below. -#}
{% set valeur_fr -%}
    case
        when __DATE__ is not null then strftime(__DATE__, '%d/%m/%Y')
        when __UNITE__ = 'niveau' then __TEXTE__
        when __NOMBRE__ is null then null
        when __UNITE__ = 'EUR'
            then
                replace(
                    replace(
                        case
                            when __NOMBRE__ = round(__NOMBRE__)
                                then format('{:,.0f}', __NOMBRE__)
                            else format('{:,.2f}', __NOMBRE__)
                        end,
                        ',',
                        ' '
                    ),
                    '.',
                    ','
                )
                || ' €'
        when __UNITE__ = 'part'
            then
                replace(
                    case
                        when round(100 * __NOMBRE__, 1) = round(100 * __NOMBRE__)
                            then format('{:.0f}', 100 * __NOMBRE__)
                        else format('{:.1f}', 100 * __NOMBRE__)
                    end,
                    '.',
                    ','
                )
                || ' %'
        when __UNITE__ = 'annees'
            then
                format('{:.0f}', __NOMBRE__)
                || case when __NOMBRE__ > 1 then ' ans' else ' an' end
        else replace(format('{:,.0f}', __NOMBRE__), ',', ' ')
    end
{%- endset %}
with

actions as (

    select * from {{ ref('int_suivi__controles_actions') }}
    where en_infraction or resultat = 'a_examiner'

),

territoires as (

    select * from {{ ref('int_suivi__controles_territoire') }}
    where en_infraction

),

financeurs as (

    select
        financeur,
        libelle_court
    from {{ ref('ref_financeurs') }}

),

statuts as (

    select
        territoire,
        statut_code,
        libelle
    from {{ ref('ref_statuts_action') }}

),

lignes as (

    select
        'action' as niveau_controle,
        territoire,
        annee,
        dossier,
        intitule,
        porteur_nom as porteur,
        regle_cle,
        regle,
        financeur,
        controle,
        sens,
        resultat,
        seuil,
        valeur_observee,
        unite,
        ecart,
        seuil_nombre,
        valeur_nombre,
        echeance,
        valeur_date,
        valeur_observee as valeur_texte,
        tolerance,
        condition_statut,
        condition_rang,
        condition_nature,
        condition_quartier,
        cast(null as varchar) as condition_volet,
        dossier_precedent,
        description,
        source_seed,
        source_libelle,
        citation,
        source_fichier
    from actions
    union all
    select
        'territoire' as niveau_controle,
        territoire,
        annee,
        cast(null as varchar) as dossier,
        cast(null as varchar) as intitule,
        cast(null as varchar) as porteur,
        regle_cle,
        regle,
        financeur,
        controle,
        sens,
        resultat,
        seuil,
        valeur_observee,
        unite,
        ecart,
        seuil_nombre,
        valeur_nombre,
        cast(null as date) as echeance,
        cast(null as date) as valeur_date,
        valeur_observee as valeur_texte,
        tolerance,
        cast(null as varchar) as condition_statut,
        cast(null as integer) as condition_rang,
        cast(null as varchar) as condition_nature,
        cast(null as varchar) as condition_quartier,
        condition_volet,
        cast(null as varchar) as dossier_precedent,
        description,
        source_seed,
        source_libelle,
        citation,
        cast(null as varchar) as source_fichier
    from territoires

),

affichage as (

    select
        lignes.*,
        coalesce(financeurs.libelle_court, lignes.financeur) as financeur_court,
        coalesce(statuts.libelle, lignes.condition_statut) as statut_libelle,
        {{ valeur_fr | replace('__NOMBRE__', 'lignes.valeur_nombre')
            | replace('__DATE__', 'lignes.valeur_date') | replace('__TEXTE__', 'lignes.valeur_texte')
            | replace('__UNITE__', 'lignes.unite') }} as valeur_fr,
        {{ valeur_fr | replace('__NOMBRE__', 'lignes.seuil_nombre')
            | replace('__DATE__', 'lignes.echeance') | replace('__TEXTE__', 'lignes.seuil')
            | replace('__UNITE__', 'lignes.unite') }} as seuil_fr,
        case
            when lignes.unite = 'part'
                then replace(format('{:g}', 100 * lignes.tolerance), '.', ',') || ' points'
            else
                {{ valeur_fr | replace('__NOMBRE__', 'lignes.tolerance')
                    | replace('__DATE__', 'cast(null as date)') | replace('__TEXTE__', 'null')
                    | replace('__UNITE__', 'lignes.unite') }}
        end as tolerance_fr
    from lignes
    left join financeurs on lignes.financeur = financeurs.financeur
    left join statuts
        on
            lignes.territoire = statuts.territoire
            and lignes.condition_statut = statuts.statut_code

),

-- What is measured (subject of the sentence) and its grammatical gender/number, for the
-- agreement of « inférieur(e)(s) » / « supérieur(e)(s) ».
phrases as (

    select
        *,
        case controle
            when 'montant_demande'
                then
                    'Demande ' || coalesce(financeur_court, 'tous financeurs')
                    || coalesce(' en ' || lower(condition_nature), '')
                    || case
                        when condition_quartier = 'qic'
                            then ' pour un quartier d''intérêt communautaire'
                        else ''
                    end
                    || ' de ' || valeur_fr
            when 'montant_accorde'
                then
                    'Subvention ' || coalesce(financeur_court, 'tous financeurs')
                    || coalesce(' en ' || lower(condition_nature), '')
                    || ' accordée de ' || valeur_fr
            when 'part_demande_cout'
                then
                    'Demande ' || coalesce(financeur_court, 'tous financeurs') || ' de '
                    || valeur_fr || ' du coût total'
            when 'cout_total' then 'Coût total de l''action de ' || valeur_fr
            when 'part_couts_indirects' then 'Coûts indirects de ' || valeur_fr || ' du coût total'
            when 'part_achats' then 'Achats de ' || valeur_fr || ' du coût total'
            when 'niveau_marqueur' then 'Marqueur égalité de niveau ' || valeur_fr
            when 'cpo_duree' then 'CPO de ' || valeur_fr
            when 'part_public_qpv' then 'Part du public résidant en QPV de ' || valeur_fr
            when 'nombre_reunions_suivi' then 'Nombre de réunions de suivi de ' || valeur_fr
            when 'date_bilan'
                then
                    'Bilan final' || coalesce(' ' || financeur_court, '')
                    || coalesce(' remis le ' || valeur_fr, ' non remis')
            when 'date_bilan_intermediaire'
                then 'Bilan intermédiaire' || coalesce(' remis le ' || valeur_fr, ' non remis')
            when 'date_fin_action' then 'Fin de l''action au ' || valeur_fr
            when 'date_demande_report' then 'Demande de report reçue le ' || valeur_fr
            when 'date_demande_prorogation'
                then
                    coalesce(
                        'Demande de report (prorogation au-delà du 31/12) reçue le ' || valeur_fr
                        || ' après la date limite du ' || seuil_fr,
                        'Action prorogée au-delà du 31/12 sans date de demande de report (date '
                        || 'limite du ' || seuil_fr || ')'
                    )
            when 'bilan_annee_precedente'
                then
                    case
                        when seuil = 'final' then 'Bilan final'
                        else 'Bilan provisoire ou final'
                    end
                    || ' de l''action ' || cast(annee - 1 as varchar)
                    || coalesce(' (dossier ' || dossier_precedent || ')', '')
                    || ' non remis : condition du versement pour une action reconduite'
            when 'marqueur_annee_precedente'
                then
                    'Marqueur égalité de niveau ' || coalesce(valeur_fr, 'non renseigné')
                    || ' lors de la programmation ' || cast(annee - 1 as varchar)
                    || coalesce(' (dossier ' || dossier_precedent || ')', '')
                    || ', inférieur au niveau ' || seuil_fr
                    || ' : projet à examiner en réunion partenariale'
            when 'montant_droit_commun_meme_financeur'
                then
                    'Crédits spécifiques ' || coalesce(financeur_court, 'du financeur')
                    || ' demandés pour un projet qui reçoit ' || valeur_fr
                    || ' de crédits de droit commun du même financeur : non éligible'
            when 'part_actions_cpo' then 'Part des actions sous CPO de ' || valeur_fr
            when 'nombre_actions_suivi_renforce'
                then 'Nombre d''actions en suivi renforcé de ' || valeur_fr
            when 'nombre_actions_suivi_renforce_periode'
                then
                    'Nombre d''actions mises en suivi renforcé depuis le début du contrat de '
                    || valeur_fr
            when 'part_montant_volet'
                then
                    'Part « ' || condition_volet || ' » des montants '
                    || coalesce(financeur_court, 'tous financeurs') || ' de ' || valeur_fr
            else regle || ' : ' || coalesce(valeur_fr, 'non renseigné')
        end as sujet,
        case
            when controle in (
                'montant_demande', 'montant_accorde', 'part_demande_cout', 'cpo_duree',
                'part_public_qpv', 'date_fin_action', 'date_demande_report',
                'part_actions_cpo', 'part_montant_volet'
            ) then 'f'
            when controle in ('part_couts_indirects', 'part_achats') then 'mp'
            else 'm'
        end as genre
    from affichage

),

final as (

    select
        niveau_controle,
        territoire,
        annee,
        dossier,
        intitule,
        porteur,
        regle,
        regle_cle,
        financeur,
        controle,
        resultat,
        seuil,
        valeur_observee,
        unite,
        ecart,
        dossier_precedent,
        sujet
        || case
            -- complete sentences in sujet
            when
                controle in (
                    'date_demande_prorogation', 'bilan_annee_precedente',
                    'marqueur_annee_precedente', 'montant_droit_commun_meme_financeur'
                )
                then ''
            when resultat = 'non_remis' then ' à la date limite du ' || seuil_fr
            when controle like 'date%' and sens = 'max'
                then
                    ' après la date limite du ' || seuil_fr
            when sens = 'min'
                then
                    ' inférieur' || case genre when 'f' then 'e' when 'mp' then 's' else '' end
                    || case
                        when niveau_controle = 'territoire'
                            then ' à l''objectif de '
                        else ' au minimum de '
                    end
                    || seuil_fr
            when sens = 'max'
                then
                    ' supérieur' || case genre when 'f' then 'e' when 'mp' then 's' else '' end
                    || ' au maximum de ' || seuil_fr
            when sens = 'egal'
                then
                    ' différent' || case genre when 'f' then 'e' when 'mp' then 's' else '' end
                    || ' de l''objectif de ' || seuil_fr
            when sens = 'cible'
                then
                    ' éloigné' || case genre when 'f' then 'e' when 'mp' then 's' else '' end
                    || ' de plus de ' || coalesce(tolerance_fr, '0')
                    || ' de la cible de ' || seuil_fr
        end
        || ' ('
        || concat_ws(
            ' ; ',
            'action « ' || statut_libelle || ' »',
            cast(condition_rang as varchar) || 'e année de financement',
            case
                when
                    financeur is not null
                    and controle not in (
                        'montant_demande', 'montant_accorde', 'part_demande_cout', 'date_bilan',
                        'part_montant_volet', 'montant_droit_commun_meme_financeur'
                    )
                    then 'demande ' || financeur_court
            end,
            source_libelle
        )
        || ')' as message,
        description,
        source_seed,
        source_libelle,
        citation,
        source_fichier
    from phrases

)

select * from final
order by territoire, annee, niveau_controle, dossier, regle_cle
