/*
 * malloc_stress.c - the malloc family under load.
 *
 * A standalone program (NOT linked with libumem): run it as is for glibc,
 * or with LD_PRELOAD=<allocator.so>.  Every block carries a pattern that
 * depends on its tag and on the byte's offset, written when the block is
 * made and checked before it is freed or reallocated, so overlapping
 * blocks, lost bytes and shifted realloc copies all show.  Blocks up to
 * 64 KiB are checked byte for byte; larger ones on their first 4 KiB, their
 * last 64 bytes and one word in every page (that still touches every page,
 * as a real program would, without making 64 MiB blocks cost a second).
 *
 *	cc -std=gnu11 -O2 -fno-builtin -pthread -o malloc_stress \
 *	    tests/malloc_stress.c
 *
 * Tests: random alloc/free/realloc over 8 and then 64 threads, with sizes
 * from 1 B to 64 MiB weighted toward small; producer/consumer with every
 * block freed (or reallocated) by another thread than made it; realloc
 * chains 1 B -> 64 MiB -> 1 B; large blocks growing side by side (so
 * that they must move); fork while threads allocate (the child
 * allocates at once, starts a thread, forks again, under alarm()); a
 * SIGUSR1 storm through pthread_kill while threads allocate; mallinfo2,
 * malloc_info and malloc_trim in a loop while threads allocate; threads
 * that change block sizes round after round while malloc_trim runs.  A watchdog
 * turns a deadlock into a failure with the test's name.
 */
#include "test.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define	KiB		((size_t)1 << 10)
#define	MiB		((size_t)1 << 20)
#define	DENSE_MAX	(64 * KiB)	/* checked byte for byte up to here */
#define	BIG_BUDGET	(512 * MiB)	/* live bytes in blocks >= 256 KiB */
#define	WATCHDOG_S	120

static atomic_size_t big_live;


static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
}

/*
 * The pattern: byte j of a block with tag t is byte (j % 8) of the word
 * t ^ ((j / 8) * K), so whole words can be written at once and any prefix
 * of a block is still valid after realloc.
 */
#define	PAT_K	0x9e3779b97f4a7c15ull

static inline uint64_t
pat_word(uint64_t tag, size_t w)
{
	return (tag ^ ((uint64_t)w * PAT_K));
}

static inline unsigned char
pat_byte(uint64_t tag, size_t j)
{
	return ((unsigned char)(pat_word(tag, j / 8) >> ((j % 8) * 8)));
}

static void
fill_dense(unsigned char *p, size_t from, size_t to, uint64_t tag)
{
	size_t j = from;

	for (; j < to && (j % 8) != 0; j++)
		p[j] = pat_byte(tag, j);
	for (; j + 8 <= to; j += 8) {
		uint64_t w = pat_word(tag, j / 8);

		memcpy(p + j, &w, 8);
	}
	for (; j < to; j++)
		p[j] = pat_byte(tag, j);
}

static int
check_dense(const unsigned char *p, size_t from, size_t to, uint64_t tag)
{
	size_t j = from;

	for (; j < to && (j % 8) != 0; j++)
		if (p[j] != pat_byte(tag, j))
			return (0);
	for (; j + 8 <= to; j += 8) {
		uint64_t w;

		memcpy(&w, p + j, 8);
		if (w != pat_word(tag, j / 8))
			return (0);
	}
	for (; j < to; j++)
		if (p[j] != pat_byte(tag, j))
			return (0);
	return (1);
}

/*
 * The bytes of a block of n bytes that carry the pattern: all of them up
 * to DENSE_MAX, else the first 4 KiB, the first word of every later page
 * and the last 64 bytes.  Apply op to those that lie in [lo, hi).  Since
 * the pattern is positional, writing it again is harmless, so after a
 * realloc the new layout is simply written whole.
 */
static int
range_op(unsigned char *p, size_t lo, size_t hi, uint64_t tag, int fill)
{
	if (lo >= hi)
		return (1);
	if (fill) {
		fill_dense(p, lo, hi, tag);
		return (1);
	}
	return (check_dense(p, lo, hi, tag));
}

static int
layout_op(unsigned char *p, size_t n, size_t lo, size_t hi, uint64_t tag,
    int fill)
{
	size_t j, head = 4 * KiB;
	int ok = 1;

	if (hi > n)
		hi = n;
	if (n <= DENSE_MAX)
		return (range_op(p, lo, hi, tag, fill));
	ok &= range_op(p, lo, hi < head ? hi : head, tag, fill);
	for (j = lo > head ? lo & ~(size_t)4095 : head; j + 8 <= n && j < hi;
	    j += 4096) {
		if (j + 8 <= lo)
			continue;
		ok &= range_op(p, j < lo ? lo : j, j + 8 < hi ? j + 8 : hi,
		    tag, fill);
	}
	ok &= range_op(p, n - 64 > lo ? n - 64 : lo, hi, tag, fill);
	return (ok);
}

/* Write the pattern of a block of n bytes. */
static void
fill(unsigned char *p, size_t n, uint64_t tag)
{
	(void)layout_op(p, n, 0, n, tag, 1);
}

/* Check a block of n bytes. */
static int
check(unsigned char *p, size_t n, uint64_t tag)
{
	return (layout_op(p, n, 0, n, tag, 0));
}

/*
 * After realloc from old to n bytes: the kept prefix must hold the old
 * block's pattern; then lay down the new block's.
 */
static int
after_realloc(unsigned char *p, size_t old, size_t n, uint64_t tag)
{
	int ok = layout_op(p, old, 0, old < n ? old : n, tag, 0);

	fill(p, n, tag);
	return (ok);
}

/*
 * 1 B .. 64 MiB, weighted toward small (80 % <= 256 B, 0.03 % >= 4 MiB);
 * the big ones within a budget.  cap (0: none) bounds the size.
 */
static size_t
pick_size_cap(unsigned long long *seed, size_t cap)
{
	unsigned long long r = test_rand(seed);
	unsigned long long band = r % 100000;
	size_t n;

	r >>= 17;
	if (band < 80000)
		return (1 + (size_t)(r % 256));
	if (band < 96000)
		return (257 + (size_t)(r % (8 * KiB - 256)));
	if (band < 99600)
		return (8 * KiB + (size_t)(r % (248 * KiB)));
	if (band < 99970)
		n = 256 * KiB + (size_t)(r % (3840 * KiB));
	else
		n = 4 * MiB + (size_t)(r % (60 * MiB + 1));
	if (cap != 0 && n > cap)
		n = 1 + n % cap;
	if (n < 256 * KiB)
		return (n);
	if (atomic_fetch_add(&big_live, n) + n > BIG_BUDGET) {
		atomic_fetch_sub(&big_live, n);
		return (1 + (size_t)(r % 256));
	}
	return (n);
}

static size_t
pick_size(unsigned long long *seed)
{
	return (pick_size_cap(seed, 0));
}

static void
account_free(size_t n)
{
	if (n >= 256 * KiB)
		atomic_fetch_sub(&big_live, n);
}

/* ------------------------------------------------------------------ */

static const char *volatile watchdog_what = "start-up";

static void
watchdog(int sig)
{
	const char *w = watchdog_what;
	char msg[160];
	size_t n = 0;
	const char *a = "malloc_stress: watchdog: no progress in ";

	while (*a != '\0' && n < sizeof (msg) - 2)
		msg[n++] = *a++;
	while (*w != '\0' && n < sizeof (msg) - 2)
		msg[n++] = *w++;
	msg[n++] = '\n';
	if (write(STDERR_FILENO, msg, n) < 0)
		_exit(4);
	(void)sig;
	_exit(3);
}

static void
phase(const char *what)
{
	watchdog_what = what;
	alarm(WATCHDOG_S);
}

/*
 * Random alloc/free/realloc over a private set of slots, through every
 * allocating entry point; all blocks checked before free.
 */
struct slot {
	unsigned char	*s_p;
	size_t		s_n;
	uint64_t	s_tag;
};

struct worker {
	pthread_t	w_tid;
	int		w_id;
	int		w_slots;
	long		w_ops;		/* < 0: until w_stop */
	size_t		w_maxsize;	/* 0: up to 64 MiB */
	atomic_int	*w_stop;
	unsigned long	w_bad;		/* pattern, alignment, zero errors */
	unsigned long	w_nulls;	/* failed allocations */
	unsigned long	w_done;
	volatile sig_atomic_t w_sig;	/* set by the SIGUSR1 handler */
};

static size_t
need_align(size_t n)
{
	size_t a = 1;

	if (n >= 16)
		return (16);
	while (a * 2 <= n)
		a *= 2;
	return (a);
}

static unsigned char *
random_alloc(unsigned long long *seed, size_t n, unsigned long *bad)
{
	unsigned long long r = test_rand(seed);
	unsigned char *p = NULL;
	size_t a = (size_t)16 << ((r >> 8) % 9);	/* 16 .. 4096 */
	void *v;

	switch (r % 20) {
	case 0: case 1: case 2:
		p = calloc(1, tu_opaque(n));
		if (p != NULL) {
			/* zeroed: check what fill() will cover */
			size_t j, lim = n <= DENSE_MAX ? n : 4 * KiB;
			unsigned char any = 0;

			for (j = 0; j < lim; j++)
				any |= p[j];
			for (j = lim; j < n; j += 4096)
				any |= p[j];
			*bad += any != 0;
		}
		break;
	case 3:
		p = memalign(a, tu_opaque(n));
		*bad += p != NULL && ((uintptr_t)p & (a - 1)) != 0;
		break;
	case 4:
		if (posix_memalign(&v, a, tu_opaque(n)) == 0)
			p = v;
		*bad += p != NULL && ((uintptr_t)p & (a - 1)) != 0;
		break;
	case 5:
		p = aligned_alloc(a, tu_opaque(n));
		*bad += p != NULL && ((uintptr_t)p & (a - 1)) != 0;
		break;
	case 6:
		p = realloc(NULL, tu_opaque(n));
		break;
	default:
		p = malloc(tu_opaque(n));
		break;
	}
	*bad += p != NULL && ((uintptr_t)p & (need_align(n) - 1)) != 0;
	return (p);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned long long seed = 0x1234567ull * (unsigned)(w->w_id + 1);
	struct slot *s = calloc((size_t)w->w_slots, sizeof (*s));
	uint64_t tagseq = (uint64_t)w->w_id << 40;
	long i;
	int k;

	if (s == NULL) {
		w->w_nulls++;
		return (NULL);
	}
	for (i = 0; w->w_ops < 0 ? !atomic_load(w->w_stop) : i < w->w_ops;
	    i++) {
		unsigned long long r = test_rand(&seed);
		struct slot *sl = &s[r % (unsigned)w->w_slots];

		if (sl->s_p == NULL) {
			size_t n = pick_size_cap(&seed, w->w_maxsize);

			sl->s_p = random_alloc(&seed, n, &w->w_bad);
			if (sl->s_p == NULL) {
				w->w_nulls++;
				account_free(n);
				continue;
			}
			sl->s_n = n;
			sl->s_tag = ++tagseq * PAT_K;
			fill(sl->s_p, n, sl->s_tag);
		} else if ((r >> 32) % 10 < 7) {
			w->w_bad += !check(sl->s_p, sl->s_n, sl->s_tag);
			free(sl->s_p);
			account_free(sl->s_n);
			sl->s_p = NULL;
		} else {
			size_t n = pick_size_cap(&seed, w->w_maxsize);
			unsigned char *q;

			w->w_bad += !check(sl->s_p, sl->s_n, sl->s_tag);
			q = realloc(sl->s_p, tu_opaque(n));
			if (q == NULL) {
				w->w_nulls++;
				account_free(n);
				continue;
			}
			w->w_bad += ((uintptr_t)q & (need_align(n) - 1)) != 0;
			/* the kept bytes moved intact */
			w->w_bad += !after_realloc(q, sl->s_n, n, sl->s_tag);
			account_free(sl->s_n);
			sl->s_p = q;
			sl->s_n = n;
		}
		w->w_done++;
	}
	for (k = 0; k < w->w_slots; k++) {
		if (s[k].s_p == NULL)
			continue;
		w->w_bad += !check(s[k].s_p, s[k].s_n, s[k].s_tag);
		free(s[k].s_p);
		account_free(s[k].s_n);
	}
	free(s);
	return (NULL);
}

static void
run_workers(int nthreads, int slots, long ops)
{
	struct worker *w = calloc((size_t)nthreads, sizeof (*w));
	unsigned long bad = 0, nulls = 0, done = 0;
	int i, started = 0;

	CHECK(w != NULL);
	if (w == NULL)
		return;
	for (i = 0; i < nthreads; i++) {
		w[i].w_id = i;
		w[i].w_slots = slots;
		w[i].w_ops = ops;
		if (pthread_create(&w[i].w_tid, NULL, worker_main, &w[i]) == 0)
			started++;
		else
			break;
	}
	CHECK(started == nthreads);
	for (i = 0; i < started; i++) {
		pthread_join(w[i].w_tid, NULL);
		bad += w[i].w_bad;
		nulls += w[i].w_nulls;
		done += w[i].w_done;
	}
	CHECKF(bad == 0, "%lu bad blocks", bad);
	CHECKF(nulls == 0, "%lu failed allocations", nulls);
	CHECK(done > 0);
	CHECK(atomic_load(&big_live) == 0);
	free(w);
}

static void
t_threads_8(void)
{
	phase("t_threads_8");
	run_workers(8, 256, tu_volume(40000));
}

static void
t_threads_64(void)
{
	phase("t_threads_64");
	run_workers(64, 64, tu_volume(5000));
}

/*
 * Introspection while threads allocate: mallinfo2, malloc_info and
 * malloc_trim(0) in a loop beside four workers must neither deadlock nor
 * disturb a block, and mallinfo2's figures must stay sane.
 */
static atomic_int intro_stop;
static atomic_ulong intro_calls, intro_insane;

static void *
introspector_main(void *arg)
{
	FILE *devnull = fopen("/dev/null", "w");
	unsigned long n = 0;

	(void)arg;
	while (!atomic_load(&intro_stop)) {
		struct mallinfo2 mi = mallinfo2();

		if (mi.uordblks > mi.arena || mi.fsmblks > mi.fordblks ||
		    mi.arena + mi.hblkhd > ((size_t)1 << 40) ||
		    mi.hblks * 4096 > mi.hblkhd)
			atomic_fetch_add(&intro_insane, 1);
		if (devnull != NULL && n % 8 == 0)
			(void) malloc_info(0, devnull);
		if (n % 64 == 0)
			(void) malloc_trim(0);
		n++;
	}
	atomic_store(&intro_calls, n);
	if (devnull != NULL)
		fclose(devnull);
	return (NULL);
}

static void
t_introspection_under_load(void)
{
	pthread_t tid;
	int ok;

	phase("t_introspection_under_load");
	atomic_store(&intro_stop, 0);
	ok = pthread_create(&tid, NULL, introspector_main, NULL) == 0;
	CHECK(ok);
	run_workers(4, 256, tu_volume(20000));
	atomic_store(&intro_stop, 1);
	if (ok)
		pthread_join(tid, NULL);
	CHECKF(atomic_load(&intro_calls) > 0 && atomic_load(&intro_insane) == 0,
	    "%lu of %lu mallinfo2 results insane", atomic_load(&intro_insane),
	    atomic_load(&intro_calls));
}

/* ------------------------------------------------------------------ */
/*
 * Producer/consumer: every block is freed (a quarter after a realloc) by
 * a consumer thread, never by the producer that made it.
 */
#define	QCAP	512

struct item {
	unsigned char	*it_p;
	size_t		it_n;
	uint64_t	it_tag;
};

static struct {
	pthread_mutex_t	q_lock;
	pthread_cond_t	q_nonempty;
	pthread_cond_t	q_nonfull;
	struct item	q_ring[QCAP];
	unsigned	q_head, q_count;
	int		q_producers;	/* still running */
} pcq = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	PTHREAD_COND_INITIALIZER, { { 0, 0, 0 } }, 0, 0, 0
};

static atomic_ulong pc_produced, pc_consumed, pc_bad, pc_nulls;
static long pc_per_producer;

static void *
producer(void *arg)
{
	unsigned long long seed = 0xabcdefull + (uintptr_t)arg;
	long i, n = pc_per_producer;
	uint64_t tag = ((uint64_t)(uintptr_t)arg + 1) << 48;
	unsigned long bad = 0;

	for (i = 0; i < n; i++) {
		struct item it;
		size_t sz = pick_size(&seed);

		it.it_p = random_alloc(&seed, sz, &bad);
		if (it.it_p == NULL) {
			atomic_fetch_add(&pc_nulls, 1);
			account_free(sz);
			continue;
		}
		it.it_n = sz;
		it.it_tag = ++tag * PAT_K;
		fill(it.it_p, sz, it.it_tag);
		pthread_mutex_lock(&pcq.q_lock);
		while (pcq.q_count == QCAP)
			pthread_cond_wait(&pcq.q_nonfull, &pcq.q_lock);
		pcq.q_ring[(pcq.q_head + pcq.q_count) % QCAP] = it;
		pcq.q_count++;
		pthread_cond_signal(&pcq.q_nonempty);
		pthread_mutex_unlock(&pcq.q_lock);
		atomic_fetch_add(&pc_produced, 1);
	}
	atomic_fetch_add(&pc_bad, bad);
	pthread_mutex_lock(&pcq.q_lock);
	pcq.q_producers--;
	pthread_cond_broadcast(&pcq.q_nonempty);
	pthread_mutex_unlock(&pcq.q_lock);
	return (NULL);
}

static void *
consumer(void *arg)
{
	unsigned long long seed = 0x5555ull + (uintptr_t)arg;
	unsigned long bad = 0;

	for (;;) {
		struct item it;

		pthread_mutex_lock(&pcq.q_lock);
		while (pcq.q_count == 0 && pcq.q_producers > 0)
			pthread_cond_wait(&pcq.q_nonempty, &pcq.q_lock);
		if (pcq.q_count == 0) {
			pthread_mutex_unlock(&pcq.q_lock);
			break;
		}
		it = pcq.q_ring[pcq.q_head];
		pcq.q_head = (pcq.q_head + 1) % QCAP;
		pcq.q_count--;
		pthread_cond_signal(&pcq.q_nonfull);
		pthread_mutex_unlock(&pcq.q_lock);

		bad += !check(it.it_p, it.it_n, it.it_tag);
		if (test_rand(&seed) % 4 == 0) {
			/* a foreign block grown or shrunk here */
			size_t n = it.it_n < 4096 ? it.it_n * 3 + 1 :
			    it.it_n / 2;
			unsigned char *p = realloc(it.it_p, tu_opaque(n));

			if (p == NULL) {
				atomic_fetch_add(&pc_nulls, 1);
			} else {
				bad += !after_realloc(p, it.it_n, n,
				    it.it_tag);
				it.it_p = p;
				/* shrinking only: no budget to ask for */
				if (n >= 256 * KiB)
					atomic_fetch_add(&big_live, n);
				account_free(it.it_n);
				it.it_n = n;
			}
		}
		free(it.it_p);
		account_free(it.it_n);
		atomic_fetch_add(&pc_consumed, 1);
	}
	atomic_fetch_add(&pc_bad, bad);
	return (NULL);
}

static void
run_pc(int np, int nc, long per)
{
	pthread_t tp[32], tc[32];
	int i;

	atomic_store(&pc_produced, 0);
	atomic_store(&pc_consumed, 0);
	atomic_store(&pc_bad, 0);
	atomic_store(&pc_nulls, 0);
	pcq.q_producers = np;
	pc_per_producer = per;
	for (i = 0; i < nc; i++)
		CHECK(pthread_create(&tc[i], NULL, consumer,
		    (void *)(uintptr_t)i) == 0);
	for (i = 0; i < np; i++)
		CHECK(pthread_create(&tp[i], NULL, producer,
		    (void *)(uintptr_t)i) == 0);
	for (i = 0; i < np; i++)
		pthread_join(tp[i], NULL);
	for (i = 0; i < nc; i++)
		pthread_join(tc[i], NULL);
	CHECKF(atomic_load(&pc_bad) == 0, "%lu bad blocks",
	    atomic_load(&pc_bad));
	CHECK(atomic_load(&pc_nulls) == 0);
	CHECKF(atomic_load(&pc_produced) == atomic_load(&pc_consumed) &&
	    atomic_load(&pc_produced) == (unsigned long)(np * per),
	    "produced %lu consumed %lu", atomic_load(&pc_produced),
	    atomic_load(&pc_consumed));
	CHECK(pcq.q_count == 0);
	CHECK(atomic_load(&big_live) == 0);
}

static void
t_producer_consumer(void)
{
	phase("t_producer_consumer (4+4)");
	run_pc(4, 4, tu_volume(20000));
	phase("t_producer_consumer (16+16)");
	run_pc(16, 16, tu_volume(4000));
}

/* ------------------------------------------------------------------ */
/* Realloc chains 1 B -> 64 MiB -> 1 B in several threads at once. */
static void *
chain_main(void *arg)
{
	unsigned long long seed = 0x77ull + (uintptr_t)arg;
	uint64_t tag = ((uint64_t)(uintptr_t)arg + 7) * PAT_K;
	unsigned long bad = 0;
	void *noise[16] = { 0 };
	int round, ni = 0;

	for (round = 0; round < 3; round++) {
		size_t n = 1, m;
		unsigned char *p = malloc(tu_opaque(n)), *q;

		if (p == NULL)
			return ((void *)1);
		fill(p, n, tag);
		while (n < 64 * MiB) {
			/* grow by 1.1x .. 2.6x */
			m = n + n * (10 + test_rand(&seed) % 150) / 100 + 1;
			if (m > 64 * MiB)
				m = 64 * MiB;
			q = realloc(p, tu_opaque(m));
			if (q == NULL) {
				bad++;
				break;
			}
			bad += !after_realloc(q, n, m, tag);
			p = q;
			n = m;
			/* small blocks in between, so the heap moves too */
			free(noise[ni % 16]);
			noise[ni % 16] = malloc(tu_opaque(1 + ni % 500));
			ni++;
		}
		bad += !check(p, n, tag);
		while (n > 1) {
			m = n * (20 + test_rand(&seed) % 70) / 100;
			if (m == 0)
				m = 1;
			q = realloc(p, tu_opaque(m));
			if (q == NULL) {
				bad++;
				break;
			}
			bad += !after_realloc(q, n, m, tag);
			p = q;
			n = m;
		}
		free(p);
		tag += 0x10001;
	}
	for (ni = 0; ni < 16; ni++)
		free(noise[ni]);
	return ((void *)(uintptr_t)bad);
}

static void
t_realloc_chains(void)
{
	pthread_t t[4];
	uintptr_t bad = 0;
	void *rv;
	int i;

	phase("t_realloc_chains");
	for (i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, chain_main,
		    (void *)(uintptr_t)i) == 0);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], &rv);
		bad += (uintptr_t)rv;
	}
	CHECKF(bad == 0, "%lu bad steps", (unsigned long)bad);
}

/* ------------------------------------------------------------------ */
/*
 * Large blocks growing side by side (realloc's usual pattern: vectors,
 * buffers), in two threads at once: neighbours keep blocks from growing
 * in place, so they move (libumem: their pages move, mremap), and freed
 * blocks are cut and grown over again by the next round.  Contents,
 * malloc_usable_size and frees of moved blocks are checked.
 */
#define	SBS_N		8

static void *
side_main(void *arg)
{
	unsigned long long seed = 0x5151ull + (uintptr_t)arg;
	unsigned long bad = 0;
	unsigned char *v[SBS_N] = { 0 };
	size_t n[SBS_N] = { 0 };
	uint64_t tag[SBS_N];
	int round, i, busy;

	for (round = 0; round < 6; round++) {
		for (i = 0; i < SBS_N; i++) {
			tag[i] = ((uint64_t)(uintptr_t)arg * 64 +
			    (uint64_t)round * SBS_N + (uint64_t)i + 1) * PAT_K;
			n[i] = 64 * KiB + 1 + (size_t)(test_rand(&seed) % 4096);
			v[i] = malloc(tu_opaque(n[i]));
			if (v[i] == NULL)
				return ((void *)1);
			fill(v[i], n[i], tag[i]);
		}
		do {
			busy = 0;
			for (i = 0; i < SBS_N; i++) {
				size_t m = n[i] + n[i] *
				    (30 + test_rand(&seed) % 90) / 100;
				unsigned char *q;

				if (n[i] >= 3 * MiB)
					continue;
				busy = 1;
				q = realloc(v[i], tu_opaque(m));
				if (q == NULL)
					return ((void *)(uintptr_t)(bad + 1));
				bad += !after_realloc(q, n[i], m, tag[i]);
				bad += malloc_usable_size(q) < m;
				v[i] = q;
				n[i] = m;
				/* now and then one goes away mid-growth */
				if (test_rand(&seed) % 16 == 0) {
					bad += !check(v[i], n[i], tag[i]);
					free(v[i]);
					n[i] = 64 * KiB + 1;
					v[i] = malloc(tu_opaque(n[i]));
					if (v[i] == NULL)
						return ((void *)1);
					fill(v[i], n[i], tag[i]);
				}
			}
		} while (busy);
		for (i = 0; i < SBS_N; i++) {
			bad += !check(v[i], n[i], tag[i]);
			/* shrink half of them first */
			if (i % 2 == 0) {
				unsigned char *q = realloc(v[i],
				    tu_opaque(n[i] / 3));

				if (q == NULL)
					return ((void *)(uintptr_t)(bad + 1));
				bad += !after_realloc(q, n[i], n[i] / 3,
				    tag[i]);
				v[i] = q;
			}
			free(v[i]);
		}
	}
	return ((void *)(uintptr_t)bad);
}

static void
t_realloc_side_by_side(void)
{
	pthread_t t[2];
	uintptr_t bad = 0;
	void *rv;
	int i;

	phase("t_realloc_side_by_side");
	for (i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, side_main,
		    (void *)(uintptr_t)i) == 0);
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], &rv);
		bad += (uintptr_t)rv;
	}
	CHECKF(bad == 0, "%lu bad steps", (unsigned long)bad);
}

/* ------------------------------------------------------------------ */
/*
 * Fork while threads allocate.  A lock held by another thread at fork
 * time stays locked in the child forever unless the allocator handles
 * fork; the child's alarm turns that hang into SIGALRM.
 */
static void *
child_thread(void *arg)
{
	unsigned long long seed = 31;
	int i, bad = 0;

	for (i = 0; i < 2000; i++) {
		size_t n = 1 + (size_t)(test_rand(&seed) % 3000);
		unsigned char *p = malloc(tu_opaque(n));

		if (p == NULL)
			return ((void *)1);
		fill(p, n, (uint64_t)i);
		bad += !check(p, n, (uint64_t)i);
		free(p);
	}
	return ((void *)(uintptr_t)bad);
}

static int grandchild;

static int
child_work(int depth)
{
	static const size_t sizes[] = { 1, 16, 100, 1000, 5000, 40000,
	    200000, 600000, 4 * MiB };
	unsigned char *v[sizeof (sizes) / sizeof (sizes[0])];
	pthread_t t;
	void *rv = (void *)1;
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		v[i] = malloc(tu_opaque(sizes[i]));
		if (v[i] == NULL)
			return (10);
		fill(v[i], sizes[i], i);
	}
	for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		unsigned char *z = calloc(tu_opaque(sizes[i]), 1);
		unsigned char *a = memalign(256, tu_opaque(sizes[i]));

		if (z == NULL || a == NULL)
			return (11);
		bad += z[0] != 0 || z[sizes[i] - 1] != 0;
		bad += ((uintptr_t)a & 255) != 0;
		bad += !check(v[i], sizes[i], i);
		v[i] = realloc(v[i], tu_opaque(sizes[i] * 2));
		if (v[i] == NULL)
			return (12);
		bad += !after_realloc(v[i], sizes[i], sizes[i] * 2, i);
		free(z);
		free(a);
		free(v[i]);
	}
	/* threads in the child allocate too */
	if (pthread_create(&t, NULL, child_thread, NULL) != 0)
		return (13);
	pthread_join(t, &rv);
	bad += rv != NULL;
	if (depth == 0 && grandchild) {
		/* and a grandchild: fork from a child that forked */
		pid_t pid = fork();
		int st = 0;

		if (pid == 0) {
			alarm(10);
			_exit(child_work(1));
		}
		if (pid < 0)
			return (14);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return (15);
	}
	return (bad == 0 ? 0 : 16);
}

static void
t_fork_under_load(void)
{
	enum { NW = 3, NFORK = 24 };
	struct worker w[NW];
	atomic_int stop = 0;
	int i, hung = 0, failed = 0, crashed = 0;
	unsigned long bad = 0, nulls = 0;

	phase("t_fork_under_load");
	memset(w, 0, sizeof (w));
	for (i = 0; i < NW; i++) {
		w[i].w_id = 100 + i;
		w[i].w_slots = 128;
		w[i].w_ops = -1;
		/* a big heap makes every fork copy page tables for long */
		w[i].w_maxsize = 256 * KiB;
		w[i].w_stop = &stop;
		CHECK(pthread_create(&w[i].w_tid, NULL, worker_main,
		    &w[i]) == 0);
	}
	for (i = 0; i < NFORK; i++) {
		pid_t pid;
		int st = 0;

		usleep(10000);
		grandchild = i % 4 == 0;
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid == 0) {
			signal(SIGALRM, SIG_DFL);
			alarm(10);
			_exit(child_work(0));
		}
		CHECK(pid > 0);
		if (pid < 0)
			break;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
			hung++;
			break;		/* one is enough; each costs 10 s */
		} else if (WIFSIGNALED(st))
			crashed++;
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NW; i++) {
		pthread_join(w[i].w_tid, NULL);
		bad += w[i].w_bad;
		nulls += w[i].w_nulls;
	}
	CHECKF(hung == 0, "child %d of %d hung (deadlock after fork)", i + 1,
	    NFORK);
	CHECKF(crashed == 0, "%d children died of a signal", crashed);
	CHECKF(failed == 0, "%d children failed their checks", failed);
	CHECK(bad == 0 && nulls == 0);
	CHECK(atomic_load(&big_live) == 0);
}

/* ------------------------------------------------------------------ */
/*
 * Phase changes: threads each fill 6 MiB with blocks of one size, free
 * them all, then fill 6 MiB with blocks of another size and check them,
 * round after round, while another thread calls malloc_trim(0) now and
 * then.  The heap grows all the time, so libumem's growth scans keep
 * freeing pages that stay resident (dirty) for the growth, which the
 * next phase takes back, the update thread and malloc_trim give to the
 * OS, and allocations that must read zero (calloc of large blocks) have
 * cleared: a page given back while in use, or handed out twice, shows as
 * a broken pattern; one handed to calloc uncleared, as a nonzero byte.
 */
typedef struct phaser {
	pthread_t	ph_tid;
	int		ph_id;
	unsigned long	ph_bad;
	unsigned long	ph_nulls;
} phaser_t;

static void *
phaser_main(void *arg)
{
	enum { BYTES = 6 << 20, ROUNDS = 6 };
	static const size_t sizes[] = { 48, 64, 200, 1000, 3000, 700, 96, 5000 };
	phaser_t *ph = arg;
	size_t cap = BYTES / 48, i, n;
	unsigned char **v = mmap(NULL, cap * sizeof (*v), PROT_READ |
	    PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (v == MAP_FAILED) {
		ph->ph_nulls++;
		return (NULL);
	}
	for (int r = 0; r < ROUNDS * 2; r++) {
		size_t sz = sizes[(r + (size_t)ph->ph_id * 3) % 8];
		uint64_t tag = ((uint64_t)ph->ph_id << 32) | (uint64_t)r << 20;

		n = BYTES / sz;
		for (i = 0; i < n; i++) {
			if ((v[i] = malloc(sz)) == NULL) {
				ph->ph_nulls++;
				n = i;
				break;
			}
			fill(v[i], sz, tag + i);
		}
		for (i = 0; i < n; i++) {
			if (!check(v[i], sz, tag + i))
				ph->ph_bad++;
			free(v[i]);
		}
		/* A large zeroed block: must read zero, dirty pages or not. */
		if ((v[0] = calloc(1, 2 * MiB)) == NULL) {
			ph->ph_nulls++;
			continue;
		}
		for (i = 0; i < 2 * MiB; i += 512)
			ph->ph_bad += v[0][i] != 0;
		free(v[0]);
	}
	(void) munmap(v, cap * sizeof (*v));
	return (NULL);
}

static void
t_phase_changes(void)
{
	enum { NT = 3 };
	phaser_t ph[NT];
	unsigned long bad = 0, nulls = 0;
	int i, alive = NT, joined[NT] = { 0 };

	phase("t_phase_changes");
	memset(ph, 0, sizeof (ph));
	for (i = 0; i < NT; i++) {
		ph[i].ph_id = i;
		CHECK(pthread_create(&ph[i].ph_tid, NULL, phaser_main,
		    &ph[i]) == 0);
	}
	while (alive > 0) {
		usleep(20000);
		(void) malloc_trim(0);
		for (alive = 0, i = 0; i < NT; i++) {
			if (!joined[i])
				joined[i] = pthread_tryjoin_np(ph[i].ph_tid,
				    NULL) == 0;
			alive += !joined[i];
		}
	}
	for (i = 0; i < NT; i++) {
		bad += ph[i].ph_bad;
		nulls += ph[i].ph_nulls;
	}
	CHECKF(bad == 0, "%lu blocks lost their pattern or calloc bytes "
	    "were not zero", bad);
	CHECK(nulls == 0);
}

/* ------------------------------------------------------------------ */
/* SIGUSR1 storm: the handler only sets a flag and counts. */
static atomic_ulong sig_count;		/* lock-free: signal-safe */
static __thread struct worker *sig_self;	/* executable TLS: no lookup */

static void
on_usr1(int sig)
{
	struct worker *w = sig_self;

	(void)sig;
	if (w != NULL)
		w->w_sig = 1;
	atomic_fetch_add(&sig_count, 1);
}

static void *
sig_worker_main(void *arg)
{
	sig_self = arg;
	return (worker_main(arg));
}

/*
 * The main thread ends with pthread_exit and the last other thread
 * returns: the process must end (exit 0), even though the allocator's
 * update thread is still there.  (It once kept such a process alive.)
 */
static void *
last_thread(void *arg)
{
	free(malloc(100));
	usleep(50000);
	return (arg);
}

static void
t_main_pthread_exit(void)
{
	pid_t pid = fork();
	int st = 0;

	CHECK(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		static void *v[20000];

		alarm(0);
		/* past the magazines: the child starts its update thread */
		for (int i = 0; i < 20000; i++)
			v[i] = malloc(64);
		for (int i = 0; i < 20000; i++)
			free(v[i]);
		if (pthread_create(&t, NULL, last_thread, NULL) != 0)
			_exit(3);
		pthread_exit(NULL);
	}
	for (int i = 0; i < 500; i++) {	/* 5 s */
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (waitpid(pid, &st, WNOHANG) == 0) {
		(void) kill(pid, SIGKILL);
		(void) waitpid(pid, &st, 0);
		CHECKF(0, "the process did not end after its last thread");
		return;
	}
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}

static void
t_signals(void)
{
	enum { NW = 8 };
	struct worker w[NW];
	struct sigaction sa, old;
	atomic_int stop = 0;
	unsigned long sent = 0, bad = 0, nulls = 0, flagged = 0;
	double t0;
	int i;

	phase("t_signals");
	memset(&sa, 0, sizeof (sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: interrupted waits see EINTR */
	CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
	memset(w, 0, sizeof (w));
	for (i = 0; i < NW; i++) {
		w[i].w_id = 200 + i;
		w[i].w_slots = 128;
		w[i].w_ops = -1;
		w[i].w_stop = &stop;
		CHECK(pthread_create(&w[i].w_tid, NULL, sig_worker_main,
		    &w[i]) == 0);
	}
	t0 = now_s();
	while (now_s() - t0 < 1.5) {
		for (i = 0; i < NW; i++)
			if (pthread_kill(w[i].w_tid, SIGUSR1) == 0)
				sent++;
		if (sent % 4096 < NW)
			kill(getpid(), SIGUSR1);
		if (sent % 512 < NW)
			sched_yield();
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NW; i++) {
		pthread_join(w[i].w_tid, NULL);
		bad += w[i].w_bad;
		nulls += w[i].w_nulls;
		flagged += w[i].w_sig != 0;
	}
	sigaction(SIGUSR1, &old, NULL);
	CHECKF(bad == 0, "%lu bad blocks", bad);
	CHECK(nulls == 0);
	CHECKF(sent > 1000 && atomic_load(&sig_count) > 0 && flagged == NW,
	    "sent %lu, handled %lu, %lu of %d threads saw one", sent,
	    atomic_load(&sig_count), flagged, NW);
	CHECK(atomic_load(&big_live) == 0);
}

int
main(int argc, char **argv)
{
	double t0 = now_s(), t;

	(void)argc;
	signal(SIGALRM, watchdog);
	setvbuf(stdout, NULL, _IOLBF, 0);

#define	TIMED(fn) do {							\
	t = now_s();							\
	RUN(fn);							\
	if (getenv("TEST_VERBOSE") != NULL)				\
		fprintf(stderr, "  %-22s %.2fs\n", #fn, now_s() - t);	\
} while (0)

	TIMED(t_threads_8);
	TIMED(t_threads_64);
	TIMED(t_introspection_under_load);
	TIMED(t_producer_consumer);
	TIMED(t_realloc_chains);
	TIMED(t_realloc_side_by_side);
	TIMED(t_phase_changes);
	TIMED(t_fork_under_load);
	TIMED(t_signals);
	TIMED(t_main_pthread_exit);
	alarm(0);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  total %.2fs\n", now_s() - t0);
	return (test_summary(argv[0]));
}
