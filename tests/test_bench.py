"""Smoke test of the build benchmark (``make bench``) at a tiny scale, without builds: the
generator writes every source, the DuckDB baseline reads them, results.json holds the figures;
the memory of a process tree is measured with its children."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.bench.generate import generate
from tools.bench.run import measure, ratios

ROOT = Path(__file__).resolve().parents[1]


def test_bench_at_tiny_scale_without_builds(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench",
            "--echelle",
            "0.0005",
            "--millesimes",
            "1",
            "--contours-synthetiques",
            "12",
            "--sans-construction",
            "--dossier",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    volumes = results["volumes"]
    assert volumes["lignes"]["programmations"] == 5 * 50
    assert volumes["lignes_annee_ajoutee"]["programmations"] == 50
    assert volumes["lignes"]["lieux"] == 5000 and volumes["qpv"] == 12
    assert set(volumes["fichiers"]) == {
        "sig_ville",
        "insee",
        "territoires",
        "programmations",
        "bilans",
        "lieux",
    }
    reference = results["etapes"]["reference_duckdb"]
    assert reference["code_sortie"] == 0 and reference["wall_s"] > 0
    assert reference["pic_rss_mio"] > 20
    rows = reference["sortie_reference"]["marts_phares"]
    assert rows["taux_emploi_quartier"] > 0 and rows["depenses_orientation"] > 0
    assert rows["beneficiaires_genre"] > 0 and rows["lieux_qpv"] > 0
    # the added year is kept apart from the raw folder the baseline read
    assert not list((tmp_path / "raw" / "programmations").glob("*_2029.csv"))
    assert list((tmp_path / "annee_ajoutee" / "programmations").glob("*_2029.csv"))
    assert (tmp_path / ".gitignore").read_text() == "*\n"


def test_every_bench_territory_has_rules_its_programmations_meet(tmp_path):
    """Each territory folder passes ``observatoire territoire verifier`` and gives a hierarchy,
    statuses and funding rules; the programmations name objectifs of that hierarchy, statuses
    of that list and, for the reconductions, an action of the previous year (same porteur and
    intitulé), so that the rule models are evaluated at national volume."""
    import csv

    from pipelines.sources.territoires.reader import verify
    from tools.bench.territories import RULE_COLUMNS

    raw = tmp_path / "raw"
    inventory = generate(raw, tmp_path / "add", echelle=0.002, millesimes=1, synthetic_qpv=12)
    territories, errors = verify(raw)
    assert errors == [] and len(territories) == inventory.territoires >= 2

    def rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh, delimiter=delimiter))

    controls = set()
    for folder in sorted((raw / "territoires").iterdir()):
        rules = rows(folder / "regles_financement.csv")
        assert list(rules[0]) == RULE_COLUMNS
        controls |= {r["controle"] for r in rules}
        keys = [
            (r["regle"], r["financeur"], r["annee_debut"], r["condition_statut"]) for r in rules
        ]
        assert len(keys) == len(set(keys))  # regle_cle is unique
        codes = {r["code"] for r in rows(folder / "orientations.csv")}
        statuses = {r["libelle"] for r in rows(folder / "statuts_action.csv")}
        actions: dict[int, set[tuple[str, str]]] = {}
        reconductions = 0
        for path in sorted((raw / "programmations").glob(f"*_{folder.name[1:]}_*.csv")):
            for line in rows(path, ";"):
                assert line["Orientation"].split(" - ")[0] in codes
                assert line["Statut de l'action"] in statuses
                year = int(line["Exercice"])
                key = (line["Code SIRET"], line["Intitulé de l'action"])
                actions.setdefault(year, set()).add(key)
                if line["Statut de l'action"] == "Reconduction":
                    assert key in actions.get(year - 1, set())
                    reconductions += 1
        assert reconductions > 0
    # the programmations carry codes of their years' geography (2024 codes from 2024): no line
    # of the bench is a « qpv_geographie » anomaly
    from pipelines.sources.programmations.rules import parse_programmations

    parsed = parse_programmations(sorted((raw / "programmations").glob("*.csv")))
    assert inventory.annees[0] == 2024 and len(parsed.rows) > 0
    assert "qpv_geographie" not in set(parsed.anomalies["type"])
    # porteurs' SIRET mostly valid, as in a real export: a few mistyped ones are reported
    mistyped = int((parsed.anomalies["type"] == "siret_invalide").sum())
    assert 0 < mistyped < 0.1 * len(parsed.rows)
    # one rule of each kind the engine evaluates on these files, and one it cannot
    assert {
        "montant_demande",
        "part_demande_cout",
        "montant_accorde",
        "cout_total",
        "date_bilan",
        "bilan_annee_precedente",
        "cpo_duree",
        "part_actions_cpo",
        "aucun",
    } <= controls


def test_generation_is_deterministic(tmp_path):
    def files(folder: Path) -> dict[str, bytes]:
        generate(folder / "raw", folder / "add", echelle=0.0002, millesimes=1, synthetic_qpv=5)
        return {
            str(p.relative_to(folder)): p.read_bytes()
            for p in folder.rglob("*")
            if p.suffix in (".csv", ".yml")
        }

    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_memory_of_the_process_tree_counts_the_children(tmp_path):
    child = "b = bytearray(150 * 2**20); import time; time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    result = measure([sys.executable, "-c", parent], {}, tmp_path / "log.txt", interval=0.05)
    assert result["code_sortie"] == 0
    assert result["pic_rss_mio"] > 150  # the grandchild's memory is in the tree's peak


def test_ratios_and_targets():
    steps = {
        "construction_complete": {"wall_s": 100.0, "pic_rss_mio": 3000, "code_sortie": 0},
        "sans_changement": {"wall_s": 4.0, "pic_rss_mio": 100, "code_sortie": 0},
        "annee_ajoutee": {"wall_s": 30.0, "pic_rss_mio": 2000, "code_sortie": 0},
        "reference_duckdb": {"wall_s": 25.0, "pic_rss_mio": 500, "code_sortie": 0},
    }
    out = ratios(steps)
    assert out["construction_complete / reference_duckdb"] == {
        "valeur": 4.0,
        "cible": 3.0,
        "atteinte": False,
    }
    assert out["sans_changement / construction_complete"]["atteinte"] is True
    assert out["annee_ajoutee / construction_complete"]["valeur"] == 0.3
    assert out["pic_rss_mio (toutes étapes)"]["atteinte"] is True
