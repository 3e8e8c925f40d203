#!/bin/sh
# Run each test binary given, print its output, and close with the total
# "N passed, N failed" line.  "--preload LIB" runs the binaries after it
# with LD_PRELOAD=LIB; "--preload none" ends that.  "--env NAME=VALUE"
# adds that variable to the preloaded runs after it ("--env none" ends
# it).  Exits non-zero if any test failed or any binary crashed or printed
# no summary.
passed=0; failed=0; broken=0
preload=""; extra=""; want=""
for t in "$@"; do
	# "--preload LIB": run the binaries after it with LD_PRELOAD=LIB
	# (only the binary, not this shell); "--preload none" stops.
	if [ "$t" = "--preload" ] || [ "$t" = "--env" ]; then
		want=$t; continue
	fi
	if [ "$want" = --preload ]; then
		preload=$t; [ "$preload" = none ] && preload=""
		want=""; continue
	fi
	if [ "$want" = --env ]; then
		extra=$t; [ "$extra" = none ] && extra=""
		want=""; continue
	fi
	if [ -n "$preload" ]; then
		echo "== $t (LD_PRELOAD=$preload${extra:+ $extra})"
		out=$(env LD_PRELOAD="$preload" $extra "$t" 2>&1); rc=$?
	else
		out=$("$t" 2>&1); rc=$?
	fi
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -z "$line" ]; then
		echo "BROKEN: $t exited $rc without a summary"; broken=$((broken + 1)); continue
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
	f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "BROKEN: $t exited $rc"; broken=$((broken + 1))
	fi
done
failed=$((failed + broken))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
