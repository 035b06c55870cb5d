"""Operations around a build: lock, stale temp files, archive of inputs, build manifests.

Every file a successful build loaded is copied once into ``<warehouse dir>/archive/`` under
its SHA-256, and the build writes ``<warehouse dir>/builds/<build id>.json`` listing them, so
that ``observatoire build --as-of <build id | YYYY-MM-DD>`` rebuilds a past warehouse from
exactly its inputs.

Why this module is long: the lock, the archive, the manifests and the restore of ``--as-of``
share one guarantee (what a build read is exactly what it archived and what a rebuild restores);
split, each half would have to re-derive the other's rules on paths, hashes and build ids.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.lib.files import sha256_bytes, sha256_file
from pipelines.settings import PROJECT_ROOT


class OperationError(Exception):
    """A build cannot start or a past build cannot be found."""


class MissingInputsError(OperationError):
    """The raw folder has no file at all, or none for a source of the published build."""


#: CLI option (and run tag value) that lets a build publish without some or all of its inputs.
ALLOW_EMPTY_OPTION = "--autoriser-vide"


def archive_dir(warehouse: Path) -> Path:
    return warehouse.parent / "archive"


def builds_dir(warehouse: Path) -> Path:
    return warehouse.parent / "builds"


class BuildLock:
    """One build at a time per warehouse (DuckDB allows a single writer) and per marts folder.

    An exclusive ``flock`` on ``.<warehouse>.lock`` beside the warehouse and, given
    ``marts_dir``, on ``.<marts folder>.lock`` beside it (two warehouses publishing into one
    marts folder share its staging folder and its link), released by the kernel when the
    process dies (kill -9 included). Re-entrant within a process: the CLI holds it around its
    runs and the build's resource takes it again inside each run. ``wait`` (seconds) is how
    long to wait for another build to finish before giving up (0: fail at once).
    """

    _held: dict[Path, list] = {}  # lock path -> [open file, depth]

    def __init__(self, warehouse: Path, wait: float = 0, marts_dir: Path | None = None) -> None:
        self.path = warehouse.with_name(f".{warehouse.name}.lock").resolve()
        self.warehouse = warehouse
        self.wait = wait
        self.locks = [(self.path, f"{warehouse}: une autre construction est en cours")]
        if marts_dir is not None:
            marts_lock = marts_dir.with_name(f".{marts_dir.name}.lock").resolve()
            self.locks.append(
                (
                    marts_lock,
                    f"{marts_dir}: une autre construction (d'un autre entrepôt) publie dans ce "
                    "dossier de marts",
                )
            )
        self._taken: list[Path] = []

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        try:
            for path, message in self.locks:
                self._take(path, message, deadline)
                self._taken.append(path)
        except BaseException:
            self.release()
            raise

    def _take(self, path: Path, message: str, deadline: float) -> None:
        held = self._held.get(path)
        if held is not None:
            held[1] += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("w")
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    raise OperationError(f"{message} (verrou {path})") from None
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._held[path] = [fh, 1]

    def release(self) -> None:
        while self._taken:
            path = self._taken.pop()
            held = self._held.get(path)
            if held is None:
                continue
            held[1] -= 1
            if held[1] == 0:
                del self._held[path]
                fcntl.flock(held[0], fcntl.LOCK_UN)
                held[0].close()

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def build_lock(warehouse: Path, wait: float = 0, marts_dir: Path | None = None) -> BuildLock:
    """The build lock of ``warehouse`` (and of ``marts_dir``), as a context manager."""
    return BuildLock(warehouse, wait, marts_dir)


class PublishError(OperationError):
    """The staging warehouse cannot be switched in (nothing is published)."""


@contextmanager
def no_writer(warehouse: Path):
    """Refuse (PublishError) while another program holds the published warehouse open for
    writing; while inside, no program can open it for writing.

    DuckDB locks its file (``fcntl``): exclusively for a read-write connection, shared for a
    ``-readonly`` one. A shared lock taken here succeeds with readers only, and makes a writer's
    connection fail until it is released. (A lock of this process is dropped when any of its
    descriptors of the file is closed: nothing else here opens the published file.)"""
    if not warehouse.is_file():
        yield
        return
    fd = os.open(warehouse, os.O_RDONLY)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise PublishError(
                f"{warehouse}: l'entrepôt publié est ouvert en écriture par un autre programme "
                "(une connexion DuckDB sans -readonly ?): ce qu'il y écrirait serait perdu. "
                "Fermer cette connexion (ou la rouvrir avec duckdb -readonly) puis relancer la "
                "construction; rien n'est publié"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


#: Name of the link, in the publications folder, to the current publication.
CURRENT = "courante"


def publications_dir(warehouse: Path) -> Path:
    """``.<warehouse>.publications/`` beside the warehouse: one folder per published build,
    and the link ``courante`` to the one the user-facing paths lead to."""
    return warehouse.with_name(f".{warehouse.name}.publications")


def remove_stale_builds(warehouse: Path, marts_dir: Path) -> list[Path]:
    """Delete what a killed build left (called under the build lock): its staging folders, and
    a publication folder it made but did not switch to."""
    removed = []
    for parent, stem in ((warehouse.parent, warehouse.name), (marts_dir.parent, marts_dir.name)):
        if not parent.is_dir():
            continue
        # ``.build-<id>`` folders come from versions before the publication asset
        for pattern in (f".{stem}.construction", f".{stem}.build-*"):
            for path in parent.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
    root = publications_dir(warehouse)
    current = root / CURRENT
    live = os.readlink(current) if current.is_symlink() else None
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name in (CURRENT, live):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


#: ``prctl`` option: the signal a process receives when the thread that started it dies.
PR_SET_PDEATHSIG = 1


def _die_with(parent: int, prctl):
    """A ``preexec_fn``: the child is killed (SIGKILL) when its parent dies, kill -9 included
    (``prctl`` is looked up in the parent: nothing is loaded between fork and exec)."""

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(1)

    return preexec


def popen_dying_with_parent(*args, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` whose child dies with this process (Linux ``PR_SET_PDEATHSIG``;
    elsewhere a plain ``Popen``)."""
    if sys.platform.startswith("linux") and kwargs.get("preexec_fn") is None:
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None
        if prctl is not None:
            kwargs["preexec_fn"] = _die_with(os.getpid(), prctl)
    return subprocess.Popen(*args, **kwargs)


def tie_dbt_to_process() -> None:
    """The dbt processes dagster-dbt starts die with the build that started them.

    A killed build (kill -9 of ``observatoire build``, of a Dagster run) otherwise leaves its
    dbt child running, writing into a staging warehouse the next build removes. dagster-dbt
    starts dbt with ``subprocess.Popen`` and no hook: its module gets a ``subprocess`` whose
    ``Popen`` sets the parent-death signal (idempotent)."""
    from dagster_dbt.core import dbt_cli_invocation as invocation

    if getattr(invocation.subprocess, "popen_dying_with_parent", False):
        return
    proxy = types.SimpleNamespace(**vars(subprocess))
    proxy.Popen = popen_dying_with_parent
    proxy.popen_dying_with_parent = True
    invocation.subprocess = proxy


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _archive_file(path: Path, store: Path) -> tuple[str, int]:
    """Archive ``path`` under its SHA-256 in ``store``; returns (hash, size).

    The file is hashed first and copied only when the archive does not hold those bytes yet
    (streamed: memory stays small whatever the size): most inputs of a build were archived by
    an earlier one, and copying each again to a temporary file before dropping it cost seconds
    at national volume (10 M lieux). A new file is hashed again while it is copied: bytes that
    changed in between raise OperationError instead of being archived under another hash."""
    with path.open("rb") as src:
        sha = hashlib.file_digest(src, "sha256").hexdigest()
        size = os.fstat(src.fileno()).st_size
    target = store / sha[:2] / sha
    if target.exists():
        return sha, size
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    tmp = store / f".{os.getpid()}-{path.name}.tmp"
    try:
        with path.open("rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        if digest.hexdigest() != sha:
            raise OperationError(
                f"{path}: modifié pendant l'archivage; rien n'est publié, relancer la construction"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return sha, size


def _build_start(build_id: str) -> datetime | None:
    """The UTC start of a build from its id (``20261202T191556-2b6fe9``), naive like the
    ingestion_log timestamps, one second early (the id is truncated to the second)."""
    try:
        return datetime.strptime(build_id[:15], "%Y%m%dT%H%M%S") - timedelta(seconds=1)
    except ValueError:
        return None


def archive_inputs(warehouse_file: Path, warehouse: Path, raw_dir: Path, build_id: str) -> dict:
    """Archive every file of the raw dir by content hash; returns the build manifest.

    All files are kept, not only those logged in ``raw.ingestion_log``: a Shapefile's
    ``.dbf``/``.prj`` sidecars and the alias files are inputs too. The manifest records, per
    file, the source that loaded it when there is one (``lieux/`` like every other source).

    Every file a source read (``raw.ingestion_log``) must be archived with the bytes that were
    read, so that ``--as-of`` rebuilds exactly: a file changed, removed or read outside the raw
    folder since it was read raises OperationError (nothing is published).
    """
    con = duckdb.connect(str(warehouse_file), read_only=True)
    try:
        columns = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'raw' and table_name = 'ingestion_log'"
            ).fetchall()
        }
        when = "horodatage" if "horodatage" in columns else "null"
        rows = con.execute(
            f"select fichier, source, empreinte_sha256, {when} from raw.ingestion_log"
        ).fetchall()
    finally:
        con.close()
    loaded = {fichier: source for fichier, source, _, _ in rows}
    # only the files read by this build are checked: a year's build (--annee) keeps the other
    # sources' records of the previous build, whose files may have moved or changed since
    started = _build_start(build_id)
    logged = [
        (fichier, source, sha)
        for fichier, source, sha, when in rows
        if started is None or when is None or when >= started
    ]
    store = archive_dir(warehouse)
    raw_root = raw_dir.resolve()
    files = []
    hashes = {}
    for path in sorted(p for p in raw_root.rglob("*") if p.is_file()):
        sha, size = _archive_file(path, store)
        hashes[str(path)] = sha
        files.append(
            {
                "source": loaded.get(str(path)),
                "chemin": str(path.relative_to(raw_root)),
                "sha256": sha,
                "taille": size,
            }
        )
    empty = sha256_bytes(b"")
    for fichier, _source, read_sha in logged:
        if fichier in hashes:
            if read_sha and hashes[fichier] != read_sha:
                raise OperationError(
                    f"{fichier}: modifié pendant la construction (empreinte à la lecture "
                    f"{read_sha[:12]}, à l'archivage {hashes[fichier][:12]}); rien n'est publié, "
                    "relancer la construction"
                )
        elif not Path(fichier).is_relative_to(raw_root):
            raise OperationError(
                f"{fichier}: lu hors du dossier brut {raw_root}, ne peut être archivé pour "
                "--as-of; rien n'est publié"
            )
        elif read_sha != empty:
            raise OperationError(
                f"{fichier}: supprimé pendant la construction; rien n'est publié, relancer la "
                "construction"
            )
    return {
        "build_id": build_id,
        "entrepot": warehouse.name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "raw_dir": str(raw_root),
        "commit": _git_commit(),
        "version_code": code_version(),
        "options": build_options(),
        "fichiers": files,
    }


#: Folders of the project whose files make what a build computes (code, dbt models, seeds).
CODE_FOLDERS = ("pipelines", "geo", "dbt_project")
#: Folders inside them that a build writes or that hold caches: not part of the version.
_NOT_CODE = {"__pycache__", "target", "target_test", "logs", "dbt_packages", ".user.yml"}
#: Packages whose version changes what a build computes.
CODE_PACKAGES = ("observatoire-qpv", "duckdb", "dbt-core", "dbt-duckdb", "dagster", "dagster-dbt")
#: Environment variables that change what a build writes (statistical secret, report PDF,
#: the BAN geocoder's score threshold of the lieux).
OPTION_VARIABLES = (
    "OBSERVATOIRE_SEUIL_SECRET",
    "OBSERVATOIRE_SCORE_BAN_MIN",
    "OBSERVATOIRE_RAPPORT_PDF",
    "OBSERVATOIRE_CHROMIUM",
    "OBSERVATOIRE_RAPPORTS_MAX",
    "OBSERVATOIRE_CLASSEURS_MAX",
)


def code_version(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 of the project's code and référentiels (every file of ``pipelines/``, ``geo/``
    and ``dbt_project/`` but caches and dbt's outputs, by path and content) and of the versions
    of the packages that compute the build. Two builds of the same inputs with the same
    version give the same warehouse."""
    from importlib import metadata

    digest = hashlib.sha256()
    for folder in CODE_FOLDERS:
        base = root / folder
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            rel = path.relative_to(root)
            if not path.is_file() or any(part in _NOT_CODE for part in rel.parts):
                continue
            if path.suffix in (".pyc", ".duckdb", ".wal"):
                continue
            digest.update(f"{rel.as_posix()}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    for package in CODE_PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{package}=={version}\0".encode())
    return digest.hexdigest()


def build_options() -> dict[str, str]:
    """The settings of the environment that change what a build writes (recorded in the
    manifest; a different value is a change)."""
    return {name: os.environ[name] for name in OPTION_VARIABLES if name in os.environ}


def _current_publication(warehouse: Path) -> str | None:
    link = publications_dir(warehouse) / CURRENT
    return os.readlink(link) if link.is_symlink() else None


def unchanged_since(
    raw_dir: Path, warehouse: Path, marts_dir: Path, annees: list[str] | None = None
) -> dict | None:
    """The manifest of the published build when a new build would give the same warehouse and
    marts, else None.

    Nothing changed when: the warehouse and the marts folder given are those of the last
    published build of ``warehouse`` (its manifest names the publication ``courante`` leads
    to); that build read the same raw folder; every file of the folder has the same path and
    content (SHA-256, after a cheap comparison of the list and the sizes) as in its manifest;
    the project's code version (:func:`code_version`) and the build options
    (:func:`build_options`) are the same. A build of some years only (``--annee``) counts as
    the same as a full build only for those years: a full build after it is redone (a
    series spanning two years is checked by a full build only)."""
    raw_root = raw_dir.resolve()
    if not raw_root.is_dir() or not warehouse.exists():
        return None
    manifest = last_manifest(warehouse)
    if manifest is None or "version_code" not in manifest:
        return None
    bid = manifest.get("build_id")
    if not bid or _current_publication(warehouse) != bid:
        return None
    publication = publications_dir(warehouse) / bid
    if warehouse.resolve() != (publication / warehouse.name).resolve():
        return None
    if not marts_dir.exists() or marts_dir.resolve() != (publication / "marts").resolve():
        return None
    if manifest.get("raw_dir") != str(raw_root):
        return None
    built_years = manifest.get("annees")
    if built_years is not None and not (annees and set(annees) <= set(built_years)):
        return None
    if manifest.get("options", {}) != build_options():
        return None
    recorded = {f["chemin"]: f for f in manifest.get("fichiers", [])}
    present = {str(p.relative_to(raw_root)): p for p in sorted(raw_root.rglob("*")) if p.is_file()}
    if recorded.keys() != present.keys():
        return None
    if any(present[rel].stat().st_size != f.get("taille") for rel, f in recorded.items()):
        return None
    if manifest["version_code"] != code_version():
        return None
    for rel, entry in recorded.items():
        if sha256_file(present[rel]) != entry.get("sha256"):
            return None
    return manifest


def _input_kinds(paths) -> dict[str, set[str]]:
    """Top-level folder (a source: ``insee/``, ``programmations/``...) -> suffixes of its files
    (``.csv``, ``.xlsx``...); hidden files and files at the root aside."""
    kinds: dict[str, set[str]] = {}
    for rel in paths:
        parts = Path(rel).parts
        if len(parts) > 1 and not any(part.startswith(".") for part in parts):
            kinds.setdefault(parts[0], set()).add(Path(rel).suffix.lower())
    return kinds


def raw_input_files(raw_dir: Path) -> list[Path]:
    """Every file of the raw folder (hidden files and folders aside), relative to it."""
    if not raw_dir.is_dir():
        return []
    return sorted(
        p.relative_to(raw_dir)
        for p in raw_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(raw_dir).parts)
    )


def last_manifest(warehouse: Path) -> dict | None:
    """The manifest of the last published build of ``warehouse`` (None when there is none).

    Manifests of other warehouses of the same folder (``--as-of`` rebuilds, ``--warehouse``)
    share ``builds/``: a manifest names its warehouse (``entrepot``); older ones do not and
    count for every warehouse of the folder."""
    folder = builds_dir(warehouse)
    best = None
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("entrepot", warehouse.name) != warehouse.name:
            continue
        if best is None or (manifest.get("date", ""), manifest.get("build_id", "")) >= (
            best.get("date", ""),
            best.get("build_id", ""),
        ):
            best = manifest
    return best


def check_inputs(raw_dir: Path, warehouse: Path) -> None:
    """Refuse a build that would replace the published marts with empty or partial ones.

    Raises :class:`MissingInputsError` when the raw folder holds no file at all (empty or
    unmounted), or, when a warehouse is published, no file for a source (top-level folder) that
    had files loaded in the last published build (its manifest). ``--autoriser-vide`` skips it.
    """
    present = raw_input_files(raw_dir)
    if not present:
        raise MissingInputsError(
            f"{raw_dir}: aucun fichier brut (dossier vide ou non monté ?). Rien n'est construit "
            "et l'entrepôt publié est gardé tel quel ; pour construire et publier quand même des "
            f"marts vides: {ALLOW_EMPTY_OPTION}"
        )
    if not warehouse.exists():
        return
    manifest = last_manifest(warehouse)
    if manifest is None:
        return
    # a source is missing when its folder has no file of a kind it loaded (a README left in
    # programmations/ does not count for the CSV files that were there)
    before = _input_kinds(f["chemin"] for f in manifest.get("fichiers", []) if f.get("source"))
    now = _input_kinds(present)
    missing = sorted(name for name, kinds in before.items() if not kinds & now.get(name, set()))
    if missing:
        raise MissingInputsError(
            f"{raw_dir}: aucun fichier pour {len(missing)} source(s) chargée(s) par la "
            f"construction publiée {manifest.get('build_id', '?')}: "
            + ", ".join(f"{name}/" for name in missing)
            + ". Rien n'est construit et l'entrepôt publié est gardé tel quel ; si ces sources "
            f"ont été retirées exprès: {ALLOW_EMPTY_OPTION}"
        )


def write_manifest(warehouse: Path, manifest: dict) -> Path:
    """Record a published build (written only once the warehouse is published)."""
    out = builds_dir(warehouse) / f"{manifest['build_id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


def find_build(warehouse: Path, as_of: str) -> dict:
    """The manifest of a build id, or of the last build on or before a date (YYYY-MM-DD)."""
    folder = builds_dir(warehouse)
    manifests = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        manifests.append(json.loads(path.read_text(encoding="utf-8")))
    if not manifests:
        raise OperationError(f"{folder}: aucune construction archivée")
    for manifest in manifests:
        if manifest["build_id"] == as_of:
            return manifest
    try:
        day = datetime.strptime(as_of, "%Y-%m-%d").date()
    except ValueError:
        raise OperationError(
            f"--as-of {as_of}: ni un identifiant de construction de {folder} ni une date AAAA-MM-JJ"
        ) from None
    eligible = [m for m in manifests if datetime.fromisoformat(m["date"]).date() <= day]
    if not eligible:
        raise OperationError(f"--as-of {as_of}: aucune construction à cette date ou avant")
    return max(eligible, key=lambda m: m["date"])


def restore_inputs(warehouse: Path, manifest: dict, target: Path) -> list[Path]:
    """Recreate the raw dir of a past build from the archive (files checked by hash)."""
    store = archive_dir(warehouse)
    restored = []
    for entry in manifest["fichiers"]:
        source = store / entry["sha256"][:2] / entry["sha256"]
        if not source.is_file():
            raise OperationError(f"{source}: fichier archivé manquant ({entry['chemin']})")
        data = source.read_bytes()
        if sha256_bytes(data) != entry["sha256"]:
            raise OperationError(f"{source}: archive corrompue (empreinte différente)")
        out = target / entry["chemin"]
        if Path(entry["chemin"]).is_absolute() or ".." in Path(entry["chemin"]).parts:
            raise OperationError(
                f"{entry['chemin']}: chemin hors du dossier brut dans le manifeste"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        restored.append(out)
    return restored
