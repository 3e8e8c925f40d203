#!/bin/sh
# Real programs under LD_PRELOAD, checked against the same programs without
# it (glibc's malloc; redis-server's own jemalloc).
#
#	sh tests/real/run.sh /path/to/liballoc.so	(or "none": no preload)
#
# (a) python3 runs some of its own regression tests with PYTHONMALLOC=malloc,
#     so that every object goes through malloc rather than pymalloc; each
#     test must end as it does without the preload.
# (b) sqlite3 builds a database from a generated script (100k rows, indexes,
#     joins, aggregates, window functions, group_concat, updates, VACUUM);
#     each query's output must be byte-for-byte the one without the preload.
# (c) redis-server on 127.0.0.1 (port 6399 or the next free one), driven by
#     redis-benchmark, then a scripted redis-cli session whose replies must
#     match the run without the preload; the server must stay up, keep sane
#     memory accounting and shut down cleanly.
# (d) perl, git and xz (two threads) on generated inputs: the same output
#     as without the preload.
#
# With "none", both runs are without a preload, which checks that the
# comparisons are deterministic.  Missing programs are installed from Debian
# when run as root, else that part is skipped.  Ends with one line
# "real: N passed, N failed"; exits non-zero if anything failed.

LC_ALL=C
export LC_ALL

if [ $# -ne 1 ]; then
	echo "usage: sh $0 /path/to/lib.so | none" >&2
	exit 2
fi
if [ "$1" = none ]; then
	LIB=
	LIBNAME=none
else
	if [ ! -f "$1" ]; then
		echo "real: no such library: $1" >&2
		exit 2
	fi
	LIB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
	LIBNAME=$LIB
fi

passed=0
failed=0
skipped=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/umem-real.XXXXXX")
REDIS_PID=

cleanup() {
	if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
		kill "$REDIS_PID" 2>/dev/null
		sleep 1
		kill -9 "$REDIS_PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() {
	passed=$((passed + 1))
	echo "  ok   $*"
}

bad() {
	failed=$((failed + 1))
	echo "  FAIL $*"
}

skip() {
	skipped=$((skipped + 1))
	echo "  skip $*"
}

# Run "$@" under the preload being tested (run 2), or without (run 1).
# The preload is set only for the program, not for this shell.
under() {
	if [ "$1" = base ] || [ -z "$LIB" ]; then
		shift
		"$@"
	else
		shift
		LD_PRELOAD=$LIB "$@"
	fi
}

# Install Debian packages when root; returns non-zero if that is not possible.
apt_install() {
	[ "$(id -u)" -eq 0 ] || return 1
	command -v apt-get >/dev/null 2>&1 || return 1
	echo "  real: installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 && return 0
	apt-get update -qq >>"$WORK/apt.log" 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1 && return 0
	tail -n 5 "$WORK/apt.log"
	return 1
}

echo "real: preload $LIBNAME"
T0=$(date +%s)

# ---------------------------------------------------------------------------
# (a) python3's own regression tests
PY=
if [ ! -x /usr/bin/python3 ] && ! command -v python3 >/dev/null 2>&1; then
	apt_install python3 || true
fi
if [ -x /usr/bin/python3 ]; then
	PY=/usr/bin/python3	# Debian's, for which the test package exists
elif command -v python3 >/dev/null 2>&1; then
	PY=$(command -v python3)
fi
PYTESTS="test_list test_dict test_set test_unicode test_bytes test_re
test_json test_collections test_heapq test_bisect test_itertools
test_functools test_deque test_array test_struct test_sort test_gc
test_marshal test_memoryview test_string test_decimal test_hashlib
test_zlib test_mmap test_thread test_threading_local test_fork1"

py_have_tests() {
	"$PY" -c 'import test.libregrtest, test.test_list, test.test_fork1' \
	    >/dev/null 2>&1
}

# The first word of each test's outcome ("passed", "failed", "crashed", ...)
py_outcomes() {
	sed -n 's/.*\] \(test_[A-Za-z0-9_]*\) \([a-z][a-z]*\).*/\1 \2/p' "$1" |
	    sort -u
}

echo "real: python3"
if [ -n "$PY" ] && ! py_have_tests; then
	v=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	apt_install "libpython$v-testsuite" || true
fi
if [ -z "$PY" ] || ! py_have_tests; then
	skip "python3: no python3 with its test package"
else
	mkdir -p "$WORK/py"
	for run in base pre; do
		t=$(date +%s)
		# shellcheck disable=SC2086
		(cd "$WORK/py" && export PYTHONMALLOC=malloc \
		    PYTHONHASHSEED=0 && under $run timeout -k 10 600 "$PY" \
		    -m test -j0 --timeout 300 $PYTESTS >"$WORK/py.$run.out" 2>&1)
		echo $? >"$WORK/py.$run.rc"
		py_outcomes "$WORK/py.$run.out" >"$WORK/py.$run.res"
		echo "  python3 ($run): exit $(cat "$WORK/py.$run.rc"), $(($(date +%s) - t))s"
	done
	for tn in $PYTESTS; do
		b=$(sed -n "s/^$tn //p" "$WORK/py.base.res")
		p=$(sed -n "s/^$tn //p" "$WORK/py.pre.res")
		[ -n "$b" ] || b=missing
		[ -n "$p" ] || p=missing
		if [ "$p" = "$b" ]; then
			if [ "$b" = passed ]; then
				ok "python3 $tn"
			else
				ok "python3 $tn: $p (the same without the preload)"
			fi
		else
			bad "python3 $tn: $p with the preload, $b without"
		fi
	done
	if [ "$(cat "$WORK/py.pre.rc")" = "$(cat "$WORK/py.base.rc")" ]; then
		ok "python3 exit status $(cat "$WORK/py.pre.rc")"
	else
		bad "python3 exit status $(cat "$WORK/py.pre.rc"), $(cat "$WORK/py.base.rc") without the preload"
		tail -n 30 "$WORK/py.pre.out"
	fi
	# Debugging on a correct program: same outcomes, not one report.
	# (test_re once met a frame pointer that overflowed the stack walk.)
	if [ -n "$LIB" ]; then
		DBGTESTS="test_re test_json test_unicode test_bytes test_dict"
		# shellcheck disable=SC2086
		(cd "$WORK/py" && export PYTHONMALLOC=malloc \
		    PYTHONHASHSEED=0 UMEM_DEBUG=default,firewall=4096 && \
		    under dbg timeout -k 10 600 "$PY" -m test -j0 --timeout 300 \
		    $DBGTESTS >"$WORK/py.dbg.out" 2>&1)
		py_outcomes "$WORK/py.dbg.out" >"$WORK/py.dbg.res"
		for tn in $DBGTESTS; do
			b=$(sed -n "s/^$tn //p" "$WORK/py.base.res")
			d=$(sed -n "s/^$tn //p" "$WORK/py.dbg.res")
			[ -n "$b" ] || b="not in the base run"
			[ -n "$d" ] || d=missing
			if [ "$d" = "$b" ] || { [ "$b" = "not in the base run" ] &&
			    [ "$d" = passed ]; }; then
				ok "python3 $tn under UMEM_DEBUG=default,firewall"
			else
				bad "python3 $tn under UMEM_DEBUG: $d, $b without"
			fi
		done
		if grep -q "umem allocator:" "$WORK/py.dbg.out"; then
			bad "python3 under UMEM_DEBUG: a debug report"
			grep -A 12 "umem allocator:" "$WORK/py.dbg.out" | head -n 40
		else
			ok "python3 under UMEM_DEBUG: no debug report"
		fi
	fi
fi

# ---------------------------------------------------------------------------
# (b) sqlite3 on a generated database
gen_sql() {
	awk -v seed=4242 '
	function rnd(n) { return int(rand() * n) }
	function word(n,   s, i) {
		s = ""
		for (i = 0; i < n; i++)
			s = s substr(letters, 1 + rnd(26), 1)
		return s
	}
	BEGIN {
		srand(seed)
		letters = "abcdefghijklmnopqrstuvwxyz"
		ncity = split("Oslo Lima Pune Kyiv Doha Riga Baku Nice Bern Cork Graz Perth", city, " ")
		print "PRAGMA cache_size = -32000;"
		print "PRAGMA synchronous = OFF;"
		print "CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, born INTEGER);"
		print "CREATE TABLE product(id INTEGER PRIMARY KEY, title TEXT, price INTEGER);"
		print "CREATE TABLE orders(id INTEGER PRIMARY KEY, cust INTEGER, prod INTEGER, qty INTEGER, day INTEGER, note TEXT);"
		print "BEGIN;"
		for (i = 1; i <= 10000; i++)
			printf "INSERT INTO customer VALUES(%d,'\''%s %s'\'','\''%s'\'',%d);\n", i, word(3 + rnd(8)), word(4 + rnd(10)), city[1 + rnd(ncity)], 1930 + rnd(80)
		for (i = 1; i <= 2000; i++)
			printf "INSERT INTO product VALUES(%d,'\''%s'\'',%d);\n", i, word(5 + rnd(30)), 100 + rnd(100000)
		for (i = 1; i <= 100000; i++)
			printf "INSERT INTO orders VALUES(%d,%d,%d,%d,%d,'\''%s'\'');\n", i, 1 + rnd(10000), 1 + rnd(2000), 1 + rnd(100), rnd(3650), word(rnd(rnd(10) == 0 ? 2000 : 120))
		print "COMMIT;"
	}'
	cat <<'EOF'
CREATE INDEX orders_cust ON orders(cust);
CREATE INDEX orders_prod_day ON orders(prod, day);
CREATE INDEX customer_city ON customer(city, name);
.print -- Q counts
SELECT (SELECT count(*) FROM customer), (SELECT count(*) FROM product), count(*), sum(qty), sum(length(note)) FROM orders;
.print -- Q city revenue (3-way join)
SELECT c.city, count(*), sum(o.qty * p.price), min(o.day), max(o.day)
  FROM orders o JOIN customer c ON c.id = o.cust JOIN product p ON p.id = o.prod
  GROUP BY c.city ORDER BY c.city;
.print -- Q top customers
SELECT c.id, c.name, sum(o.qty * p.price) AS total, count(*)
  FROM orders o JOIN customer c ON c.id = o.cust JOIN product p ON p.id = o.prod
  GROUP BY c.id ORDER BY total DESC, c.id LIMIT 25;
.print -- Q products never ordered on day 0..99 (anti-join)
SELECT count(*) FROM product p
  WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.prod = p.id AND o.day < 100);
.print -- Q moving sum (window)
SELECT day, s, sum(s) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
       rank() OVER (ORDER BY s DESC, day)
  FROM (SELECT day, sum(qty) AS s FROM orders GROUP BY day) ORDER BY day LIMIT 60;
.print -- Q group_concat growth
SELECT prod, count(*), length(group_concat(note, '|')), substr(group_concat(note, '|'), 1, 40)
  FROM (SELECT prod, note FROM orders ORDER BY id) GROUP BY prod ORDER BY prod LIMIT 80;
SELECT length(group_concat(name, ',')) FROM (SELECT name FROM customer ORDER BY id);
.print -- Q json
SELECT json_group_array(json_object('id', id, 'title', title, 'price', price))
  FROM (SELECT * FROM product WHERE id % 97 = 0 ORDER BY id);
.print -- Q recursive CTE
WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 200000)
SELECT count(*), sum(x), sum(x * x % 1009) FROM cnt;
.print -- Q big sort
SELECT id, substr(note, 1, 30), length(note) FROM orders ORDER BY note, id LIMIT 10 OFFSET 50000;
SELECT count(DISTINCT note), count(DISTINCT cust * 10000 + prod) FROM orders;
.print -- Q string functions
SELECT city, upper(substr(name, 1, 4)), replace(name, 'a', 'AAA'), printf('%08d|%-10s|', born, city)
  FROM customer WHERE id % 500 = 0 ORDER BY id;
.print -- Q update and delete
BEGIN;
UPDATE orders SET note = note || upper(substr(note, 1, 50)) || note WHERE id % 7 = 0;
DELETE FROM orders WHERE qty > 95;
INSERT INTO orders(cust, prod, qty, day, note)
  SELECT cust, prod, qty + 1, day + 1, note || 'x' FROM orders WHERE id % 11 = 0;
COMMIT;
SELECT count(*), sum(qty), sum(length(note)), max(id) FROM orders;
.print -- Q vacuum and integrity
VACUUM;
PRAGMA integrity_check;
SELECT count(*), sum(length(note)) FROM orders;
EOF
}

echo "real: sqlite3"
if ! command -v sqlite3 >/dev/null 2>&1; then
	apt_install sqlite3 || true
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
	skip "sqlite3: not installed"
else
	t=$(date +%s)
	gen_sql >"$WORK/db.sql"
	for run in base pre; do
		rm -f "$WORK/$run.db"
		under $run timeout -k 10 300 sqlite3 -bail "$WORK/$run.db" \
		    <"$WORK/db.sql" >"$WORK/sql.$run.out" 2>"$WORK/sql.$run.err"
		echo $? >"$WORK/sql.$run.rc"
		# one file per query section
		mkdir -p "$WORK/sql.$run"
		awk -v d="$WORK/sql.$run" '
		    /^-- Q / { n++; f = sprintf("%s/%02d", d, n); print > f; next }
		    { if (f == "") f = d "/00"; print > f }' "$WORK/sql.$run.out"
	done
	echo "  sqlite3: $(wc -l <"$WORK/db.sql") lines of SQL, $(($(date +%s) - t))s"
	if [ "$(cat "$WORK/sql.pre.rc")" = 0 ] && [ ! -s "$WORK/sql.pre.err" ]; then
		ok "sqlite3 ran the script"
	else
		bad "sqlite3 exit $(cat "$WORK/sql.pre.rc"): $(head -c 300 "$WORK/sql.pre.err")"
	fi
	nsec=0
	for f in "$WORK"/sql.base/*; do
		[ -f "$f" ] || continue
		nsec=$((nsec + 1))
		s=$(basename "$f")
		title=$(head -n 1 "$f")
		if cmp -s "$f" "$WORK/sql.pre/$s"; then
			ok "sqlite3 ${title#-- Q }"
		else
			bad "sqlite3 ${title#-- Q }: output differs"
			diff "$f" "$WORK/sql.pre/$s" 2>&1 | head -n 6 | cut -c1-200
		fi
	done
	# the comparison means something only if the glibc run was whole
	if [ "$nsec" -ge 12 ] && grep -qx ok "$WORK/sql.base.out" &&
	    grep -q '^10000|2000|100000|' "$WORK/sql.base.out"; then
		ok "sqlite3 reference run complete ($nsec sections, integrity ok)"
	else
		bad "sqlite3 reference run incomplete ($nsec sections)"
	fi
fi

# ---------------------------------------------------------------------------
# (c) redis-server driven by redis-benchmark and redis-cli, on loopback
gen_redis_cmds() {
	awk 'BEGIN {
		srand(77)
		print "FLUSHALL"
		for (i = 1; i <= 400; i++) {
			v = ""
			n = 1 + int(rand() * (i % 50 == 0 ? 300 : 30))
			for (j = 0; j < n; j++)
				v = v sprintf("%c", 97 + int(rand() * 26))
			printf "SET key:%d %s-%d\n", i, v, i
		}
		for (i = 1; i <= 400; i += 7)
			printf "GET key:%d\n", i
		for (i = 1; i <= 300; i++) {
			v = ""
			for (j = 0; j < 10; j++)
				v = v sprintf("%09d%c", i * 10 + j, 65 + (i + j) % 26)
			printf "APPEND big %s%s%s%s%s\n", v, v, v, v, v
		}
		print "STRLEN big"
		print "GETRANGE big 0 40"
		print "GETRANGE big 100000 100040"
		for (i = 1; i <= 1000; i++)
			printf "RPUSH list item-%d\n", i
		print "LLEN list"
		print "LRANGE list 0 4"
		print "LRANGE list 995 1000"
		for (i = 1; i <= 500; i++)
			printf "LPOP list\n"
		print "LLEN list"
		for (i = 1; i <= 1000; i++)
			printf "HSET hash field-%d value-%d\n", i, i * i
		print "HLEN hash"
		print "HGET hash field-777"
		for (i = 1; i <= 1000; i++)
			printf "ZADD zset %d member-%d\n", (i * 7919) % 1000, i
		print "ZCARD zset"
		print "ZRANGE zset 0 5 WITHSCORES"
		for (i = 1; i <= 1000; i++)
			printf "SADD set s-%d\n", i % 700
		print "SCARD set"
		for (i = 1; i <= 400; i += 2)
			printf "DEL key:%d\n", i
		print "DBSIZE"
		print "PING"
	}'
}

redis_start() {
	port=$1
	log=$2
	# started directly (not through under()) so that $! is the server
	if [ "$3" = base ] || [ -z "$LIB" ]; then
		redis-server --port "$port" --bind 127.0.0.1 \
		    --protected-mode yes --save "" --appendonly no \
		    --daemonize no --dir "$WORK" --logfile "$log" &
	else
		LD_PRELOAD=$LIB redis-server --port "$port" --bind 127.0.0.1 \
		    --protected-mode yes --save "" --appendonly no \
		    --daemonize no --dir "$WORK" --logfile "$log" &
	fi
	REDIS_PID=$!
	i=0
	while [ $i -lt 100 ]; do
		if ! kill -0 "$REDIS_PID" 2>/dev/null; then
			wait "$REDIS_PID" 2>/dev/null
			REDIS_PID=
			return 1
		fi
		if [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$port" PING \
		    2>/dev/null)" = PONG ]; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Stop the server; its exit status, or 124 if it would not stop.
redis_stop() {
	port=$1
	kill -0 "$REDIS_PID" 2>/dev/null &&
	    timeout -k 5 20 redis-cli -h 127.0.0.1 -p "$port" SHUTDOWN NOSAVE \
	    >/dev/null 2>&1
	i=0
	while [ $i -lt 100 ] && kill -0 "$REDIS_PID" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$REDIS_PID" 2>/dev/null; then
		kill -9 "$REDIS_PID"
		wait "$REDIS_PID" 2>/dev/null
		REDIS_PID=
		return 124
	fi
	wait "$REDIS_PID"
	rc=$?
	REDIS_PID=
	return $rc
}

echo "real: redis"
if ! command -v redis-server >/dev/null 2>&1; then
	apt_install redis-server redis-tools || true
elif ! command -v redis-benchmark >/dev/null 2>&1 ||
    ! command -v redis-cli >/dev/null 2>&1; then
	apt_install redis-tools || true
fi
if ! command -v redis-server >/dev/null 2>&1 ||
    ! command -v redis-benchmark >/dev/null 2>&1 ||
    ! command -v redis-cli >/dev/null 2>&1; then
	skip "redis: redis-server/redis-tools not installed"
else
	gen_redis_cmds >"$WORK/redis.cmds"
	BENCH_TESTS=set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset
	for run in base pre; do
		t=$(date +%s)
		port=
		for p in 6399 6401 6403 6405 6407 6409 6411 6413; do
			# a port something else answers on is taken
			if timeout 5 redis-cli -h 127.0.0.1 -p "$p" PING \
			    >/dev/null 2>&1; then
				continue
			fi
			if redis_start "$p" "$WORK/redis.$run.log" "$run"; then
				port=$p
				break
			fi
			grep -q "in use" "$WORK/redis.$run.log" 2>/dev/null ||
			    break
		done
		if [ -z "$port" ]; then
			bad "redis ($run): server did not start"
			tail -n 20 "$WORK/redis.$run.log" 2>/dev/null
			continue
		fi
		: >"$WORK/bench2.$run.out"
		: >"$WORK/ping.$run.out"
		: >"$WORK/cli.$run.out"
		: >"$WORK/mem.$run.out"
		under $run timeout -k 5 120 redis-benchmark -h 127.0.0.1 \
		    -p "$port" -n 20000 -q -t "$BENCH_TESTS" \
		    >"$WORK/bench1.$run.out" 2>&1
		echo $? >"$WORK/bench.$run.rc"
		# (clients retry a dead server for long: stop at the first death)
		if kill -0 "$REDIS_PID" 2>/dev/null; then
			# bigger values over many keys
			under $run timeout -k 5 60 redis-benchmark \
			    -h 127.0.0.1 -p "$port" -n 20000 -q -d 2000 \
			    -r 50000 -t set,get >"$WORK/bench2.$run.out" 2>&1
			echo $? >>"$WORK/bench.$run.rc"
		fi
		if kill -0 "$REDIS_PID" 2>/dev/null; then
			under $run timeout -k 5 20 redis-cli -h 127.0.0.1 \
			    -p "$port" PING >"$WORK/ping.$run.out" 2>&1
			under $run timeout -k 5 60 redis-cli -h 127.0.0.1 \
			    -p "$port" <"$WORK/redis.cmds" \
			    >"$WORK/cli.$run.out" 2>&1
			timeout -k 5 20 redis-cli -h 127.0.0.1 -p "$port" \
			    INFO memory 2>/dev/null | tr -d '\r' |
			    sed -n 's/^used_memory:\([0-9]*\)$/\1/p' \
			    >"$WORK/mem.$run.out"
		fi
		redis_stop "$port"
		echo $? >"$WORK/stop.$run.rc"
		echo "  redis ($run): port $port, $(($(date +%s) - t))s"
	done
	if [ -f "$WORK/bench.pre.rc" ]; then
		# every benchmark test printed its result, both runs exited 0
		missing=
		for n in SET GET INCR LPUSH RPOP SADD HSET ZADD LRANGE_100 MSET; do
			tr '\r' '\n' <"$WORK/bench1.pre.out" |
			    grep -q "^ *${n}[ :(].*requests per second" ||
			    missing="$missing $n"
		done
		for n in SET GET; do
			tr '\r' '\n' <"$WORK/bench2.pre.out" |
			    grep -q "^ *$n: .*requests per second" ||
			    missing="$missing $n(-d 2000)"
		done
		if [ -z "$missing" ] &&
		    [ "$(sort -u "$WORK/bench.pre.rc")" = 0 ]; then
			ok "redis-benchmark: 12 tests of 20000 requests"
		else
			bad "redis-benchmark: missing:$missing; exits $(tr '\n' ' ' <"$WORK/bench.pre.rc")"
			tr '\r' '\n' <"$WORK/bench1.pre.out" | tail -n 3
			tr '\r' '\n' <"$WORK/bench2.pre.out" | tail -n 3
		fi
		if [ "$(cat "$WORK/ping.pre.out")" = PONG ]; then
			ok "redis-server answers PING after the benchmark"
		else
			bad "redis-server after the benchmark: $(head -c 200 "$WORK/ping.pre.out")"
		fi
		if cmp -s "$WORK/cli.base.out" "$WORK/cli.pre.out"; then
			ok "redis-cli session: $(wc -l <"$WORK/cli.pre.out") replies as without the preload"
		else
			bad "redis-cli session differs"
			diff "$WORK/cli.base.out" "$WORK/cli.pre.out" | head -n 6 | cut -c1-200
		fi
		# the reference itself must be right, or matching it means nothing
		# (401 OKs: FLUSHALL and the SETs; STRLEN big; SCARD set;
		# DBSIZE: 200 key:N + big, list, hash, zset, set; LLEN list)
		if [ "$(grep -c '^OK$' "$WORK/cli.base.out")" -eq 401 ] &&
		    grep -qx 150000 "$WORK/cli.base.out" &&
		    grep -qx 700 "$WORK/cli.base.out" &&
		    grep -qx 205 "$WORK/cli.base.out" &&
		    grep -qx 500 "$WORK/cli.base.out" &&
		    [ "$(tail -n 1 "$WORK/cli.base.out")" = PONG ]; then
			ok "redis-cli reference replies are the expected ones"
		else
			bad "redis-cli reference replies are not the expected ones"
		fi
		mem=$(cat "$WORK/mem.pre.out")
		if [ -n "$mem" ] && [ "$mem" -gt 100000 ] &&
		    [ "$mem" -lt 2000000000 ]; then
			ok "redis-server memory accounting sane (used_memory $mem)"
		else
			bad "redis-server used_memory '$mem'"
		fi
		if [ "$(cat "$WORK/stop.pre.rc")" = 0 ] &&
		    ! grep -q 'BUG REPORT\|crashed by signal' "$WORK/redis.pre.log"; then
			ok "redis-server shut down cleanly"
		else
			bad "redis-server exit $(cat "$WORK/stop.pre.rc") at shutdown"
			tail -n 20 "$WORK/redis.pre.log"
		fi
	fi
fi

# ---------------------------------------------------------------------------
# (d) more programs that live on malloc: perl (a hash of 200k keys with a
#     third deleted, arrays of references, sorting, regular expressions,
#     string growth), git (a generated history, then a two-thread repack
#     and a full fsck) and xz with two threads.  Each output must be the
#     one without the preload.
echo "real: perl, git, xz"

# Judge NAME's two runs ($WORK/NAME.{base,pre}.{out,rc}): the reference
# must have succeeded, and the run with the preload must match it.
same_as_base() {
	if [ "$(cat "$WORK/$1.base.rc")" != 0 ]; then
		bad "$1 reference run: exit $(cat "$WORK/$1.base.rc")"
		tail -n 5 "$WORK/$1.base.out"
	elif [ "$(cat "$WORK/$1.pre.rc")" = 0 ] &&
	    cmp -s "$WORK/$1.base.out" "$WORK/$1.pre.out"; then
		ok "$1: $2: as without the preload"
	else
		bad "$1: exit $(cat "$WORK/$1.pre.rc"), output differs"
		diff "$WORK/$1.base.out" "$WORK/$1.pre.out" | head -n 6 |
		    cut -c1-200
	fi
}
PERL_SCRIPT='
srand(42);
my (%h, @a);
for my $i (1 .. 200000) {
	my $k = join "", map { chr(97 + int(rand(26))) } 1 .. (3 + $i % 9);
	$h{$k} .= $i;
	push @a, [$i, $k, { n => $i % 97 }];
}
for my $i (1 .. 200000) { delete $h{$a[$i - 1][1]} if $i % 3 == 0; }
my $s = 0;
$s += length($h{$_}) for keys %h;
my @sorted = sort { $a->[1] cmp $b->[1] || $a->[0] <=> $b->[0] } @a;
my $text = join " ", map { $_->[1] } @sorted[0 .. 49999];
my $vowels = () = $text =~ /\b([aeiou]\w*)\b/g;
(my $caps = $text) =~ s/(\w)(\w*)/\U$1\E$2/g;
my $big = "";
$big .= sprintf("%08x", $_ * 2654435761 % 4294967296) for 1 .. 300000;
print join(" ", scalar(keys %h), $s, $vowels, length($caps),
    substr($caps, 0, 40), length($big), unpack("%32C*", $big)), "\n";
print "$sorted[$_][1] $sorted[$_][0] $sorted[$_][2]{n}\n" for 0 .. 20;
'
if ! command -v perl >/dev/null 2>&1; then
	apt_install perl || true
fi
if ! command -v perl >/dev/null 2>&1; then
	skip "perl: not installed"
else
	for run in base pre; do
		under $run timeout -k 10 300 perl -e "$PERL_SCRIPT" \
		    >"$WORK/perl.$run.out" 2>&1
		echo $? >"$WORK/perl.$run.rc"
	done
	if [ "$(wc -l <"$WORK/perl.base.out")" -ne 22 ]; then
		bad "perl reference run: $(head -c 200 "$WORK/perl.base.out")"
	else
		same_as_base perl "hashes, references, sort, regexes"
	fi
fi

# A history of 60 commits of generated files (fixed dates, so the same
# object names), repacked by two threads, checked, and logged.
git_run() {
	run=$1
	repo="$WORK/git.$run"
	rm -rf "$repo"
	mkdir -p "$repo"
	(
		cd "$repo" || exit 1
		export GIT_AUTHOR_NAME=real GIT_AUTHOR_EMAIL=real@example.org \
		    GIT_COMMITTER_NAME=real GIT_COMMITTER_EMAIL=real@example.org \
		    GIT_CONFIG_NOSYSTEM=1 HOME="$repo"
		under $run git init -q -b main . || exit 1
		i=0
		while [ $i -lt 60 ]; do
			awk -v c=$i 'BEGIN { srand(c); for (f = 0; f < 8; f++) {
			    file = "f" (c * 3 + f) % 20 ".txt"
			    for (l = 0; l < 400; l++)
				print c, f, l, int(rand() * 1e9) >> file } }'
			export GIT_AUTHOR_DATE="$((1700000000 + i * 60)) +0000" \
			    GIT_COMMITTER_DATE="$((1700000000 + i * 60)) +0000"
			under $run git add -A && under $run git commit -q \
			    -m "commit $i" || exit 1
			i=$((i + 1))
		done
		under $run git repack -q -a -d -f --threads=2 --window=50 &&
		    under $run git fsck --full --no-progress 2>&1 &&
		    under $run git rev-parse HEAD &&
		    under $run git log --stat --format='%H %s' | cksum &&
		    under $run git count-objects -v | grep -v size
	) >"$WORK/git.$run.out" 2>&1
	echo $? >"$WORK/git.$run.rc"
}
if ! command -v git >/dev/null 2>&1; then
	apt_install git || true
fi
if ! command -v git >/dev/null 2>&1; then
	skip "git: not installed"
else
	git_run base
	git_run pre
	same_as_base git "60 commits, two-thread repack, fsck"
fi

if ! command -v xz >/dev/null 2>&1; then
	apt_install xz-utils || true
fi
if ! command -v xz >/dev/null 2>&1; then
	skip "xz: not installed"
else
	awk 'BEGIN { srand(7); for (i = 0; i < 400000; i++)
	    print i, int(rand() * 1e6), substr("lorem ipsum dolor sit amet", 1 + int(rand() * 20)) }' \
	    >"$WORK/xz.in"
	for run in base pre; do
		{ under $run xz -T2 -6 -c "$WORK/xz.in" >"$WORK/xz.$run.xz" &&
		    under $run xz -T2 -d -c "$WORK/xz.$run.xz" | cksum &&
		    cksum <"$WORK/xz.$run.xz"; } >"$WORK/xz.$run.out" 2>&1
		echo $? >"$WORK/xz.$run.rc"
	done
	if [ "$(head -n 1 "$WORK/xz.base.out")" != "$(cksum <"$WORK/xz.in")" ]; then
		bad "xz reference run did not round-trip"
	else
		same_as_base xz "two threads, the same stream and round trip"
	fi
fi

echo "real: $(($(date +%s) - T0))s in all, $skipped skipped"
echo "real: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
