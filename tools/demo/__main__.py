"""``python -m tools.demo``: write the demo's raw files, or rebuild its real-data extract."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.settings import DEFAULT_RAW_DIR


@click.command(
    help="Écrit les fichiers bruts de la démo (extrait réel + suivi FICTIF) dans --raw-dir s'ils "
    "sont absents; avec --shared-data, refait l'extrait réel committé (mainteneurs)."
)
@click.option(
    "--raw-dir", type=click.Path(path_type=Path), default=DEFAULT_RAW_DIR, show_default=True
)
@click.option("--force", is_flag=True, help="Réécrit la démo même si le dossier existe.")
@click.option(
    "--shared-data",
    type=click.Path(path_type=Path, exists=True),
    help="Dossier des fichiers nationaux (../shared/data): refait data/demo/ à partir d'eux.",
)
def main(raw_dir: Path, force: bool, shared_data: Path | None) -> None:
    if shared_data is not None:
        from tools.demo.extract import build_extract

        for path in build_extract(shared_data):
            click.echo(f"écrit: {path}")
        return
    from tools.demo.install import install_demo

    written = install_demo(raw_dir, force=force)
    if written:
        click.echo(f"Démo écrite dans {raw_dir}: {len(written)} fichier(s)")
    else:
        click.echo(f"{raw_dir} contient déjà des fichiers: démo non réécrite (--force)")


if __name__ == "__main__":
    main()
