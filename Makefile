# keyward: everyday commands. Recipes are plain cargo; see README.md.

CARGO ?= cargo

# PostgreSQL that the test suite uses (the suite reads KEYWARD_TEST_PG_URL itself).
TEST_PG_URL := $(or $(KEYWARD_TEST_PG_URL),postgres://postgres@127.0.0.1:5432)

.PHONY: run test schemathesis bench bench-scale check-postgres fmt lint build clean

## run: serve on 127.0.0.1:8080 with SQLite at ./keyward.db (created and migrated on first start)
run:
	KEYWARD_LOG_FORMAT="$${KEYWARD_LOG_FORMAT:-pretty}" $(CARGO) run --release -- serve

## test: the whole suite, every integration test on SQLite and on PostgreSQL, then schemathesis
test: check-postgres
	$(CARGO) test --all-targets -- --test-threads=4
	$(MAKE) --no-print-directory schemathesis

## schemathesis: openapi.yaml against a running keyward (fresh SQLite), bounded in time (.ci/schemathesis.sh)
schemathesis:
	CARGO="$(CARGO)" bash .ci/schemathesis.sh

## bench: load keyward against a bare actix-web ceiling (wrk, pinned CPUs), SQLite and PostgreSQL; see bench/bench.py
bench:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(CARGO) build --release --bin keyward --example hello --example new_key --example seed_log --example verify_run
	python3 bench/bench.py

## bench-scale: the audit log's queries and bytes per event on a 10,000,000-event chain, SQLite and PostgreSQL; see bench/scale.py
bench-scale: check-postgres
	$(CARGO) build --release --bin keyward --example seed_scale
	python3 bench/scale.py

check-postgres:
	@if ! command -v pg_isready >/dev/null 2>&1; then \
		echo "note: pg_isready not found; not checking PostgreSQL at $(TEST_PG_URL) before the suite"; \
	elif ! pg_isready -q -d "$(TEST_PG_URL)"; then \
		echo "error: PostgreSQL does not answer at $(TEST_PG_URL); the PostgreSQL half of the suite cannot run." >&2; \
		echo "       Start it with one of:" >&2; \
		echo "         .ci/run        (starts the local cluster, then runs make test)" >&2; \
		echo "         sudo pg_ctlcluster --skip-systemctl-redirect \$$(ls /etc/postgresql) main start" >&2; \
		echo "         docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16" >&2; \
		echo "       or point KEYWARD_TEST_PG_URL at a server where the user may create databases." >&2; \
		exit 1; \
	fi

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --all-targets -- -D warnings

build:
	$(CARGO) build --release

clean:
	$(CARGO) clean
