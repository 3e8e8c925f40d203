/*
 * test_umem_basic.c - quick sanity tests of the object-cache layer, by its
 * implementer: create/alloc/free/destroy, ctor/dtor counts, the magazine
 * state machine on one slot, NOTOUCH over an ID arena, quantum-cache slab
 * size and segment traffic, threads, fork, and the fallback mode (run in a
 * child with UMEM_OPTIONS=percpu=thread).  The full issue-3 suite is
 * test_umem_cache.c and friends.
 */
#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>

#include <umem.h>
#include <vmem.h>
#include "umem_impl.h"
#include "percpu.h"
#include "umem_alloc.h"
#include "vmem_impl.h"
#include "test_umem.h"

static int nctor, ndtor;
static int in_child;


static int
ctor(void *buf, void *priv, int flags)
{
	(void) flags;
	__atomic_fetch_add(&nctor, 1, __ATOMIC_RELAXED);
	*(uint64_t *)buf = (uint64_t)(uintptr_t)priv;
	return (0);
}

static void
dtor(void *buf, void *priv)
{
	if (*(uint64_t *)buf != (uint64_t)(uintptr_t)priv)
		abort();
	__atomic_fetch_add(&ndtor, 1, __ATOMIC_RELAXED);
}

static void
test_create_destroy(void)
{
	umem_cache_t *cp;
	umem_cache_stat_t st;
	void *p[100];
	int i;

	cp = umem_cache_create("basic_64", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	for (i = 0; i < 100; i++) {
		p[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		CHECK(p[i] != NULL);
		CHECK(((uintptr_t)p[i] & 15) == 0);
		memset(p[i], i, 64);
	}
	for (i = 0; i < 100; i++)
		umem_cache_free(cp, p[i]);
	CHECK(umem_cache_getstat(cp, &st) == 0);
	CHECK(st.cs_alloc == 100);
	CHECK(st.cs_free == 100);
	CHECK(st.cs_chunksize == 64);
	CHECK(st.cs_hashed == 0);
	umem_cache_destroy(cp);

	errno = 0;
	CHECK(umem_cache_create(NULL, 8, 0, NULL, NULL, NULL, NULL, NULL,
	    0) == NULL && errno == EINVAL);
	CHECK(umem_cache_create("x", 0, 0, NULL, NULL, NULL, NULL, NULL,
	    0) == NULL && errno == EINVAL);
	CHECK(umem_cache_create("x", 8, 3, NULL, NULL, NULL, NULL, NULL,
	    0) == NULL && errno == EINVAL);
	CHECK(umem_cache_create("x", 8, 0, NULL, NULL, NULL, NULL, NULL,
	    UMC_NOTOUCH | UMC_NOHASH) == NULL && errno == EINVAL);
}

static void
test_ctor_dtor(void)
{
	umem_cache_t *cp;
	void *p;
	int i;

	nctor = ndtor = 0;
	cp = umem_cache_create("basic_ctor", 100, 0, ctor, dtor, NULL,
	    (void *)0x1234, NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	for (i = 0; i < 100000; i++) {
		p = umem_cache_alloc(cp, UMEM_DEFAULT);
		CHECK(*(uint64_t *)p == 0x1234);
		umem_cache_free(cp, p);
	}
	/* One live object at a time: constructed once (one slot). */
	CHECKF(nctor <= 2, "nctor %d", nctor);
	umem_cache_destroy(cp);
	CHECKF(nctor == ndtor, "nctor %d ndtor %d", nctor, ndtor);
}

/* The paper's state machine, observed on the caller's slot. */
static void
test_magazine_rules(void)
{
	umem_cache_t *cp;
	umem_cc_state_t s;
	umem_cache_stat_t st;
	void *p[64], *q;
	uint32_t slot, M;
	int i;
	cpu_set_t set, old;

	/* Stay on one CPU so that the slot does not change. */
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	(void) sched_getaffinity(0, sizeof (old), &old);
	(void) sched_setaffinity(0, sizeof (set), &set);

	cp = umem_cache_create("basic_rules", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		goto out;
	CHECK(umem_cc_state(cp, UINT32_MAX, &s) == 0);
	slot = s.cs_slot;
	M = s.cs_magsize;
	CHECK(M == 15);
	CHECK(s.cs_rounds == -1 && s.cs_prounds == -1);
	/* Cold alloc: one object from the slab layer, no magazine. */
	p[0] = umem_cache_alloc(cp, UMEM_DEFAULT);
	CHECK(umem_cc_state(cp, slot, &s) == 0);
	CHECK(s.cs_rounds == -1 && s.cs_prounds == -1);
	(void) umem_cache_getstat(cp, &st);
	CHECK(st.cs_mag_create == 0);	/* alloc path makes no magazine */
	/* First free makes an empty magazine and loads it. */
	umem_cache_free(cp, p[0]);
	CHECK(umem_cc_state(cp, slot, &s) == 0);
	CHECK(s.cs_rounds == 1 && s.cs_prounds == -1);
	(void) umem_cache_getstat(cp, &st);
	CHECK(st.cs_mag_create == 1);
	p[0] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 1; i < 2 * (int)M + 1; i++)
		p[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 0; i < (int)M; i++)
		umem_cache_free(cp, p[i]);
	CHECK(umem_cc_state(cp, slot, &s) == 0);
	CHECK(s.cs_rounds == (int64_t)M);	/* full loaded */
	umem_cache_free(cp, p[M]);
	/* Loaded was full, previous absent: new empty loaded, full prev. */
	CHECK(umem_cc_state(cp, slot, &s) == 0);
	CHECKF(s.cs_rounds == 1 && s.cs_prounds == (int64_t)M,
	    "rounds %lld prounds %lld", (long long)s.cs_rounds,
	    (long long)s.cs_prounds);
	/* p[M] is in the magazine layer now; take two objects back. */
	p[M] = umem_cache_alloc(cp, UMEM_DEFAULT);
	q = umem_cache_alloc(cp, UMEM_DEFAULT);
	/* Loaded empty, previous full: swap. */
	CHECK(umem_cc_state(cp, slot, &s) == 0);
	CHECKF(s.cs_rounds == (int64_t)M - 1 && s.cs_prounds == 0,
	    "rounds %lld prounds %lld", (long long)s.cs_rounds,
	    (long long)s.cs_prounds);
	/* p[0..M-1] are in magazines already; free the rest. */
	umem_cache_free(cp, q);
	umem_cache_free(cp, p[M]);
	for (i = (int)M + 1; i < 2 * (int)M + 1; i++)
		umem_cache_free(cp, p[i]);
	umem_cache_destroy(cp);
out:
	(void) sched_setaffinity(0, sizeof (old), &old);
}

/* Alloc-alloc-free-free at a magazine boundary: depot traffic <= 1/M. */
static void
test_thrash(void)
{
	umem_cache_t *cp;
	umem_cache_stat_t a, b;
	void *p[20], *x, *y;
	int i, n = 100000;
	cpu_set_t set, old;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	(void) sched_getaffinity(0, sizeof (old), &old);
	(void) sched_setaffinity(0, sizeof (set), &set);
	cp = umem_cache_create("basic_thrash", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	for (i = 0; i < 20; i++)
		p[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 0; i < 20; i++)
		umem_cache_free(cp, p[i]);
	(void) umem_cache_getstat(cp, &a);
	for (i = 0; i < n; i++) {
		x = umem_cache_alloc(cp, UMEM_DEFAULT);
		y = umem_cache_alloc(cp, UMEM_DEFAULT);
		umem_cache_free(cp, y);
		umem_cache_free(cp, x);
	}
	(void) umem_cache_getstat(cp, &b);
	CHECKF(b.cs_depot_alloc - a.cs_depot_alloc <= (uint64_t)4 * n / 15 + 2,
	    "depot allocs %llu for %d ops",
	    (unsigned long long)(b.cs_depot_alloc - a.cs_depot_alloc), 4 * n);
	CHECK(b.cs_mag_alloc - a.cs_mag_alloc == (uint64_t)2 * n);
	umem_cache_destroy(cp);
	(void) sched_setaffinity(0, sizeof (old), &old);
}

/* NOTOUCH cache over an ID arena whose "addresses" are not memory. */
static void
test_notouch_ids(void)
{
	vmem_t *ids;
	umem_cache_t *cp;
	umem_cache_stat_t st;
	void *p[2000];
	int i;

	ids = vmem_create("basic_ids", (void *)0x1000, 1 << 20, 1, NULL,
	    NULL, NULL, 0, VM_SLEEP | VMC_IDENTIFIER);
	CHECK(ids != NULL);
	if (ids == NULL)
		return;
	cp = umem_cache_create("basic_idcache", 4, 1, NULL, NULL, NULL, NULL,
	    ids, UMC_NOTOUCH);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	for (i = 0; i < 2000; i++) {
		p[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		CHECK(p[i] != NULL && (uintptr_t)p[i] >= 0x1000 &&
		    (uintptr_t)p[i] < 0x1000 + (1 << 20));
	}
	for (i = 0; i < 2000; i++)
		umem_cache_free(cp, p[i]);
	CHECK(umem_cache_getstat(cp, &st) == 0);
	CHECK(st.cs_hashed == 1 && st.cs_chunksize == 4);
	umem_cache_destroy(cp);
	CHECK(vmem_size(ids, VMEM_ALLOC) == 0);
	vmem_destroy(ids);
}

static void
test_qcache(void)
{
	vmem_t *vmp;
	vmem_stat_t vs;
	umem_cache_t *qc;
	umem_cache_stat_t st;
	void *p[64];
	int i, j;

	vmp = vmem_create("basic_qc", (void *)0x100000, 1UL << 30, 4096,
	    NULL, NULL, NULL, 5 * 4096, VM_SLEEP | VMC_IDENTIFIER);
	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	qc = umem_cache_lookup("basic_qc_12288");
	CHECK(qc != NULL);
	if (qc != NULL) {
		CHECK(umem_cache_getstat(qc, &st) == 0);
		CHECKF(st.cs_slabsize == 16 * 4096, "slab %zu", st.cs_slabsize);
		CHECK(st.cs_chunks == 5);
	}
	for (j = 0; j < 20000; j++) {
		for (i = 0; i < 64; i++)
			p[i] = vmem_alloc(vmp, (size_t)(i % 5 + 1) * 4096,
			    VM_SLEEP);
		for (i = 0; i < 64; i++)
			vmem_free(vmp, p[i], (size_t)(i % 5 + 1) * 4096);
	}
	CHECK(vmem_getstat(vmp, &vs) == 0);
	CHECKF(vs.vk_seg_alloc < 200, "segment allocs %llu for %d requests",
	    (unsigned long long)vs.vk_seg_alloc, 20000 * 64);
	vmem_destroy(vmp);
}

#define	NTHR	8
static umem_cache_t *thr_cache;

static void *
thr_main(void *arg)
{
	void *p[32];
	int i, j, k;
	unsigned long long seed = (uintptr_t)arg + 1;

	for (i = 0; i < 20000; i++) {
		int n = (int)(test_rand(&seed) % 32) + 1;

		for (j = 0; j < n; j++) {
			p[j] = umem_cache_alloc(thr_cache, UMEM_DEFAULT);
			if (*(uint64_t *)p[j] != 0x77)
				abort();
			((uint64_t *)p[j])[1] = (uintptr_t)arg;
		}
		if ((i & 1023) == 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET((int)(test_rand(&seed) % 2), &set);
			(void) sched_setaffinity(0, sizeof (set), &set);
		}
		for (k = 0; k < n; k++) {
			if (((uint64_t *)p[k])[1] != (uintptr_t)arg)
				abort();
			umem_cache_free(thr_cache, p[k]);
		}
	}
	return (NULL);
}

/* Many threads forced to migrate: no object is lost or double-issued. */
static void
test_threads(void)
{
	pthread_t t[NTHR];
	umem_cache_stat_t st;
	int i;

	nctor = ndtor = 0;
	thr_cache = umem_cache_create("basic_thr", 32, 0, ctor, dtor, NULL,
	    (void *)0x77, NULL, 0);
	for (i = 0; i < NTHR; i++)
		pthread_create(&t[i], NULL, thr_main, (void *)(uintptr_t)i);
	for (i = 0; i < NTHR; i++)
		pthread_join(t[i], NULL);
	CHECK(umem_cache_getstat(thr_cache, &st) == 0);
	CHECK(st.cs_alloc == st.cs_free);
	CHECK(st.cs_buf_inuse == st.cs_buf_magazine);
	umem_cache_destroy(thr_cache);
	CHECKF(nctor == ndtor, "ctor %d dtor %d", nctor, ndtor);
}

static void *
fork_hammer(void *arg)
{
	int *stop = arg;

	while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		void *p = umem_cache_alloc(thr_cache, UMEM_DEFAULT);

		umem_cache_free(thr_cache, p);
	}
	return (NULL);
}

static void
test_fork(void)
{
	pthread_t t[2];
	int stop = 0;
	int i, st, ok = 1;

	thr_cache = umem_cache_create("basic_fork", 48, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, fork_hammer, &stop);
	for (i = 0; i < 20; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			void *p[100];
			int j;

			for (j = 0; j < 100; j++)
				p[j] = umem_cache_alloc(thr_cache,
				    UMEM_DEFAULT);
			for (j = 0; j < 100; j++)
				umem_cache_free(thr_cache, p[j]);
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			ok = 0;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(ok);
	umem_cache_destroy(thr_cache);
}

/* Memory goes back without umem_reap(): depot reap + idle drain. */
static void
test_memory_return(void)
{
	umem_cache_t *cp;
	umem_cache_stat_t st;
	static void *p[20000];
	int i, tries;

#ifdef TU_TSAN
	if (in_child)
		return;	/* TSan: no update thread in a fork child */
#endif
	cp = umem_cache_create("basic_return", 256, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	for (i = 0; i < 20000; i++)
		p[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 0; i < 20000; i++)
		umem_cache_free(cp, p[i]);
	for (tries = 0; tries < 100; tries++) {
		(void) umem_cache_getstat(cp, &st);
		if (st.cs_mem_total == 0)
			break;
		usleep(100000);
	}
	CHECKF(st.cs_mem_total == 0, "%llu bytes still in slabs",
	    (unsigned long long)st.cs_mem_total);
	/* The CPU slots' magazines went back too (no resize here). */
	CHECK(st.cs_buf_magazine == 0 && st.cs_cpu_drain > 0);
	CHECK(st.cs_mag_resize == 0);
	umem_cache_destroy(cp);
}

/*
 * umem_alloc's size classes are created on first use: a class no earlier
 * test allocates from is absent until then, and threads racing to the
 * first allocation of every class create each exactly once.
 */
#define	CLASS_THREADS	4
static pthread_barrier_t class_barrier;
static int class_fail;

static void *
class_thr(void *arg)
{
	(void) arg;
	pthread_barrier_wait(&class_barrier);
	for (size_t s = 1; s <= 65536; s += s < 1024 ? 16 : 256) {
		unsigned char *p = umem_alloc(s, UMEM_DEFAULT);

		if (p == NULL) {
			__atomic_store_n(&class_fail, 1, __ATOMIC_RELAXED);
			continue;
		}
		memset(p, 0x5a, s);
		if (p[0] != 0x5a || p[s - 1] != 0x5a)
			__atomic_store_n(&class_fail, 1, __ATOMIC_RELAXED);
		umem_free(p, s);
	}
	return (NULL);
}

static void
test_alloc_classes(void)
{
	static char text[1 << 16];
	pthread_t t[CLASS_THREADS];
	char *line, *save = NULL, *names[64];
	int fd, nclass = 0, dup = 0;
	ssize_t n;
	void *p;

	CHECK(umem_cache_lookup("umem_alloc_28672") == NULL);
	p = umem_alloc(28000, UMEM_DEFAULT);
	CHECK(p != NULL);
	CHECK(umem_cache_lookup("umem_alloc_28672") != NULL);
	umem_free(p, 28000);

	pthread_barrier_init(&class_barrier, NULL, CLASS_THREADS);
	for (int i = 0; i < CLASS_THREADS; i++)
		pthread_create(&t[i], NULL, class_thr, NULL);
	for (int i = 0; i < CLASS_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&class_barrier);
	CHECK(class_fail == 0);

	/* every class now exists, each once */
	fd = memfd_create("classes", 0);
	CHECK(fd >= 0 && umem_cache_stats_print(fd) == 0);
	n = pread(fd, text, sizeof (text) - 1, 0);
	(void) close(fd);
	CHECK(n > 0);
	text[n > 0 ? n : 0] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "umem_alloc_", 11) != 0 || nclass == 64)
			continue;
		line[strcspn(line, " ")] = '\0';
		for (int i = 0; i < nclass; i++)
			dup += strcmp(names[i], line) == 0;
		names[nclass++] = line;
	}
	CHECKF(nclass == 48, "%d classes listed", nclass);
	CHECKF(dup == 0, "%d classes listed twice", dup);

	/*
	 * free()'s buffer-start test (multiply and rotate) against division,
	 * at every byte offset of a slab of every class.
	 */
	for (int i = 0; i < nclass; i++) {
		umem_cache_t *cp = umem_cache_lookup(names[i]);
		uintptr_t base = (uintptr_t)1 << 40, off, bad = 0;

		CHECK(cp != NULL && (cp->cache_flags & UMF_PAGEMAP));
		if (cp == NULL)
			continue;
		for (off = 0; off <= cp->cache_slab_mask; off++) {
			int want = off % cp->cache_chunksize == 0 &&
			    off / cp->cache_chunksize < cp->cache_chunks;

			bad += umem_block_is_start(cp, (void *)(base + off)) !=
			    want;
		}
		CHECKF(bad == 0, "%s: %zu offsets misjudged", names[i],
		    (size_t)bad);
	}
}

static void *limit_hold;
static size_t limit_hold_size;
static int limit_retries;

/* test_heap_limit's nofail callback: make room once, then give up. */
static int
limit_nofail_cb(void)
{
	limit_retries++;
	if (limit_hold == NULL)
		return (UMEM_CALLBACK_EXIT(3));
	umem_free(limit_hold, limit_hold_size);
	limit_hold = NULL;
	return (UMEM_CALLBACK_RETRY);
}

/*
 * umem_set_limit (UMEM_OPTIONS=limit): past the heap's limit umem_alloc
 * fails with ENOMEM, small sizes and large alike, blocks held stay as they
 * are, and a failing allocation first makes the caches give back what
 * they hold, so objects freed into magazines make room at once; a
 * UMEM_NOFAIL request waits on its callback, which may free memory.
 */
static void
test_heap_limit(void)
{
	enum { SMALL = 256, ROOM = 16 << 20, CAP = 2 * ROOM / SMALL };
	void **v = mmap(NULL, CAP * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	vmem_heap_usage_t hu;
	size_t n = 0, limit, was;
	void *p;

	CHECK(v != MAP_FAILED);
	if (v == MAP_FAILED)
		return;
	vmem_heap_usage(&hu);
	limit = hu.hu_held + hu.hu_dirty + ROOM;
	was = umem_set_limit(limit);
	CHECKF(was == 0, "a limit was set already: %zu", was);
	errno = 0;
	while (n < CAP && (p = umem_alloc(SMALL, UMEM_DEFAULT)) != NULL) {
		memset(p, (int)(n & 0xff), SMALL);
		v[n++] = p;
	}
	CHECKF(n < CAP && errno == ENOMEM, "%zu blocks of %d bytes, errno %d",
	    n, SMALL, errno);
	CHECKF(n * SMALL >= ROOM - (4 << 20), "only %zu KiB fitted",
	    n * SMALL >> 10);
	vmem_heap_usage(&hu);
	CHECKF(hu.hu_held + hu.hu_dirty <= limit && hu.hu_refused > 0,
	    "held %zu + dirty %zu, limit %zu, refused %llu", hu.hu_held,
	    hu.hu_dirty, limit, (unsigned long long)hu.hu_refused);
	errno = 0;
	CHECKF(umem_alloc(4 << 20, UMEM_DEFAULT) == NULL && errno == ENOMEM,
	    "a large block at the limit: errno %d", errno);
	for (size_t i = 0; i < n; i++) {
		CHECKF(*(unsigned char *)v[i] == (i & 0xff), "block %zu", i);
		umem_free(v[i], SMALL);
	}
	/* In magazines and slabs now: the failing call gives them back. */
	p = umem_alloc(ROOM / 2, UMEM_DEFAULT);
	CHECKF(p != NULL, "%d bytes after the small blocks were freed",
	    ROOM / 2);
	if (p != NULL)
		umem_free(p, ROOM / 2);
	/*
	 * UMEM_NOFAIL: the callback frees a block and asks for a retry.  The
	 * limit is set afresh with nothing cached (what earlier tests left in
	 * the caches made room when the first part trimmed), so that the
	 * request cannot fit beside the block held.
	 */
	umem_trim();
	vmem_heap_usage(&hu);
	limit = hu.hu_held + hu.hu_dirty + ROOM;
	(void) umem_set_limit(limit);
	limit_hold_size = ROOM - ROOM / 4;
	limit_hold = umem_alloc(limit_hold_size, UMEM_DEFAULT);
	CHECK(limit_hold != NULL);
	umem_nofail_callback(limit_nofail_cb);
	p = umem_alloc(ROOM / 2, UMEM_NOFAIL);
	umem_nofail_callback(NULL);
	CHECKF(p != NULL && limit_hold == NULL && limit_retries == 1,
	    "UMEM_NOFAIL at the limit: %p, callback ran %d times", p,
	    limit_retries);
	umem_free(p, ROOM / 2);
	if (limit_hold != NULL)
		umem_free(limit_hold, limit_hold_size);
	was = umem_set_limit(0);
	CHECKF(was == limit, "umem_set_limit(0) returned %zu, not %zu", was,
	    limit);
	p = umem_alloc(2 * ROOM, UMEM_DEFAULT);
	CHECK(p != NULL);
	if (p != NULL)
		umem_free(p, 2 * ROOM);
	munmap(v, CAP * sizeof (void *));
}

/*
 * A trim gives back what it frees with one call per run of pages (the
 * releases wait in the heap's dirty set until its flush), not one per
 * slab: a burst of one-page slabs freed whole costs a handful of calls.
 */
static void
test_trim_batches(void)
{
	enum { SLABS = 512 };
	umem_cache_t *cp = umem_cache_create("trim_batches", 64, 0, NULL,
	    NULL, NULL, NULL, NULL, 0);
	size_t n = SLABS * (umem_pagesize / 64), i;
	void **v = mmap(NULL, n * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t calls;

	CHECK(cp != NULL && v != MAP_FAILED);
	if (cp == NULL || v == MAP_FAILED)
		return;
	umem_trim();
	for (i = 0; i < n; i++) {
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		CHECK(v[i] != NULL);
		memset(v[i], 1, 64);
	}
	for (i = 0; i < n; i++)
		umem_cache_free(cp, v[i]);
	calls = umem_pages_release_calls;
	umem_trim();
	calls = umem_pages_release_calls - calls;
	CHECKF(calls <= SLABS / 16, "%llu calls to give back %d slabs",
	    (unsigned long long)calls, SLABS);
	umem_cache_destroy(cp);
	munmap(v, n * sizeof (void *));
}

/*
 * A burst of blocks of a class whose depot is capped (over 2 KiB), freed
 * and taken again, twice: the slabs the cap empties keep their pages for
 * the next burst (while the update thread runs, whose passes give back
 * what stays unused).  They went to the OS a slab at a time, each taken
 * again with a page fault a page: 3000-byte blocks in bursts of 20000
 * took 22 us a pair (tcmalloc 1.1 us), 1.1 us so.
 */
static void
test_burst_reuse(void)
{
	enum { N = 4000 };
	size_t size = 3000, i;
	void **v = mmap(NULL, N * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t calls = 0;

	CHECK(v != MAP_FAILED);
	if (v == MAP_FAILED)
		return;
	umem_update_wanted();	/* (started by the next slow path) */
	for (int round = 0; round < 3; round++) {
		if (round == 1 && !umem_update_flushes()) {
			/* No thread to give the pages back: they go at once. */
			fprintf(stderr, "  skip %s: no update thread (a TSan "
			    "child of fork, or update_interval=0)\n", __func__);
			break;
		}
		if (round == 1)
			calls = umem_pages_release_calls;
		for (i = 0; i < N; i++) {
			v[i] = umem_alloc(size, UMEM_DEFAULT);
			CHECK(v[i] != NULL);
			memset(v[i], round, 64);
		}
		for (i = 0; i < N; i++)
			umem_free(v[i], size);
	}
	calls = umem_pages_release_calls - calls;
	CHECKF(!umem_update_flushes() || calls <= N / 64, "%llu calls to "
	    "give pages back over two bursts of %d blocks",
	    (unsigned long long)calls, N);
	munmap(v, N * sizeof (void *));
}

/*
 * A malloc class buffer bigger than a page keeps its free-list link on
 * its first page (slab.c, slabmap_link): a link on its last page cost a
 * page fault there when the slab was made, for a page the program may
 * never use.
 */
static void
test_link_first_page(void)
{
	for (size_t size = umem_pagesize + 1024; size <= UMEM_MAXBUF;
	    size += 1024) {
		void *p = umem_alloc(size, UMEM_DEFAULT);
		umem_cache_t *cp = umem_alloc_table_large[(size + 255) >> 8];

		CHECK(p != NULL && cp != NULL);
		if (p == NULL || cp == NULL)
			continue;
		for (uint32_t k = 0; (cp->cache_flags & UMF_SLABMAP) &&
		    k < cp->cache_chunks; k++) {
			size_t off = k * cp->cache_chunksize % umem_pagesize;

			CHECKF(off + cp->cache_bufctl + sizeof (void *) <=
			    umem_pagesize, "%s: buffer %u's link at %zu past "
			    "its first page", cp->cache_name, k,
			    cp->cache_bufctl);
		}
		umem_free(p, size);
	}
}

static int
run_all(void)
{
	RUN(test_create_destroy);
	RUN(test_ctor_dtor);
	RUN(test_magazine_rules);
	RUN(test_thrash);
	RUN(test_notouch_ids);
	RUN(test_qcache);
	RUN(test_threads);
	RUN(test_fork);
	RUN(test_memory_return);
	RUN(test_alloc_classes);
	RUN(test_heap_limit);
	RUN(test_trim_batches);
	RUN(test_burst_reuse);
	RUN(test_link_first_page);
	return (0);
}

static void
thread_mode_child(void *arg)
{
	(void) arg;
	in_child = 1;
	tu_watchdog(150);	/* a hang names its test (timers do not fork) */
	run_all();
	fprintf(stderr, "mode %s\n", umem_percpu_mode());
	_exit(test_failed != 0);
}

static void
test_thread_mode(void)
{
	static char out[65536];
	int st;

	setenv("UMEM_OPTIONS", "percpu=thread", 1);
	st = test_in_child(thread_mode_child, NULL, out, sizeof (out));
	unsetenv("UMEM_OPTIONS");
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s", out);
	CHECKF(strstr(out, "mode thread-lock") != NULL, "child: %s", out);
}

int
main(int argc, char **argv)
{
	tu_watchdog(300);
	/* The thread-mode child must initialise after setenv: fork first. */
	if (argc < 2 || strcmp(argv[1], "--direct") != 0)
		RUN(test_thread_mode);
	run_all();
	fprintf(stderr, "  mode %s\n", umem_percpu_mode());
	return (test_summary(argv[0]));
}
