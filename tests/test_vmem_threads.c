/*
 * test_vmem_threads.c - vmem under concurrency: 8 threads on one ID arena
 * with an ownership shadow (every ID has at most one owner), 8 threads on
 * a memory arena checking their contents, threads on an importing arena,
 * next fit from several threads, reentrant walks during traffic, and
 * VM_SLEEP: a request on a full arena blocks until another thread frees
 * enough, while VM_NOSLEEP fails at once.
 */
#include "test.h"
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))
#define	X(p)	((uintptr_t)(p))
#define	NTHREADS	8

#ifdef TU_SAN
#define	SANITIZED	1
#else
#define	SANITIZED	0
#endif

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Join with a deadline; a thread that never returns fails the test. */
static int
join_within(pthread_t t, double secs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)secs;
	return (pthread_timedjoin_np(t, NULL, &ts) == 0);
}

/*
 * A thread stuck in vmem means a hang we cannot undo: report and exit
 * rather than wait for the harness to time out.
 */
static void
hung(const char *what)
{
	fprintf(stderr, "  FAIL %s: %s did not return\n", test_cur_name, what);
	test_failed++;
	exit(test_summary("test_vmem_threads"));
}

/* ------------------------------------------------------------------ */

#define	ID_BASE		1
#define	ID_SPACE	(1 << 18)
#define	LIVE		256

static vmem_t *id_arena;
static unsigned char id_owner[ID_BASE + ID_SPACE];
static int id_iters;

typedef struct worker {
	pthread_t	w_tid;
	int		w_tag;
	unsigned long long w_seed;
	long		w_errors;
	long		w_allocs, w_fails;
} worker_t;

static void *
id_worker(void *arg)
{
	worker_t *w = arg;
	uintptr_t live[LIVE];
	size_t sz[LIVE];
	int i, j;

	memset(live, 0, sizeof (live));
	for (i = 0; i < id_iters; i++) {
		int slot = (int)(test_rand(&w->w_seed) % LIVE);
		unsigned long long r = test_rand(&w->w_seed);

		if (live[slot] != 0) {
			for (j = 0; j < (int)sz[slot]; j++) {
				if (id_owner[live[slot] + j] != w->w_tag)
					w->w_errors++;
				id_owner[live[slot] + j] = 0;
			}
			if (r % 2)
				vmem_free(id_arena, A(live[slot]), sz[slot]);
			else
				vmem_xfree(id_arena, A(live[slot]), sz[slot]);
			live[slot] = 0;
			continue;
		}
		sz[slot] = 1 + r % 64;
		switch ((r >> 8) % 5) {
		case 0:
			live[slot] = X(vmem_alloc(id_arena, sz[slot],
			    VM_NOSLEEP | VM_BESTFIT));
			break;
		case 1:
			live[slot] = X(vmem_xalloc(id_arena, sz[slot],
			    (size_t)1 << (r >> 16) % 8, 0, 0, NULL, NULL,
			    VM_NOSLEEP));
			break;
		case 2:
			live[slot] = X(vmem_xalloc(id_arena, sz[slot], 0, 0,
			    128, A(ID_BASE + (r >> 20) % (ID_SPACE / 2)), NULL,
			    VM_NOSLEEP));
			break;
		default:
			live[slot] = X(vmem_alloc(id_arena, sz[slot],
			    VM_NOSLEEP));
			break;
		}
		if (live[slot] == 0) {
			w->w_fails++;
			continue;
		}
		w->w_allocs++;
		if (live[slot] < ID_BASE || live[slot] + sz[slot] > ID_BASE +
		    ID_SPACE) {
			w->w_errors++;
			live[slot] = 0;
			continue;
		}
		for (j = 0; j < (int)sz[slot]; j++) {
			if (id_owner[live[slot] + j] != 0)
				w->w_errors++;
			id_owner[live[slot] + j] = (unsigned char)w->w_tag;
		}
	}
	for (i = 0; i < LIVE; i++) {
		if (live[i] == 0)
			continue;
		for (j = 0; j < (int)sz[i]; j++)
			id_owner[live[i] + j] = 0;
		vmem_free(id_arena, A(live[i]), sz[i]);
	}
	return (NULL);
}

/* Every ID has at most one owner at a time, whatever the interleaving. */
static void
test_id_stress(void)
{
	worker_t w[NTHREADS];
	vmem_stat_t st;
	long errors = 0, allocs = 0;
	int i;

	id_iters = SANITIZED ? 40000 : 400000;
	id_arena = vmem_create("ids", A(ID_BASE), ID_SPACE, 1, NULL, NULL,
	    NULL, 0, VM_SLEEP);
	CHECK(id_arena != NULL);
	if (id_arena == NULL)
		return;
	memset(id_owner, 0, sizeof (id_owner));
	for (i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof (w[i]));
		w[i].w_tag = i + 1;
		w[i].w_seed = 1000 + (unsigned long long)i;
		CHECK(pthread_create(&w[i].w_tid, NULL, id_worker, &w[i]) == 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		if (!join_within(w[i].w_tid, 300))
			hung("id_worker");
		errors += w[i].w_errors;
		allocs += w[i].w_allocs;
	}
	CHECKF(errors == 0, "%ld ownership violations", errors);
	CHECK(allocs > (long)id_iters);
	CHECK(vmem_getstat(id_arena, &st) == 0);
	CHECK(st.vk_mem_inuse == 0 && st.vk_nsegs_alloc == 0 &&
	    st.vk_alloc == (uint64_t)allocs && st.vk_free == (uint64_t)allocs &&
	    st.vk_nsegs_free == 1);
	CHECK(vmem_verify(id_arena) == 0);
	vmem_destroy(id_arena);
}

/* ------------------------------------------------------------------ */

#define	MEM_SIZE	(8 << 20)

static vmem_t *mem_arena;
static int mem_iters;

static void *
mem_worker(void *arg)
{
	worker_t *w = arg;
	unsigned char *live[LIVE / 4];
	size_t sz[LIVE / 4];
	int i, nlive = LIVE / 4;
	size_t j;

	memset(live, 0, sizeof (live));
	for (i = 0; i < mem_iters; i++) {
		int slot = (int)(test_rand(&w->w_seed) % (unsigned)nlive);

		if (live[slot] != NULL) {
			for (j = 0; j < sz[slot]; j += 7)
				if (live[slot][j] != (unsigned char)w->w_tag)
					w->w_errors++;
			vmem_free(mem_arena, live[slot], sz[slot]);
			live[slot] = NULL;
			continue;
		}
		sz[slot] = 16 * (1 + test_rand(&w->w_seed) % 256);
		live[slot] = vmem_alloc(mem_arena, sz[slot], VM_NOSLEEP);
		if (live[slot] == NULL) {
			w->w_fails++;
			continue;
		}
		w->w_allocs++;
		memset(live[slot], w->w_tag, sz[slot]);
	}
	for (i = 0; i < nlive; i++)
		if (live[i] != NULL)
			vmem_free(mem_arena, live[i], sz[i]);
	return (NULL);
}

/* A memory arena: each thread's bytes stay its own. */
static void
test_mem_stress(void)
{
	unsigned char *buf = aligned_alloc(4096, MEM_SIZE);
	worker_t w[NTHREADS];
	long errors = 0;
	int i;

	CHECK(buf != NULL);
	if (buf == NULL)
		return;
	mem_iters = SANITIZED ? 10000 : 100000;
	mem_arena = vmem_create("mem", buf, MEM_SIZE, 16, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	CHECK(mem_arena != NULL);
	if (mem_arena == NULL)
		return;
	for (i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof (w[i]));
		w[i].w_tag = 0x11 * (i + 1);
		w[i].w_seed = 77 + (unsigned long long)i;
		CHECK(pthread_create(&w[i].w_tid, NULL, mem_worker, &w[i]) ==
		    0);
	}
	for (i = 0; i < NTHREADS; i++) {
		if (!join_within(w[i].w_tid, 300))
			hung("mem_worker");
		errors += w[i].w_errors;
	}
	CHECKF(errors == 0, "%ld corrupted bytes", errors);
	CHECK(vmem_size(mem_arena, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(mem_arena) == 0);
	vmem_destroy(mem_arena);
	free(buf);
}

/* ------------------------------------------------------------------ */

static vmem_t *imp_parent, *imp_child;

static void *
import_worker(void *arg)
{
	worker_t *w = arg;
	void *live[32];
	size_t sz[32];
	int i;

	memset(live, 0, sizeof (live));
	for (i = 0; i < mem_iters; i++) {
		int slot = (int)(test_rand(&w->w_seed) % 32);

		if (live[slot] != NULL) {
			vmem_free(imp_child, live[slot], sz[slot]);
			live[slot] = NULL;
			continue;
		}
		sz[slot] = 4096 * (1 + test_rand(&w->w_seed) % 8);
		live[slot] = vmem_alloc(imp_child, sz[slot], VM_NOSLEEP);
		if (live[slot] == NULL)
			w->w_fails++;
		else if (!vmem_contains(imp_parent, live[slot], sz[slot]))
			w->w_errors++;
	}
	for (i = 0; i < 32; i++)
		if (live[i] != NULL)
			vmem_free(imp_child, live[i], sz[i]);
	return (NULL);
}

/* Imports and span returns racing: everything comes back at the end. */
static void
test_import_stress(void)
{
	worker_t w[4];
	vmem_stat_t st;
	long errors = 0;
	int i;

	imp_parent = vmem_create("tparent", A(0x10000000), 1 << 30, 4096,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	imp_child = vmem_create("tchild", NULL, 0, 4096, vmem_alloc,
	    vmem_free, imp_parent, 0, VM_SLEEP);
	CHECK(imp_parent != NULL && imp_child != NULL);
	if (imp_parent == NULL || imp_child == NULL)
		return;
	for (i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof (w[i]));
		w[i].w_seed = 5 + (unsigned long long)i;
		CHECK(pthread_create(&w[i].w_tid, NULL, import_worker, &w[i]) ==
		    0);
	}
	for (i = 0; i < 4; i++) {
		if (!join_within(w[i].w_tid, 300))
			hung("import_worker");
		errors += w[i].w_errors + w[i].w_fails;
	}
	CHECKF(errors == 0, "%ld errors or failed allocations", errors);
	CHECK(vmem_getstat(imp_child, &st) == 0);
	CHECKF(st.vk_nspans == 0 && st.vk_mem_total == 0 && st.vk_import > 0 &&
	    st.vk_span_release == st.vk_import, "child: %llu spans, %llu "
	    "imports, %llu releases", (unsigned long long)st.vk_nspans,
	    (unsigned long long)st.vk_import,
	    (unsigned long long)st.vk_span_release);
	CHECK(vmem_size(imp_parent, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(imp_child) == 0 && vmem_verify(imp_parent) == 0);
	vmem_destroy(imp_child);
	vmem_destroy(imp_parent);
}

/* ------------------------------------------------------------------ */

static vmem_t *nf_arena;
static unsigned char nf_owner[1 + 4096];

static void *
nextfit_worker(void *arg)
{
	worker_t *w = arg;
	uintptr_t mine[16];
	int i, n = 0;

	for (i = 0; i < mem_iters; i++) {
		if (n == 16 || (n > 0 && test_rand(&w->w_seed) % 2)) {
			uintptr_t id = mine[--n];

			if (nf_owner[id] != w->w_tag)
				w->w_errors++;
			nf_owner[id] = 0;
			vmem_free(nf_arena, A(id), 1);
			continue;
		}
		mine[n] = X(vmem_alloc(nf_arena, 1, VM_NOSLEEP | VM_NEXTFIT));
		if (mine[n] == 0 || mine[n] > 4096) {
			w->w_errors++;
			continue;
		}
		if (nf_owner[mine[n]] != 0)
			w->w_errors++;
		nf_owner[mine[n]] = (unsigned char)w->w_tag;
		n++;
	}
	while (n > 0) {
		nf_owner[mine[--n]] = 0;
		vmem_free(nf_arena, A(mine[n]), 1);
	}
	return (NULL);
}

/* Next fit from several threads: IDs are unique while held. */
static void
test_nextfit_threads(void)
{
	worker_t w[4];
	long errors = 0;
	int i;

	nf_arena = vmem_create("nf", A(1), 4096, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	if (nf_arena == NULL)
		return;
	memset(nf_owner, 0, sizeof (nf_owner));
	for (i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof (w[i]));
		w[i].w_tag = i + 1;
		w[i].w_seed = 99 + (unsigned long long)i;
		CHECK(pthread_create(&w[i].w_tid, NULL, nextfit_worker, &w[i]) ==
		    0);
	}
	for (i = 0; i < 4; i++) {
		if (!join_within(w[i].w_tid, 300))
			hung("nextfit_worker");
		errors += w[i].w_errors;
	}
	CHECKF(errors == 0, "%ld duplicate or bad IDs", errors);
	CHECK(vmem_size(nf_arena, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(nf_arena) == 0);
	vmem_destroy(nf_arena);
}

/* ------------------------------------------------------------------ */

static vmem_t *walk_arena;
static volatile int walk_stop;
static long walk_visits;

static void
walk_cb(void *arg, void *start, size_t size)
{
	size_t *sum = arg;

	*sum += size;
	if (X(start) < 0x100000 || X(start) + size > 0x100000 + (1 << 20))
		walk_visits = -1000000000L;
	else
		walk_visits++;
}

static void *
walker(void *arg)
{
	while (!__atomic_load_n(&walk_stop, __ATOMIC_ACQUIRE)) {
		size_t sum = 0;

		vmem_walk(walk_arena, VMEM_ALLOC | VMEM_FREE | VMEM_REENTRANT,
		    walk_cb, &sum);
		vmem_walk(walk_arena, VMEM_ALLOC | VMEM_FREE, walk_cb, &sum);
	}
	return (NULL);
}

static void *
walk_traffic(void *arg)
{
	worker_t *w = arg;
	void *live[64];
	int i;

	memset(live, 0, sizeof (live));
	for (i = 0; i < mem_iters; i++) {
		int slot = (int)(test_rand(&w->w_seed) % 64);

		if (live[slot] != NULL) {
			vmem_free(walk_arena, live[slot], 4096);
			live[slot] = NULL;
		} else {
			live[slot] = vmem_alloc(walk_arena, 4096, VM_NOSLEEP);
		}
	}
	for (i = 0; i < 64; i++)
		if (live[i] != NULL)
			vmem_free(walk_arena, live[i], 4096);
	return (NULL);
}

/* Walks, reentrant or not, run safely alongside allocations. */
static void
test_walk_during_traffic(void)
{
	pthread_t wt;
	worker_t w[3];
	int i;

	walk_arena = vmem_create("walked", A(0x100000), 1 << 20, 4096, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	if (walk_arena == NULL)
		return;
	walk_stop = 0;
	walk_visits = 0;
	CHECK(pthread_create(&wt, NULL, walker, NULL) == 0);
	for (i = 0; i < 3; i++) {
		memset(&w[i], 0, sizeof (w[i]));
		w[i].w_seed = 3 + (unsigned long long)i;
		CHECK(pthread_create(&w[i].w_tid, NULL, walk_traffic, &w[i]) ==
		    0);
	}
	for (i = 0; i < 3; i++)
		if (!join_within(w[i].w_tid, 300))
			hung("walk_traffic");
	__atomic_store_n(&walk_stop, 1, __ATOMIC_RELEASE);
	if (!join_within(wt, 60))
		hung("walker");
	CHECK(walk_visits > 0);
	CHECK(vmem_size(walk_arena, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(walk_arena) == 0);
	vmem_destroy(walk_arena);
}

/* ------------------------------------------------------------------ */

typedef struct sleeper {
	pthread_t	s_tid;
	vmem_t		*s_vmp;
	size_t		s_size;
	uintptr_t	s_min;		/* xalloc window start, or 0 */
	void		*s_result;
	int		s_done;
	double		s_when;
} sleeper_t;

static void *
sleeper(void *arg)
{
	sleeper_t *s = arg;

	if (s->s_min != 0)
		s->s_result = vmem_xalloc(s->s_vmp, s->s_size, 0, 0, 0,
		    A(s->s_min), NULL, VM_SLEEP);
	else
		s->s_result = vmem_alloc(s->s_vmp, s->s_size, VM_SLEEP);
	s->s_when = now();
	__atomic_store_n(&s->s_done, 1, __ATOMIC_RELEASE);
	return (NULL);
}

static int
done(sleeper_t *s)
{
	return (__atomic_load_n(&s->s_done, __ATOMIC_ACQUIRE));
}

static void
start_sleeper(sleeper_t *s, vmem_t *vmp, size_t size, uintptr_t min)
{
	memset(s, 0, sizeof (*s));
	s->s_vmp = vmp;
	s->s_size = size;
	s->s_min = min;
	CHECK(pthread_create(&s->s_tid, NULL, sleeper, s) == 0);
}

/*
 * VM_SLEEP: thread A asks a full arena for 50 IDs and blocks; freeing 30
 * is not enough (it stays blocked); freeing the adjacent 20 wakes it, and
 * it gets exactly that space.  VM_NOSLEEP meanwhile fails at once.
 */
static void
test_sleep_wakeup(void)
{
	vmem_t *vmp = vmem_create("sleepy", A(1), 100, 1, NULL, NULL, NULL,
	    0, VM_SLEEP);
	vmem_stat_t st;
	sleeper_t s;
	double t0, t1;
	int i;

	if (vmp == NULL)
		return;
	for (i = 1; i <= 100; i++)
		CHECK(vmem_xalloc(vmp, 1, 0, 0, 0, A(i), A(i + 1),
		    VM_NOSLEEP) == A(i));
	start_sleeper(&s, vmp, 50, 0);
	sleep_ms(200);
	CHECKF(!done(&s), "VM_SLEEP returned %p on a full arena", s.s_result);
	CHECK(vmem_getstat(vmp, &st) == 0 && st.vk_wait >= 1);
	t0 = now();
	errno = 0;
	CHECK(vmem_alloc(vmp, 1, VM_NOSLEEP) == NULL && errno == ENOMEM);
	t1 = now();
	CHECKF(t1 - t0 < 2, "VM_NOSLEEP took %.3f s", t1 - t0);

	for (i = 11; i <= 40; i++)
		vmem_free(vmp, A(i), 1);	/* 30 free: not enough */
	sleep_ms(200);
	CHECKF(!done(&s), "woke with only 30 free: %p", s.s_result);
	t0 = now();
	for (i = 41; i <= 60; i++)
		vmem_free(vmp, A(i), 1);	/* [11, 61): 50 */
	if (!join_within(s.s_tid, 10))
		hung("VM_SLEEP allocation after the free");
	CHECKF(s.s_result == A(11), "woke with %p", s.s_result);
	CHECKF(s.s_when - t0 < 5, "woke %.3f s after the free",
	    s.s_when - t0);
	vmem_free(vmp, A(11), 50);
	for (i = 1; i <= 100; i++)
		if (i < 11 || i > 60)
			vmem_free(vmp, A(i), 1);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* A constrained VM_SLEEP request waits for space in its window. */
static void
test_sleep_xalloc_window(void)
{
	vmem_t *vmp = vmem_create("sleepx", A(1), 100, 1, NULL, NULL, NULL,
	    0, VM_SLEEP);
	sleeper_t s;
	void *lo, *hi;

	if (vmp == NULL)
		return;
	lo = vmem_alloc(vmp, 50, VM_NOSLEEP);		/* [1, 51) */
	hi = vmem_alloc(vmp, 50, VM_NOSLEEP);		/* [51, 101) */
	CHECK(lo == A(1) && hi == A(51));
	start_sleeper(&s, vmp, 10, 51);
	sleep_ms(150);
	CHECK(!done(&s));
	vmem_free(vmp, lo, 50);				/* outside */
	sleep_ms(200);
	CHECKF(!done(&s), "window [51, ...) served with %p", s.s_result);
	vmem_free(vmp, hi, 50);
	if (!join_within(s.s_tid, 10))
		hung("VM_SLEEP xalloc");
	CHECK(X(s.s_result) >= 51 && X(s.s_result) + 10 <= 101);
	vmem_xfree(vmp, s.s_result, 10);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	vmem_destroy(vmp);
}

/* Several sleepers: each is woken once there is room for it. */
static void
test_sleep_many(void)
{
	vmem_t *vmp = vmem_create("sleepers", A(1), 40, 1, NULL, NULL, NULL,
	    0, VM_SLEEP);
	sleeper_t s[4];
	void *all;
	int i, ok = 1;

	if (vmp == NULL)
		return;
	all = vmem_alloc(vmp, 40, VM_NOSLEEP);
	CHECK(all == A(1));
	for (i = 0; i < 4; i++)
		start_sleeper(&s[i], vmp, 10, 0);
	sleep_ms(200);
	for (i = 0; i < 4; i++)
		if (done(&s[i]))
			ok = 0;
	CHECK(ok);
	vmem_free(vmp, all, 40);
	for (i = 0; i < 4; i++)
		if (!join_within(s[i].s_tid, 10))
			hung("one of several sleepers");
	for (i = 0; i < 4; i++)
		CHECK(s[i].s_result != NULL && X(s[i].s_result) >= 1 &&
		    X(s[i].s_result) + 10 <= 41);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 40);
	for (i = 0; i < 4; i++)
		vmem_free(vmp, s[i].s_result, 10);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* vmem_add wakes a sleeper too. */
static void
test_sleep_add(void)
{
	vmem_t *vmp = vmem_create("sleepadd", NULL, 0, 16, NULL, NULL, NULL,
	    0, VM_SLEEP);
	sleeper_t s;

	if (vmp == NULL)
		return;
	start_sleeper(&s, vmp, 64, 0);
	sleep_ms(150);
	CHECK(!done(&s));
	CHECK(vmem_add(vmp, A(0x1000), 0x100, VM_NOSLEEP) == A(0x1000));
	if (!join_within(s.s_tid, 10))
		hung("VM_SLEEP after vmem_add");
	CHECK(s.s_result == A(0x1000));
	vmem_free(vmp, s.s_result, 64);
	vmem_destroy(vmp);
}

/*
 * A VM_SLEEP request on an importing arena whose source is full waits
 * until the source has room again (its frees do not signal our arena:
 * the wait must still end).
 */
static void
test_sleep_import(void)
{
	vmem_t *src = vmem_create("fullsrc", A(0x100000), 0x10000, 4096, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	vmem_t *vmp = vmem_create("needy", NULL, 0, 4096, vmem_alloc,
	    vmem_free, src, 0, VM_SLEEP);
	sleeper_t s;
	void *all;
	double t0;

	if (src == NULL || vmp == NULL)
		return;
	all = vmem_alloc(src, 0x10000, VM_NOSLEEP);
	CHECK(all == A(0x100000));
	start_sleeper(&s, vmp, 0x2000, 0);
	sleep_ms(300);
	CHECK(!done(&s));
	t0 = now();
	vmem_free(src, all, 0x10000);
	if (!join_within(s.s_tid, 10))
		hung("VM_SLEEP waiting on its source");
	CHECK(s.s_result != NULL && vmem_contains(src, s.s_result, 0x2000));
	CHECKF(s.s_when - t0 < 5, "woke %.3f s after the source had room",
	    s.s_when - t0);
	vmem_free(vmp, s.s_result, 0x2000);
	CHECK(vmem_size(src, VMEM_ALLOC) == 0);
	vmem_destroy(vmp);
	vmem_destroy(src);
}

int
main(int argc, char **argv)
{
	RUN(test_id_stress);
	RUN(test_mem_stress);
	RUN(test_import_stress);
	RUN(test_nextfit_threads);
	RUN(test_walk_during_traffic);
	RUN(test_sleep_wakeup);
	RUN(test_sleep_xalloc_window);
	RUN(test_sleep_many);
	RUN(test_sleep_add);
	RUN(test_sleep_import);
	return (test_summary(argv[0]));
}
