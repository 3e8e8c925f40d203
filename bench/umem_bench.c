/*
 * umem_bench - object caches and the magazine layer: replications of
 * Bonwick & Adams 2001 §3.8 and Bonwick 1994 (paper digest C2.1, C3 items
 * 1-4 and 8).
 *
 *  (a) one thread, pinned: ns per umem_cache_alloc + umem_cache_free pair
 *      with magazines, with UMC_NOMAGAZINE (the slab layer under its cache
 *      lock: the "original slab allocator"), and the cost of two
 *      uncontended pthread mutex lock/unlock pairs (the paper's locking
 *      floor); glibc malloc+free for context.  Paper ratios: slab-only /
 *      magazine = 743/356 = 2.09, magazine / two lock pairs = 356/186 =
 *      1.91.
 *  (b) throughput against threads (1..4 on this machine's CPUs, thread i
 *      pinned to CPU i mod ncpu), one shared cache, magazines vs none
 *      (Fig. 3.8 analog).
 *  (c) object caching with a costly constructor (pthread_mutex_init,
 *      pthread_cond_init, list setup) vs constructing and destroying on
 *      every allocation (Bonwick 1994 §2 / C1.1 analog).
 *  (d) depot accesses per operation in the alloc-alloc-free-free loop,
 *      started at every offset of a magazine boundary (Fig. 3.1a); a
 *      single-magazine design would need one every other operation.
 *
 * Everything runs twice, in child processes: in the default per-CPU mode
 * (restartable sequences) and with UMEM_OPTIONS=percpu=thread (the paper's
 * per-"CPU" slots chosen by thread, each with a lock).  The tables go to
 * stdout; --svg FILE draws throughput against threads and latency against
 * object size.
 *
 *	umem_bench [--quick] [--svg FILE] [--ms N] [--reps N]
 *
 * --quick is a smoke run (about a second) that checks the set-up and
 * judges no timing.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <gnu/libc-version.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <umem.h>
#include <vmem.h>
#include "plot.h"

#define	NSIZES		5
#define	MAXT		4
#define	SIZE_MAIN	1		/* index of 64 bytes */

#define	GOAL_PAIR_NS	3.0	/* rseq mode, 64 B, magazines */
#define	GOAL_VS_NOMAG	3.0	/* magazines >= 3x faster than none */
#define	GOAL_SCALE2	1.9	/* 2 threads on 2 cores vs one */

static const size_t sizes[NSIZES] = { 16, 64, 256, 1024, 4096 };

static int opt_quick;
static double opt_ms = 150;	/* per timed run */
static int opt_reps = 5;	/* median of */
static const char *opt_svg;

/* What a child measures; sent to the parent through a pipe as is. */
typedef struct res {
	char	r_mode[32];
	int	r_ncpu;
	double	r_mag[NSIZES];		/* ns per pair */
	double	r_nomag[NSIZES];
	double	r_malloc[NSIZES];
	double	r_locks;		/* two lock/unlock pairs */
	double	r_thr_mag[MAXT + 1];	/* M pairs/s, all threads */
	double	r_thr_nomag[MAXT + 1];
	double	r_thr_private[MAXT + 1];	/* a cache per thread */
	double	r_thr_compute[MAXT + 1];	/* M loop iterations/s */
	double	r_ctor_cached;		/* ns per alloc+free */
	double	r_ctor_every;
	double	r_ctor_malloc;
	double	r_ctor_nomag;
	double	r_ctor_calls;		/* constructor calls per 1000 allocs */
	int	r_M;
	double	r_depot_ops;		/* worst (depot allocs + frees) / op */
	double	r_depot_exch;		/* worst depot exchanges / op */
	double	r_depot_slab;		/* slab-layer trips / op */
	double	r_walk_exch;		/* random walk: exchanges / op */
	uint64_t r_depot_exch_n;	/* worst exchanges in one run */
	uint64_t r_depot_nops;		/* operations per run */
	int	r_ok;			/* set-up checks passed */
} res_t;

static void
die(const char *msg)
{
	fprintf(stderr, "umem_bench: %s\n", msg);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

static int
ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof (set), &set) != 0)
		return (1);
	return (CPU_COUNT(&set));
}

static int
nth_cpu(int n)
{
	static cpu_set_t all;
	static int have;
	int i, k = 0;

	if (!have) {
		if (sched_getaffinity(0, sizeof (all), &all) != 0)
			return (0);
		have = 1;
	}
	n %= CPU_COUNT(&all);
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &all) && k++ == n)
			return (i);
	return (0);
}

static void
pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void) sched_setaffinity(0, sizeof (set), &set);
}

static int
cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

/*
 * Time a loop body: fn(arg, n) runs n iterations; returns ns per
 * iteration, the median of opt_reps runs of at least opt_ms each.
 */
typedef void loop_fn(void *arg, uint64_t n);

static double
time_loop(loop_fn *fn, void *arg)
{
	double v[32];
	int r, reps = opt_reps < 32 ? opt_reps : 32;

	fn(arg, 1000);		/* warm the caches and the magazines */
	for (r = 0; r < reps; r++) {
		uint64_t n = 0, batch = 1000, t0 = now_ns(), el;

		do {
			fn(arg, batch);
			n += batch;
			el = now_ns() - t0;
			if (batch < 1000000 && el < opt_ms * 1e6 / 8)
				batch *= 2;
		} while (el < opt_ms * 1e6);
		v[r] = (double)el / (double)n;
	}
	qsort(v, (size_t)reps, sizeof (double), cmp_dbl);
	return (v[reps / 2]);
}

/*
 * ------------------------------------------------------------------------
 * (a) one thread
 * ------------------------------------------------------------------------
 */
static void
loop_cache(void *arg, uint64_t n)
{
	umem_cache_t *cp = arg;

	while (n-- > 0) {
		void *p = umem_cache_alloc(cp, UMEM_DEFAULT);

		umem_cache_free(cp, p);
	}
}

static size_t malloc_size;

static void
loop_malloc(void *arg, uint64_t n)
{
	(void) arg;
	while (n-- > 0) {
		void *p = malloc(malloc_size);

		__asm__ __volatile__("" : : "r" (p) : "memory");
		free(p);
	}
}

static pthread_mutex_t lk_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lk_b = PTHREAD_MUTEX_INITIALIZER;

static void
loop_locks(void *arg, uint64_t n)
{
	(void) arg;
	while (n-- > 0) {
		pthread_mutex_lock(&lk_a);
		pthread_mutex_unlock(&lk_a);
		pthread_mutex_lock(&lk_b);
		pthread_mutex_unlock(&lk_b);
	}
}

static void
bench_single(res_t *r)
{
	int i;

	pin(nth_cpu(0));
	r->r_locks = time_loop(loop_locks, NULL);
	for (i = 0; i < NSIZES; i++) {
		umem_cache_t *mc = umem_cache_create("bench_mag", sizes[i], 0,
		    NULL, NULL, NULL, NULL, NULL, 0);
		umem_cache_t *nc = umem_cache_create("bench_nomag", sizes[i], 0,
		    NULL, NULL, NULL, NULL, NULL, UMC_NOMAGAZINE);

		if (mc == NULL || nc == NULL)
			die("umem_cache_create failed");
		r->r_mag[i] = time_loop(loop_cache, mc);
		r->r_nomag[i] = time_loop(loop_cache, nc);
		malloc_size = sizes[i];
		r->r_malloc[i] = time_loop(loop_malloc, NULL);
		umem_cache_destroy(mc);
		umem_cache_destroy(nc);
	}
}

/*
 * ------------------------------------------------------------------------
 * (b) throughput against threads
 * ------------------------------------------------------------------------
 */
typedef struct thr {
	umem_cache_t	*t_cp;		/* NULL: the compute loop */
	int		t_cpu;
	int		t_private;	/* make a cache of our own */
	atomic_int	*t_go, *t_stop, *t_ready;
	uint64_t	t_pairs;
} thr_t;

/* The machine's own scaling: a loop in registers, no memory traffic. */
static uint64_t
compute_loop(uint64_t x, uint64_t n)
{
	while (n-- > 0) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		__asm__ __volatile__("" : "+r" (x));
	}
	return (x);
}

static void *
thr_main(void *arg)
{
	thr_t *t = arg;
	uint64_t n = 0, x = 88172645463325252ull;
	umem_cache_t *cp = t->t_cp;

	pin(t->t_cpu);
	if (t->t_private && (cp = umem_cache_create("bench_thr_private", 64,
	    0, NULL, NULL, NULL, NULL, NULL, 0)) == NULL)
		die("umem_cache_create failed");
	atomic_fetch_add(t->t_ready, 1);
	while (!atomic_load_explicit(t->t_go, memory_order_acquire))
		;
	while (!atomic_load_explicit(t->t_stop, memory_order_relaxed)) {
		if (cp != NULL)
			loop_cache(cp, 256);
		else
			x = compute_loop(x, 256);
		n += 256;
	}
	t->t_pairs = n + (x == 0);
	if (t->t_private)
		umem_cache_destroy(cp);
	return (NULL);
}

/*
 * Million pairs (or loop iterations) per second with nt threads, all on
 * cp (private: a cache each; cp NULL: compute loop); one run.
 */
static double
throughput(umem_cache_t *cp, int nt, int private)
{
	double v = 0;
	int i;

	{
		pthread_t tid[MAXT];
		thr_t t[MAXT];
		atomic_int go = 0, stop = 0, ready = 0;
		uint64_t t0, total = 0;

		for (i = 0; i < nt; i++) {
			t[i].t_cp = cp;
			t[i].t_private = private;
			t[i].t_cpu = nth_cpu(i);
			t[i].t_go = &go;
			t[i].t_stop = &stop;
			t[i].t_ready = &ready;
			t[i].t_pairs = 0;
			if (pthread_create(&tid[i], NULL, thr_main, &t[i]) != 0)
				die("pthread_create failed");
		}
		while (atomic_load(&ready) < nt)
			sched_yield();
		t0 = now_ns();
		atomic_store_explicit(&go, 1, memory_order_release);
		while (now_ns() - t0 < (uint64_t)(opt_ms * 2e6)) {
			struct timespec ts = { 0, 2000000 };

			nanosleep(&ts, NULL);
		}
		atomic_store(&stop, 1);
		for (i = 0; i < nt; i++) {
			pthread_join(tid[i], NULL);
			total += t[i].t_pairs;
		}
		v = (double)total / ((double)(now_ns() - t0) / 1e9) / 1e6;
	}
	return (v);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof (double), cmp_dbl);
	return (v[n / 2]);
}

static void
bench_threads(res_t *r)
{
	umem_cache_t *mc = umem_cache_create("bench_thr_mag", 64, 0, NULL,
	    NULL, NULL, NULL, NULL, 0);
	umem_cache_t *nc = umem_cache_create("bench_thr_nomag", 64, 0, NULL,
	    NULL, NULL, NULL, NULL, UMC_NOMAGAZINE);
	cpu_set_t all;
	int nt, i;

	if (mc == NULL || nc == NULL)
		die("umem_cache_create failed");
	/* The main thread only waits; let it run anywhere. */
	CPU_ZERO(&all);
	for (i = 0; i < r->r_ncpu; i++)
		CPU_SET(nth_cpu(i), &all);
	(void) sched_setaffinity(0, sizeof (all), &all);
	/*
	 * Interleaved: each repetition measures every configuration, so
	 * that load from elsewhere falls on all of them alike.
	 */
	for (nt = 1; nt <= MAXT; nt++) {
		double v[4][32];
		int rep, reps = opt_reps < 32 ? opt_reps : 32;

		for (rep = 0; rep < reps; rep++) {
			v[0][rep] = throughput(mc, nt, 0);
			v[1][rep] = throughput(nc, nt, 0);
			v[2][rep] = throughput(NULL, nt, 1);
			v[3][rep] = throughput(NULL, nt, 0);
		}
		r->r_thr_mag[nt] = median(v[0], reps);
		r->r_thr_nomag[nt] = median(v[1], reps);
		r->r_thr_private[nt] = median(v[2], reps);
		r->r_thr_compute[nt] = median(v[3], reps);
	}
	umem_cache_destroy(mc);
	umem_cache_destroy(nc);
}

/*
 * ------------------------------------------------------------------------
 * (c) a costly constructor
 * ------------------------------------------------------------------------
 */
typedef struct cobj {
	pthread_mutex_t	co_lock;
	pthread_cond_t	co_cv;
	struct cobj	*co_next, *co_prev;	/* list head */
	uint64_t	co_refcnt;
	char		co_name[32];
} cobj_t;

static atomic_ulong ctor_calls;

static void
cobj_init(cobj_t *o)
{
	(void) pthread_mutex_init(&o->co_lock, NULL);
	(void) pthread_cond_init(&o->co_cv, NULL);
	o->co_next = o->co_prev = o;
	o->co_refcnt = 0;
	memcpy(o->co_name, "object", 7);
}

static void
cobj_fini(cobj_t *o)
{
	(void) pthread_cond_destroy(&o->co_cv);
	(void) pthread_mutex_destroy(&o->co_lock);
}

static int
cobj_ctor(void *buf, void *priv, int flags)
{
	(void) priv;
	(void) flags;
	cobj_init(buf);
	atomic_fetch_add_explicit(&ctor_calls, 1, memory_order_relaxed);
	return (0);
}

static void
cobj_dtor(void *buf, void *priv)
{
	(void) priv;
	cobj_fini(buf);
}

/* The client's use of an object: take its lock, bump a count. */
static void
cobj_use(cobj_t *o)
{
	pthread_mutex_lock(&o->co_lock);
	o->co_refcnt++;
	pthread_mutex_unlock(&o->co_lock);
}

static void
loop_cobj_cached(void *arg, uint64_t n)
{
	umem_cache_t *cp = arg;

	while (n-- > 0) {
		cobj_t *o = umem_cache_alloc(cp, UMEM_DEFAULT);

		cobj_use(o);
		umem_cache_free(cp, o);
	}
}

static void
loop_cobj_every(void *arg, uint64_t n)
{
	umem_cache_t *cp = arg;

	while (n-- > 0) {
		cobj_t *o = umem_cache_alloc(cp, UMEM_DEFAULT);

		cobj_init(o);
		cobj_use(o);
		cobj_fini(o);
		umem_cache_free(cp, o);
	}
}

static void
loop_cobj_malloc(void *arg, uint64_t n)
{
	(void) arg;
	while (n-- > 0) {
		cobj_t *o = malloc(sizeof (cobj_t));

		cobj_init(o);
		cobj_use(o);
		cobj_fini(o);
		free(o);
	}
}

static void
bench_ctor(res_t *r)
{
	umem_cache_t *cached = umem_cache_create("bench_cobj", sizeof (cobj_t),
	    0, cobj_ctor, cobj_dtor, NULL, NULL, NULL, 0);
	umem_cache_t *plain = umem_cache_create("bench_cobj_raw",
	    sizeof (cobj_t), 0, NULL, NULL, NULL, NULL, NULL, 0);
	umem_cache_t *nomag = umem_cache_create("bench_cobj_nomag",
	    sizeof (cobj_t), 0, cobj_ctor, cobj_dtor, NULL, NULL, NULL,
	    UMC_NOMAGAZINE);
	umem_cache_stat_t st;

	if (cached == NULL || plain == NULL || nomag == NULL)
		die("umem_cache_create failed");
	pin(nth_cpu(0));
	r->r_ctor_cached = time_loop(loop_cobj_cached, cached);
	if (umem_cache_getstat(cached, &st) == 0 && st.cs_alloc > 0)
		r->r_ctor_calls = 1000.0 * (double)st.cs_ctor /
		    (double)st.cs_alloc;
	r->r_ctor_every = time_loop(loop_cobj_every, plain);
	r->r_ctor_malloc = time_loop(loop_cobj_malloc, NULL);
	r->r_ctor_nomag = time_loop(loop_cobj_cached, nomag);
	umem_cache_destroy(cached);
	umem_cache_destroy(plain);
	umem_cache_destroy(nomag);
}

/*
 * ------------------------------------------------------------------------
 * (d) depot accesses in the thrash loop
 * ------------------------------------------------------------------------
 */
static int
test_bit(unsigned long long *s)
{
	unsigned long long x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return ((int)((x * 2685821657736338717ull) >> 63));
}

static void
bench_depot(res_t *r)
{
	uint64_t nops = opt_quick ? 4000 : 400000;
	unsigned long long seed = 42;
	size_t off, i, M = 0;
	void **live;

	pin(nth_cpu(0));
	r->r_ok = 1;
	for (off = 0; ; off++) {
		umem_cache_t *cp = umem_cache_create("bench_thrash", 64, 0,
		    NULL, NULL, NULL, NULL, NULL, 0);
		umem_cache_stat_t s0, s1;
		size_t nlive = 0;
		double ops, exch;

		if (cp == NULL || umem_cache_getstat(cp, &s0) != 0)
			die("umem_cache_create failed");
		M = s0.cs_magsize;
		if (M == 0)
			die("no magazines");
		if (off > 2 * M) {
			umem_cache_destroy(cp);
			break;
		}
		live = calloc(4 * M + off + 4, sizeof (void *));
		/* 4M objects into magazines, then off rounds into one. */
		for (i = 0; i < 4 * M; i++)
			live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
		while (nlive > 0)
			umem_cache_free(cp, live[--nlive]);
		for (i = 0; i < off; i++)
			live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
		(void) umem_cache_getstat(cp, &s0);
		for (i = 0; i < nops / 4; i++) {
			live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
			live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
			umem_cache_free(cp, live[--nlive]);
			umem_cache_free(cp, live[--nlive]);
		}
		(void) umem_cache_getstat(cp, &s1);
		ops = (double)(s1.cs_depot_alloc + s1.cs_depot_free -
		    s0.cs_depot_alloc - s0.cs_depot_free) / (double)nops;
		exch = (double)(s1.cs_depot_alloc - s0.cs_depot_alloc) /
		    (double)nops;
		if (ops > r->r_depot_ops)
			r->r_depot_ops = ops;
		if (exch > r->r_depot_exch) {
			r->r_depot_exch = exch;
			r->r_depot_exch_n = s1.cs_depot_alloc -
			    s0.cs_depot_alloc;
		}
		r->r_depot_nops = nops;
		if ((double)(s1.cs_slab_alloc - s0.cs_slab_alloc +
		    s1.cs_slab_free - s0.cs_slab_free) / (double)nops >
		    r->r_depot_slab)
			r->r_depot_slab = (double)(s1.cs_slab_alloc -
			    s0.cs_slab_alloc + s1.cs_slab_free -
			    s0.cs_slab_free) / (double)nops;
		if (s1.cs_alloc - s0.cs_alloc != nops / 2)
			r->r_ok = 0;
		while (nlive > 0)
			umem_cache_free(cp, live[--nlive]);
		umem_cache_destroy(cp);
		free(live);
	}
	r->r_M = (int)M;

	/* A random walk over [0, 6M] live objects, for comparison. */
	{
		umem_cache_t *cp = umem_cache_create("bench_walk", 64, 0,
		    NULL, NULL, NULL, NULL, NULL, 0);
		umem_cache_stat_t s0, s1;
		size_t nlive = 0, cap = 6 * M;

		live = calloc(cap + 1, sizeof (void *));
		for (i = 0; i < cap; i++)
			live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
		while (nlive > 0)
			umem_cache_free(cp, live[--nlive]);
		(void) umem_cache_getstat(cp, &s0);
		for (i = 0; i < nops; i++) {
			if (nlive == 0 || (nlive < cap && (test_bit(&seed))))
				live[nlive++] = umem_cache_alloc(cp,
				    UMEM_DEFAULT);
			else
				umem_cache_free(cp, live[--nlive]);
		}
		(void) umem_cache_getstat(cp, &s1);
		r->r_walk_exch = (double)(s1.cs_depot_alloc -
		    s0.cs_depot_alloc) / (double)nops;
		while (nlive > 0)
			umem_cache_free(cp, live[--nlive]);
		umem_cache_destroy(cp);
		free(live);
	}
	if (r->r_depot_exch > 1.0 / (double)M + 2.0 / (double)nops)
		r->r_ok = 0;
}

/*
 * ------------------------------------------------------------------------
 * A child: one per-CPU mode
 * ------------------------------------------------------------------------
 */
static void
print_mode(const res_t *r)
{
	int i, nt;

	printf("== per-CPU mode: %s  (%d CPUs)\n\n", r->r_mode, r->r_ncpu);
	printf("(a) alloc+free pair, one thread pinned to one CPU: ns per "
	    "pair (median of %d runs of >= %.0f ms)\n", opt_reps, opt_ms);
	printf("%8s %10s %12s %12s %12s %12s %12s\n", "size", "magazines",
	    "UMC_NOMAG", "2 lock pairs", "glibc malloc", "nomag/mag",
	    "mag/locks");
	printf("%8s %10s %12s %12s %12s %12s %12s\n", "", "", "", "", "",
	    "(paper 2.09)", "(paper 1.91)");
	for (i = 0; i < NSIZES; i++)
		printf("%8zu %10.2f %12.2f %12.2f %12.2f %12.2f %12.2f\n",
		    sizes[i], r->r_mag[i], r->r_nomag[i], r->r_locks,
		    r->r_malloc[i], r->r_nomag[i] / r->r_mag[i],
		    r->r_mag[i] / r->r_locks);

	printf("\n(b) throughput against threads: one shared 64-byte cache, "
	    "thread i pinned to CPU i mod %d;\n    million alloc+free pairs "
	    "per second, all threads together (median of %d runs of %.0f "
	    "ms)\n", r->r_ncpu, opt_reps, 2 * opt_ms);
	printf("%8s %10s %8s %12s %8s %10s | %13s %8s | %11s %8s\n",
	    "threads", "magazines", "speedup", "UMC_NOMAG", "speedup",
	    "mag/nomag", "private cache", "speedup", "compute", "speedup");
	for (nt = 1; nt <= MAXT; nt++)
		printf("%8d %10.1f %8.2f %12.1f %8.2f %10.1f | %13.1f %8.2f | "
		    "%11.1f %8.2f\n", nt,
		    r->r_thr_mag[nt], r->r_thr_mag[nt] / r->r_thr_mag[1],
		    r->r_thr_nomag[nt], r->r_thr_nomag[nt] / r->r_thr_nomag[1],
		    r->r_thr_mag[nt] / r->r_thr_nomag[nt],
		    r->r_thr_private[nt], r->r_thr_private[nt] /
		    r->r_thr_private[1], r->r_thr_compute[nt],
		    r->r_thr_compute[nt] / r->r_thr_compute[1]);
	printf("    controls: \"private cache\" = each thread its own "
	    "64-byte cache (nothing shared);\n    \"compute\" = a "
	    "register-only loop, million iterations/s: what 2 CPUs give "
	    "here\n");

	printf("\n(c) a costly constructor: %zu-byte object with a mutex, a "
	    "condition variable and a list head;\n    ns per alloc + use "
	    "(lock, count, unlock) + free\n", sizeof (cobj_t));
	printf("    %-46s %8.1f   (constructor runs: %.2f per 1000 "
	    "allocations)\n", "object cache (constructed state cached)",
	    r->r_ctor_cached, r->r_ctor_calls);
	printf("    %-46s %8.1f   %.2fx the cached cost\n",
	    "cache without ctor, construct+destroy each time",
	    r->r_ctor_every, r->r_ctor_every / r->r_ctor_cached);
	printf("    %-46s %8.1f   %.2fx\n", "glibc malloc, construct+destroy "
	    "each time", r->r_ctor_malloc, r->r_ctor_malloc /
	    r->r_ctor_cached);
	printf("    %-46s %8.1f   %.2fx\n", "UMC_NOMAGAZINE cache with ctor "
	    "(slab layer)", r->r_ctor_nomag, r->r_ctor_nomag /
	    r->r_ctor_cached);
	printf("    (Bonwick 1994 measured 1.3x to 5.1x for object caching)\n");

	printf("\n(d) depot accesses in the alloc-alloc-free-free loop, "
	    "64-byte objects (M = %d),\n    started at every offset 0..2M "
	    "into a magazine:\n", r->r_M);
	printf("    worst depot exchanges per operation   %.5f   (%llu in "
	    "%llu operations; bound 1/M = %.5f;\n%42s one magazine, no "
	    "previous: 0.5)\n", r->r_depot_exch,
	    (unsigned long long)r->r_depot_exch_n,
	    (unsigned long long)r->r_depot_nops, 1.0 / r->r_M, "");
	printf("    worst depot gets+puts per operation   %.5f\n",
	    r->r_depot_ops);
	printf("    slab-layer trips per operation        %.5f\n",
	    r->r_depot_slab);
	printf("    random walk over [0, 6M] live objects: %.5f exchanges "
	    "per operation\n", r->r_walk_exch);
	printf("    set-up checks: %s\n\n", r->r_ok ? "ok" : "FAILED");
	fflush(stdout);
}

static int
child_main(const char *fdarg)
{
	res_t r;
	int fd = atoi(fdarg);
	const char *m;

	memset(&r, 0, sizeof (r));
	m = umem_percpu_mode();
	snprintf(r.r_mode, sizeof (r.r_mode), "%s", m);
	r.r_ncpu = ncpus();
	bench_depot(&r);
	bench_single(&r);
	bench_ctor(&r);
	bench_threads(&r);
	print_mode(&r);
	if (write(fd, &r, sizeof (r)) != (ssize_t)sizeof (r))
		return (1);
	close(fd);
	return (0);
}

/*
 * ------------------------------------------------------------------------
 * The parent: run both modes, summarise, plot
 * ------------------------------------------------------------------------
 */
static int
run_mode(char **argv0, const char *umem_options, res_t *r)
{
	char self[4096], fdbuf[16], msbuf[32], repbuf[16];
	int fds[2], st = 0;
	pid_t pid;
	ssize_t len, n = 0;

	len = readlink("/proc/self/exe", self, sizeof (self) - 1);
	if (len <= 0)
		die("readlink(/proc/self/exe) failed");
	self[len] = '\0';
	if (pipe(fds) != 0)
		die("pipe failed");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		char *args[10];
		int a = 0;

		close(fds[0]);
		if (umem_options != NULL)
			setenv("UMEM_OPTIONS", umem_options, 1);
		else
			unsetenv("UMEM_OPTIONS");
		snprintf(fdbuf, sizeof (fdbuf), "%d", fds[1]);
		snprintf(msbuf, sizeof (msbuf), "%g", opt_ms);
		snprintf(repbuf, sizeof (repbuf), "%d", opt_reps);
		args[a++] = self;
		args[a++] = (char *)"--ms";
		args[a++] = msbuf;
		args[a++] = (char *)"--reps";
		args[a++] = repbuf;
		if (opt_quick)
			args[a++] = (char *)"--quick";
		args[a++] = (char *)"--child";
		args[a++] = fdbuf;
		args[a] = NULL;
		execv(self, args);
		_exit(127);
	}
	(void) argv0;
	close(fds[1]);
	while (n < (ssize_t)sizeof (*r)) {
		ssize_t k = read(fds[0], (char *)r + n, sizeof (*r) - (size_t)n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += k;
	}
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof (*r) || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		fprintf(stderr, "umem_bench: the %s child failed (status %#x)\n",
		    umem_options ? umem_options : "default", st);
		return (-1);
	}
	return (0);
}

static void
write_svg(const char *path, const res_t *rs, int nr)
{
	static double x[MAXT], ythr[5][MAXT], xs[NSIZES], ylat[6][NSIZES];
	static char lab[11][96];
	plot_series_t s1[5], s2[6];
	plot_t p[2];
	int i, k, n1 = 0, n2 = 0;

	for (i = 0; i < MAXT; i++)
		x[i] = i + 1;
	for (i = 0; i < NSIZES; i++)
		xs[i] = (double)sizes[i];
	for (k = 0; k < nr && k < 2; k++) {
		for (i = 0; i < MAXT; i++) {
			ythr[2 * k][i] = rs[k].r_thr_mag[i + 1];
			ythr[2 * k + 1][i] = rs[k].r_thr_nomag[i + 1];
		}
		snprintf(lab[2 * k], sizeof (lab[0]), "magazines, %.31s",
		    rs[k].r_mode);
		snprintf(lab[2 * k + 1], sizeof (lab[0]), "UMC_NOMAGAZINE, %.31s",
		    rs[k].r_mode);
		s1[n1++] = (plot_series_t){ lab[2 * k], NULL, k, MAXT, x,
		    ythr[2 * k] };
		s1[n1++] = (plot_series_t){ lab[2 * k + 1], NULL, k, MAXT, x,
		    ythr[2 * k + 1] };
		for (i = 0; i < NSIZES; i++) {
			ylat[2 * k][i] = rs[k].r_mag[i];
			ylat[2 * k + 1][i] = rs[k].r_nomag[i];
		}
		snprintf(lab[4 + 2 * k], sizeof (lab[0]), "magazines, %.31s",
		    rs[k].r_mode);
		snprintf(lab[5 + 2 * k], sizeof (lab[0]),
		    "UMC_NOMAGAZINE, %.31s", rs[k].r_mode);
		s2[n2++] = (plot_series_t){ lab[4 + 2 * k], NULL, k, NSIZES,
		    xs, ylat[2 * k] };
		s2[n2++] = (plot_series_t){ lab[5 + 2 * k], NULL, k, NSIZES,
		    xs, ylat[2 * k + 1] };
	}
	/* Linear scaling from one thread, up to the number of CPUs. */
	for (i = 0; i < MAXT; i++)
		ythr[4][i] = rs[0].r_thr_mag[1] * (double)(i + 1 <
		    rs[0].r_ncpu ? i + 1 : rs[0].r_ncpu);
	snprintf(lab[10], sizeof (lab[0]), "linear scaling to %d CPUs "
	    "(magazines, %.31s)", rs[0].r_ncpu, rs[0].r_mode);
	s1[n1++] = (plot_series_t){ lab[10], "#999999", 1, MAXT, x, ythr[4] };
	for (i = 0; i < NSIZES; i++) {
		ylat[4][i] = rs[0].r_locks;
		ylat[5][i] = rs[0].r_malloc[i];
	}
	snprintf(lab[8], sizeof (lab[0]), "two uncontended mutex lock/unlock "
	    "pairs");
	snprintf(lab[9], sizeof (lab[0]), "glibc malloc+free");
	s2[n2++] = (plot_series_t){ lab[8], "#000000", 1, NSIZES, xs,
	    ylat[4] };
	s2[n2++] = (plot_series_t){ lab[9], "#999999", 1, NSIZES, xs,
	    ylat[5] };

	memset(p, 0, sizeof (p));
	p[0].pl_title = "Object-cache throughput against threads "
	    "(Bonwick & Adams 2001, Fig. 3.8 analog)";
	p[0].pl_subtitle = "one shared 64-byte cache, alloc+free pairs, "
	    "thread i pinned to CPU i mod ncpu";
	p[0].pl_xlabel = "threads";
	p[0].pl_ylabel = "million pairs per second (all threads)";
	p[0].pl_logy = 1;
	p[0].pl_legend_below = 1;
	p[0].pl_series = s1;
	p[0].pl_nseries = (size_t)n1;
	p[1].pl_title = "alloc+free latency, one pinned thread";
	p[1].pl_subtitle = "median ns per pair against object size";
	p[1].pl_xlabel = "object size (bytes)";
	p[1].pl_ylabel = "ns per alloc+free pair";
	p[1].pl_logx = 1;
	p[1].pl_logy = 1;
	p[1].pl_legend_below = 1;
	p[1].pl_series = s2;
	p[1].pl_nseries = (size_t)n2;
	if (plot_svg_file(p, 2, path) != 0) {
		fprintf(stderr, "umem_bench: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static const char *
yesno(int met)
{
	return (opt_quick ? "n/a" : met ? "yes" : "NO");
}

static void
loadavg(char *buf, size_t len)
{
	FILE *fp = fopen("/proc/loadavg", "r");

	buf[0] = '\0';
	if (fp != NULL) {
		if (fgets(buf, (int)len, fp) != NULL)
			buf[strcspn(buf, " ")] = '\0';
		fclose(fp);
	}
}

static void
summary(const res_t *rs, int nr)
{
	const res_t *rq = &rs[0];
	double pair = rq->r_mag[SIZE_MAIN];
	double vs = rq->r_nomag[SIZE_MAIN] / pair;
	double sc2 = rq->r_thr_mag[2] / rq->r_thr_mag[1];
	double ctl = rq->r_thr_compute[2] / rq->r_thr_compute[1];
	int k, is_rseq = strncmp(rq->r_mode, "rseq", 4) == 0;
	/* The machine gave two CPUs' worth to the control loop? */
	int quiet = ctl >= 1.8 && ctl <= 2.2;

	printf("== Summary, 64-byte objects\n\n");
	printf("%-44s", "");
	for (k = 0; k < nr; k++)
		printf(" %14s", rs[k].r_mode);
	printf(" %14s\n", "paper (2001)");
	printf("%-44s", "ns per pair, magazines");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_mag[SIZE_MAIN]);
	printf(" %14s\n", "356");
	printf("%-44s", "ns per pair, UMC_NOMAGAZINE (slab layer)");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_nomag[SIZE_MAIN]);
	printf(" %14s\n", "743");
	printf("%-44s", "ns, two uncontended mutex lock/unlock pairs");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_locks);
	printf(" %14s\n", "186");
	printf("%-44s", "ratio UMC_NOMAGAZINE / magazines");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_nomag[SIZE_MAIN] /
		    rs[k].r_mag[SIZE_MAIN]);
	printf(" %14s\n", "2.09");
	printf("%-44s", "ratio magazines / two lock pairs");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_mag[SIZE_MAIN] / rs[k].r_locks);
	printf(" %14s\n", "1.91");
	printf("%-44s", "speedup, 2 threads vs 1 (magazines)");
	for (k = 0; k < nr; k++) {
		double c = rs[k].r_thr_compute[2] / rs[k].r_thr_compute[1];

		printf(" %13.2f%c", rs[k].r_thr_mag[2] / rs[k].r_thr_mag[1],
		    c >= 1.8 && c <= 2.2 ? ' ' : '*');
	}
	printf(" %14s\n", "2.0 (16 at 16)");
	printf("%-44s", "speedup, 2 threads vs 1 (private caches)");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_thr_private[2] /
		    rs[k].r_thr_private[1]);
	printf(" %14s\n", "");
	printf("%-44s", "speedup, 2 threads vs 1 (compute loop)");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_thr_compute[2] /
		    rs[k].r_thr_compute[1]);
	printf(" %14s\n", "(the machine)");
	printf("%-44s\n", "  (*: the compute loop did not get 2 CPUs: busy machine)");
	printf("%-44s", "speedup, 2 threads vs 1 (UMC_NOMAGAZINE)");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_thr_nomag[2] / rs[k].r_thr_nomag[1]);
	printf(" %14s\n", "< 1");
	printf("%-44s", "costly ctor: construct-each-time / cached");
	for (k = 0; k < nr; k++)
		printf(" %14.2f", rs[k].r_ctor_every / rs[k].r_ctor_cached);
	printf(" %14s\n", "1.3-5.1 (1994)");
	printf("%-44s", "thrash loop: worst depot exchanges per op");
	for (k = 0; k < nr; k++)
		printf(" %14.4f", rs[k].r_depot_exch);
	printf(" %14s\n", "<= 1/M");

	printf("\nGoals (%s):\n", opt_quick ? "QUICK smoke run: timings are "
	    "not meaningful, not judged" : "measured on this machine");
	printf("  [%s] umem_cache_alloc+umem_cache_free <= %.0f ns per pair "
	    "in rseq mode: %.2f ns (%s)\n", yesno(is_rseq &&
	    pair <= GOAL_PAIR_NS), GOAL_PAIR_NS, pair, rq->r_mode);
	printf("  [%s] magazines >= %.0fx faster than magazine-less: %.2fx\n",
	    yesno(vs >= GOAL_VS_NOMAG), GOAL_VS_NOMAG, vs);
	printf("  [%s] 2 threads on 2 cores >= %.1fx one thread: %.2fx%s "
	    "(%s; the compute loop: %.2fx%s)\n", !quiet && !opt_quick ?
	    "n/a: machine busy" : yesno(sc2 >= GOAL_SCALE2 &&
	    rq->r_ncpu >= 2), GOAL_SCALE2, sc2,
	    rq->r_ncpu >= 2 ? "" : " (fewer than 2 CPUs)", rq->r_mode, ctl,
	    quiet ? "" : ", not 1.8-2.2: other load on the CPUs, throughput "
	    "figures unreliable");
	printf("  [%s] thrash loop within the 1/M bound in every mode\n",
	    rs[0].r_ok && (nr < 2 || rs[1].r_ok) ? "yes" : "NO");
}

static void
usage(void)
{
	fprintf(stderr, "usage: umem_bench [--quick] [--svg FILE] [--ms N] "
	    "[--reps N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *childfd = NULL;
	res_t rs[2];
	struct utsname un;
	char la0[32], la1[32];
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			opt_quick = 1;
		else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc)
			opt_svg = argv[++i];
		else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
			opt_ms = atof(argv[++i]);
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			opt_reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--child") == 0 && i + 1 < argc)
			childfd = argv[++i];
		else
			usage();
	}
	if (opt_quick) {
		opt_ms = 2;
		opt_reps = 1;
	}
	if (opt_reps < 1 || !(opt_ms > 0))
		usage();
	if (childfd != NULL)
		return (child_main(childfd));

	(void) uname(&un);
	loadavg(la0, sizeof (la0));
	printf("umem_bench: object caches and magazines (Bonwick & Adams "
	    "2001 §3.8; Bonwick 1994)\n");
	printf("  %s %s, glibc %s, %d CPUs, compiler %s\n", un.sysname,
	    un.release, gnu_get_libc_version(), ncpus(), __VERSION__);
	printf("  timings: clock_gettime(CLOCK_MONOTONIC); each mode runs in "
	    "its own process%s\n\n", opt_quick ? "; QUICK smoke run" : "");
	if (run_mode(argv, NULL, &rs[0]) != 0 ||
	    run_mode(argv, "percpu=thread", &rs[1]) != 0)
		return (1);
	summary(rs, 2);
	loadavg(la1, sizeof (la1));
	printf("  load average (1 min) before %s, after %s\n", la0, la1);
	if (opt_svg != NULL)
		write_svg(opt_svg, rs, 2);
	if (!rs[0].r_ok || !rs[1].r_ok)
		rc = 1;
	return (rc);
}
