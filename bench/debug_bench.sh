#!/bin/sh
# Debug-mode overhead (issue 5): bench/mallocbench.c's allocation-heavy
# workloads (pair-64: malloc+touch+free in a hot loop; batch: 100k mixed
# objects allocated, then all freed) under, in one run:
#
#   libumem        release mode, LD_PRELOAD=libumem.so (the baseline)
#   umem-default   the same with UMEM_DEBUG=default (audit,contents,guards)
#   umem-audit     UMEM_DEBUG=audit
#   umem-guards    UMEM_DEBUG=guards
#   umem-dwarf     UMEM_DEBUG=default,unwind=dwarf (stacks from unwind
#                  tables; the workload has no frame pointers)
#   glibc          glibc's malloc, no preload
#   glibc-check    glibc with libc_malloc_debug.so.0 and MALLOC_CHECK_=3
#   asan           the workload built with -fsanitize=address (gcc)
#   valgrind       glibc's malloc under valgrind memcheck, at 1/50 of the
#                  work (valgrind is ~100x slower; per-op time regardless)
#
# REPS repetitions (default 5); within each the configurations take turns
# per workload in rotating order.  Each time is the median; each ratio is
# the median of the per-repetition ratios (as in malloc_bench.sh).  Writes
# bench/results/debug.txt (also printed), debug.svg and debug.raw.
# Goals: UMEM_DEBUG=default <= 10x release on pair-64, and ASan >= 5x
# slower than UMEM_DEBUG=default there; the table says met or MISSED.
#
# Usage: sh bench/debug_bench.sh [BUILD_DIR] [--quick]
#   QUICK=1 or --quick: one repetition of a fifth of the work (smoke run).
#   REPS=N, SCALE=F (work multiplier; valgrind gets SCALE/50), CC.
# A configuration whose tool is missing (valgrind not installed and not
# installable, no libc_malloc_debug, no ASan runtime) is "n/a".
# Exit status: non-zero if the workload cannot be built or a run fails.
set -u

. "$(dirname "$0")/common.sh"
bench_args "$@"
if [ "$quick" = 1 ]; then
	reps=${REPS:-1}; scale=${SCALE:-0.02}
else
	reps=${REPS:-5}; scale=${SCALE:-0.1}
fi
vscale=$(awk -v s="$scale" 'BEGIN { printf "%g", s / 50 }')
raw=$results/debug.raw
cc=${CC:-cc}
tmo=300

# 1. The workload, plain and with ASan.  -fno-builtin-*: the compiler
# must not delete a malloc/free pair it can see through.
flags="-std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread
    -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc
    -fno-builtin-realloc"
bin=$build/bench/mallocbench-dbg
abin=$build/bench/mallocbench-asan
$cc $flags -o "$bin" "$here/mallocbench.c" -ldl || exit 1
asan_na=""
if ! $cc $flags -fsanitize=address -fno-omit-frame-pointer -o "$abin" \
    "$here/mallocbench.c" -ldl 2>/dev/null; then
	asan_na="$cc -fsanitize=address does not build"
fi

# 2. The tools.
umem_na=""
bench_make_umem || umem_na="$umem_so does not build"
mdebug=$(dpkg -L libc6 2>/dev/null | grep '/libc_malloc_debug\.so\.0$' | \
    head -n 1)
[ -n "$mdebug" ] || mdebug=$(ls /lib/*/libc_malloc_debug.so.0 \
    /usr/lib/*/libc_malloc_debug.so.0 2>/dev/null | head -n 1)
mdebug_na=""
[ -n "$mdebug" ] || mdebug_na="libc_malloc_debug.so.0 not found"
if ! command -v valgrind >/dev/null 2>&1 && bench_can_apt; then
	echo "debug_bench: installing valgrind" >&2
	bench_apt_install valgrind
fi
vg_na=""
command -v valgrind >/dev/null 2>&1 || vg_na="valgrind is not installed"

configs="libumem umem-default umem-audit umem-guards umem-dwarf glibc
glibc-check asan valgrind"
configs=$(echo $configs)
workloads="pair-64 batch"

# Per configuration: why it cannot run (empty: it runs), and the file
# malloc must come from (a check that LD_PRELOAD took).  Not checkable
# for two: libc_malloc_debug's malloc is a non-default symbol version
# (dlsym finds libc's, while the program's references bind to it), and
# valgrind redirects libc's malloc inside its JIT.
na_of() {
	case $1 in
	libumem|umem-*) echo "$umem_na" ;;
	glibc-check) echo "$mdebug_na" ;;
	asan) echo "$asan_na" ;;
	valgrind) echo "$vg_na" ;;
	*) echo "" ;;
	esac
}
from_of() {
	case $1 in
	libumem|umem-*) echo "libumem.so" ;;
	asan) echo "libasan" ;;
	*) echo "libc.so.6" ;;
	esac
}

# Run configuration $1 on workload $2; prints the RESULT line's fields.
run_one() {
	_wl=$2
	case $1 in
	libumem) set -- env LD_PRELOAD="$umem_so" "$bin" -s "$scale" ;;
	umem-default) set -- env LD_PRELOAD="$umem_so" UMEM_DEBUG=default \
	    "$bin" -s "$scale" ;;
	umem-audit) set -- env LD_PRELOAD="$umem_so" UMEM_DEBUG=audit \
	    "$bin" -s "$scale" ;;
	umem-guards) set -- env LD_PRELOAD="$umem_so" UMEM_DEBUG=guards \
	    "$bin" -s "$scale" ;;
	umem-dwarf) set -- env LD_PRELOAD="$umem_so" \
	    UMEM_DEBUG=default,unwind=dwarf "$bin" -s "$scale" ;;
	glibc) set -- "$bin" -s "$scale" ;;
	glibc-check) set -- env LD_PRELOAD="$mdebug" MALLOC_CHECK_=3 \
	    "$bin" -s "$scale" ;;
	asan) set -- env ASAN_OPTIONS=detect_leaks=0 "$abin" -s "$scale" ;;
	valgrind) set -- valgrind -q --tool=memcheck "$bin" -s "$vscale" ;;
	esac
	timeout -k 5 $tmo env -u UMEM_DEBUG -u UMEM_LOGGING "$@" "$_wl" \
	    2>"$build/bench/debug_bench.err"
}

{
	echo "# configs $configs"
	echo "# workloads $workloads"
	for c in $configs; do
		why=$(na_of "$c")
		[ -z "$why" ] || echo "# na $c $why"
	done
	bench_meta_machine
	echo "# meta $($cc --version | head -n 1); glibc" \
	    "$(bench_glibc_version);" \
	    "$(valgrind --version 2>/dev/null || echo 'no valgrind')"
	echo "# meta reps $reps, work scale $scale (valgrind $vscale);" \
	    "load average at start: $(bench_loadavg)"
} >"$raw"

# 3. The runs.
status=0
start=$(date +%s)
rep=1
while [ $rep -le "$reps" ]; do
	echo "debug_bench: repetition $rep of $reps" >&2
	wi=0
	for w in $workloads; do
		for c in $(bench_rotate $((rep + wi)) $configs); do
			[ -z "$(na_of "$c")" ] || continue
			if out=$(run_one "$c" "$w"); then rc=0; else rc=$?; fi
			bench_result "$out"
			msg=""
			if [ $rc -ne 0 ]; then
				msg="exit status $rc: $(head -c 300 \
				    "$build/bench/debug_bench.err" | tr '\n' ' ')"
			elif [ -z "$line" ]; then
				rc=1; msg="no RESULT line"
			else
				case $(basename "$from") in
				*"$(from_of "$c")"*) ;;
				*) rc=1; msg="malloc came from $from, not $(from_of "$c")" ;;
				esac
			fi
			if [ $rc -eq 0 ]; then
				echo "config=$c rep=$rep $line" >>"$raw"
			else
				echo "# error $c $w (repetition $rep): $msg" >>"$raw"
				echo "debug_bench: FAILED: $c $w: $msg" >&2
				status=1
			fi
		done
		wi=$((wi + 1))
	done
	rep=$((rep + 1))
done
echo "# meta runs took $(( $(date +%s) - start )) s; load average at end:" \
    "$(bench_loadavg)" >>"$raw"

# 4. The table (medians; ratios to release libumem, per repetition),
# goals, figure.
awk -v svg="$results/debug.svg.tmp" '
function median(list,    a, m, i, j, t) {
	m = split(list, a, " ")
	for (i = 1; i <= m; i++)
		for (j = i + 1; j <= m; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (m == 0) return -1
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function fmt(x) {
	if (x < 0) return "n/a"
	if (x >= 100) return sprintf("%.0f", x)
	if (x >= 10) return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
/^# configs / { nc = split(substr($0, 11), cfg, " ") }
/^# workloads / { nw = split(substr($0, 13), wl, " ") }
/^# na / { na[$3] = substr($0, index($0, $4)) }
/^# meta / { meta[++nmeta] = substr($0, 8) }
/^# error / { err[++nerr] = substr($0, 9) }
/^config=/ {
	c = substr($1, 8)
	for (i = 2; i <= NF; i++) {
		if ($i ~ /^rep=/) rp = substr($i, 5) + 0
		if ($i ~ /^wl=/) w = substr($i, 4)
		if ($i ~ /^ns_per_op=/) v = substr($i, 11)
	}
	runs[c, w] = runs[c, w] " " v
	nruns[c, w]++
	byrep[c, w, rp] = v
	if (rp > maxrep) maxrep = rp
}
# Ratio c/b on workload w: the median of the per-repetition ratios (the
# two ran within seconds of each other, so a slow spell of the machine
# moves both), as in the malloc benchmark; -1 if none.
function rmed(c, b, w,    r, list) {
	list = ""
	for (r = 1; r <= maxrep; r++)
		if ((c, w, r) in byrep && (b, w, r) in byrep && \
		    byrep[b, w, r] > 0)
			list = list " " (byrep[c, w, r] / byrep[b, w, r])
	return (list == "" ? -1 : median(list))
}
END {
	label["libumem"] = "libumem release"
	label["umem-default"] = "UMEM_DEBUG=default"
	label["umem-audit"] = "UMEM_DEBUG=audit"
	label["umem-guards"] = "UMEM_DEBUG=guards"
	label["umem-dwarf"] = "default,unwind=dwarf"
	label["glibc"] = "glibc"
	label["glibc-check"] = "glibc MALLOC_CHECK_=3"
	label["asan"] = "ASan (gcc)"
	label["valgrind"] = "valgrind memcheck"
	print "debug_bench: debugging allocators on allocation-heavy loops (issue 5)"
	for (i = 1; i <= nmeta; i++) print "  " meta[i]
	print "  Each cell: median ns per operation (one malloc+free) of fresh"
	print "  processes, and the median over repetitions of its ratio to"
	print "  release libumem in the same repetition; lower is better."
	print "  pair-64: malloc(64), touch, free, in a hot loop; batch: 100k"
	print "  objects of 16..1024 bytes allocated, then all freed."
	print ""
	printf "%-24s", "configuration"
	for (j = 1; j <= nw; j++) printf " %12s %8s", wl[j] " ns", "ratio"
	printf "\n"
	for (i = 1; i <= nc; i++)
		for (j = 1; j <= nw; j++)
			med[cfg[i], wl[j]] = nruns[cfg[i], wl[j]] ? \
			    median(runs[cfg[i], wl[j]]) : -1
	for (i = 1; i <= nc; i++) {
		c = cfg[i]
		printf "%-24s", label[c]
		for (j = 1; j <= nw; j++) {
			v = med[c, wl[j]]; q = rmed(c, "libumem", wl[j])
			printf " %12s %8s", fmt(v), ((v > 0 && q > 0) ? \
			    fmt(q) "x" : "n/a")
		}
		if (c in na) printf "  (%s)", na[c]
		printf "\n"
	}
	print ""
	q = rmed("umem-default", "libumem", "pair-64")
	a = rmed("asan", "umem-default", "pair-64")
	if (q > 0)
		printf "goal: UMEM_DEBUG=default <= 10x release on pair-64: " \
		    "%.1fx, %s\n", q, (q <= 10 ? "met" : "MISSED")
	if (a > 0)
		printf "goal: ASan >= 5x slower than UMEM_DEBUG=default on " \
		    "pair-64: %.2fx, %s\n", a, (a >= 5 ? "met" : "MISSED")
	q = rmed("umem-default", "libumem", "batch")
	a = rmed("asan", "umem-default", "batch")
	if (q > 0 && a > 0)
		printf "(batch: UMEM_DEBUG=default %.1fx release; ASan %.2fx " \
		    "UMEM_DEBUG=default)\n", q, a
	for (i = 1; i <= nerr; i++) print "error: " err[i]

	# Figure: one panel per workload, a bar per configuration, log x.
	W = 820; ph = 40 + 26 * nc; H = 60 + nw * (ph + 30)
	lx = 190; rx = W - 70
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" " \
	    "height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", \
	    W, H > svg
	printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n" > svg
	printf "<text x=\"%d\" y=\"24\" font-size=\"15\">Debugging " \
	    "allocators: ns per malloc+free (log scale; lower is better)" \
	    "</text>\n", 10 > svg
	lo = 1e30; hi = 0
	for (i = 1; i <= nc; i++)
		for (j = 1; j <= nw; j++) {
			v = med[cfg[i], wl[j]]
			if (v > 0 && v < lo) lo = v
			if (v > hi) hi = v
		}
	if (hi <= 0) { lo = 1; hi = 10 }
	l0 = int(log(lo) / log(10)); if (10 ^ l0 > lo) l0--
	l1 = int(log(hi) / log(10)); if (10 ^ l1 < hi) l1++
	if (l1 <= l0) l1 = l0 + 1
	for (j = 1; j <= nw; j++) {
		y0 = 50 + (j - 1) * (ph + 30)
		printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s</text>\n", \
		    y0 + 12, wl[j] > svg
		for (e = l0; e <= l1; e++) {
			x = lx + (rx - lx) * (e - l0) / (l1 - l0)
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" " \
			    "stroke=\"#ddd\"/>\n", x, y0 + 20, x, y0 + ph > svg
			printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" " \
			    "fill=\"#666\">%s ns</text>\n", x, y0 + ph + 14, \
			    (e >= 0 ? 10 ^ e : sprintf("%g", 10 ^ e)) > svg
		}
		for (i = 1; i <= nc; i++) {
			c = cfg[i]; v = med[c, wl[j]]
			y = y0 + 20 + (i - 1) * 26
			printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s" \
			    "</text>\n", lx - 6, y + 15, label[c] > svg
			if (v <= 0) continue
			x = lx + (rx - lx) * (log(v) / log(10) - l0) / (l1 - l0)
			col = c ~ /^(libumem|umem-)/ ? "#0072B2" : "#D55E00"
			printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" " \
			    "height=\"20\" fill=\"%s\"/>\n", lx, y + 2, \
			    (x - lx > 1 ? x - lx : 1), col > svg
			printf "<text x=\"%.1f\" y=\"%d\">%s</text>\n", x + 4, \
			    y + 16, fmt(v) > svg
		}
	}
	print "</svg>" > svg
}' "$raw" >"$results/debug.txt.tmp" || exit 1
mv "$results/debug.txt.tmp" "$results/debug.txt"
mv "$results/debug.svg.tmp" "$results/debug.svg"
cat "$results/debug.txt"
echo "(table: bench/results/debug.txt, figure: bench/results/debug.svg," \
    "every run: bench/results/debug.raw)"
exit $status
