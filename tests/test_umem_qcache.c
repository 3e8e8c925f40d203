/*
 * test_umem_qcache.c - vmem quantum caching through the object-cache
 * layer (digest A3.8, D18, D19, C3 item 6):
 *
 *  - an arena with qcache_max = k quanta gets k caches "<arena>_<size>",
 *    NOTOUCH, aligned to the quantum, with slab size the next power of two
 *    above 3 x qcache_max (at least 64): 5 quanta -> 16 quanta, 8 -> 32;
 *    five 3-quantum objects fill a 16-quantum slab; at most 16 caches;
 *    none with VMC_NO_QCACHE; the caches go with vmem_destroy;
 *  - a million 1- and 2-quantum vmem_alloc/vmem_free pairs reach the
 *    segment list only tens of times (and every time without caching);
 *  - quantum caches over identifiers that are not memory never touch
 *    them (a fault kills the child), and hand out each ID once;
 *  - several threads share an arena's quantum caches without double issue;
 *  - an arena that runs short gets memory back from its caches, so a
 *    VM_SLEEP request that needs it completes.
 */
#include "test_umem.h"
#include "umem_impl.h"

#include <stdatomic.h>

#define	NOTMEM_BASE	((uintptr_t)1 << 32)	/* never touched */

static char *
qname(char *buf, size_t len, const char *arena, size_t size)
{
	snprintf(buf, len, "%s_%zu", arena, size);
	return (buf);
}

static void
test_d18_slabsize(void)
{
	static const struct { size_t q, k, want_slab; } cfg[] = {
		{ 4096, 5, 16 * 4096 },	/* the paper's example */
		{ 4096, 8, 32 * 4096 },	/* kmem_va */
		{ 4096, 1, 4 * 4096 },
		{ 4096, 3, 16 * 4096 },	/* 9 quanta -> 16 */
		{ 16, 5, 16 * 16 },
		{ 16, 8, 32 * 16 },
		{ 1, 5, 64 },		/* never below 64 */
		{ 8, 2, 64 },
	};
	size_t i, j;

	for (i = 0; i < sizeof (cfg) / sizeof (cfg[0]); i++) {
		char aname[32], cname[64];
		size_t q = cfg[i].q, k = cfg[i].k;
		vmem_t *vmp;
		vmem_stat_t vs;

		snprintf(aname, sizeof (aname), "tq_sz%zu", i);
		vmp = vmem_create(aname, (void *)NOTMEM_BASE, (size_t)1 << 30,
		    q, NULL, NULL, NULL, k * q, VM_SLEEP);
		CHECK(vmp != NULL);
		if (vmp == NULL)
			continue;
		vs = tu_vstat(vmp);
		CHECKF(vs.vk_qcache_max == k * q, "%s: qcache_max %zu, want %zu",
		    aname, vs.vk_qcache_max, k * q);
		CHECK(vmem_qcache_slabsize(k * q) == cfg[i].want_slab);
		for (j = 1; j <= k; j++) {
			umem_cache_t *cp = umem_cache_lookup(qname(cname,
			    sizeof (cname), aname, j * q));
			umem_cache_stat_t st;

			CHECKF(cp != NULL, "no quantum cache %s", cname);
			if (cp == NULL)
				continue;
			st = tu_stat(cp);
			CHECKF(st.cs_slabsize == cfg[i].want_slab, "%s: slab "
			    "%zu bytes, want %zu (qcache_max %zu quanta of %zu)",
			    cname, st.cs_slabsize, cfg[i].want_slab, k, q);
			CHECKF(st.cs_bufsize == j * q && st.cs_chunksize ==
			    j * q && st.cs_align == q, "%s: bufsize %zu chunk "
			    "%zu align %zu", cname, st.cs_bufsize,
			    st.cs_chunksize, st.cs_align);
			CHECKF((st.cs_cflags & UMC_NOTOUCH) && st.cs_hashed,
			    "%s: cflags %#x hashed %u", cname, st.cs_cflags,
			    st.cs_hashed);
			CHECK(st.cs_chunks == cfg[i].want_slab / (j * q));
		}
		CHECK(umem_cache_lookup(qname(cname, sizeof (cname), aname,
		    (k + 1) * q)) == NULL);
		/* "By numerical luck": five 3-quantum objects in 16 quanta. */
		if (k == 5 && cfg[i].want_slab == 16 * q) {
			umem_cache_t *cp = umem_cache_lookup(qname(cname,
			    sizeof (cname), aname, 3 * q));

			CHECK(cp != NULL && tu_stat(cp).cs_chunks == 5);
		}
		vmem_destroy(vmp);
		CHECKF(umem_cache_lookup(qname(cname, sizeof (cname), aname,
		    q)) == NULL, "vmem_destroy left its quantum cache %s",
		    cname);
	}

	/* At most 16 caches; none with VMC_NO_QCACHE. */
	{
		char cname[64];
		vmem_t *vmp = vmem_create("tq_cap", (void *)NOTMEM_BASE,
		    (size_t)1 << 30, 16, NULL, NULL, NULL, 40 * 16, VM_SLEEP);

		CHECK(vmp != NULL && tu_vstat(vmp).vk_qcache_max == 16 * 16);
		CHECK(umem_cache_lookup(qname(cname, sizeof (cname), "tq_cap",
		    16 * 16)) != NULL);
		CHECK(umem_cache_lookup(qname(cname, sizeof (cname), "tq_cap",
		    17 * 16)) == NULL);
		vmem_destroy(vmp);
		vmp = vmem_create("tq_noqc", (void *)NOTMEM_BASE,
		    (size_t)1 << 30, 16, NULL, NULL, NULL, 8 * 16,
		    VM_SLEEP | VMC_NO_QCACHE);
		CHECK(vmp != NULL && tu_vstat(vmp).vk_qcache_max == 0);
		CHECK(umem_cache_lookup(qname(cname, sizeof (cname),
		    "tq_noqc", 16)) == NULL);
		vmem_destroy(vmp);
	}
}

/*
 * Segment-list traffic (App. B: 1.18 million allocations, 14 segment
 * allocations).  A ring of live 1- and 2-quantum segments; a bitmap of
 * quanta catches any overlap.
 */
static uint64_t
traffic(const char *name, size_t qcache_quanta, size_t nops, int *okp)
{
	enum { RING = 200 };
	const size_t q = 4096, span = (size_t)1 << 28, nq = span / q;
	unsigned char *used = calloc(nq, 1);
	struct { uintptr_t a; size_t s; } ring[RING];
	unsigned long long seed = 18;
	vmem_t *vmp;
	vmem_stat_t s0, s1;
	size_t i, j;
	int ok = 1;

	memset(ring, 0, sizeof (ring));
	vmp = vmem_create(name, (void *)NOTMEM_BASE, span, q, NULL, NULL,
	    NULL, qcache_quanta * q, VM_SLEEP);
	CHECK(vmp != NULL);
	if (vmp == NULL)
		return (0);
	s0 = tu_vstat(vmp);
	for (i = 0; i < nops; i++) {
		size_t slot = i % RING;

		if (ring[slot].a != 0) {
			vmem_free(vmp, (void *)ring[slot].a, ring[slot].s);
			for (j = 0; j < ring[slot].s / q; j++)
				used[(ring[slot].a - NOTMEM_BASE) / q + j] = 0;
		}
		ring[slot].s = q * (1 + (test_rand(&seed) & 1));
		ring[slot].a = (uintptr_t)vmem_alloc(vmp, ring[slot].s,
		    VM_NOSLEEP);
		if (ring[slot].a < NOTMEM_BASE || ring[slot].a + ring[slot].s >
		    NOTMEM_BASE + span || ring[slot].a % q != 0) {
			CHECKF(0, "%s: vmem_alloc(%zu) = %#lx", name,
			    ring[slot].s, (unsigned long)ring[slot].a);
			ok = 0;
			ring[slot].a = 0;
			break;
		}
		for (j = 0; j < ring[slot].s / q; j++) {
			size_t b = (ring[slot].a - NOTMEM_BASE) / q + j;

			if (used[b] && ok) {
				CHECKF(0, "%s: %#lx handed out twice", name,
				    (unsigned long)(NOTMEM_BASE + b * q));
				ok = 0;
			}
			used[b] = 1;
		}
	}
	for (i = 0; i < RING; i++)
		if (ring[i].a != 0)
			vmem_free(vmp, (void *)ring[i].a, ring[i].s);
	s1 = tu_vstat(vmp);
	CHECKF(s1.vk_alloc - s0.vk_alloc == nops || qcache_quanta != 0,
	    "%s: %llu allocations counted for %zu", name,
	    (unsigned long long)(s1.vk_alloc - s0.vk_alloc), nops);
	vmem_destroy(vmp);
	free(used);
	*okp = ok;
	return (s1.vk_seg_alloc - s0.vk_seg_alloc);
}

static void
test_d18_traffic(void)
{
	size_t n = TU_SCALE(1000000, 10);
	uint64_t with, without;
	int ok1 = 0, ok2 = 0;

	TU_SKIP_IF_OPTION("nomagazines", "quantum caches have no magazines");
	with = traffic("tq_traffic", 8, n, &ok1);
	without = traffic("tq_plain", 0, TU_SCALE(100000, 10), &ok2);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  %zu 1- and 2-quantum pairs: %llu segment-list "
		    "allocations with quantum caches (qcache_max 8 quanta); "
		    "%llu for %zu pairs without\n", n,
		    (unsigned long long)with, (unsigned long long)without,
		    (size_t)TU_SCALE(100000, 10));
	CHECKF(ok1 && with <= 100, "%zu vmem_alloc/vmem_free pairs of 1 and 2 "
	    "quanta: %llu segment-list allocations (want tens)", n,
	    (unsigned long long)with);
	CHECKF(ok2 && without >= (uint64_t)TU_SCALE(100000, 10), "without "
	    "quantum caches: %llu segment-list allocations",
	    (unsigned long long)without);
}

/*
 * D19 through vmem: an identifier arena [0x1000, 0x100000), quantum 1,
 * with quantum caches for 1..8; nothing may write to an identifier.
 */
static void
ids_child(void *arg)
{
	const uintptr_t lo = 0x1000, hi = 0x100000;
	size_t span = hi - lo, n = TU_SCALE(60000, 4), i, b, round;
	unsigned char *used = calloc(span, 1);
	struct { uintptr_t a; size_t s; } *v = calloc(n, sizeof (*v));
	unsigned long long seed = 19;
	vmem_t *ids;
	char cname[64];
	umem_cache_t *cp;

	alarm(60);
	ids = vmem_create("tq_ids", (void *)lo, span, 1, NULL, NULL, NULL, 8,
	    VM_SLEEP);
	CHECK(ids != NULL);
	if (ids == NULL)
		_exit(3);
	cp = umem_cache_lookup(qname(cname, sizeof (cname), "tq_ids", 1));
	CHECK(cp != NULL && (tu_stat(cp).cs_cflags & UMC_NOTOUCH));
	for (round = 0; round < 3; round++) {
		memset(used, 0, span);
		for (i = 0; i < n; i++) {
			v[i].s = 1 + test_rand(&seed) % 8;
			v[i].a = (uintptr_t)vmem_alloc(ids, v[i].s, VM_NOSLEEP);
			if (v[i].a < lo || v[i].a + v[i].s > hi) {
				CHECKF(0, "vmem_alloc(%zu) = %#lx", v[i].s,
				    (unsigned long)v[i].a);
				_exit(3);
			}
			for (b = 0; b < v[i].s; b++) {
				if (used[v[i].a - lo + b]) {
					CHECKF(0, "id %#lx issued twice",
					    (unsigned long)(v[i].a + b));
					_exit(3);
				}
				used[v[i].a - lo + b] = 1;
			}
		}
		for (i = n; i > 1; i--) {
			size_t j = test_rand(&seed) % i;

			b = v[j].a;
			v[j].a = v[i - 1].a;
			v[i - 1].a = b;
			b = v[j].s;
			v[j].s = v[i - 1].s;
			v[i - 1].s = b;
		}
		for (i = 0; i < n; i++)
			vmem_free(ids, (void *)v[i].a, v[i].s);
	}
	CHECK(tu_stat(cp).cs_alloc > 0);
	vmem_destroy(ids);
	free(used);
	free(v);
	_exit(test_cur_failed ? 3 : 0);
}

static void
test_d19_qcache_ids(void)
{
	static char out[8192];
	char sbuf[96];
	int st = test_in_child(ids_child, NULL, out, sizeof (out));

	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "identifier arena with quantum caches: %s; output:\n%s",
	    tu_status_str(st, sbuf, sizeof (sbuf)), out);
}

/*
 * Threads sharing quantum caches: an atomic owner byte per quantum.
 */
#define	TH_Q		64
#define	TH_SPAN		((size_t)1 << 26)

typedef struct qth {
	vmem_t		*t_vmp;
	_Atomic unsigned char *t_owner;
	int		t_id;
	size_t		t_ops;
	int		t_bad;
} qth_t;

static void *
qthread(void *arg)
{
	qth_t *t = arg;
	struct { uintptr_t a; size_t s; } ring[64];
	unsigned long long seed = 100 + (unsigned)t->t_id;
	size_t i, j;

	memset(ring, 0, sizeof (ring));
	for (i = 0; i < t->t_ops; i++) {
		size_t slot = test_rand(&seed) % 64;

		if (ring[slot].a != 0) {
			for (j = 0; j < ring[slot].s / TH_Q; j++) {
				size_t b = (ring[slot].a - NOTMEM_BASE) / TH_Q
				    + j;
				unsigned char me = (unsigned char)(t->t_id + 1);

				if (!atomic_compare_exchange_strong(
				    &t->t_owner[b], &me, 0))
					t->t_bad++;
			}
			vmem_free(t->t_vmp, (void *)ring[slot].a, ring[slot].s);
			ring[slot].a = 0;
		}
		ring[slot].s = TH_Q * (1 + test_rand(&seed) % 4);
		ring[slot].a = (uintptr_t)vmem_alloc(t->t_vmp, ring[slot].s,
		    VM_SLEEP);
		for (j = 0; j < ring[slot].s / TH_Q; j++) {
			size_t b = (ring[slot].a - NOTMEM_BASE) / TH_Q + j;
			unsigned char zero = 0;

			if (!atomic_compare_exchange_strong(&t->t_owner[b],
			    &zero, (unsigned char)(t->t_id + 1)))
				t->t_bad++;
		}
	}
	for (i = 0; i < 64; i++) {
		if (ring[i].a == 0)
			continue;
		for (j = 0; j < ring[i].s / TH_Q; j++)
			atomic_store(&t->t_owner[(ring[i].a - NOTMEM_BASE) /
			    TH_Q + j], 0);
		vmem_free(t->t_vmp, (void *)ring[i].a, ring[i].s);
	}
	return (NULL);
}

static void
test_qcache_threads(void)
{
	enum { NT = 6 };
	pthread_t tid[NT];
	qth_t t[NT];
	vmem_t *vmp;
	int i, bad = 0;
	_Atomic unsigned char *owner = calloc(TH_SPAN / TH_Q, 1);

	vmp = vmem_create("tq_thr", (void *)NOTMEM_BASE, TH_SPAN, TH_Q, NULL,
	    NULL, NULL, 4 * TH_Q, VM_SLEEP);
	CHECK(vmp != NULL && owner != NULL);
	if (vmp == NULL || owner == NULL)
		return;
	for (i = 0; i < NT; i++) {
		t[i].t_vmp = vmp;
		t[i].t_owner = owner;
		t[i].t_id = i;
		t[i].t_ops = TU_SCALE(200000, 10);
		t[i].t_bad = 0;
		pthread_create(&tid[i], NULL, qthread, &t[i]);
	}
	for (i = 0; i < NT; i++) {
		pthread_join(tid[i], NULL);
		bad += t[i].t_bad;
	}
	CHECKF(bad == 0, "%d ownership violations (double issue) among %d "
	    "threads", bad, NT);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
	free((void *)owner);
}

/*
 * An arena whose space sits in its quantum caches' magazines: a VM_SLEEP
 * request for a size the caches do not serve must get it back (reap, or
 * the update thread's working-set reap) and complete.  Run in a fresh
 * process (re-exec), with the update thread and without it
 * (update_interval=0): either way the space is free, so VM_SLEEP must not
 * wait forever.
 */
static void
test_short_child(void)
{
	const size_t q = 4096, span = 256 * q;
	vmem_t *vmp;
	void **v = calloc(span / q, sizeof (void *));
	size_t n = 0, i;
	void *big;
	uint64_t t0;

	vmp = vmem_create("tq_short", (void *)NOTMEM_BASE, span, q, NULL,
	    NULL, NULL, 2 * q, VM_SLEEP);
	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	while (n < span / q && (v[n] = vmem_alloc(vmp, q, VM_NOSLEEP)) != NULL)
		n++;
	CHECKF(n >= span / q / 2, "only %zu single-quantum segments", n);
	for (i = 0; i < n; i++)
		vmem_free(vmp, v[i], q);
	t0 = tu_now_ns();
	big = vmem_alloc(vmp, 64 * q, VM_SLEEP);
	CHECK(big != NULL);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  64-quantum VM_SLEEP request done after "
		    "%.2f s\n", (double)(tu_now_ns() - t0) / 1e9);
	vmem_free(vmp, big, 64 * q);
	vmem_destroy(vmp);
	free(v);
}

static void
test_qcache_short(void)
{
	static const char *const env[] = { "UMEM_OPTIONS=", NULL };

	tu_check_child("short", env, 30);
}

static void
test_qcache_short_nothread(void)
{
	static const char *const env[] = {
		"UMEM_OPTIONS=update_interval=0", NULL };

	tu_check_child("short", env, 10);
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		RUN(test_short_child);
		return (tu_child_summary(argv[2]));
	}
	tu_watchdog(300);
	RUN(test_d18_slabsize);
	RUN(test_d18_traffic);
	RUN(test_d19_qcache_ids);
	RUN(test_qcache_threads);
	RUN(test_qcache_short);
	RUN(test_qcache_short_nothread);
	return (test_summary(argv[0]));
}
