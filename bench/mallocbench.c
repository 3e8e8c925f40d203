/*
 * mallocbench - allocator workloads for comparing malloc implementations.
 *
 * It calls nothing but the standard malloc family, so that LD_PRELOAD
 * chooses the allocator; bench/malloc_bench.sh runs it once per workload
 * and allocator in a fresh process (so VmHWM is the workload's own peak).
 * It is deliberately not a bench/NAME_bench.c: those are linked with the
 * library's objects, and a malloc defined inside the executable could not
 * be replaced by LD_PRELOAD.
 *
 *	mallocbench [-s SCALE] [-i IDLE_MS] WORKLOAD
 *
 * Workloads (ops counted for ns_per_op in brackets):
 *   pair-SIZE   one thread: malloc(SIZE), touch, free, hot loop [pairs]
 *   batch       100k mixed-size objects allocated, then all freed [pairs]
 *   burst       8000 blocks of 2..8 KiB (I/O buffers, the first 256 bytes
 *               written) allocated, then all freed [pairs]
 *   larson      server-like: 4 threads replace random objects in slot
 *               arrays; the arrays change hands every round, so objects
 *               are freed by a thread other than the one that made them
 *               [malloc+free]
 *   mixed       larson with sizes 16 B..1 MiB (80% to 1000 B, 17% to
 *               64 KiB, 3% to 1 MiB), every page of a block written, as
 *               a program writes what it asks for [malloc+free]
 *   prodcons    one thread mallocs, another frees, through an SPSC ring
 *               kept 7/8 to fully loaded (the same live data for all)
 *               [objects]
 *   realloc     16 buffers growing side by side: by doubling to 256 KiB,
 *               and by 1..64-byte appends to 16 KiB [realloc calls]
 *   grow        2 threads, each with 8 large buffers growing side by side
 *               by 30-120% a step from 64 KiB to 3 MiB, one in 16 steps
 *               dropped and begun again; each page written when it is
 *               added and read back after every move [realloc calls]
 *   frag        fragmentation replay: a burst of mixed objects, 7 of 8
 *               freed (holes on every page), a second burst of other
 *               sizes, that burst freed, one idle period; RSS at each step
 *               [malloc+free]
 *   scale-T     T threads of 64-byte pairs, no sharing [pairs, all threads]
 *
 * Every object carries a pattern derived from its identity, checked
 * before it is freed; a wrong pattern, a misaligned or NULL block exits
 * with status 3 and a message, so a broken allocator fails loudly
 * instead of looking fast.  The last line of output is
 *
 *   RESULT wl=NAME ops=N clock=cpu|wall ns_per_op=X secs=WALL
 *          cpu_secs=CPU hwm_kb=K rss_kb=K malloc_from=PATH [key=value...]
 *
 * ns_per_op is by the process's CPU time for the single-thread workloads
 * and by wall time for larson, mixed, prodcons, grow and scale-T (see
 * timer_start).
 * hwm_kb is the peak RSS: VmHWM, or the largest VmRSS read if larger.
 *
 * -s scales the amount of work (0.05 for smoke runs); -i is the idle time
 * of frag (default 1000 ms).  No timing is judged here.
 */
#define	_GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define	MB_ALIGN	16	/* glibc's guarantee for blocks >= 16 bytes */
#define	CACHELINE	64

static double opt_scale = 1.0;
static long opt_idle_ms = 1000;
static const char *wl_name;

/*
 * The compiler may delete a malloc/free pair whose block does not escape
 * (we also build with -fno-builtin-malloc); this makes the pointer and
 * the memory behind it visible to "something".
 */
#define	opaque(p)	__asm__ __volatile__("" : : "r"(p) : "memory")

static void
fail(const char *what, const void *p, size_t size, uint64_t id)
{
	fprintf(stderr, "mallocbench %s: CHECK FAILED: %s (block %p, size %zu,"
	    " object %llu)\n", wl_name, what, p, size,
	    (unsigned long long)id);
	fflush(stderr);
	_exit(3);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/*
 * The measured stretches of a workload.  Single-thread workloads are
 * judged by the process's CPU time (user + system, page faults included):
 * on a machine others share, it does not count the time slices given to
 * them.  Multi-thread ones by wall time, since waiting and contention are
 * what they measure.
 */
static uint64_t tm_wall, tm_cpu, tm_wall0, tm_cpu0;

static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

static void
timer_start(void)
{
	tm_wall0 = now_ns();
	tm_cpu0 = cpu_ns();
}

static void
timer_stop(void)
{
	tm_cpu += cpu_ns() - tm_cpu0;
	tm_wall += now_ns() - tm_wall0;
}

static uint64_t
scaled(uint64_t n)
{
	double v = (double)n * opt_scale;

	return (v < 1 ? 1 : (uint64_t)v);
}

/* splitmix64: object tags and sizes from an index, no state needed */
static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (x ^ (x >> 31));
}

/* xorshift64*: per-thread random streams */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (x * 0x2545f4914f6cdd1dull);
}

/* Uniform in [lo, hi]. */
static size_t
rnd_range(uint64_t r, size_t lo, size_t hi)
{
	return (lo + (size_t)(r % (hi - lo + 1)));
}

/* The largest VmRSS read so far: the kernel's VmHWM can lag it a little. */
static long rss_seen;

/*
 * Read "Field:   N kB" from /proc/self/status with open/read: stdio
 * would allocate, and the numbers are taken mid-workload.
 */
static long
status_kb(const char *field)
{
	char buf[4096], *s;
	ssize_t n;
	size_t fl = strlen(field);
	int fd = open("/proc/self/status", O_RDONLY);

	if (fd < 0)
		return (-1);
	n = read(fd, buf, sizeof (buf) - 1);
	(void) close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	for (s = buf; s != NULL && *s != '\0'; s = strchr(s, '\n')) {
		if (*s == '\n')
			s++;
		if (strncmp(s, field, fl) == 0 && s[fl] == ':') {
			long v = strtol(s + fl + 1, NULL, 10);

			if (strcmp(field, "VmRSS") == 0 && v > rss_seen)
				rss_seen = v;
			return (v);
		}
	}
	return (-1);
}

static void
check_block(const void *p, size_t size, uint64_t id)
{
	if (p == NULL)
		fail("malloc returned NULL", p, size, id);
	if (size >= MB_ALIGN && ((uintptr_t)p & (MB_ALIGN - 1)) != 0)
		fail("block not 16-byte aligned", p, size, id);
}

/* A tag at both ends of a block (size >= 16): catches overlap and */
/* blocks handed out twice. */
static void
tag_put(void *p, size_t size, uint64_t tag)
{
	uint64_t inv = ~tag;

	memcpy(p, &tag, 8);
	memcpy((char *)p + size - 8, &inv, 8);
}

static void
tag_check(const void *p, size_t size, uint64_t tag, uint64_t id)
{
	uint64_t a, b;

	memcpy(&a, p, 8);
	memcpy(&b, (const char *)p + size - 8, 8);
	if (a != tag || b != ~tag)
		fail("object contents changed while it was live", p, size, id);
}

/*
 * The harness's own arrays come from mmap, not malloc: the same pages
 * under every allocator (calloc, for one, pre-touches under some).
 */
static void *
harness_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap for the harness's arrays", NULL, size, 0);
	return (p);
}

static void
harness_free(void *p, size_t size)
{
	(void) munmap(p, size);
}

/* What a workload reports beyond time and peak RSS. */
static char extra[1024];

static void
extra_add(const char *key, long long v)
{
	size_t l = strlen(extra);

	snprintf(extra + l, sizeof (extra) - l, " %s=%lld", key, v);
}

/*
 * ------------------------------------------------------------------------
 * pair-SIZE: the hot path.
 * ------------------------------------------------------------------------
 */
static uint64_t
pair_loop(size_t size, uint64_t n, uint64_t base)
{
	uint64_t i;

	for (i = base; i < base + n; i++) {
		uint64_t *p = malloc(size);

		check_block(p, size, i);
		opaque(p);
		tag_put(p, size, i);
		opaque(p);
		tag_check(p, size, i, i);
		free(p);
	}
	return (n);
}

static uint64_t
wl_pair(size_t size)
{
	uint64_t n;

	/* Smaller blocks: cheaper pairs, more of them. */
	n = size <= 1024 ? 20000000 : size <= 16384 ? 10000000 : 4000000;
	n = scaled(n);
	(void) pair_loop(size, n / 100 + 1, 0);	/* warm: lazy set-up */
	timer_start();
	(void) pair_loop(size, n, n);
	timer_stop();
	return (n);
}

/*
 * ------------------------------------------------------------------------
 * batch: allocate 100k, free them all (in allocation order), repeat.
 * burst: the same with blocks of 2..8 KiB, a burst of I/O buffers or
 * pages of a cache that a server fills and drops: 8000 of them (32 MiB
 * in all), only the first 256 bytes of each written (blocks this big are
 * often used in part).
 * ------------------------------------------------------------------------
 */
#define	BATCH_N		100000
#define	BURST_N		8000
#define	BURST_USED	256

/* reps rounds of: n blocks of sizes sz allocated, then freed in order. */
static uint64_t
alloc_free_rounds(const uint32_t *sz, size_t n, uint64_t reps, size_t used)
{
	void **ptr = harness_alloc(n * sizeof (void *));
	size_t i;

	timer_start();
	for (uint64_t r = 0; r < reps; r++) {
		for (i = 0; i < n; i++) {
			size_t u = sz[i] < used ? sz[i] : used;

			ptr[i] = malloc(sz[i]);
			check_block(ptr[i], sz[i], i);
			tag_put(ptr[i], u, mix(r * n + i));
		}
		for (i = 0; i < n; i++) {
			size_t u = sz[i] < used ? sz[i] : used;

			tag_check(ptr[i], u, mix(r * n + i), i);
			free(ptr[i]);
		}
	}
	timer_stop();
	harness_free(ptr, n * sizeof (void *));
	return (reps * n);
}

static uint64_t
wl_batch(void)
{
	uint32_t *sz = harness_alloc(BATCH_N * sizeof (uint32_t));
	uint64_t ops;
	size_t i;

	for (i = 0; i < BATCH_N; i++)		/* mostly small, some 1 KiB */
		sz[i] = (uint32_t)(mix(i) % 8 == 0 ? rnd_range(mix(~i), 16,
		    1024) : rnd_range(mix(~i), 16, 128));
	ops = alloc_free_rounds(sz, BATCH_N, scaled(60), SIZE_MAX);
	harness_free(sz, BATCH_N * sizeof (uint32_t));
	return (ops);
}

static uint64_t
wl_burst(void)
{
	uint32_t *sz = harness_alloc(BURST_N * sizeof (uint32_t));
	uint64_t ops;
	size_t i;

	for (i = 0; i < BURST_N; i++)
		sz[i] = (uint32_t)rnd_range(mix(i ^ 0xb0b), 2048, 8192);
	ops = alloc_free_rounds(sz, BURST_N, scaled(30), BURST_USED);
	harness_free(sz, BURST_N * sizeof (uint32_t));
	return (ops);
}

/*
 * ------------------------------------------------------------------------
 * larson: after Larson & Krishnan's server benchmark.  T threads, each
 * round each works on one slot array, replacing a random slot's object
 * (check, free, malloc a random size 16..1000, tag); between rounds the
 * arrays rotate among the threads, so most frees are of objects another
 * thread allocated.
 * ------------------------------------------------------------------------
 */
#define	LARSON_T	4
#define	LARSON_SLOTS	5000
#define	LARSON_ROUNDS	10

typedef struct slot {
	void		*s_p;
	uint32_t	s_size;
	uint64_t	s_tag;
} slot_t;

typedef struct larson_arg {
	int		la_id;
	uint64_t	la_ops;		/* per round */
	slot_t		*la_arrays;	/* [LARSON_T][LARSON_SLOTS] */
	pthread_barrier_t *la_bar;
	int		la_mixed;	/* mixed: sizes to 1 MiB */
	size_t		la_slots;
	char		la_pad[CACHELINE];
} larson_arg_t;

/*
 * mixed: sizes from three bands, each uniform: most blocks small, some
 * medium, a few of the sizes that come from page runs rather than
 * classes in most allocators (64 KiB..1 MiB).
 */
static size_t
mixed_size(uint64_t r)
{
	unsigned band = (unsigned)(r >> 54) % 100;	/* bits unused below */

	r >>= 20;
	if (band < 80)
		return (rnd_range(r, 16, 1000));
	if (band < 97)
		return (rnd_range(r, 1001, 64 << 10));
	return (rnd_range(r, (64 << 10) + 1, 1 << 20));
}

/* Write a word on every page of a block, as its user would. */
static void
touch_pages(void *p, size_t size)
{
	size_t off;

	for (off = 4096; off < size; off += 4096)
		((volatile char *)p)[off] = (char)off;
}

static void *
larson_thread(void *arg)
{
	larson_arg_t *la = arg;
	uint64_t seed = mix((uint64_t)la->la_id + 1), i;
	int round;

	for (round = 0; round < LARSON_ROUNDS; round++) {
		slot_t *a = la->la_arrays +
		    (size_t)((la->la_id + round) % LARSON_T) * la->la_slots;

		for (i = 0; i < la->la_ops; i++) {
			uint64_t r = rnd(&seed);
			slot_t *s = &a[r % la->la_slots];
			size_t size = la->la_mixed ? mixed_size(r) :
			    rnd_range(r >> 32, 16, 1000);

			if (s->s_p != NULL) {
				tag_check(s->s_p, s->s_size, s->s_tag, i);
				free(s->s_p);
			}
			s->s_p = malloc(size);
			check_block(s->s_p, size, i);
			s->s_size = (uint32_t)size;
			s->s_tag = r;
			if (la->la_mixed)
				touch_pages(s->s_p, size);
			tag_put(s->s_p, size, r);
		}
		(void) pthread_barrier_wait(la->la_bar);
	}
	return (NULL);
}

static uint64_t
larson_run(int mixed, size_t slots, uint64_t ops)
{
	slot_t *arrays = harness_alloc(LARSON_T * slots * sizeof (slot_t));
	larson_arg_t la[LARSON_T];
	pthread_t tid[LARSON_T];
	pthread_barrier_t bar;
	size_t i;
	int t;

	(void) pthread_barrier_init(&bar, NULL, LARSON_T);
	timer_start();
	for (t = 0; t < LARSON_T; t++) {
		la[t].la_id = t;
		la[t].la_ops = ops;
		la[t].la_arrays = arrays;
		la[t].la_bar = &bar;
		la[t].la_mixed = mixed;
		la[t].la_slots = slots;
		if (pthread_create(&tid[t], NULL, larson_thread, &la[t]) != 0)
			fail("pthread_create", NULL, 0, 0);
	}
	for (t = 0; t < LARSON_T; t++)
		(void) pthread_join(tid[t], NULL);
	timer_stop();
	for (i = 0; i < LARSON_T * slots; i++) {
		if (arrays[i].s_p != NULL) {
			tag_check(arrays[i].s_p, arrays[i].s_size,
			    arrays[i].s_tag, i);
			free(arrays[i].s_p);
		}
	}
	(void) pthread_barrier_destroy(&bar);
	harness_free(arrays, LARSON_T * slots * sizeof (slot_t));
	return (ops * LARSON_T * LARSON_ROUNDS);
}

static uint64_t
wl_larson(void)
{
	return (larson_run(0, LARSON_SLOTS, scaled(150000)));
}

/* About 23 KB a block on average: 4 x 500 slots hold some 45 MB. */
#define	MIXED_SLOTS	500

static uint64_t
wl_mixed(void)
{
	return (larson_run(1, MIXED_SLOTS, scaled(20000)));
}

/*
 * ------------------------------------------------------------------------
 * prodcons: every object is freed by the thread that did not allocate it.
 * A single-producer single-consumer ring; a full or empty ring spins
 * briefly, then yields (this machine has two CPUs and may be busy).
 * ------------------------------------------------------------------------
 */
#define	RING	8192		/* power of two */
/*
 * The consumer stays PC_LAG objects behind the producer (until the end),
 * so the ring holds PC_LAG..RING objects whichever side is faster, and
 * the live data, which the peak RSS is mostly made of, is the same under
 * every allocator.  Free to catch up, the consumer kept the ring at 60-100
 * objects on average under mimalloc, whose malloc is the slower side, and
 * full (8000) under the others: 2 MB less live data, not less overhead.
 */
#define	PC_LAG	(RING - RING / 8)

typedef struct ring {
	_Alignas(CACHELINE) _Atomic uint64_t	r_head;	/* consumer */
	_Alignas(CACHELINE) _Atomic uint64_t	r_tail;	/* producer */
	_Alignas(CACHELINE) void		*r_slot[RING];
	uint64_t				r_n;
	uint64_t				r_sum;	/* consumer's */
} ring_t;

static void
backoff(int *spins)
{
	if (++*spins < 100) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else {
		(void) sched_yield();
		*spins = 0;
	}
}

static size_t
pc_size(uint64_t i)
{
	return (rnd_range(mix(i), 16, 512));
}

static void *
pc_consumer(void *arg)
{
	ring_t *rg = arg;
	uint64_t i, sum = 0;

	for (i = 0; i < rg->r_n; i++) {
		int spins = 0;
		void *p;
		size_t size = pc_size(i);
		uint64_t t;

		while ((t = atomic_load_explicit(&rg->r_tail,
		    memory_order_acquire)) == i ||
		    (t < rg->r_n && t - i <= PC_LAG))
			backoff(&spins);
		p = rg->r_slot[i & (RING - 1)];
		atomic_store_explicit(&rg->r_head, i + 1,
		    memory_order_release);
		tag_check(p, size, mix(i ^ 0x5555), i);
		sum += size;
		free(p);
	}
	rg->r_sum = sum;
	return (NULL);
}

static uint64_t
wl_prodcons(void)
{
	static ring_t rg;
	pthread_t tid;
	uint64_t i, sum = 0;

	rg.r_n = scaled(3000000);
	timer_start();
	if (pthread_create(&tid, NULL, pc_consumer, &rg) != 0)
		fail("pthread_create", NULL, 0, 0);
	for (i = 0; i < rg.r_n; i++) {
		int spins = 0;
		size_t size = pc_size(i);
		void *p = malloc(size);

		check_block(p, size, i);
		tag_put(p, size, mix(i ^ 0x5555));
		sum += size;
		while (i - atomic_load_explicit(&rg.r_head,
		    memory_order_acquire) >= RING)
			backoff(&spins);
		rg.r_slot[i & (RING - 1)] = p;
		atomic_store_explicit(&rg.r_tail, i + 1, memory_order_release);
	}
	(void) pthread_join(tid, NULL);
	timer_stop();
	if (rg.r_sum != sum)
		fail("consumer saw other sizes than the producer made", NULL,
		    0, 0);
	return (rg.r_n);
}

/*
 * ------------------------------------------------------------------------
 * realloc: vectors that double and strings that grow by small appends,
 * 16 at a time in round-robin so that neighbours get in the way of growth
 * in place.  The byte at offset i of buffer b is a function of (i, b,
 * rep); each buffer is checked in full before it is freed.
 * ------------------------------------------------------------------------
 */
#define	RA_NBUF		16
#define	RA_DOUBLE_MAX	(256 * 1024)
#define	RA_APPEND_MAX	(16 * 1024)

static unsigned char
ra_byte(size_t i, int b, uint64_t rep)
{
	return ((unsigned char)(i * 131 + (size_t)b * 17 + rep));
}

static void
ra_fill(unsigned char *p, size_t from, size_t to, int b, uint64_t rep)
{
	size_t i;

	for (i = from; i < to; i++)
		p[i] = ra_byte(i, b, rep);
}

static void
ra_verify(const unsigned char *p, size_t len, int b, uint64_t rep)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != ra_byte(i, b, rep))
			fail("realloc lost or moved contents", p, len, i);
}

static uint64_t
wl_realloc(void)
{
	unsigned char *buf[RA_NBUF];
	size_t len[RA_NBUF];
	uint64_t reps = scaled(40), rep, calls = 0, seed = 42;
	int b, busy;

	timer_start();
	for (rep = 0; rep < reps; rep++) {
		/* Doubling, 16 B .. 256 KiB. */
		memset(buf, 0, sizeof (buf));
		memset(len, 0, sizeof (len));
		do {
			busy = 0;
			for (b = 0; b < RA_NBUF; b++) {
				size_t nl = len[b] == 0 ? 16 : len[b] * 2;
				unsigned char *p;

				if (nl > RA_DOUBLE_MAX)
					continue;
				busy = 1;
				p = realloc(buf[b], nl);
				check_block(p, nl, calls);
				calls++;
				ra_fill(p, len[b], nl, b, rep);
				buf[b] = p;
				len[b] = nl;
			}
		} while (busy);
		for (b = 0; b < RA_NBUF; b++) {
			ra_verify(buf[b], len[b], b, rep);
			free(buf[b]);
		}

		/* Appends of 1..64 bytes up to 16 KiB. */
		memset(buf, 0, sizeof (buf));
		memset(len, 0, sizeof (len));
		do {
			busy = 0;
			for (b = 0; b < RA_NBUF; b++) {
				size_t nl = len[b] + 1 + rnd(&seed) % 64;
				unsigned char *p;

				if (len[b] >= RA_APPEND_MAX)
					continue;
				busy = 1;
				p = realloc(buf[b], nl);
				check_block(p, nl, calls);
				calls++;
				ra_fill(p, len[b], nl, b, rep);
				buf[b] = p;
				len[b] = nl;
			}
		} while (busy);
		for (b = 0; b < RA_NBUF; b++) {
			ra_verify(buf[b], len[b], b, rep);
			free(buf[b]);
		}
	}
	timer_stop();
	return (calls);
}

/*
 * ------------------------------------------------------------------------
 * grow: large buffers growing side by side in two threads (vectors, byte
 * buffers, a server's responses being built), as malloc_stress's
 * t_realloc_side_by_side does.  Neighbours keep a buffer from growing in
 * place, so each step either moves it (a copy, or its pages) or grows it
 * into free pages; buffers dropped mid-growth and the round's end free
 * memory that the next growth can take.  The first word of every page
 * carries (tag, offset); a page is written when the buffer grows over it
 * and every page of the old length is checked after each realloc, as a
 * program reads what it keeps.
 * ------------------------------------------------------------------------
 */
#define	GROW_T		2
#define	GROW_N		8
#define	GROW_MIN	(64 * 1024)
#define	GROW_MAX	(3 * 1024 * 1024)

static void
grow_put(unsigned char *p, size_t from, size_t to, uint64_t tag)
{
	size_t off;

	/* (From the page that holds from: its word may not have fit then.) */
	for (off = from & ~(size_t)4095; off + 8 <= to; off += 4096) {
		uint64_t w = tag ^ off;

		memcpy(p + off, &w, 8);
	}
}

static void
grow_check(const unsigned char *p, size_t len, uint64_t tag)
{
	size_t off;

	for (off = 0; off + 8 <= len; off += 4096) {
		uint64_t w;

		memcpy(&w, p + off, 8);
		if (w != (tag ^ off))
			fail("realloc lost or moved contents", p, len, off);
	}
}

typedef struct grow_arg {
	int		ga_id;
	uint64_t	ga_rounds;
	uint64_t	ga_ops;		/* realloc calls made */
} grow_arg_t;

static void *
grow_thread(void *arg)
{
	grow_arg_t *ga = arg;
	uint64_t seed = mix((uint64_t)ga->ga_id + 0x5151), ops = 0;
	unsigned char *v[GROW_N];
	size_t n[GROW_N];
	uint64_t tag[GROW_N];
	int i, busy;

	for (uint64_t r = 0; r < ga->ga_rounds; r++) {
		for (i = 0; i < GROW_N; i++) {
			tag[i] = mix(seed + (uint64_t)i);
			n[i] = GROW_MIN + 1 + rnd(&seed) % 4096;
			v[i] = malloc(n[i]);
			check_block(v[i], n[i], r);
			grow_put(v[i], 0, n[i], tag[i]);
		}
		do {
			busy = 0;
			for (i = 0; i < GROW_N; i++) {
				size_t m = n[i] + n[i] * (30 + rnd(&seed) % 91) /
				    100;
				unsigned char *q;

				if (n[i] >= GROW_MAX)
					continue;
				busy = 1;
				q = realloc(v[i], m);
				check_block(q, m, ops);
				ops++;
				grow_check(q, n[i], tag[i]);
				grow_put(q, n[i], m, tag[i]);
				v[i] = q;
				n[i] = m;
				if (rnd(&seed) % 16 == 0) {
					free(v[i]);
					tag[i] = mix(tag[i]);
					n[i] = GROW_MIN + 1;
					v[i] = malloc(n[i]);
					check_block(v[i], n[i], ops);
					grow_put(v[i], 0, n[i], tag[i]);
				}
			}
		} while (busy);
		for (i = 0; i < GROW_N; i++) {
			grow_check(v[i], n[i], tag[i]);
			free(v[i]);
		}
	}
	ga->ga_ops = ops;
	return (NULL);
}

static uint64_t
wl_grow(void)
{
	pthread_t tid[GROW_T];
	grow_arg_t ga[GROW_T];
	uint64_t ops = 0;
	int t;

	timer_start();
	for (t = 0; t < GROW_T; t++) {
		ga[t].ga_id = t;
		ga[t].ga_rounds = scaled(6);
		if (pthread_create(&tid[t], NULL, grow_thread, &ga[t]) != 0)
			fail("pthread_create", NULL, 0, 0);
	}
	for (t = 0; t < GROW_T; t++) {
		(void) pthread_join(tid[t], NULL);
		ops += ga[t].ga_ops;
	}
	timer_stop();
	return (ops);
}

/*
 * ------------------------------------------------------------------------
 * frag: RSS under a fragmenting pattern, and whether it comes back.
 *   1. burst A: FRAG_N objects, sizes 16..4 KiB skewed small, filled
 *   2. free 7 of every 8 of A, in allocation order: every page keeps a
 *      live object, so only an allocator that reuses holes stays small
 *   3. burst B: FRAG_N/4 objects of other sizes (1.5x + 8), filled
 *   4. free burst B (the survivors of A stay)
 *   5. idle opt_idle_ms (no allocator calls): is memory given back?
 *   6. free the rest of A (RSS read at once, no idling)
 * RSS after each step; live bytes are what the program asked for.
 * ------------------------------------------------------------------------
 */
#define	FRAG_N		250000

typedef struct fobj {
	unsigned char	*f_p;
	uint32_t	f_size;
} fobj_t;

static size_t
frag_size(uint64_t i)
{
	uint64_t r = mix(i);

	switch (r % 10) {
	case 0:
		return (rnd_range(r >> 8, 1024, 4096));
	case 1: case 2: case 3:
		return (rnd_range(r >> 8, 129, 1024));
	default:
		return (rnd_range(r >> 8, 16, 128));
	}
}

static void
frag_alloc(fobj_t *o, size_t size, uint64_t id)
{
	o->f_p = malloc(size);
	check_block(o->f_p, size, id);
	o->f_size = (uint32_t)size;
	memset(o->f_p, (int)(mix(id) & 0xff), size);	/* apps touch */
}

static void
frag_free(fobj_t *o, uint64_t id)
{
	unsigned char c = (unsigned char)(mix(id) & 0xff);
	size_t s = o->f_size;

	if (o->f_p[0] != c || o->f_p[s / 2] != c || o->f_p[s - 1] != c)
		fail("object contents changed while it was live", o->f_p, s,
		    id);
	free(o->f_p);
	o->f_p = NULL;
}

static uint64_t
wl_frag(void)
{
	size_t na = scaled(FRAG_N), nb = na / 4, i;
	fobj_t *a = harness_alloc(na * sizeof (fobj_t));
	fobj_t *b = harness_alloc(nb * sizeof (fobj_t));
	long long live = 0;
	struct timespec idle;

	extra_add("rss0_kb", status_kb("VmRSS"));
	timer_start();
	for (i = 0; i < na; i++) {
		frag_alloc(&a[i], frag_size(i), i);
		live += a[i].f_size;
	}
	extra_add("live1_kb", live / 1024);
	extra_add("rss1_kb", status_kb("VmRSS"));
	for (i = 0; i < na; i++) {
		if (i % 8 != 0) {
			live -= a[i].f_size;
			frag_free(&a[i], i);
		}
	}
	extra_add("live2_kb", live / 1024);
	extra_add("rss2_kb", status_kb("VmRSS"));
	for (i = 0; i < nb; i++) {
		frag_alloc(&b[i], frag_size(i + na) * 3 / 2 + 8, i + na);
		live += b[i].f_size;
	}
	extra_add("live3_kb", live / 1024);
	extra_add("rss3_kb", status_kb("VmRSS"));
	for (i = 0; i < nb; i++) {
		live -= b[i].f_size;
		frag_free(&b[i], i + na);
	}
	extra_add("live4_kb", live / 1024);
	extra_add("rss4_kb", status_kb("VmRSS"));
	timer_stop();
	idle.tv_sec = opt_idle_ms / 1000;
	idle.tv_nsec = (opt_idle_ms % 1000) * 1000000;
	(void) nanosleep(&idle, NULL);
	extra_add("rss5_kb", status_kb("VmRSS"));
	extra_add("idle_ms", opt_idle_ms);
	timer_start();
	for (i = 0; i < na; i += 8)
		frag_free(&a[i], i);
	timer_stop();
	extra_add("rss6_kb", status_kb("VmRSS"));
	harness_free(a, na * sizeof (fobj_t));
	harness_free(b, nb * sizeof (fobj_t));
	return (na + nb);
}

/*
 * ------------------------------------------------------------------------
 * scale-T: T threads of 64-byte pairs, nothing shared; ideal is flat
 * time per pair... divided by min(T, CPUs).
 * ------------------------------------------------------------------------
 */
typedef struct scale_arg {
	uint64_t	sa_n;
	uint64_t	sa_base;
	char		sa_pad[CACHELINE];
} scale_arg_t;

static void *
scale_thread(void *arg)
{
	scale_arg_t *sa = arg;

	(void) pair_loop(64, sa->sa_n, sa->sa_base);
	return (NULL);
}

static uint64_t
wl_scale(int nthr)
{
	scale_arg_t sa[64];
	pthread_t tid[64];
	uint64_t n = scaled(10000000);
	int t;

	if (nthr < 1 || nthr > 64)
		fail("thread count out of 1..64", NULL, 0, (uint64_t)nthr);
	timer_start();
	for (t = 0; t < nthr; t++) {
		sa[t].sa_n = n;
		sa[t].sa_base = (uint64_t)t * n;
		if (pthread_create(&tid[t], NULL, scale_thread, &sa[t]) != 0)
			fail("pthread_create", NULL, 0, 0);
	}
	for (t = 0; t < nthr; t++)
		(void) pthread_join(tid[t], NULL);
	timer_stop();
	return (n * (uint64_t)nthr);
}

/* ------------------------------------------------------------------------ */

/* Which object the process's malloc resolves to: proof that the */
/* LD_PRELOAD took (ld.so only warns when it cannot load one). */
static const char *
malloc_origin(void)
{
	Dl_info di;
	void *f = dlsym(RTLD_DEFAULT, "malloc");

	if (f == NULL || dladdr(f, &di) == 0 || di.dli_fname == NULL)
		return ("unknown");
	return (di.dli_fname);
}

static void
usage(void)
{
	fprintf(stderr, "usage: mallocbench [-s SCALE] [-i IDLE_MS] WORKLOAD\n"
	    "  WORKLOAD: pair-SIZE batch burst larson mixed prodcons realloc "
	    "grow frag scale-THREADS\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	uint64_t ops;
	long rss, hwm;
	int threaded = 0;
	int c;

	while ((c = getopt(argc, argv, "s:i:")) != -1) {
		switch (c) {
		case 's':
			opt_scale = strtod(optarg, NULL);
			if (!(opt_scale > 0))
				usage();
			break;
		case 'i':
			opt_idle_ms = strtol(optarg, NULL, 10);
			if (opt_idle_ms < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	wl_name = argv[optind];
	if (strncmp(wl_name, "pair-", 5) == 0) {
		long size = strtol(wl_name + 5, NULL, 10);

		if (size < 16 || size > (1L << 24))
			usage();
		ops = wl_pair((size_t)size);
	} else if (strcmp(wl_name, "batch") == 0) {
		ops = wl_batch();
	} else if (strcmp(wl_name, "burst") == 0) {
		ops = wl_burst();
	} else if (strcmp(wl_name, "larson") == 0) {
		ops = wl_larson();
		threaded = 1;
	} else if (strcmp(wl_name, "mixed") == 0) {
		ops = wl_mixed();
		threaded = 1;
	} else if (strcmp(wl_name, "prodcons") == 0) {
		ops = wl_prodcons();
		threaded = 1;
	} else if (strcmp(wl_name, "realloc") == 0) {
		ops = wl_realloc();
	} else if (strcmp(wl_name, "grow") == 0) {
		ops = wl_grow();
		threaded = 1;
	} else if (strcmp(wl_name, "frag") == 0) {
		ops = wl_frag();
	} else if (strncmp(wl_name, "scale-", 6) == 0) {
		ops = wl_scale((int)strtol(wl_name + 6, NULL, 10));
		threaded = 1;
	} else {
		usage();
		return (2);
	}
	rss = status_kb("VmRSS");
	hwm = status_kb("VmHWM");
	printf("RESULT wl=%s ops=%llu clock=%s ns_per_op=%.3f secs=%.6f "
	    "cpu_secs=%.6f hwm_kb=%ld rss_kb=%ld malloc_from=%s%s\n", wl_name,
	    (unsigned long long)ops, threaded ? "wall" : "cpu",
	    (double)(threaded ? tm_wall : tm_cpu) / (double)ops,
	    (double)tm_wall / 1e9, (double)tm_cpu / 1e9,
	    hwm > rss_seen ? hwm : rss_seen, rss, malloc_origin(), extra);
	return (0);
}
