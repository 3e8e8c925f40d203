# Shell helpers shared by the LD_PRELOAD benchmarks (malloc_bench.sh,
# debug_bench.sh).  Sourced, not run; a script starts with
#
#	set -u
#	. "$(dirname "$0")/common.sh"
#	bench_args "$@"
#
# Everything here is a function, and the variables it sets are named in
# its comment; names starting with _ are scratch.

# The command line, [BUILD_DIR] [--quick], and the places: sets here (this
# folder), root (the source tree), build (absolute, default build), quick
# (1 for --quick or QUICK=1), results (bench/results); makes results and
# $build/bench.
bench_args() {
	here=$(cd "$(dirname "$0")" && pwd)
	root=$(dirname "$here")
	build=build
	quick=${QUICK:-0}
	for _arg in "$@"; do
		case $_arg in
		--quick) quick=1 ;;
		-*) echo "usage: $0 [BUILD_DIR] [--quick]" >&2; exit 2 ;;
		*) build=$_arg ;;
		esac
	done
	case $build in /*) ;; *) build=$(pwd)/$build ;; esac
	results=$here/results
	mkdir -p "$results" "$build/bench"
}

# Can this shell install Debian packages (root, with apt-get)?
bench_can_apt() {
	[ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1
}

# Install the packages named, quietly; the package lists are updated once
# if the first try fails.
bench_apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends "$@" >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		    --no-install-recommends "$@" >/dev/null 2>&1
	}
}

# Build $build/lib/libumem.so if its sources changed; sets umem_so.
# Non-zero if it does not build.
bench_make_umem() {
	umem_so=$build/lib/libumem.so
	make -s -C "$root" BUILD="$build" "$umem_so" >/dev/null 2>&1
}

# The line "# meta date: ...; kernel; CPUs, model" of a .raw file.
bench_meta_machine() {
	echo "# meta date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -sr);" \
	    "$(nproc) CPUs online," \
	    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
}

# glibc's version, and the load average (1, 5, 15 minutes).
bench_glibc_version() {
	ldd --version 2>/dev/null | head -n 1 | sed 's/.* //'
}
bench_loadavg() {
	cut -d' ' -f1-3 /proc/loadavg
}

# bench_rotate K WORD...: the words, rotated left by K (modulo their
# count), so that each takes its turn first.
bench_rotate() {
	_k=$1; shift
	_k=$((_k % $#))
	_i=0 _head="" _tail=""
	for _w in "$@"; do
		if [ $_i -lt "$_k" ]; then _tail="$_tail $_w"; else _head="$_head $_w"; fi
		_i=$((_i + 1))
	done
	echo $_head $_tail
}

# The CPUs this shell may run on, one per word (taskset's list, ranges
# expanded); nothing without taskset.
bench_cpus() {
	command -v taskset >/dev/null 2>&1 || return 0
	taskset -cp $$ 2>/dev/null | sed 's/.*: *//' | tr ',' '\n' |
	    awk -F- 'NF == 1 { print $1 }
		NF == 2 { for (c = $1; c <= $2; c++) print c }' |
	    tr '\n' ' '
}

# From a run's output $1: sets line (the last RESULT line's fields) and
# from (its malloc_from=, the file malloc came from).
bench_result() {
	line=$(echo "$1" | sed -n 's/^RESULT //p' | tail -n 1)
	from=$(echo "$line" | sed -n 's/.*malloc_from=\([^ ]*\).*/\1/p')
}
