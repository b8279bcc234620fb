# pg_courier -- PGXS build.
#
#   make            build the extension
#   make install    install it into the PostgreSQL found by pg_config
#   make demo       set everything up and show it working (see README.md)
#   make test       every test suite on private clusters (see README.md)
#   make test-ha    Patroni failover under load (see README.md, "HA")
#   make bench      pg_courier beside a bare table, PgQ and pg-boss (see BENCHMARKS.md)

EXTENSION = pg_courier
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = pg_courier
OBJS = \
	src/pg_courier.o \
	src/guc.o \
	src/shmem.o \
	src/xact.o \
	src/catalog.o \
	src/admin.o \
	src/heap.o \
	src/segment.o \
	src/send.o \
	src/walk.o \
	src/lease.o \
	src/receive.o \
	src/ack.o \
	src/filter.o \
	src/match.o \
	src/wait.o \
	src/maint.o \
	src/worker.o \
	src/guard.o \
	src/acl.o \
	src/ops.o \
	src/citus.o

# install script of this version (built from sql/pg_courier.sql), upgrade
# scripts (one per release hop, never edited once released), and the frozen
# install scripts of earlier releases (so that a test can walk the chain)
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql) \
	sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0.control
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql

PG_CPPFLAGS = -I$(srcdir)/src
# Warnings are errors; CI builds exactly this way.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql $(EXTENSION).control
	cp $< $@

# PGXS tracks header dependencies only in servers built with --enable-depend:
# every object depends on the shared headers, or a changed struct layout
# leaves stale objects behind.
$(OBJS): src/pg_courier.h src/filter.h

.PHONY: test test-ha demo demo-stop checkver bench

# Everything: dependencies, build, install, every suite; ends with "N passed, N failed".
test:
	@bash test/run.sh

# High availability on Patroni: etcd and three nodes on 127.0.0.1 (ports
# 56700-56721), the chaos load through two leader crashes (a few minutes).
test-ha:
	@SUITES=ha bash test/run.sh
# The benchmarks (issue 11): about 45 minutes on 2 cores; BENCH_MODE=smoke for a quick pass.
bench:
	@bash bench/run.sh $(BENCH_MODE)

# Set up a throwaway cluster in .demo/ (port 5433) and take a tour.
demo:
	@bash scripts/demo.sh

demo-stop:
	@bash scripts/demo.sh stop

# The control file's version must have an install script.
checkver:
	@test -f sql/$(EXTENSION).sql || { echo "missing sql/$(EXTENSION).sql"; exit 1; }
	@echo "version $(EXTVERSION)"
