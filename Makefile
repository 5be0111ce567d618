# The two commands the README opens with: `make run` and `make test`.
.PHONY: setup test-deps lock run test lint fixtures bench

# .venv from requirements.lock alone: every distribution at its locked version and hash.
setup:
	./scripts/setup.sh

# Redis and chromium for the tests (Debian packages); the service needs neither.
test-deps:
	./scripts/test_deps.sh

# Re-resolve requirements.lock to the newest versions pyproject.toml allows, then install it.
lock:
	./scripts/lock.sh

# The service on the embedded defaults, with the offline (fixture) models: no model hub needed.
run: setup
	MMRAG_PROFILE=$${MMRAG_PROFILE:-offline} .venv/bin/mmrag serve

lint: setup
	.venv/bin/ruff check mmrag tests bench scripts
	.venv/bin/ruff format --check mmrag tests bench scripts
	.venv/bin/mypy

# The trained fixture models the tests assert real answers with: built once into the fixture
# cache (about 15 minutes on two cores the first time, nothing after), ahead of the suite so no
# single test pays for a build.
fixtures: setup
	.venv/bin/python -m mmrag.models.fixtures --build-only

test: lint test-deps fixtures
	.venv/bin/python -m pytest

# One after another (they would skew each other), each writing its JSON to bench/results/.
BENCHES = embed_throughput ingest_throughput search_latency queue_overhead tool_throughput agent_latency job_throughput slack_bot web_page region_recall region_latency tenant_filter tenant_load engine_in_flight
bench: setup
	mkdir -p bench/results
	for name in $(BENCHES); do \
		.venv/bin/python -m bench.$$name > bench/results/$$name.json || exit 1; \
	done
