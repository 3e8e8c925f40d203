#!/bin/sh
# What `make bench` runs: sh bench/run.sh BUILD_DIR
#
# Each benchmark is one function below that writes its table (and plot) into
# bench/results/ and returns non-zero on failure (set -e does not reach
# inside a function called from `if`); add new ones to BENCHES.  The tables
# are also printed.
# Usage: sh bench/run.sh [build-dir] [bench ...]   (default: all of them)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
results=$here/results
mkdir -p "$results"

BENCHES="vmem umem malloc debug"

# vmem latency vs fragmentation, next-fit ID rate (issue 2).
bench_vmem() {
	# From bench/, so the table names the plot by a relative path.
	if ! (cd "$here" && "$build/bench/vmem_bench" \
	    --svg results/vmem.svg) >"$results/vmem.txt.tmp"; then
		rm -f "$results/vmem.txt.tmp"
		return 1
	fi
	mv "$results/vmem.txt.tmp" "$results/vmem.txt" || return 1
	cat "$results/vmem.txt"
}

# Object caches and magazines, the paper's replications (issue 3).
bench_umem() {
	if ! "$build/bench/umem_bench" --svg "$results/umem.svg" \
	    >"$results/umem.txt.tmp"; then
		rm -f "$results/umem.txt.tmp"
		return 1
	fi
	mv "$results/umem.txt.tmp" "$results/umem.txt" || return 1
	cat "$results/umem.txt"
}

# libumem's malloc against glibc, jemalloc, tcmalloc, mimalloc and TBB
# under LD_PRELOAD (issue 4): writes results/malloc.{txt,svg,raw}.
# QUICK=1 makes it a smoke run.
bench_malloc() {
	sh "$here/malloc_bench.sh" "$build"
}

# Debug-mode overhead (issue 5): libumem release vs UMEM_DEBUG=default,
# audit, guards vs glibc, glibc MALLOC_CHECK_=3, ASan and valgrind on
# mallocbench's pair-64 and batch: writes results/debug.{txt,svg,raw}.
# QUICK=1 makes it a smoke run.
bench_debug() {
	sh "$here/debug_bench.sh" "$build"
}

status=0
for b in ${*:-$BENCHES}; do
	echo "== $b"
	if ! "bench_$b"; then
		echo "bench/run.sh: $b failed" >&2
		status=1
	fi
	echo
done
exit $status
