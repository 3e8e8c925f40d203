#!/bin/sh
# The allocator comparison (issue 4, part 4): every workload of
# bench/mallocbench.c under glibc, jemalloc, tcmalloc, mimalloc, TBB malloc
# and libumem (LD_PRELOAD), in one run, REPS repetitions; within each
# repetition the allocators take turns per workload, in an order rotated
# from one workload and repetition to the next, so a slow spell of the
# machine is spread over all of them.  Writes bench/results/malloc.txt
# (also printed), malloc.svg and malloc.raw (every run's RESULT line).
#
# Usage: sh bench/malloc_bench.sh [BUILD_DIR] [--quick]
#   QUICK=1 or --quick: one repetition of 1/20 of the work (a smoke run
#   that checks the set-up and the allocators' correctness, < 20 s).
#   REPS=N, SCALE=F (work multiplier), IDLE_MS=N (frag's idle step),
#   CC=compiler for the two programs.
# Exit status: non-zero if a program cannot be built or any run failed
# (crash, content check, timeout, LD_PRELOAD that did not take).  An
# allocator that is not installed, or a libumem without malloc, is "n/a".
set -u

. "$(dirname "$0")/common.sh"
bench_args "$@"
# tmo: seconds before a run counts as hung (the longest healthy run
# takes about 2 s); a hung allocator is not run again in this run.
if [ "$quick" = 1 ]; then
	reps=${REPS:-1}; scale=${SCALE:-0.05}; idle=${IDLE_MS:-200}; tmo=20
else
	reps=${REPS:-5}; scale=${SCALE:-1}; idle=${IDLE_MS:-1000}; tmo=60
fi
cc=${CC:-cc}
bin=$build/bench/mallocbench
report=$build/bench/mallocreport
raw=$results/malloc.raw

# 1. The two programs.  No library objects here: mallocbench must call
# whatever malloc LD_PRELOAD provides.  -fno-builtin-*: the compiler may
# otherwise delete a malloc/free pair it can see through.
flags="-std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wpointer-arith -pthread"
$cc $flags -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc \
    -fno-builtin-realloc -o "$bin" "$here/mallocbench.c" -ldl || exit 1
$cc $flags -o "$report" "$here/mallocreport.c" -lm || exit 1

# 2. The allocators: name, Debian package, preloadable library.
allocs="glibc jemalloc tcmalloc mimalloc tbb libumem"
pkg_of() {
	case $1 in
	jemalloc) echo "libjemalloc2 libjemalloc.so.2" ;;
	tcmalloc) echo "libtcmalloc-minimal4 libtcmalloc_minimal.so.4" ;;
	mimalloc) echo "libmimalloc2.0 libmimalloc.so.2" ;;
	tbb) echo "libtbbmalloc2 libtbbmalloc_proxy.so.2" ;;
	esac
}
lib_path() {	# package, file name -> installed path, or nothing
	dpkg -L "$1" 2>/dev/null | grep "/$2\$" | head -n 1
}

missing=""
for a in jemalloc tcmalloc mimalloc tbb; do
	set -- $(pkg_of $a)
	[ -n "$(lib_path "$1" "$2")" ] || missing="$missing $1"
done
if [ -n "$missing" ]; then
	if bench_can_apt; then
		echo "malloc_bench: installing the peers:$missing" >&2
		bench_apt_install $missing
	else
		echo "malloc_bench: peers missing; install them with:" >&2
		echo "  sudo apt-get install$missing   (or: sh scripts/deps.sh)" >&2
	fi
fi

# libumem: rebuilt when its sources changed; it joins once it has malloc.
umem_na=""
bench_make_umem || umem_na="$umem_so does not build (make lib)"
if [ -z "$umem_na" ] && ! nm -D --defined-only "$umem_so" 2>/dev/null | \
    awk '$3 == "malloc" { found = 1 } END { exit !found }'; then
	umem_na="$umem_so does not export malloc yet (the malloc layer of issue 4 is not built)"
fi

# Per allocator: pre_A, what to preload; from_A, the file malloc must
# then come from; na_A, why it cannot run (empty: it runs).
for a in $allocs; do
	case $a in
	glibc) p=""; f=libc.so.6; why="" ;;
	libumem) p=$umem_so; f=libumem.so; why=$umem_na ;;
	*)	set -- $(pkg_of $a)
		p=$(lib_path "$1" "$2"); f=$2; why=""
		[ -n "$p" ] || why="package $1 is not installed" ;;
	esac
	eval "pre_$a=\$p from_$a=\$f na_$a=\$why"
done

workloads="pair-16 pair-64 pair-256 pair-1024 pair-4096 pair-16384 pair-65536
batch burst larson mixed prodcons realloc grow frag scale-1 scale-2 scale-4"
workloads=$(echo $workloads)
# The one-thread workloads run on one CPU, the same for every allocator
# of a workload in a repetition, and the next CPU for the next: the CPUs
# of a shared machine can differ for hours (2026-12-05: glibc's pair-64
# took 11.9 ns on CPU 0 and 6.0 on CPU 1, ours 6.8 and 4.0, each in six
# runs out of six), and a process that the scheduler put on either made
# the paired ratios of a repetition a coin toss (realloc's and scale-1's
# "bimodal" repetitions, under every allocator).
pinned="pair-16 pair-64 pair-256 pair-1024 pair-4096 pair-16384 pair-65536
batch burst realloc frag scale-1"
cpus=$(bench_cpus)
ncpus=$(echo $cpus | wc -w)

ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
{
	echo "# allocs $allocs"
	echo "# workloads $workloads"
	for a in $allocs; do
		eval "why=\$na_$a"
		[ -z "$why" ] || echo "# na $a $why"
	done
	bench_meta_machine
	echo "# meta glibc $(bench_glibc_version);" \
	    "jemalloc $(ver libjemalloc2); tcmalloc (gperftools)" \
	    "$(ver libtcmalloc-minimal4); mimalloc $(ver libmimalloc2.0);" \
	    "tbbmalloc $(ver libtbbmalloc2)"
	echo "# meta reps $reps, work scale $scale, frag idle $idle ms;" \
	    "load average at start: $(bench_loadavg)"
	[ "$ncpus" -lt 2 ] || echo "# meta one-thread workloads pinned," \
	    "in turn, to CPU $(echo $cpus | sed 's/ /, /g')"
} >"$raw"

# 3. The runs.
start=$(date +%s)
rep=1
while [ $rep -le "$reps" ]; do
	echo "malloc_bench: repetition $rep of $reps" >&2
	wi=0
	for w in $workloads; do
		pin=""
		case " $(echo $pinned) " in
		*" $w "*) [ "$ncpus" -lt 2 ] || pin="taskset -c $(echo $cpus |
		    cut -d' ' -f$(( (rep + wi) % ncpus + 1 )))" ;;
		esac
		# rotate the allocator order by (rep + workload index)
		for a in $(bench_rotate $((rep + wi)) $allocs); do
			eval "why=\$na_$a pre=\$pre_$a expect=\$from_$a"
			[ -z "$why" ] || continue
			err=$build/bench/mallocbench.err
			eval "hung=\${hung_$a:-}"
			if [ -n "$hung" ]; then
				echo "alloc=$a rep=$rep wl=$w rc=125" >>"$raw"
				continue
			fi
			# -k: a hung allocator may have blocked SIGTERM
			if out=$(timeout -k 5 $tmo $pin env \
			    ${pre:+LD_PRELOAD=$pre} "$bin" -s "$scale" \
			    -i "$idle" "$w" 2>"$err"); then
				rc=0
			else
				rc=$?
			fi
			bench_result "$out"
			msg=""
			if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
				msg="timed out after $tmo s or was killed (status $rc; not run again)"
				eval "hung_$a=1"
			elif [ $rc -ne 0 ]; then
				msg="exit status $rc: $(head -c 300 "$err" | tr '\n' ' ')"
			elif [ -z "$line" ]; then
				rc=1; msg="no RESULT line"
			elif [ "$(basename "$from")" != "$expect" ]; then
				rc=1
				msg="malloc came from $from, not $expect: LD_PRELOAD did not take"
			fi
			if [ $rc -eq 0 ]; then
				echo "alloc=$a rep=$rep rc=0 $line" >>"$raw"
			else
				echo "alloc=$a rep=$rep wl=$w rc=$rc" >>"$raw"
				echo "# error $a $w (repetition $rep): $msg" >>"$raw"
				echo "malloc_bench: FAILED: $a $w: $msg" >&2
			fi
		done
		wi=$((wi + 1))
	done
	rep=$((rep + 1))
done
elapsed=$(( $(date +%s) - start ))
echo "# meta runs took $elapsed s; load average at end: $(bench_loadavg)" >>"$raw"

# 4. Tables, figure, goals.
(cd "$here" && "$report" --svg results/malloc.svg "$raw") \
    >"$results/malloc.txt.tmp"
status=$?
if [ $status -ge 2 ]; then
	rm -f "$results/malloc.txt.tmp"
	exit 1
fi
mv "$results/malloc.txt.tmp" "$results/malloc.txt"
cat "$results/malloc.txt"
echo "(tables: bench/results/malloc.txt, figure: bench/results/malloc.svg," \
    "every run: bench/results/malloc.raw)"
exit $status
