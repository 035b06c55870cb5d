"""Write the demo's raw files into a raw dir: the committed real extract + the synthetic suivi."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.settings import DEMO_DIR, EXAMPLES_TERRITORIES_DIR, REFERENTIELS_DIR


def install_demo(raw_dir: Path, force: bool = False) -> list[Path]:
    """Copy ``data/demo/`` and generate the fictitious suivi files, unless raw files exist."""
    raw_dir = Path(raw_dir)
    if not force and raw_dir.is_dir() and any(p.is_file() for p in raw_dir.rglob("*")):
        return []
    written: list[Path] = []
    for folder in ("insee", "sig_ville", "compas"):
        for source in sorted((DEMO_DIR / folder).glob("*")):
            target = raw_dir / folder / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            written.append(target)
    # the three example territories (their perimeter, orientations, rules...): user data
    for source in sorted(p for p in EXAMPLES_TERRITORIES_DIR.rglob("*") if p.is_file()):
        target = raw_dir / "territoires" / source.relative_to(EXAMPLES_TERRITORIES_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    from tools.demo.synthetic import write_synthetic_demo

    written += write_synthetic_demo(raw_dir, REFERENTIELS_DIR)
    return written
