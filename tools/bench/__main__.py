"""``python -m tools.bench`` (``make bench``): the national build benchmark.

Writes the synthetic national input (:mod:`tools.bench.generate`), then runs a full build, a
no-change rebuild, one added programmation year and the plain DuckDB baseline
(:mod:`tools.bench.run`), and writes ``<dossier>/results.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipelines.settings import PROJECT_ROOT

DEFAULT_FOLDER = PROJECT_ROOT / "data" / "bench"


@click.command(
    help="Banc d'essai national: génère l'entrée (contours réels de ../shared/data s'ils sont "
    "là), puis construction complète, reconstruction sans changement, une année ajoutée "
    "(--annee) et la référence DuckDB, et écrit <dossier>/results.json. L'échelle 1 (défaut) "
    "est le volume national du ticket (≈ 8 min et 4 Gio sur 2 cœurs); 0.02 pour un essai rapide."
)
@click.option(
    "--echelle",
    type=click.FloatRange(min=0.0001, max=4),
    default=1.0,
    show_default=True,
    help="Part du volume national pour les programmations (100 000 lignes par an), les bilans "
    "et les lieux (10 M); contours et bases INSEE restent complets.",
)
@click.option(
    "--dossier",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_FOLDER,
    show_default=True,
    help="Dossier du banc (raw/, annee_ajoutee/, travail/, results.json).",
)
@click.option("--graine", type=int, default=20261202, show_default=True)
@click.option(
    "--millesimes", type=click.IntRange(1, 10), default=10, show_default=True,
    help="Millésimes de chaque base INSEE (3 bases).",
)  # fmt: skip
@click.option(
    "--contours-synthetiques",
    "synthetic_qpv",
    type=click.IntRange(min=1),
    default=None,
    help="Nombre de QPV carrés inventés au lieu des contours réels (absents: 1 584 × échelle).",
)
@click.option(
    "--sans-construction",
    "no_builds",
    is_flag=True,
    help="Génère l'entrée et mesure la référence DuckDB seulement (essai du banc).",
)
@click.option(
    "--reutiliser",
    is_flag=True,
    help="Reprend l'entrée déjà générée avec les mêmes paramètres (sinon elle est réécrite).",
)
def main(
    echelle: float,
    dossier: Path,
    graine: int,
    millesimes: int,
    synthetic_qpv: int | None,
    no_builds: bool,
    reutiliser: bool,
) -> None:
    from tools.bench.generate import generate
    from tools.bench.run import run_steps

    dossier = dossier.resolve()
    dossier.mkdir(parents=True, exist_ok=True)
    (dossier / ".gitignore").write_text("*\n", encoding="utf-8")
    params = {
        "echelle": echelle,
        "graine": graine,
        "millesimes": millesimes,
        "contours_synthetiques": synthetic_qpv,
    }
    cached = dossier / "generation.json"
    inventory = None
    if reutiliser and cached.is_file():
        previous = json.loads(cached.read_text(encoding="utf-8"))
        if previous.get("parametres") == params and (dossier / "raw").is_dir():
            inventory = previous["inventaire"]
            click.echo(f"entrée reprise: {dossier / 'raw'}")
    if inventory is None:
        click.echo(f"génération de l'entrée (échelle {echelle}) dans {dossier / 'raw'} ...")
        inventory = generate(
            dossier / "raw",
            dossier / "annee_ajoutee",
            echelle=echelle,
            seed=graine,
            millesimes=millesimes,
            synthetic_qpv=synthetic_qpv,
        ).to_json()
        cached.write_text(
            json.dumps({"parametres": params, "inventaire": inventory}, ensure_ascii=False),
            encoding="utf-8",
        )
    click.echo(json.dumps(inventory, ensure_ascii=False))
    run_steps(dossier, inventory, builds=not no_builds, echo=click.echo)


if __name__ == "__main__":
    main()
