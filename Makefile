# pg_courier -- PGXS build.
#
#   make            build the extension
#   make install    install it into the PostgreSQL found by pg_config
#   make demo       set everything up and show it working (see README.md)
#   make test       every test suite on private clusters (see README.md)
#   make test-ha    Patroni failover under load (see README.md, "HA")
#   make bench      pg_courier beside a bare table, PgQ and pg-boss (see BENCHMARKS.md)
#   make installcheck        pg_regress, isolation and TAP against an installed
#                            server that preloads pg_courier (docs/testing.md)
#   make prove_installcheck  the TAP scripts only

EXTENSION = pg_courier
# Where the sources are: "." in the tree, $(VPATH) in a build directory of its
# own (Debian's pg_buildext: make -C build-15 -f $src/Makefile VPATH=$src)
SRCDIR := $(if $(VPATH),$(VPATH),.)
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(SRCDIR)/$(EXTENSION).control)

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
DATA = $(patsubst $(SRCDIR)/%,%,$(wildcard $(SRCDIR)/sql/$(EXTENSION)--*--*.sql)) \
	sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0.control
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql

PG_CPPFLAGS = -I$(srcdir)/src
# Warnings are errors; CI builds exactly this way.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql

# Tests, declared the PGXS way.  The inputs live under test/ (test/sql,
# test/specs, test/t), every expected output of pg_regress and of the
# isolation tester in the top-level expected/ (sql/ holds the install
# scripts, so the test inputs cannot).  On PostgreSQL 15, pg_regress reads
# <inputdir>/sql/NAME.sql (isolation: <inputdir>/specs/NAME.spec) and looks
# for expected/NAME.out in its output directory first, then in <inputdir>.
# So: --inputdir=test for both, and the output directory left at "." -- the
# isolation rule of pgxs.mk passes --outputdir=output_iso, which
# ISOLATION_OPTS moves back to "." (a later switch wins).  A regress test and
# an isolation spec therefore never share a name.  docs/testing.md has more.
REGRESS = $(patsubst $(SRCDIR)/test/sql/%.sql,%,$(sort $(wildcard $(SRCDIR)/test/sql/*.sql)))
REGRESS_OPTS = --inputdir=$(SRCDIR)/test --load-extension=pg_courier
ISOLATION = $(patsubst $(SRCDIR)/test/specs/%.spec,%,$(sort $(wildcard $(SRCDIR)/test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=$(SRCDIR)/test --outputdir=. --load-extension=pg_courier
TAP_TESTS = 1
PROVE_TESTS = $(SRCDIR)/test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# test/perl holds CourierTest.pm, the TAP scripts' cluster set-up
# (Makefile.global sets PG_PROVE_FLAGS, so this comes after the include).
PG_PROVE_FLAGS += -I $(srcdir)/test/perl

# PGXS runs the TAP scripts only as part of installcheck; like pgvector, a
# target of their own (PROVE_TESTS=test/t/005_wait.pl runs one).
.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql $(EXTENSION).control
	@mkdir -p sql
	cp $< $@

# A build directory of its own needs src/ for the objects, and the expected
# outputs where pg_regress looks for them (its output directory, "."): on
# PostgreSQL 15 it does not look next to --inputdir's parent.
ifneq ($(SRCDIR),.)
$(OBJS) $(OBJS:.o=.bc): | src-dir
.PHONY: src-dir vpath-expected
src-dir:
	@mkdir -p src
installcheck: vpath-expected
vpath-expected:
	@[ -e expected ] || ln -s $(abspath $(SRCDIR))/expected expected
endif

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
