"""Croisement programmation x observation and the per-action cuts (statut x échelle, thématique
transversale), recomputed from the demo's raw files.

The programmation, bilan and INSEE files are read with the csv module and openpyxl (helpers of
``tests/test_suivi_marts.py``, not the project's parsers); the marts of the session's demo build
must give the same figures.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.publication.secret import load_specs, mask_counts
from pipelines.settings import REFERENTIELS_DIR
from tests.test_suivi_marts import (
    YEARS,
    _csv_lines,
    _xlsx_lines,
    code_of,
    fold,
    population_for_year,
    qpv_cell,
    raw_lines,
    ref,
)

EXEMPLES = REFERENTIELS_DIR.parents[2] / "exemples" / "territoires"


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def _example_rows(territoire: str, name: str) -> list[dict[str, str]]:
    path = EXEMPLES / territoire / name
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def perimeter(territoire: str, annee: int) -> list[str]:
    geographie = "2024" if annee >= 2024 else "2015"
    return [
        r["code_qpv"]
        for r in ref("ref_perimetre_qpv.csv")
        if r["territoire"] == territoire and r["geographie"] == geographie
    ]


def action_attributes(raw: Path) -> dict[tuple, dict[str, Any]]:
    """(territoire, annee, dossier) -> statut, échelle, thème and projet de quartier of the
    action, from the first line of the action in its programmation file."""
    out: dict[tuple, dict[str, Any]] = {}
    folder = raw / "programmations"

    def keep(key: tuple, values: dict[str, Any]) -> None:
        out.setdefault(key, values)

    for year in YEARS["VM"]:
        for row in _csv_lines(folder / f"VM_programmation_{year}_DEMO_FICTIF.csv"):
            keep(
                ("VM", year, row["N° dossier"]),
                {
                    "statut": row["Statut de l'action"],
                    "echelle": row["Échelle d'intervention"],
                    "theme": code_of(row["Orientation transversale"]),
                    "projet_quartier": row["Projets de Quartier"] == "Oui",
                },
            )
    for year in YEARS["CABBALR"]:
        for row in _csv_lines(folder / f"CABBALR_programmation_{year}_DEMO_FICTIF.csv"):
            keep(
                ("CABBALR", year, row["Dossier"]),
                {
                    "statut": row["Type d'opération"],
                    "echelle": row["Échelle"],
                    "theme": code_of(row["Priorité transversale"]),
                    "projet_quartier": None,
                },
            )
    fils_rouges = {
        fold(r["libelle"]): r["code"]
        for r in _example_rows("CAMVS", "orientations.csv")
        if r["transversal"] == "true" and r["niveau"] == "1"
    }
    for year in YEARS["CAMVS"]:
        for row in _xlsx_lines(
            folder / f"CAMVS_programmation_{year}_DEMO_FICTIF.xlsx", "Code dossier"
        ):
            theme = row["Fil rouge"]
            keep(
                ("CAMVS", year, row["Code dossier"]),
                {
                    "statut": row["Statut"],
                    "echelle": row["Échelle"],
                    "theme": fils_rouges[fold(theme)] if theme else None,
                    "projet_quartier": row["Projet de quartier"] == "Oui",
                },
            )
    return out


def actions(raw: Path) -> dict[tuple, dict[str, Any]]:
    """(territoire, annee, dossier) -> QPV cell and amounts summed over its financeur lines."""
    out: dict[tuple, dict[str, Any]] = {}
    for line in raw_lines(raw):
        key = (line["territoire"], line["annee"], line["dossier"])
        action = out.setdefault(
            key,
            {"qpv": line["qpv"], "demande": 0.0, "accorde": 0.0},
        )
        action["demande"] += line["demande"] or 0
        action["accorde"] += line["accorde"] or 0
    return out


def split(raw: Path, territoire: str, annee: int, cell: list[str] | str) -> dict[str, float]:
    """QPV -> share of an action (population key, else equal parts; 'SANS_QPV' when no code)."""
    codes = perimeter(territoire, annee) if cell == "TOUS" else cell
    if not codes:
        return {"SANS_QPV": 1.0}
    populations = [population_for_year(raw, c, annee) for c in codes]
    if len(codes) > 1 and all(populations):
        total = sum(p[0] for p in populations)
        return {c: p[0] / total for c, p in zip(codes, populations, strict=True)}
    return {c: 1 / len(codes) for c in codes}


# -- croisement QPV x année ----------------------------------------------------------------------


def test_croisement_amounts_and_rows_recomputed_from_raw(con, demo_build):
    raw = demo_build / "raw"
    expected: dict[tuple, list] = defaultdict(lambda: [0.0, 0.0, set()])
    for (territoire, annee, dossier), action in actions(raw).items():
        for code, share in split(raw, territoire, annee, action["qpv"]).items():
            cell = expected[(territoire, annee, code)]
            cell[0] += action["demande"] * share
            cell[1] += action["accorde"] * share
            cell[2].add(dossier)
    # every QPV of the year's perimeter has a row, even without any action
    for territoire, years in YEARS.items():
        for annee in years:
            for code in perimeter(territoire, annee):
                expected[(territoire, annee, code)]  # noqa: B018 (creates the empty row)
    rows = con.execute(
        "select territoire, annee, code_qpv, montant_demande, montant_accorde, nb_actions, "
        "population, euros_par_habitant from marts.croisement_qpv_annee"
    ).fetchall()
    got = {(t, a, c): rest for t, a, c, *rest in rows}
    assert len(got) == len(rows)  # one row per territory x year x QPV
    assert set(got) == set(expected)
    for key, (demande, accorde, dossiers) in expected.items():
        montant_demande, montant_accorde, nb_actions, population, par_habitant = got[key]
        assert float(montant_demande) == pytest.approx(demande, abs=0.011), key
        assert float(montant_accorde) == pytest.approx(accorde, abs=0.011), key
        assert nb_actions == len(dossiers), key
        known = population_for_year(raw, key[2], key[1]) if key[2] != "SANS_QPV" else None
        if known is None:
            assert population is None and par_habitant is None, key
        else:
            assert population == pytest.approx(known[0]), key
            assert par_habitant == pytest.approx(round(accorde / known[0], 2), abs=0.011), key
    # consistent with effort_financier_qpv (same split, same totals)
    assert not con.execute(
        "select count(*) from marts.effort_financier_qpv as e "
        "left join marts.croisement_qpv_annee as c using (territoire, annee, code_qpv) "
        "where c.montant_accorde is distinct from e.montant_accorde "
        "or c.euros_par_habitant is distinct from e.euros_par_habitant"
    ).fetchone()[0]


def test_croisement_beneficiaires_are_the_bilans_residents(con, demo_build):
    """Sample: CABBALR, whose bilans are a CSV (long layout); residents of each QPV summed over
    the bilans."""
    raw = demo_build / "raw"
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for annee in YEARS["CABBALR"]:
        for row in _csv_lines(raw / "bilans" / f"CABBALR_bilans_{annee}_DEMO_FICTIF.csv"):
            codes = qpv_cell(row["Quartier de résidence"])
            if not isinstance(codes, list) or len(codes) != 1:
                continue
            counts = expected[(annee, codes[0])]
            sexes = ("Femmes", "Hommes", "Sexe non renseigné")
            if "Tranche d'âge ou public" in row:  # long layout: one line per sex, band, public
                if row["Tranche d'âge ou public"] in sexes:
                    counts[sexes.index(row["Tranche d'âge ou public"])] += int(row["Effectif"])
                continue
            for i, column in enumerate(sexes):
                counts[i] += int(row[column] or 0)
    rows = con.execute(
        "select annee, code_qpv, beneficiaires_femmes, beneficiaires_hommes, "
        "beneficiaires_sexe_non_renseigne, beneficiaires, part_femmes_beneficiaires "
        "from marts.croisement_qpv_annee where territoire = 'CABBALR' and code_qpv <> 'SANS_QPV'"
    ).fetchall()
    assert rows
    for annee, code, femmes, hommes, inconnu, total, part in rows:
        want = expected.get((annee, code), [0, 0, 0])
        assert [femmes, hommes, inconnu] == want, (annee, code)
        assert total == sum(want)
        if want[0] + want[1]:
            assert part == pytest.approx(round(100 * want[0] / (want[0] + want[1]), 1))
    assert sum(r[5] for r in rows) > 0
    # published: small counts masked like beneficiaires_genre
    frame = con.execute("select * from marts.croisement_qpv_annee").df()
    masked = mask_counts(frame, load_specs()["croisement_qpv_annee"], seuil=5)
    for column in ("beneficiaires_femmes", "beneficiaires_hommes"):
        published = masked[column].dropna()
        assert not ((published > 0) & (published < 5)).any(), column


def _ipro(raw: Path, variable: str) -> dict[tuple[str, int], float]:
    values = {}
    for path in sorted((raw / "insee").glob("IPRO_*.csv")):
        year = int(path.stem.split("_")[1][:4])
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                cell = (row.get(variable) or "").strip().replace("\u202f", "").replace(" ", "")
                if row["CODGEO"].startswith("QP") and cell:
                    values[(row["CODGEO"], year)] = float(cell.replace(",", "."))
    return values


def test_croisement_taux_emploi_is_the_latest_millesime_or_the_2015_predecessor(con, demo_build):
    raw = demo_build / "raw"
    ipro = _ipro(raw, "TX_TOT_EMPL")
    with (REFERENTIELS_DIR.parent / "indicateurs" / "ref_passage_qpv_2015_2024.csv").open(
        encoding="utf-8"
    ) as fh:
        links = list(csv.DictReader(fh))
    by_2024: dict[str, list[str]] = defaultdict(list)
    for link in links:
        by_2024[link["code_qpv_2024"]].append(link["code_qpv_2015"])
    rows = con.execute(
        "select annee, code_qpv, taux_emploi, millesime_taux_emploi, code_qpv_2015_indicateurs "
        "from marts.croisement_qpv_annee where code_qpv <> 'SANS_QPV'"
    ).fetchall()
    carried = 0
    for annee, code, value, millesime, predecessor in rows:
        source = code
        if code.startswith("QN"):
            before = by_2024.get(code, [])
            # one-to-one links only (a merged QPV gets no carried rate)
            source = (
                before[0]
                if len(before) == 1
                and len([x for x in links if x["code_qpv_2015"] == before[0]]) == 1
                else None
            )
        found = {m: v for (c, m), v in ipro.items() if c == source and m <= annee}
        if not found:
            assert value is None, (annee, code)
            continue
        latest = max(found)
        assert (value, millesime) == (pytest.approx(found[latest]), latest), (annee, code)
        if source != code:
            carried += 1
            assert predecessor == source
    assert carried > 10  # VM and CAMVS (2024 codes) carry their 2015 predecessor's rate


def test_croisement_gaps_only_between_values_of_the_same_millesime(con):
    rows = con.execute(
        "select indice_fragilite, indice_fragilite_epci, millesime_indice_fragilite, "
        "millesime_indice_fragilite_epci, ecart_indice_fragilite_epci, "
        "comparabilite_indice_fragilite_epci, taux_emploi_epci, ecart_taux_emploi_epci, "
        "comparabilite_taux_emploi_epci from marts.croisement_qpv_annee"
    ).fetchall()
    same = 0
    for qpv, epci, m_qpv, m_epci, ecart, comparabilite, emploi_epci, ecart_emploi, comp in rows:
        if qpv is None or epci is None:
            assert ecart is None
            continue
        if m_qpv == m_epci:
            same += 1
            assert comparabilite == "meme_millesime"
            assert ecart == pytest.approx(round(qpv - epci, 1), abs=0.051)
        else:
            assert ecart is None and comparabilite != "meme_millesime"
        if emploi_epci is not None and comp != "meme_millesime":
            assert ecart_emploi is None
    assert same > 20


def test_croisement_orientation_financeur_adds_up(con, demo_build):
    """By orientation and financeur, summed over QPV: the raw lines (the split shares add up to
    one); by QPV, summed over orientations and financeurs: croisement_qpv_annee."""
    expected: dict[tuple, float] = defaultdict(float)
    for line in raw_lines(demo_build / "raw"):
        key = (line["territoire"], line["annee"], line["orientation"] or "NON_RENSEIGNE")
        expected[key + (line["financeur"],)] += line["accorde"] or 0
    got = dict(
        ((t, a, o, f), float(m))
        for t, a, o, f, m in con.execute(
            "select territoire, annee, orientation_code, financeur, sum(montant_accorde) "
            "from marts.croisement_qpv_orientation_financeur group by all"
        ).fetchall()
    )
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=0.5), key  # cents of rounding per QPV row
    ecarts = con.execute(
        "select max(abs(c.montant_accorde - coalesce(v.total, 0))), max(v.nb_lignes) "
        "from marts.croisement_qpv_annee as c left join ("
        "  select territoire, annee, code_qpv, sum(montant_accorde) as total, count(*) as nb_lignes"
        "  from marts.croisement_qpv_orientation_financeur group by all"
        ") as v using (territoire, annee, code_qpv)"
    ).fetchone()
    assert float(ecarts[0]) <= 0.01 * ecarts[1]


# -- statut x échelle, thématique transversale ----------------------------------------------------


def test_depenses_statut_echelle_recomputed_from_raw(con, demo_build):
    raw = demo_build / "raw"
    attributes = action_attributes(raw)
    statuts = {}
    for territoire in YEARS:
        for r in _example_rows(territoire, "statuts_action.csv"):
            statuts[(territoire, fold(r["libelle"]))] = r["statut_code"]
    expected: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
    for key, action in actions(raw).items():
        territoire, annee, _ = key
        attr = attributes[key]
        statut = (
            statuts.get((territoire, fold(attr["statut"])), fold(attr["statut"]))
            if attr["statut"]
            else "NON_RENSEIGNE"
        )
        cell = expected[(territoire, annee, statut, attr["echelle"])]
        cell[0] += 1
        cell[1] += action["accorde"]
    got = {
        (t, a, s, e): (n, float(m))
        for t, a, s, e, n, m in con.execute(
            "select territoire, annee, statut_code, echelle, nb_actions, montant_accorde "
            "from marts.depenses_statut_echelle"
        ).fetchall()
    }
    assert set(got) == set(expected)
    for key, (count, accorde) in expected.items():
        assert got[key] == (count, pytest.approx(accorde, abs=0.011)), key
    # French labels of the référentiel, never internal codes
    labels = dict(
        con.execute(
            "select statut_code, any_value(statut_libelle) from marts.depenses_statut_echelle "
            "where territoire = 'VM' group by 1"
        ).fetchall()
    )
    assert labels["reconduite_reorientation_droit_commun"] == (
        "reconduite à réorienter vers le droit commun en 2028"
    )


def test_depenses_thematique_transversale_recomputed_from_raw(con, demo_build):
    raw = demo_build / "raw"
    attributes = action_attributes(raw)
    expected: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0, 0.0])
    for key, action in actions(raw).items():
        territoire, annee, _ = key
        attr = attributes[key]
        cell = expected[(territoire, annee, attr["theme"] or "NON_RENSEIGNE")]
        cell[0] += 1
        cell[1] += action["accorde"]
        if attr["projet_quartier"]:
            cell[2] += 1
            cell[3] += action["accorde"]
    rows = con.execute(
        "select territoire, annee, thematique_code, thematique_libelle, nb_actions, "
        "montant_accorde, nb_actions_projet_quartier, montant_accorde_projet_quartier "
        "from marts.depenses_thematique_transversale"
    ).fetchall()
    got = {(t, a, c): (n, float(m), np, float(mp)) for t, a, c, _l, n, m, np, mp in rows}
    assert set(got) == set(expected)
    for key, (count, accorde, count_pq, accorde_pq) in expected.items():
        assert got[key] == (
            count,
            pytest.approx(accorde, abs=0.011),
            count_pq,
            pytest.approx(accorde_pq, abs=0.011),
        ), key
    libelles = {(t, c): lib for t, _a, c, lib, *_ in rows}
    assert libelles[("CABBALR", "T2")] == "La lutte contre les discriminations"
    assert libelles[("CAMVS", "T1")] == "Aller-vers"
    assert {c for t, _a, c in got if t == "CABBALR"} == {"T1", "T2", "T3"}
