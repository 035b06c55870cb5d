# The README's contract: `make run` builds the demo warehouse, marts and report; `make test`
# runs every test. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OBSERVATOIRE_RAW_DIR ?= $(CURDIR)/data/raw
export OBSERVATOIRE_WAREHOUSE ?= $(CURDIR)/data/warehouse.duckdb
export OBSERVATOIRE_MARTS_DIR ?= $(CURDIR)/data/marts
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_DISABLE_TELEMETRY := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

comma := ,
# $(call pip_install,extras): the project in editable mode with these extras, versions pinned by
# constraints.txt. Bytecode is compiled at install (uv does not by default, pip does): with
# PYTHONDONTWRITEBYTECODE set, as on CI and in containers, Python would otherwise compile
# dagster, dbt and pandas at every start (about 6 s of each command, 2 s of each dbt process).
define pip_install
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt uv 2>/dev/null \
		&& $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
			-c constraints.txt -e '.[$(1)]' \
		|| $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(1)]'
endef

.PHONY: install install-chromium install-qgis install-postgis install-system run build demo \
	report test test-scenarios \
	test-python lint ui clean bench bench-geo bench-memoire

# uv installs the pinned set in seconds (pip: about a minute on this 2-core machine); pip
# installs uv itself, and everything when uv cannot run here.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(call pip_install,dev)
	$(BIN)/python -m compileall -q -j 0 pipelines geo tools
	$(BIN)/python -c "from pipelines.duckdb_utils import ensure_spatial_installed as e; e()"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m tools.demo --raw-dir $(OBSERVATOIRE_RAW_DIR)

# Debian packages, installed when missing and the machine allows it (root with apt-get), all
# missing ones in ONE apt-get call; elsewhere what needs them is skipped with a message:
# - chromium prints the report's PDF and runs the report's browser test; pdftotext
#   (poppler-utils) numbers the PDF's table of contents;
# - python3-qgis opens the QGIS kit headless in tests/test_qgis.py (QGIS's own Python,
#   /usr/bin/python3, not the venv's);
# - postgresql-15-postgis-3: tests/test_postgis.py starts a throw-away server of its own on a
#   free local port to check `observatoire publish` (no server is left running).
CHECK_chromium := command -v chromium
CHECK_poppler-utils := command -v pdftotext
CHECK_python3-qgis := QT_QPA_PLATFORM=offscreen /usr/bin/python3 -c "import qgis.core"
CHECK_postgresql-15-postgis-3 := ls /usr/share/postgresql/*/extension/postgis.control \
	/usr/lib/postgresql/*/bin/initdb
define apt_install
	@missing=""; \
	$(foreach pkg,$(1),($(CHECK_$(pkg))) >/dev/null 2>&1 || missing="$$missing $(pkg)";) \
	if [ -z "$$missing" ]; then \
		echo "paquets Debian présents : $(1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "paquets Debian à installer :$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
			>/dev/null) || echo "installation impossible :$$missing (ce qui en a besoin est sauté)"; \
	else \
		echo "absents et non installables ici :$$missing (ce qui en a besoin est sauté)"; \
	fi
endef

install-chromium:
	$(call apt_install,chromium poppler-utils)

install-qgis:
	$(call apt_install,python3-qgis)

install-postgis:
	$(call apt_install,postgresql-15-postgis-3)

install-system:
	$(call apt_install,chromium poppler-utils python3-qgis postgresql-15-postgis-3)

# The build's last asset writes the rapport annuel of each territory into data/marts/rapport/.
run: demo install-chromium
	$(BIN)/observatoire build --raw-dir $(OBSERVATOIRE_RAW_DIR) \
		--warehouse $(OBSERVATOIRE_WAREHOUSE) --marts-dir $(OBSERVATOIRE_MARTS_DIR)

# Rapport annuel of every territory of the published warehouse (latest year of each).
report: install
	$(BIN)/observatoire report --warehouse $(OBSERVATOIRE_WAREHOUSE) \
		--marts-dir $(OBSERVATOIRE_MARTS_DIR)

# Two tiers (docs/developpement/index.md, « Tests et style »). `make test`: every layer (unit,
# asset, dbt unit tests, the one demo build and what reads it) but the long end-to-end
# scenarios, under 5 minutes here. `make test-scenarios`: the tests marked `scenario` (kill -9
# during a build, --as-of, --annee through the CLI, the real national INSEE files, a real
# PostGIS server), each a build of its own on top of their own demo build. The CI runs both.
# pytest runs in three workers (builds wait on files, locks and subprocesses: two would leave a
# core idle); its one demo build runs dbt build (every dbt data and unit test).
# The linters run beside it (they use a core while pytest's workers wait on each other), each
# one's output printed whole when it ends.
test: install install-system
	$(MAKE) --no-print-directory -j2 --output-sync=target test-python lint

test-python: install
	$(BIN)/python -m pytest -q --durations=15 -m "not scenario"

test-scenarios: install install-system
	$(BIN)/python -m pytest -q --durations=10 -m scenario

lint: install
	$(BIN)/ruff check pipelines geo tests tools
	$(BIN)/ruff format --check pipelines geo tests tools
	mkdir -p .ci_build
	cd dbt_project && OBSERVATOIRE_WAREHOUSE=$(CURDIR)/.ci_build/warehouse.duckdb \
		../$(BIN)/sqlfluff lint models --processes 1

# National build benchmark (tools/bench/): synthetic national input (real contours of
# ../shared/data when present), full build, no-change rebuild, one added year (--annee) and the
# plain DuckDB baseline, in one run; writes data/bench/results.json. ECHELLE=1 is the national
# volume (about 8 min and 4 GiB on 2 cores); `make bench ECHELLE=0.02` for a quick check.
ECHELLE ?= 1
bench: install
	$(BIN)/python -m tools.bench --echelle $(ECHELLE) --dossier $(CURDIR)/data/bench

# Point-in-QPV benchmark on the 1,584 real QPV (needs ../shared/data): prints time, points/s and
# peak memory of the project's path, a geopandas.sjoin baseline and the floor.
bench-geo: install
	$(BIN)/python -m tools.bench_geo

# Memory of each reader against the size of its file (tools/bench_memoire.py): prints JSON
# (size, peak RSS increase, ratio, within the bound of docs/donnees-brutes.md). TAILLE_MO=50 by
# default; `make bench-memoire TAILLE_MO=5` for a quick check.
TAILLE_MO ?= 50
bench-memoire: install
	$(BIN)/python -m tools.bench_memoire --taille-mo $(TAILLE_MO)

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -m pipelines.definitions

clean:
	rm -rf .ci_build data/warehouse.duckdb data/marts dbt_project/target dbt_project/target_test \
		test-artifacts

# ==============================================================================================
# Documentation: `make docs` writes site/, a static site that opens from disk (site/index.html):
# the manual (docs/, mkdocs-material, offline search) and the mémento des indicateurs (dbt docs
# of the model YAMLs, site/memento/index.html). The dbt catalog (column types, row counts) is
# read from a copy of the published warehouse when there is one, else left empty
# (--empty-catalog); dbt works in a temporary folder and never opens the published file.
# ==============================================================================================
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(call pip_install,dev$(comma)docs)
	touch $(DOCS_STAMP)

.PHONY: docs
docs: $(DOCS_STAMP)
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	if [ -f "$(OBSERVATOIRE_WAREHOUSE)" ]; then \
		echo "mémento : catalogue lu sur une copie de $(OBSERVATOIRE_WAREHOUSE)"; \
		cp "$(OBSERVATOIRE_WAREHOUSE)" "$$tmp/warehouse.duckdb"; catalogue=""; \
	else \
		echo "mémento : pas d'entrepôt publié ($(OBSERVATOIRE_WAREHOUSE)), catalogue vide"; \
		catalogue="--empty-catalog"; \
	fi; \
	(cd dbt_project && OBSERVATOIRE_WAREHOUSE="$$tmp/warehouse.duckdb" \
		$(abspath $(BIN))/dbt --quiet docs generate --static $$catalogue --profiles-dir . \
		--target-path "$$tmp/target" --log-path "$$tmp/logs"); \
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site; \
	mkdir -p site/memento; \
	cp "$$tmp/target/static_index.html" site/memento/index.html; \
	echo "site écrit : $(CURDIR)/site/index.html (mémento : site/memento/index.html)"
