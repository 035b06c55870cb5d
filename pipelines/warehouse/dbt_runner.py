"""``observatoire-dbt``: dbt's command line, with its parse kept from one build to the next.

Every build gives dbt a profile pointed at its own staging warehouse. dbt keys its partial
parsing on a hash of the profile's connection values, the warehouse path included, so each build
re-parsed the whole project (about 9 s here, for a parse result that does not depend on the path:
no model reads ``target.path``). This entry point computes that hash without the path. The
database name (the file's stem), which the parsed nodes do carry, stays in it; so do dbt's
version, the project's files and every other check of dbt's own.

dbt is pinned (``>=1.11,<1.12``); ``tests/test_dbt_tests.py`` checks that a second parse with
another path is partial, so an upgrade that moves this hook fails a test, not a build.
"""

from __future__ import annotations

import pprint
import sys


def _state_check_without_path(original):
    from dbt.artifacts.resources import FileHash

    def build_manifest_state_check(self):
        state = original(self)
        keys = sorted(
            (key, value)
            for key, value in self.root_project.credentials.connection_info()
            if key != "path"
        )
        state.profile_hash = FileHash.from_contents(pprint.pformat(keys))
        return state

    return build_manifest_state_check


def main() -> None:
    from dbt.parser.manifest import ManifestLoader

    ManifestLoader.build_manifest_state_check = _state_check_without_path(
        ManifestLoader.build_manifest_state_check
    )
    from dbt.cli.main import cli

    sys.argv[0] = "dbt"
    sys.exit(cli())


if __name__ == "__main__":
    main()
