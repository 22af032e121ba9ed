# PostgreSQL for MLflow's backend store in the integration tests (included by the Makefile).
# Debian's postgresql, installed and started on 127.0.0.1:5432 by scripts/postgres.sh.
.PHONY: postgres postgres-stop

POSTGRES_URL ?= postgresql://churnops:churnops@127.0.0.1:5432/test
# `make test` runs MLflow on PostgreSQL, as the chart does; unset it for SQLite.
export CHURNOPS_TEST_POSTGRES_URL ?= $(POSTGRES_URL)
TEST_DEPS += postgres

postgres: ## install (Debian) and start PostgreSQL on 127.0.0.1:5432 with the tests' role + db (idempotent)
	@bash scripts/postgres.sh >/dev/null

postgres-stop: ## stop the PostgreSQL cluster
	@bash scripts/postgres.sh --stop
