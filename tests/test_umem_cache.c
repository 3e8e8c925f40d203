/*
 * test_umem_cache.c - object caches against include/umem.h: the
 * umem_cache_create() argument and errno rules, object caching (D1:
 * constructor and destructor counts, objects unchanged across free and
 * re-allocation), slab geometry and accounting (D2: the 1/8 waste bound,
 * memory back to the source), small and large slab layouts and the
 * self-resizing hash (D3), slab colouring (D4), UMC_NOMAGAZINE (D11),
 * span return through a stack of arenas (D17), NOTOUCH caches over an
 * arena that is not memory (D19), UMEM_NOFAIL and its callback, the
 * reclaim callback, lookup and the statistics table.  The D-numbers are
 * those of the paper digest, section D.
 */
#include "test_umem.h"
#include "umem_impl.h"

#include <stdatomic.h>

#define	PAGE	((size_t)sysconf(_SC_PAGESIZE))

static size_t
roundup_sz(size_t x, size_t a)
{
	return ((x + a - 1) / a * a);
}

/*
 * Natural alignment: 8, or 16 once the 8-rounded size reaches 16 (the
 * illumos rule: a 9..15-byte object occupies 16 bytes and gets 16).
 */
static size_t
natural_align(size_t size)
{
	return (roundup_sz(size, 8) >= 16 ? 16 : 8);
}

/*
 * Wait (up to ms) for a source arena to have nothing in use: an empty
 * slab may be kept as a cache's spare until the next update pass or
 * reap.  Returns what is still in use.
 */
static uint64_t
wait_inuse_zero(vmem_t *vmp, unsigned ms)
{
	uint64_t t0 = tu_now_ns(), u;

	while ((u = tu_inuse(vmp)) != 0 &&
	    tu_now_ns() - t0 < (uint64_t)ms * 1000000) {
		umem_reap();
		tu_sleep_ms(20);
	}
	return (u);
}

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return (x < y ? -1 : x > y);
}

/*
 * ------------------------------------------------------------------------
 * umem_cache_create() rules
 * ------------------------------------------------------------------------
 */

static void
expect_fail(const char *what, umem_cache_t *cp, int err)
{
	int e = errno;

	CHECKF(cp == NULL && e == err, "%s: got %p errno %d, want NULL errno "
	    "%d", what, (void *)cp, e, err);
	if (cp != NULL)
		umem_cache_destroy(cp);
}

static void
test_create_errno(void)
{
	vmem_t *q16;
	umem_cache_t *cp;

	errno = 0;
	expect_fail("name NULL", umem_cache_create(NULL, 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0), EINVAL);
	errno = 0;
	expect_fail("bufsize 0", umem_cache_create("tc_zero", 0, 0, NULL,
	    NULL, NULL, NULL, NULL, 0), EINVAL);
	errno = 0;
	expect_fail("bufsize SIZE_MAX", umem_cache_create("tc_huge",
	    SIZE_MAX, 0, NULL, NULL, NULL, NULL, NULL, 0), ENOMEM);
	errno = 0;
	expect_fail("bufsize SIZE_MAX-5", umem_cache_create("tc_huge2",
	    SIZE_MAX - 5, 0, NULL, NULL, NULL, NULL, NULL, 0), ENOMEM);
	errno = 0;
	expect_fail("align 3", umem_cache_create("tc_a3", 64, 3, NULL, NULL,
	    NULL, NULL, NULL, 0), EINVAL);
	errno = 0;
	expect_fail("align 24", umem_cache_create("tc_a24", 64, 24, NULL,
	    NULL, NULL, NULL, NULL, 0), EINVAL);
	errno = 0;
	expect_fail("align 2 pages", umem_cache_create("tc_a2p", 64,
	    2 * PAGE, NULL, NULL, NULL, NULL, NULL, 0), EINVAL);
	errno = 0;
	expect_fail("NOTOUCH|NOHASH", umem_cache_create("tc_nn", 64, 0, NULL,
	    NULL, NULL, NULL, NULL, UMC_NOTOUCH | UMC_NOHASH), EINVAL);

	/*
	 * An alignment above the natural one must not exceed the source's
	 * quantum.  The source: identifiers, quantum 16 (never touched).
	 */
	q16 = vmem_create("tc_q16", (void *)(uintptr_t)0x10000000, 1 << 20,
	    16, NULL, NULL, NULL, 0, VM_SLEEP);
	CHECK(q16 != NULL);
	errno = 0;
	expect_fail("align 32 > quantum 16", umem_cache_create("tc_a32",
	    64, 32, NULL, NULL, NULL, NULL, q16, UMC_NOTOUCH), EINVAL);
	cp = umem_cache_create("tc_a16", 64, 16, NULL, NULL, NULL, NULL, q16,
	    UMC_NOTOUCH);
	CHECKF(cp != NULL, "align 16 = quantum 16: errno %d", errno);
	if (cp != NULL)
		umem_cache_destroy(cp);
	vmem_destroy(q16);

	CHECK(umem_cache_getstat(NULL, NULL) == -1 && errno == EINVAL);
}

static void
test_create_values(void)
{
	static const struct { size_t size, align; int cflags; size_t want; }
	    al[] = {
		{ 1, 0, 0, 8 }, { 8, 0, 0, 8 }, { 15, 0, 0, 16 },
		{ 16, 0, 0, 16 }, { 100, 0, 0, 16 }, { 4096, 0, 0, 16 },
		{ 64, 1, 0, 8 }, { 64, 4, 0, 8 }, { 64, 8, 0, 8 },
		{ 64, 64, 0, 64 }, { 100, 128, 0, 128 },
		{ 64, 4, UMC_NOTOUCH, 4 },
	};
	char longname[64];
	umem_cache_t *cp, *cp2;
	umem_cache_stat_t st;
	size_t i;

	for (i = 0; i < sizeof (al) / sizeof (al[0]); i++) {
		cp = umem_cache_create("tc_align", al[i].size, al[i].align,
		    NULL, NULL, NULL, NULL, NULL, al[i].cflags);
		CHECKF(cp != NULL, "size %zu align %zu: errno %d",
		    al[i].size, al[i].align, errno);
		if (cp == NULL)
			continue;
		st = tu_stat(cp);
		CHECKF(st.cs_align == al[i].want, "size %zu align %zu "
		    "cflags %#x: cs_align %zu, want %zu", al[i].size,
		    al[i].align, al[i].cflags, st.cs_align, al[i].want);
		CHECKF(st.cs_bufsize == al[i].size, "cs_bufsize %zu",
		    st.cs_bufsize);
		CHECK(st.cs_cflags == (uint32_t)al[i].cflags);
		if (!(al[i].cflags & UMC_NOTOUCH)) {
			size_t want = roundup_sz(roundup_sz(al[i].size, 8),
			    st.cs_align);
			CHECKF(st.cs_chunksize == want, "size %zu align "
			    "%zu: cs_chunksize %zu, want %zu", al[i].size,
			    al[i].align, st.cs_chunksize, want);
		} else {
			CHECK(st.cs_chunksize >= al[i].size &&
			    st.cs_chunksize % st.cs_align == 0);
		}
		umem_cache_destroy(cp);
	}

	/* The name is copied, up to 31 characters. */
	memset(longname, 'n', sizeof (longname));
	memcpy(longname, "tc_long_", 8);
	longname[40] = '\0';
	cp = umem_cache_create(longname, 64, 0, NULL, NULL, NULL, NULL, NULL,
	    0);
	CHECK(cp != NULL);
	if (cp != NULL) {
		memset(longname, 'x', 8);	/* the cache keeps its copy */
		st = tu_stat(cp);
		CHECKF(strlen(st.cs_name) == 31 &&
		    strncmp(st.cs_name, "tc_long_nnnn", 12) == 0,
		    "cs_name '%s'", st.cs_name);
		umem_cache_destroy(cp);
	}

	/* Lookup: by name, first created first; gone after destroy. */
	CHECK(umem_cache_lookup("tc_no_such_cache") == NULL);
	cp = umem_cache_create("tc_dup", 64, 0, NULL, NULL, NULL, NULL, NULL,
	    0);
	cp2 = umem_cache_create("tc_dup", 128, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	CHECK(cp != NULL && cp2 != NULL && cp != cp2);
	CHECK(umem_cache_lookup("tc_dup") == cp);
	if (cp != NULL)
		umem_cache_destroy(cp);
	CHECK(umem_cache_lookup("tc_dup") == cp2);
	if (cp2 != NULL)
		umem_cache_destroy(cp2);
	CHECK(umem_cache_lookup("tc_dup") == NULL);

	/* The library's own caches are visible. */
	CHECK(umem_cache_lookup("umem_slab_cache") != NULL);
	CHECK(umem_cache_lookup("umem_bufctl_cache") != NULL);
}

/*
 * ------------------------------------------------------------------------
 * D1: object caching
 * ------------------------------------------------------------------------
 */

typedef struct d1obj {
	uint64_t	o_magic;
	pthread_mutex_t	o_lock;
	struct d1obj	*o_next, *o_prev;	/* a list head */
	uint64_t	o_state;
	unsigned char	o_tail[40];
} d1obj_t;

#define	D1_MAGIC	0x6f626a6374723121ull

static atomic_ulong d1_ctor, d1_dtor, d1_bad;
static atomic_int d1_failctor;
static atomic_int d1_flags_seen;
static int d1_priv;

static int
d1_construct(void *buf, void *priv, int flags)
{
	d1obj_t *o = buf;

	if (priv != &d1_priv)
		atomic_fetch_add(&d1_bad, 1);
	if (flags != UMEM_DEFAULT)
		atomic_fetch_or(&d1_flags_seen, flags | 0x10000);
	if (atomic_load(&d1_failctor))
		return (1);
	o->o_magic = D1_MAGIC;
	(void) pthread_mutex_init(&o->o_lock, NULL);
	o->o_next = o->o_prev = o;
	o->o_state = 0;
	memset(o->o_tail, 0x5c, sizeof (o->o_tail));
	atomic_fetch_add(&d1_ctor, 1);
	return (0);
}

static void
d1_destruct(void *buf, void *priv)
{
	d1obj_t *o = buf;

	if (priv != &d1_priv || o->o_magic != D1_MAGIC)
		atomic_fetch_add(&d1_bad, 1);
	(void) pthread_mutex_destroy(&o->o_lock);
	o->o_magic = 0;
	atomic_fetch_add(&d1_dtor, 1);
}

static void
test_d1_ctor_dtor(void)
{
	enum { LIVE = 100 };
	unsigned long iters = TU_SCALE(1000000ul, 10), rounds =
	    TU_SCALE(2000ul, 10), i, j, c0, distinct = 0;
	d1obj_t *o, *first, *live[LIVE], *orig[LIVE];
	umem_cache_t *cp;
	umem_cache_stat_t st;
	uint64_t m;

	TU_SKIP_IF_OPTION("nomagazines", "every free destructs (D11)");
	(void) tu_pin_here();
	atomic_store(&d1_ctor, 0);
	atomic_store(&d1_dtor, 0);
	cp = umem_cache_create("tc_d1", sizeof (d1obj_t), 0, d1_construct,
	    d1_destruct, NULL, &d1_priv, NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	m = tu_stat(cp).cs_magsize;
	CHECKF(m > 0, "cs_magsize %llu", (unsigned long long)m);

	/* One object, a million times: constructed once. */
	first = umem_cache_alloc(cp, UMEM_DEFAULT);
	CHECK(first != NULL && first->o_magic == D1_MAGIC);
	CHECK(atomic_load(&d1_ctor) == 1);
	umem_cache_free(cp, first);
	for (i = 0; i < iters; i++) {
		o = umem_cache_alloc(cp, UMEM_DEFAULT);
		if (o != first)
			distinct++;
		umem_cache_free(cp, o);
	}
	CHECKF(atomic_load(&d1_ctor) <= (unsigned long)tu_ncpus(),
	    "%lu alloc/free pairs of one object ran the constructor %lu "
	    "times", iters, atomic_load(&d1_ctor));
	CHECKF(distinct == 0, "pinned alloc/free loop got %lu other objects",
	    distinct);
	CHECK(atomic_load(&d1_dtor) == 0);

	/* Peak of LIVE objects: LIVE constructions, not one per alloc. */
	c0 = atomic_load(&d1_ctor);
	for (i = 0; i < rounds; i++) {
		for (j = 0; j < LIVE; j++)
			live[j] = umem_cache_alloc(cp, UMEM_DEFAULT);
		for (j = 0; j < LIVE; j++)
			umem_cache_free(cp, live[j]);
	}
	CHECKF(atomic_load(&d1_ctor) - c0 + 1 >= LIVE &&
	    atomic_load(&d1_ctor) <= LIVE + 2 * m * (unsigned long)tu_ncpus(),
	    "peak %d live, %lu allocations: %lu constructions", LIVE,
	    rounds * LIVE, atomic_load(&d1_ctor));
	CHECK(atomic_load(&d1_dtor) == 0);
	st = tu_stat(cp);
	CHECKF(st.cs_ctor == atomic_load(&d1_ctor) && st.cs_dtor ==
	    atomic_load(&d1_dtor), "cs_ctor %llu cs_dtor %llu, counted %lu %lu",
	    (unsigned long long)st.cs_ctor, (unsigned long long)st.cs_dtor,
	    atomic_load(&d1_ctor), atomic_load(&d1_dtor));
	CHECK(st.cs_alloc == st.cs_free);
	CHECK(st.cs_alloc == 1 + iters + rounds * LIVE);

	/* Freed and re-allocated objects come back unchanged, every byte. */
	for (j = 0; j < LIVE; j++) {
		live[j] = orig[j] = umem_cache_alloc(cp, UMEM_DEFAULT);
		live[j]->o_state = 1000 + j;
		memset(live[j]->o_tail, (int)j, sizeof (live[j]->o_tail));
	}
	c0 = atomic_load(&d1_dtor);
	for (j = 0; j < LIVE; j++)
		umem_cache_free(cp, live[j]);
	for (j = 0; j < LIVE; j++) {
		d1obj_t *p = umem_cache_alloc(cp, UMEM_DEFAULT);
		size_t k, idx = p->o_state - 1000;

		if (atomic_load(&d1_dtor) != c0) {
			/* Some went to the slab layer: not defined. */
			live[j++] = p;
			while (j < LIVE)
				live[j++] = NULL;
			break;
		}
		CHECKF(p->o_magic == D1_MAGIC && idx < LIVE && orig[idx] == p,
		    "re-allocated object %p: magic %llx state %llu", (void *)p,
		    (unsigned long long)p->o_magic,
		    (unsigned long long)p->o_state);
		CHECK(p->o_next == p && p->o_prev == p);
		for (k = 0; k < sizeof (p->o_tail); k++)
			if (p->o_tail[k] != (unsigned char)idx)
				break;
		CHECKF(k == sizeof (p->o_tail), "object %p byte %zu of its "
		    "tail changed across free/alloc", (void *)p, k);
		live[j] = p;
	}
	CHECKF(atomic_load(&d1_dtor) == c0, "destructor ran on a plain free");
	for (j = 0; j < LIVE && live[j] != NULL; j++)
		umem_cache_free(cp, live[j]);

	/* The constructor's flags are UMEM_DEFAULT, even for NOFAIL. */
	umem_cache_destroy(cp);
	CHECKF(atomic_load(&d1_ctor) == atomic_load(&d1_dtor), "destroy: %lu "
	    "constructed, %lu destructed", atomic_load(&d1_ctor),
	    atomic_load(&d1_dtor));
	cp = umem_cache_create("tc_d1b", sizeof (d1obj_t), 0, d1_construct,
	    d1_destruct, NULL, &d1_priv, NULL, 0);
	for (j = 0; j < LIVE; j++)
		live[j] = umem_cache_alloc(cp, UMEM_NOFAIL);
	for (j = 0; j < LIVE; j++)
		umem_cache_free(cp, live[j]);
	CHECKF(atomic_load(&d1_flags_seen) == 0, "constructor saw flags %#x",
	    atomic_load(&d1_flags_seen) & 0xffff);
	CHECK(atomic_load(&d1_bad) == 0);
	umem_cache_destroy(cp);
	CHECK(atomic_load(&d1_ctor) == atomic_load(&d1_dtor));
}

/* A failing constructor: NULL, counted, and no destructor for it. */
static void
test_d1_ctor_fail(void)
{
	umem_cache_t *cp;
	umem_cache_stat_t st0, st;
	void *p;
	unsigned long d0;

	cp = umem_cache_create("tc_ctorfail", sizeof (d1obj_t), 0,
	    d1_construct, d1_destruct, NULL, &d1_priv, NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	st0 = tu_stat(cp);
	d0 = atomic_load(&d1_dtor);
	atomic_store(&d1_failctor, 1);
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	atomic_store(&d1_failctor, 0);
	CHECK(p == NULL);
	st = tu_stat(cp);
	CHECKF(st.cs_ctor_fail == st0.cs_ctor_fail + 1, "cs_ctor_fail %llu",
	    (unsigned long long)st.cs_ctor_fail);
	CHECK(st.cs_alloc_fail == st0.cs_alloc_fail + 1);
	CHECK(st.cs_alloc == st0.cs_alloc);
	CHECKF(st.cs_buf_inuse == st0.cs_buf_inuse, "failed construction "
	    "kept a buffer: inuse %llu -> %llu",
	    (unsigned long long)st0.cs_buf_inuse,
	    (unsigned long long)st.cs_buf_inuse);
	CHECK(atomic_load(&d1_dtor) == d0);
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	CHECK(p != NULL);
	if (p != NULL)
		umem_cache_free(cp, p);
	umem_cache_destroy(cp);
}

/*
 * ------------------------------------------------------------------------
 * D2: slab geometry and accounting
 * ------------------------------------------------------------------------
 */

static const size_t geo_sizes[] = {
	1, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 100, 112, 128, 136,
	160, 192, 200, 232, 256, 320, 384, 400, 448, 456, 480, 496, 500, 504,
	511, 512, 520, 640, 700, 768, 800, 1000, 1024, 1100, 1200, 1500,
	1536, 2000, 2048, 2100, 2500, 3000, 3072, 3200, 3300, 4000, 4096,
	4100, 5000, 6000, 6144, 7000, 8000, 8192, 9000, 10000, 12000, 12288,
	16384, 20000, 24576, 32768, 40000, 65536, 100000, 200000,
};

/* Least waste fraction over 1..8 chunks per slab (the illumos search). */
static double
best_waste(size_t chunk, size_t q)
{
	double best = 1.0;
	size_t k;

	for (k = 1; k <= 8; k++) {
		size_t slab = roundup_sz(chunk * k, q);
		double w = (double)(slab - chunk * k) / (double)slab;

		if (w < best)
			best = w;
	}
	return (best);
}

static void
test_d2_geometry(void)
{
	size_t q = PAGE, i, hdr = umem_slab_header_size;

	for (i = 0; i < sizeof (geo_sizes) / sizeof (geo_sizes[0]); i++) {
		size_t size = geo_sizes[i], chunk, n, j, waste;
		umem_cache_t *cp;
		umem_cache_stat_t st;
		uintptr_t *v;
		int small;

		cp = umem_cache_create("tc_geo", size, 0, NULL, NULL, NULL,
		    NULL, NULL, 0);
		CHECKF(cp != NULL, "size %zu: errno %d", size, errno);
		if (cp == NULL)
			continue;
		st = tu_stat(cp);
		chunk = roundup_sz(roundup_sz(size, 8), natural_align(size));
		CHECKF(st.cs_chunksize == chunk, "size %zu: chunksize %zu, "
		    "want %zu", size, st.cs_chunksize, chunk);
		small = chunk < q / 8;
		CHECKF(st.cs_hashed == (uint32_t)!small, "size %zu (chunk "
		    "%zu): cs_hashed %u, want %d", size, chunk, st.cs_hashed,
		    !small);
		CHECK(st.cs_chunks >= 1);
		CHECK(st.cs_slabsize % q == 0);
		CHECK((st.cs_hash_size != 0) == (st.cs_hashed != 0));
		waste = st.cs_slabsize - (size_t)st.cs_chunks * chunk;
		if (small) {
			/*
			 * One page: chunks, colour space (a multiple of the
			 * alignment), the embedded slab header.
			 */
			CHECKF(st.cs_slabsize == q, "size %zu: slabsize %zu",
			    size, st.cs_slabsize);
			CHECKF(hdr > 0 && hdr <= 128 && waste >= hdr &&
			    st.cs_maxcolor <= waste - hdr &&
			    waste - hdr - st.cs_maxcolor < st.cs_align &&
			    st.cs_maxcolor % st.cs_align == 0 &&
			    waste - hdr < chunk, "size %zu: slab %zu = %u x %zu "
			    "+ maxcolor %u + header %zu", size, st.cs_slabsize,
			    st.cs_chunks, chunk, st.cs_maxcolor, hdr);
			CHECKF(waste * 8 <= st.cs_slabsize, "size %zu: waste "
			    "%zu of %zu", size, waste, st.cs_slabsize);
		} else {
			double w = (double)waste / (double)st.cs_slabsize;
			double lim = best_waste(chunk, q);

			if (lim < 0.125)
				lim = 0.125;
			CHECKF(st.cs_maxcolor <= waste && waste -
			    st.cs_maxcolor < st.cs_align && st.cs_maxcolor %
			    st.cs_align == 0 && waste < chunk, "size %zu: "
			    "maxcolor %u, slab leftover %zu", size,
			    st.cs_maxcolor, waste);
			CHECKF(w <= lim + 1e-9, "size %zu: slab %zu holds %u x "
			    "%zu, waste %.3f > %.3f", size, st.cs_slabsize,
			    st.cs_chunks, chunk, w, lim);
		}

		/* Three slabs' worth: accounting and placement. */
		n = 2 * (size_t)st.cs_chunks + 1;
		v = calloc(n, sizeof (*v));
		for (j = 0; j < n; j++) {
			v[j] = (uintptr_t)umem_cache_alloc(cp, UMEM_DEFAULT);
			CHECK(v[j] != 0);
			if (v[j] == 0)
				break;
			CHECKF(v[j] % st.cs_align == 0, "size %zu: %p not "
			    "aligned to %zu", size, (void *)v[j], st.cs_align);
			memset((void *)v[j], 0xa0 + (int)(j & 15), size);
			if (small)
				CHECKF(v[j] % q + chunk + hdr <= q, "size %zu: "
				    "buffer %p overlaps the slab header", size,
				    (void *)v[j]);
		}
		if (j == n) {
			umem_cache_stat_t s2 = tu_stat(cp);

			CHECKF(s2.cs_slab_create == 3 && s2.cs_buf_total == 3 *
			    (uint64_t)st.cs_chunks && s2.cs_mem_total == 3 *
			    (uint64_t)st.cs_slabsize && s2.cs_buf_inuse == n,
			    "size %zu, %zu live: slabs %llu bufs %llu mem %llu "
			    "inuse %llu (%u per slab of %zu)", size, n,
			    (unsigned long long)s2.cs_slab_create,
			    (unsigned long long)s2.cs_buf_total,
			    (unsigned long long)s2.cs_mem_total,
			    (unsigned long long)s2.cs_buf_inuse, st.cs_chunks,
			    st.cs_slabsize);
			qsort(v, n, sizeof (*v), cmp_ptr);
			for (j = 1; j < n; j++)
				CHECKF(v[j] - v[j - 1] >= chunk, "size %zu: "
				    "buffers %p and %p overlap", size,
				    (void *)v[j - 1], (void *)v[j]);
			for (j = 0; j < n; j++)
				umem_cache_free(cp, (void *)v[j]);
		}
		free(v);
		umem_cache_destroy(cp);
	}
}

/*
 * What a cache keeps of its empty slabs (slab.c: UMEM_SPARE_BYTES, and
 * UMEM_SPARE_SLABS for buffers of UMEM_RELEASE_CHUNK_MIN and up).
 */
#define	SPARE_BYTES	(128u << 10)
#define	SPARE_SLABS	16
#define	SPARE_BIG_CHUNK	(8u << 10)

static uint64_t
spare_most(const umem_cache_stat_t *st)
{
	uint64_t most = SPARE_BYTES / st->cs_slabsize;

	if (st->cs_chunksize >= SPARE_BIG_CHUNK && most < SPARE_SLABS)
		most = SPARE_SLABS;
	return (most > 1 ? most : 1);
}

/*
 * Memory goes back to the source: at once for a magazine-less cache (the
 * slab layer destroys an empty slab, but for its spares), and completely on
 * destroy.
 */
static void
test_d2_mem_baseline(void)
{
	static const size_t sizes[] = { 64, 200, 1000, 5000, 20000 };
	enum { NS = sizeof (sizes) / sizeof (sizes[0]) };
	size_t n = TU_SCALE(4000, 4), i, j;
	umem_cache_t *cp[NS], *mc[NS];
	void **v = calloc(n * NS, sizeof (void *));
	vmem_t *src = tu_mem_arena("tc_src");
	uint64_t sum;

	if (src == NULL)
		return;
	CHECK(tu_inuse(src) == 0);
	for (i = 0; i < NS; i++) {
		cp[i] = umem_cache_create("tc_base", sizes[i], 0, NULL, NULL,
		    NULL, NULL, src, UMC_NOMAGAZINE);
		mc[i] = umem_cache_create("tc_basem", sizes[i], 0, NULL, NULL,
		    NULL, NULL, src, 0);
		CHECK(cp[i] != NULL && mc[i] != NULL);
		if (cp[i] == NULL || mc[i] == NULL)
			return;
	}
	for (i = 0; i < NS; i++)
		for (j = 0; j < n; j++)
			v[i * n + j] = umem_cache_alloc(cp[i], UMEM_DEFAULT);
	sum = 0;
	for (i = 0; i < NS; i++)
		sum += tu_stat(cp[i]).cs_mem_total;
	CHECKF(tu_inuse(src) == sum && sum > 0, "source in use %llu, caches' "
	    "slabs %llu", (unsigned long long)tu_inuse(src),
	    (unsigned long long)sum);
	/* Free in an order that empties slabs late. */
	for (i = 0; i < NS; i++) {
		for (j = 0; j < n; j += 2)
			umem_cache_free(cp[i], v[i * n + j]);
		for (j = 1; j < n; j += 2)
			umem_cache_free(cp[i], v[i * n + j]);
	}
	/*
	 * Only spare slabs stay for a while: 128 KiB a cache, or one slab;
	 * 16 slabs of buffers of 8 KiB and up.
	 */
	sum = 0;
	for (i = 0; i < NS; i++) {
		umem_cache_stat_t st = tu_stat(cp[i]);

		CHECK(st.cs_buf_inuse == 0);
		CHECKF(st.cs_slab_create - st.cs_slab_destroy ==
		    st.cs_slab_spare && st.cs_slab_spare <= spare_most(&st),
		    "size %zu: %llu slabs left, %llu of them spares",
		    sizes[i], (unsigned long long)(st.cs_slab_create -
		    st.cs_slab_destroy), (unsigned long long)st.cs_slab_spare);
		sum += st.cs_slab_spare * st.cs_slabsize;
	}
	CHECKF(tu_inuse(src) == sum, "magazine-less caches, all freed: "
	    "source has %llu bytes in use, the spares %llu",
	    (unsigned long long)tu_inuse(src), (unsigned long long)sum);
	CHECKF(wait_inuse_zero(src, 3000) == 0, "magazine-less caches, all "
	    "freed, 3 s of reaps: source still has %llu bytes in use",
	    (unsigned long long)tu_inuse(src));
	for (i = 0; i < NS; i++) {
		umem_cache_stat_t st = tu_stat(cp[i]);

		CHECK(st.cs_buf_inuse == 0 && st.cs_buf_total == 0 &&
		    st.cs_mem_total == 0);
		CHECK(st.cs_slab_create == st.cs_slab_destroy);
		CHECK(st.cs_buf_max >= n);
	}

	/* With magazines: objects stay cached; destroy gives back all. */
	for (i = 0; i < NS; i++) {
		for (j = 0; j < n; j++)
			v[i * n + j] = umem_cache_alloc(mc[i], UMEM_DEFAULT);
		for (j = 0; j < n; j++)
			umem_cache_free(mc[i], v[i * n + j]);
	}
	CHECK(tu_inuse(src) > 0);
	for (i = 0; i < NS; i++) {
		umem_cache_stat_t st = tu_stat(mc[i]);

		CHECKF(st.cs_buf_inuse == st.cs_buf_magazine, "size %zu: %llu "
		    "buffers out of the slab layer, %llu in magazines",
		    sizes[i], (unsigned long long)st.cs_buf_inuse,
		    (unsigned long long)st.cs_buf_magazine);
		umem_cache_destroy(mc[i]);
		umem_cache_destroy(cp[i]);
	}
	CHECKF(tu_inuse(src) == 0, "all caches destroyed: source still has "
	    "%llu bytes in use", (unsigned long long)tu_inuse(src));
	CHECK(vmem_verify(src) == 0);
	vmem_destroy(src);
	free(v);
}

/*
 * ------------------------------------------------------------------------
 * D3: layouts
 * ------------------------------------------------------------------------
 */

static void
test_d3_layout(void)
{
	static const struct { size_t size; int cflags; int hashed; } lay[] = {
		{ 64, 0, 0 }, { 496, 0, 0 }, { 512, 0, 1 }, { 1024, 0, 1 },
		{ 1024, UMC_NOHASH, 0 }, { 64, UMC_NOTOUCH, 1 },
		{ 8, UMC_NOTOUCH, 1 },
	};
	umem_cache_t *cp;
	unsigned char *a, *b, *c;
	size_t i, k;

	for (i = 0; i < sizeof (lay) / sizeof (lay[0]); i++) {
		umem_cache_stat_t st;

		cp = umem_cache_create("tc_layout", lay[i].size, 0, NULL,
		    NULL, NULL, NULL, NULL, lay[i].cflags);
		CHECK(cp != NULL);
		if (cp == NULL)
			continue;
		st = tu_stat(cp);
		CHECKF(st.cs_hashed == (uint32_t)lay[i].hashed, "size %zu "
		    "cflags %#x: cs_hashed %u", lay[i].size, lay[i].cflags,
		    st.cs_hashed);
		CHECK((st.cs_hash_size > 0) == (lay[i].hashed != 0));
		if (lay[i].cflags & UMC_NOHASH)
			CHECK(st.cs_slabsize == PAGE && st.cs_chunks >= 1);
		umem_cache_destroy(cp);
	}

	/*
	 * Small slabs keep their free link in the buffer's last word only:
	 * a raw buffer freed to the slab layer and taken again keeps every
	 * other byte (no constructor; b keeps the slab from emptying).
	 */
	cp = umem_cache_create("tc_link", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, UMC_NOMAGAZINE);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	a = umem_cache_alloc(cp, UMEM_DEFAULT);
	b = umem_cache_alloc(cp, UMEM_DEFAULT);
	memset(a, 0xab, 64);
	umem_cache_free(cp, a);
	c = umem_cache_alloc(cp, UMEM_DEFAULT);
	CHECKF(c == a, "slab freelist is not LIFO: freed %p, got %p",
	    (void *)a, (void *)c);
	if (c == a) {
		for (k = 0; k < 64 - sizeof (void *); k++)
			if (a[k] != 0xab)
				break;
		CHECKF(k == 64 - sizeof (void *), "slab layer wrote byte %zu "
		    "of a free 64-byte buffer (the link belongs in the last "
		    "word)", k);
	}
	umem_cache_free(cp, c);
	umem_cache_free(cp, b);
	umem_cache_destroy(cp);
}

/*
 * Many live large objects: the hash grows to about one entry per bucket
 * and a free follows about one chain link.  The objects are identifiers
 * (NOTOUCH over an arena that is not memory), so a million cost nothing.
 * Run in a child with a fast update thread, in case rescaling is done
 * there (as in illumos).
 */
static void
test_d3_hash(void)
{
	size_t n = TU_SCALE(400000, 8), i;
	uintptr_t base = 0x10000000;
	vmem_t *ids;
	umem_cache_t *cp;
	umem_cache_stat_t st0, st;
	void **v = calloc(n, sizeof (void *));
	uint64_t t0;
	double depth;

	ids = vmem_create("tc_hashids", (void *)base, (size_t)1 << 32, PAGE,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	CHECK(ids != NULL);
	cp = umem_cache_create("tc_hash", 1024, 0, NULL, NULL, NULL, NULL,
	    ids, UMC_NOTOUCH | UMC_NOMAGAZINE);
	CHECK(cp != NULL);
	if (ids == NULL || cp == NULL || v == NULL)
		return;
	st0 = tu_stat(cp);
	CHECK(st0.cs_hashed == 1 && st0.cs_hash_size > 0);
	for (i = 0; i < n; i++) {
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		if (v[i] == NULL)
			break;
	}
	CHECKF(i == n, "only %zu of %zu identifiers", i, n);
	n = i;
	t0 = tu_now_ns();
	do {
		st = tu_stat(cp);
		if (st.cs_hash_size * 4 >= n)
			break;
		tu_sleep_ms(20);
	} while (tu_now_ns() - t0 < 5000000000ull);
	CHECKF(st.cs_hash_size * 4 >= n && st.cs_hash_rescale > 0,
	    "%zu live objects: %llu hash buckets (initially %llu), %llu "
	    "rescales", n, (unsigned long long)st.cs_hash_size,
	    (unsigned long long)st0.cs_hash_size,
	    (unsigned long long)st.cs_hash_rescale);
	CHECKF(st.cs_hash_size <= 8 * (uint64_t)n, "%llu buckets for %zu "
	    "objects", (unsigned long long)st.cs_hash_size, n);
	/* Free in an order unrelated to the hash. */
	for (i = 0; i < n; i += 2)
		umem_cache_free(cp, v[i]);
	for (i = 1; i < n; i += 2)
		umem_cache_free(cp, v[i]);
	st0 = st;
	st = tu_stat(cp);
	CHECK(st.cs_hash_lookup - st0.cs_hash_lookup >= n);
	depth = (double)(st.cs_hash_depth - st0.cs_hash_depth) /
	    (double)(st.cs_hash_lookup - st0.cs_hash_lookup);
	CHECKF(depth >= 0.99 && depth <= 2.0, "mean hash lookup depth %.3f "
	    "over %llu lookups", depth, (unsigned long long)(st.cs_hash_lookup
	    - st0.cs_hash_lookup));
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  %zu objects: %llu buckets, %llu rescales, "
		    "mean depth %.3f\n", n, (unsigned long long)st0.cs_hash_size,
		    (unsigned long long)st0.cs_hash_rescale, depth);
	CHECK(st.cs_buf_inuse == 0);
	umem_cache_destroy(cp);
	CHECK(tu_inuse(ids) == 0);
	vmem_destroy(ids);
	free(v);
}

/*
 * ------------------------------------------------------------------------
 * D4: colouring
 * ------------------------------------------------------------------------
 */

/*
 * Allocate from a magazine-less cache slab after slab; for each new slab
 * (cs_slab_create went up) find its lowest buffer: its offset from the
 * quantum-aligned slab base is the colour.  Successive colours must step
 * by the alignment and wrap to 0 after maxcolor.
 */
static void
check_colours(const char *name, size_t size, size_t align)
{
	umem_cache_t *cp;
	umem_cache_stat_t st;
	size_t q = PAGE, nslabs, total, i, s, ncol = 0, expect_n;
	uintptr_t *v, *lo;
	uint64_t *slabno, prev;
	size_t *cnt, *col;
	int wrapped = 0;

	cp = umem_cache_create((char *)name, size, align, NULL, NULL, NULL,
	    NULL, NULL, UMC_NOMAGAZINE);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	st = tu_stat(cp);
	CHECKF(st.cs_maxcolor >= st.cs_align && st.cs_maxcolor < q,
	    "%s: maxcolor %u, align %zu: nothing to test", name,
	    st.cs_maxcolor, st.cs_align);
	nslabs = st.cs_maxcolor / st.cs_align + 4;
	total = nslabs * st.cs_chunks;
	v = calloc(total, sizeof (*v));
	slabno = calloc(total, sizeof (*slabno));
	lo = calloc(nslabs + 1, sizeof (*lo));
	cnt = calloc(nslabs + 1, sizeof (*cnt));
	col = calloc(nslabs + 1, sizeof (*col));
	prev = st.cs_slab_create;
	for (i = 0; i < total; i++) {
		uint64_t sc;

		v[i] = (uintptr_t)umem_cache_alloc(cp, UMEM_DEFAULT);
		sc = tu_stat(cp).cs_slab_create;
		if (sc != prev)
			ncol++;
		prev = sc;
		slabno[i] = ncol;
		if (ncol > nslabs)
			break;
		if (lo[ncol] == 0 || v[i] < lo[ncol])
			lo[ncol] = v[i];
		cnt[ncol]++;
	}
	for (s = 1; s <= ncol && s <= nslabs; s++) {
		col[s] = lo[s] % q;
		if (st.cs_slabsize == q)
			CHECK(lo[s] % st.cs_slabsize == col[s]);
		expect_n = st.cs_hashed ? (st.cs_slabsize - col[s]) /
		    st.cs_chunksize : st.cs_chunks;
		if (s < ncol)	/* the last slab may be partly used */
			CHECKF(cnt[s] == expect_n, "%s: slab %zu (colour %zu)"
			    " gave %zu buffers, want %zu", name, s, col[s],
			    cnt[s], expect_n);
		CHECKF(col[s] <= st.cs_maxcolor && col[s] % st.cs_align == 0,
		    "%s: colour %zu (maxcolor %u, align %zu)", name, col[s],
		    st.cs_maxcolor, st.cs_align);
		if (s > 1) {
			size_t want = col[s - 1] + st.cs_align;

			if (want > st.cs_maxcolor) {
				want = 0;
				wrapped++;
			}
			CHECKF(col[s] == want, "%s: slab %zu colour %zu after "
			    "%zu, want %zu (align %zu, maxcolor %u)", name, s,
			    col[s], col[s - 1], want, st.cs_align,
			    st.cs_maxcolor);
		}
	}
	/* Buffers of a slab sit at colour + k * chunksize. */
	for (i = 0; i < total && slabno[i] <= nslabs; i++) {
		size_t s2 = slabno[i];

		if (s2 == 0 || s2 > ncol)
			continue;
		CHECKF((v[i] - lo[s2]) % st.cs_chunksize == 0, "%s: buffer "
		    "%p not on the slab's grid", name, (void *)v[i]);
	}
	CHECKF(ncol >= nslabs && wrapped >= 1, "%s: %zu slabs, %d wraps",
	    name, ncol, wrapped);
	for (i = 0; i < total; i++)
		if (v[i] != 0)
			umem_cache_free(cp, (void *)v[i]);
	umem_cache_destroy(cp);
	free(v);
	free(slabno);
	free(lo);
	free(cnt);
	free(col);
}

static void
test_d4_colour(void)
{
	check_colours("tc_col200", 200, 8);	/* Bonwick 1994's example */
	check_colours("tc_col120", 120, 32);	/* chunk 128, align 32 */
	check_colours("tc_col1200", 1200, 16);	/* a large (hashed) slab */
}

/*
 * ------------------------------------------------------------------------
 * D11: UMC_NOMAGAZINE
 * ------------------------------------------------------------------------
 */

static void
test_d11_nomagazine(void)
{
	unsigned long long seed = 11;
	size_t n = TU_SCALE(20000, 4), i, live = 0, allocs = 0, frees = 0;
	void *v[64];
	umem_cache_t *cp;
	umem_cache_stat_t st;
	unsigned long c0 = atomic_load(&d1_ctor), dd0 = atomic_load(&d1_dtor);

	cp = umem_cache_create("tc_nomag", sizeof (d1obj_t), 0, d1_construct,
	    d1_destruct, NULL, &d1_priv, NULL, UMC_NOMAGAZINE);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (live < 64 && (live == 0 || test_rand(&seed) % 2)) {
			v[live++] = umem_cache_alloc(cp, UMEM_DEFAULT);
			allocs++;
		} else {
			umem_cache_free(cp, v[--live]);
			frees++;
		}
	}
	while (live > 0) {
		umem_cache_free(cp, v[--live]);
		frees++;
	}
	st = tu_stat(cp);
	CHECKF(st.cs_slab_alloc == st.cs_alloc && st.cs_alloc == allocs &&
	    st.cs_slab_free == st.cs_free && st.cs_free == frees,
	    "alloc %llu slab_alloc %llu free %llu slab_free %llu",
	    (unsigned long long)st.cs_alloc,
	    (unsigned long long)st.cs_slab_alloc,
	    (unsigned long long)st.cs_free,
	    (unsigned long long)st.cs_slab_free);
	CHECK(st.cs_mag_alloc == 0 && st.cs_mag_free == 0 &&
	    st.cs_magsize == 0 && st.cs_buf_magazine == 0 &&
	    st.cs_mag_create == 0 && st.cs_depot_alloc == 0);
	CHECKF(atomic_load(&d1_ctor) - c0 == allocs &&
	    atomic_load(&d1_dtor) - dd0 == frees, "%zu allocs %zu frees: %lu "
	    "ctors %lu dtors", allocs, frees, atomic_load(&d1_ctor) - c0,
	    atomic_load(&d1_dtor) - dd0);
	umem_cache_destroy(cp);
}

/*
 * ------------------------------------------------------------------------
 * D17: span return through a stack of arenas
 * ------------------------------------------------------------------------
 */


typedef struct held {
	int	h_cache;
	void	*h_buf;
} held_t;

static void
test_d17_spans(void)
{
	static const size_t sizes[] = { 64, 1000, 5000 };
	vmem_t *parent = tu_mem_arena("tc_parent"), *child;
	umem_cache_t *cp[3];
	size_t n = TU_SCALE(3000, 4), i, j;
	held_t *v = calloc(3 * n, sizeof (held_t)), t;
	unsigned long long seed = 17;
	vmem_stat_t cs, ps;

	if (parent == NULL || v == NULL)
		return;
	child = vmem_create("tc_child", NULL, 0, PAGE, vmem_alloc, vmem_free,
	    parent, 0, VM_SLEEP);
	CHECK(child != NULL);
	if (child == NULL)
		return;
	for (i = 0; i < 3; i++) {
		cp[i] = umem_cache_create("tc_span", sizes[i], 0, NULL, NULL,
		    NULL, NULL, child, UMC_NOMAGAZINE);
		CHECK(cp[i] != NULL);
		if (cp[i] == NULL)
			return;
	}
	for (i = 0; i < 3 * n; i++) {
		v[i].h_cache = (int)(i % 3);
		v[i].h_buf = umem_cache_alloc(cp[i % 3], UMEM_DEFAULT);
		CHECK(v[i].h_buf != NULL);
	}
	cs = tu_vstat(child);
	ps = tu_vstat(parent);
	CHECKF(cs.vk_mem_inuse > 0 && cs.vk_nspans > 0 && cs.vk_import > 0 &&
	    ps.vk_mem_inuse >= cs.vk_mem_inuse, "child: inuse %llu spans %llu"
	    " imports %llu; parent inuse %llu",
	    (unsigned long long)cs.vk_mem_inuse,
	    (unsigned long long)cs.vk_nspans, (unsigned long long)cs.vk_import,
	    (unsigned long long)ps.vk_mem_inuse);
	/* Free everything in random order: slabs empty in random order. */
	for (i = 3 * n; i > 1; i--) {
		j = test_rand(&seed) % i;
		t = v[j];
		v[j] = v[i - 1];
		v[i - 1] = t;
	}
	for (i = 0; i < 3 * n; i++) {
		umem_cache_free(cp[v[i].h_cache], v[i].h_buf);
		if (i == 3 * n / 2) {
			CHECK(vmem_verify(child) == 0);
			CHECK(vmem_verify(parent) == 0);
		}
	}
	(void) wait_inuse_zero(child, 3000);	/* spare slabs */
	cs = tu_vstat(child);
	ps = tu_vstat(parent);
	CHECKF(cs.vk_mem_inuse == 0 && cs.vk_nspans == 0 &&
	    cs.vk_span_release > 0 && cs.vk_nsegs_free == 0,
	    "all freed: child inuse %llu, %llu spans (%llu released), %llu "
	    "free segments", (unsigned long long)cs.vk_mem_inuse,
	    (unsigned long long)cs.vk_nspans,
	    (unsigned long long)cs.vk_span_release,
	    (unsigned long long)cs.vk_nsegs_free);
	CHECKF(ps.vk_mem_inuse == 0, "all freed: parent inuse %llu",
	    (unsigned long long)ps.vk_mem_inuse);
	CHECK(vmem_verify(child) == 0);
	CHECK(vmem_verify(parent) == 0);
	for (i = 0; i < 3; i++)
		umem_cache_destroy(cp[i]);
	vmem_destroy(child);
	vmem_destroy(parent);
	free(v);
}

/*
 * ------------------------------------------------------------------------
 * D19: NOTOUCH caches over identifiers that are not memory
 * ------------------------------------------------------------------------
 */

#define	ID_LO	0x1000UL
#define	ID_HI	0x100000UL	/* never mapped: below and near mmap_min_addr */

static atomic_ulong id_ctor, id_dtor;

static int
id_construct(void *buf, void *priv, int flags)
{
	/* Must not touch buf: it is an identifier. */
	if ((uintptr_t)buf < ID_LO || (uintptr_t)buf >= ID_HI)
		return (1);
	atomic_fetch_add(&id_ctor, 1);
	return (0);
}

static void
id_destruct(void *buf, void *priv)
{
	atomic_fetch_add(&id_dtor, 1);
}

static void
d19_child(void *arg)
{
	static const struct { size_t size, align; int cflags; } kind[] = {
		{ 1, 1, UMC_NOTOUCH },
		{ 1, 1, UMC_NOTOUCH | UMC_NOMAGAZINE },
		{ 16, 16, UMC_NOTOUCH },
		{ 24, 8, UMC_NOTOUCH },
		{ 4096, 0, UMC_NOTOUCH },
	};
	size_t span = ID_HI - ID_LO, k;
	unsigned char *used = calloc(span, 1);
	vmem_t *ids;

	alarm(60);
	ids = vmem_create("tc_ids", (void *)ID_LO, span, 1, NULL, NULL, NULL,
	    0, VM_SLEEP);
	CHECK(ids != NULL);
	if (ids == NULL)
		_exit(3);
	for (k = 0; k < sizeof (kind) / sizeof (kind[0]); k++) {
		size_t size = kind[k].size, cap = span / size / 2, n, i, round;
		size_t chunk;
		unsigned long long seed = 19 + k;
		uintptr_t *v = calloc(cap, sizeof (uintptr_t));
		umem_cache_t *cp;
		umem_cache_stat_t st;

		if (cap > 100000)
			cap = 100000;
		cp = umem_cache_create("tc_id", size, kind[k].align,
		    id_construct, id_destruct, NULL, NULL, ids,
		    kind[k].cflags);
		CHECKF(cp != NULL, "size %zu: errno %d", size, errno);
		if (cp == NULL)
			continue;
		st = tu_stat(cp);
		chunk = st.cs_chunksize;
		CHECK(st.cs_hashed == 1 && chunk >= size);
		for (round = 0; round < 2; round++) {
			memset(used, 0, span);
			for (n = 0; n < cap; n++) {
				uintptr_t id = (uintptr_t)umem_cache_alloc(cp,
				    UMEM_DEFAULT);
				size_t b;

				if (id == 0)
					break;
				v[n] = id;
				CHECKF(id >= ID_LO && id + size <= ID_HI &&
				    id % st.cs_align == 0, "size %zu: id %#lx",
				    size, (unsigned long)id);
				if (id < ID_LO || id + size > ID_HI)
					break;
				for (b = 0; b < size; b++) {
					CHECKF(used[id - ID_LO + b] == 0,
					    "size %zu: id %#lx issued twice",
					    size, (unsigned long)id);
					used[id - ID_LO + b] = 1;
				}
			}
			CHECKF(n == cap, "size %zu: %zu of %zu ids", size, n,
			    cap);
			for (i = n; i > 1; i--) {
				size_t j = test_rand(&seed) % i;
				uintptr_t t = v[j];

				v[j] = v[i - 1];
				v[i - 1] = t;
			}
			for (i = 0; i < n; i++)
				umem_cache_free(cp, (void *)v[i]);
		}
		st = tu_stat(cp);
		CHECK(st.cs_buf_inuse == st.cs_buf_magazine);
		/* Spare slabs would hold identifiers: one at most. */
		CHECKF(st.cs_slab_spare <= 1, "size %zu: %llu spare slabs",
		    size, (unsigned long long)st.cs_slab_spare);
		umem_cache_destroy(cp);
		CHECKF(tu_inuse(ids) == 0, "size %zu: %llu ids still in use "
		    "after destroy", size, (unsigned long long)tu_inuse(ids));
		free(v);
	}
	CHECKF(atomic_load(&id_ctor) == atomic_load(&id_dtor) &&
	    atomic_load(&id_ctor) > 0, "ctor %lu dtor %lu",
	    atomic_load(&id_ctor), atomic_load(&id_dtor));
	vmem_destroy(ids);
	free(used);
	_exit(test_cur_failed ? 3 : 0);
}

static void
check_child_status(const char *what, int st, int want, const char *out)
{
	char sbuf[96];

	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == want,
	    "%s: %s, want exit %d; output:\n%s", what,
	    tu_status_str(st, sbuf, sizeof (sbuf)), want, out);
}

static void
test_d19_notouch(void)
{
	static char out[8192];
	int st = test_in_child(d19_child, NULL, out, sizeof (out));

	check_child_status("NOTOUCH caches over unmapped identifiers", st, 0,
	    out);
}

/*
 * ------------------------------------------------------------------------
 * UMEM_NOFAIL, the nofail callback, and reclaim when the source is short
 * ------------------------------------------------------------------------
 */

#define	TINY_PAGES	16

static atomic_int nf_calls, nf_reclaim;
static void *nf_held[4 * TINY_PAGES];
static size_t nf_nheld;
static umem_cache_t *nf_cp;
static int nf_priv;

static void
nf_reclaim_cb(void *priv)
{
	if (priv == &nf_priv)
		atomic_fetch_add(&nf_reclaim, 1);
}

/* A cache of page-size objects over a 16-page arena, then exhaust it. */
static void
nf_setup(int cflags)
{
	void *mem = mmap(NULL, TINY_PAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	vmem_t *tiny;
	void *p;

	alarm(30);
	CHECK(mem != MAP_FAILED);
	tiny = vmem_create("tc_tiny", mem, TINY_PAGES * PAGE, PAGE, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	CHECK(tiny != NULL);
	nf_cp = umem_cache_create("tc_nofail", PAGE, 0, NULL, NULL,
	    nf_reclaim_cb, &nf_priv, tiny, 0);
	CHECK(nf_cp != NULL);
	if (nf_cp == NULL)
		_exit(3);
	nf_nheld = 0;
	while (nf_nheld < sizeof (nf_held) / sizeof (nf_held[0]) &&
	    (p = umem_cache_alloc(nf_cp, UMEM_DEFAULT)) != NULL)
		nf_held[nf_nheld++] = p;
}

static void
nf_default_child(void *arg)
{
	umem_cache_stat_t st;
	uint64_t t0;

	nf_setup(0);
	CHECKF(nf_nheld >= 1 && nf_nheld <= TINY_PAGES, "%zu page objects "
	    "from a %d-page arena", nf_nheld, TINY_PAGES);
	CHECK(umem_cache_alloc(nf_cp, UMEM_DEFAULT) == NULL);
	st = tu_stat(nf_cp);
	CHECKF(st.cs_alloc_fail >= 2 && st.cs_alloc == nf_nheld,
	    "cs_alloc_fail %llu cs_alloc %llu",
	    (unsigned long long)st.cs_alloc_fail,
	    (unsigned long long)st.cs_alloc);
	/* The source ran short: the reclaim callback is asked. */
	t0 = tu_now_ns();
	while (atomic_load(&nf_reclaim) == 0 &&
	    tu_now_ns() - t0 < 2000000000ull)
		tu_sleep_ms(10);
	CHECKF(atomic_load(&nf_reclaim) > 0, "the source arena ran short "
	    "and the reclaim callback was not called");
	CHECK(tu_stat(nf_cp).cs_reclaim > 0);
	/* Freeing one makes room again. */
	umem_cache_free(nf_cp, nf_held[--nf_nheld]);
	CHECK(umem_cache_alloc(nf_cp, UMEM_DEFAULT) != NULL);
	_exit(test_cur_failed ? 3 : 0);
}

static int
nf_retry_cb(void)
{
	if (atomic_fetch_add(&nf_calls, 1) + 1 == 3)
		umem_cache_free(nf_cp, nf_held[--nf_nheld]);
	return (UMEM_CALLBACK_RETRY);
}

static void
nf_retry_child(void *arg)
{
	void *p;

	nf_setup(0);
	umem_nofail_callback(nf_retry_cb);
	p = umem_cache_alloc(nf_cp, UMEM_NOFAIL);
	CHECK(p != NULL);
	CHECKF(atomic_load(&nf_calls) == 3, "RETRY: callback called %d "
	    "times, the third one made room", atomic_load(&nf_calls));
	/* Without a shortage, NOFAIL needs no callback. */
	umem_cache_free(nf_cp, p);
	atomic_store(&nf_calls, 0);
	p = umem_cache_alloc(nf_cp, UMEM_NOFAIL);
	CHECK(p != NULL && atomic_load(&nf_calls) == 0);
	_exit(test_cur_failed ? 3 : 0);
}

static void
nf_atexit(void)
{
	(void) write(STDOUT_FILENO, "<exit handler>\n", 15);
}

static int
nf_exit_cb(void)
{
	atomic_fetch_add(&nf_calls, 1);
	return (UMEM_CALLBACK_EXIT(42));
}

static int
nf_bogus_cb(void)
{
	return (7);
}

static void *
nf_thread(void *arg)
{
	(void) umem_cache_alloc(nf_cp, UMEM_NOFAIL);
	return ((void *)1);	/* not reached */
}

/*
 * The exit modes.  Mode 0 starts threads, which TSan forbids in the child
 * of a multi-threaded fork, so the modes run in a re-executed child and
 * report exit() through an atexit handler that prints a line.
 */
static void
nf_exit_child(void *arg)
{
	int mode = *(int *)arg;
	pthread_t t[4];
	int i;

	nf_setup(0);
	(void) atexit(nf_atexit);
	if (mode == 0) {
		umem_nofail_callback(nf_exit_cb);
		for (i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, nf_thread, NULL);
		(void) umem_cache_alloc(nf_cp, UMEM_NOFAIL);
		for (i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	} else if (mode == 1) {
		(void) umem_cache_alloc(nf_cp, UMEM_NOFAIL);	/* no callback */
	} else {
		umem_nofail_callback(nf_bogus_cb);
		(void) umem_cache_alloc(nf_cp, UMEM_NOFAIL);
	}
	_exit(99);	/* NOFAIL returned: wrong */
}

static void
test_nofail(void)
{
	static char out[8192];
	static const int want[3] = { 42, 255, 255 };
	static const char *const what[3] = {
		"UMEM_CALLBACK_EXIT(42) from 5 threads", "no callback",
		"callback returning 7" };
	static const char *const arg[3] = { "nofail0", "nofail1", "nofail2" };
	static const char *const env[] = { "UMEM_OPTIONS=", NULL };
	int st, mode;

	st = test_in_child(nf_default_child, NULL, out, sizeof (out));
	check_child_status("UMEM_DEFAULT on an exhausted source", st, 0, out);
	st = test_in_child(nf_retry_child, NULL, out, sizeof (out));
	check_child_status("UMEM_NOFAIL with UMEM_CALLBACK_RETRY", st, 0, out);

	for (mode = 0; mode < 3; mode++) {
		const char *p = out;
		int n = 0;

		st = tu_run_self(arg[mode], env, 30, out, sizeof (out));
		check_child_status(what[mode], st, want[mode], out);
		while ((p = strstr(p, "<exit handler>")) != NULL) {
			n++;
			p++;
		}
		CHECKF(n == 1, "%s: exit() ran its handlers %d times, want "
		    "exactly once", what[mode], n);
	}
}

/* umem_reap() calls every reclaim callback (at most once a reap interval). */
static void
reap_child(void *arg)
{
	umem_cache_t *cp;
	void *p;
	uint64_t t0;

	alarm(30);
	cp = umem_cache_create("tc_reclaim", 100, 0, NULL, NULL,
	    nf_reclaim_cb, &nf_priv, NULL, 0);
	CHECK(cp != NULL);
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	umem_cache_free(cp, p);
	t0 = tu_now_ns();
	while (atomic_load(&nf_reclaim) == 0 &&
	    tu_now_ns() - t0 < 3000000000ull) {
		umem_reap();
		tu_sleep_ms(50);
	}
	CHECKF(atomic_load(&nf_reclaim) > 0, "umem_reap() never called the "
	    "reclaim callback in 3 s");
	CHECK(tu_stat(cp).cs_reclaim == (uint64_t)atomic_load(&nf_reclaim));
	umem_cache_destroy(cp);
	_exit(test_cur_failed ? 3 : 0);
}

static void
test_reclaim_on_reap(void)
{
	static char out[8192];
	int st = test_in_child(reap_child, NULL, out, sizeof (out));

	check_child_status("reclaim on umem_reap", st, 0, out);
}

/*
 * ------------------------------------------------------------------------
 * The kmastat-like table
 * ------------------------------------------------------------------------
 */

static void
test_stats_print(void)
{
	char path[] = "/tmp/test_umem_statsXXXXXX";
	umem_cache_t *cp;
	char *buf;
	int fd;
	ssize_t n;
	void *p;

	cp = umem_cache_create("tc_stats_cache", 48, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	CHECK(cp != NULL);
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	unlink(path);
	CHECK(umem_cache_stats_print(fd) == 0);
	buf = calloc(1, 1 << 20);
	n = pread(fd, buf, (1 << 20) - 1, 0);
	close(fd);
	CHECKF(n > 0 && strstr(buf, "tc_stats_cache") != NULL &&
	    strstr(buf, "umem_slab_cache") != NULL, "table of %zd bytes "
	    "lacks our cache or the library's", n);
	free(buf);
	CHECK(umem_cache_stats_print(-1) == -1);
	umem_cache_free(cp, p);
	umem_cache_destroy(cp);
}

/*
 * Spare slabs (child, update pass every 100 ms): a magazine-less cache that
 * empties bound + 4 slabs keeps bound of them (128 KiB; 16 slabs of
 * buffers of 8 KiB and up) and gives 4 back, makes no slab while spares
 * last, and the update thread gives the spares back once the cache stops
 * taking buffers.
 */
static void
spare_slabs_check(size_t bufsize)
{
	vmem_t *src = tu_mem_arena("tc_spare_src");
	umem_cache_t *cp;
	umem_cache_stat_t st0, st;
	uint64_t bound, t0;
	size_t n, i;
	void **v;

	if (src == NULL)
		return;
	cp = umem_cache_create("tc_spare", bufsize, 0, NULL, NULL, NULL, NULL,
	    src, UMC_NOMAGAZINE);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	st0 = tu_stat(cp);
	bound = spare_most(&st0);
	/* (16 slabs of 16 KiB buffers: 8 if counted by UMEM_SPARE_BYTES) */
	CHECKF(bound >= 2 && (bufsize < SPARE_BIG_CHUNK ||
	    bound == SPARE_SLABS), "slabs of %zu bytes", st0.cs_slabsize);
	n = (size_t)(bound + 4) * st0.cs_chunks;
	v = calloc(n, sizeof (void *));
	tu_alloc_free(cp, v, n);
	st = tu_stat(cp);
	CHECKF(st.cs_slab_spare == bound && st.cs_slab_create == bound + 4 &&
	    st.cs_slab_destroy == 4, "%llu slabs made, %llu destroyed, %llu "
	    "spares kept (bound %llu)", (unsigned long long)st.cs_slab_create,
	    (unsigned long long)st.cs_slab_destroy,
	    (unsigned long long)st.cs_slab_spare, (unsigned long long)bound);
	CHECK(tu_inuse(src) == bound * st.cs_slabsize);

	/* The spares serve the next allocations: no new slab. */
	n = (size_t)bound * st0.cs_chunks;
	for (i = 0; i < n; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	st = tu_stat(cp);
	CHECKF(st.cs_slab_create == bound + 4 && st.cs_slab_spare == 0,
	    "%llu slabs made, %llu spares left", (unsigned long long)
	    st.cs_slab_create, (unsigned long long)st.cs_slab_spare);
	for (i = 0; i < n; i++)
		umem_cache_free(cp, v[i]);
	CHECK(tu_stat(cp).cs_slab_spare == bound);

	/* Idle: the update thread gives them back (no reap here). */
	t0 = tu_now_ns();
	while (tu_inuse(src) != 0 && tu_now_ns() - t0 < 5000000000ull)
		tu_sleep_ms(20);
	st = tu_stat(cp);
	CHECKF(tu_inuse(src) == 0 && st.cs_slab_spare == 0, "idle 5 s: "
	    "%llu spares left", (unsigned long long)st.cs_slab_spare);
	free(v);
	umem_cache_destroy(cp);
	vmem_destroy(src);
}

static void
test_spare_slabs(void)
{
	spare_slabs_check(1000);
	spare_slabs_check(16384);	/* 16 slabs, 256 KiB */
}

/* Run the child `what' with an update pass every 100 ms. */
static void
check_child_updating(const char *what, unsigned timeout_s)
{
	static const char *const env[] = {
		"UMEM_OPTIONS=update_interval=100", NULL };

	tu_check_child(what, env, timeout_s);
}

static void
test_spare_child(void)
{
	check_child_updating("spare", 60);
}

static void
test_d3_hash_child(void)
{
	check_child_updating("hash", 120);
}

/*
 * Slab records (umem_slab_cache) go back to their slabs, never to
 * magazines, when a slab is destroyed, so that cache's magazines are
 * refilled from its slabs a magazine at a time (UMF_REFILL): making many
 * external slabs is served mostly by magazines, not by one trip through
 * the slot, depot and slab locks per record.
 */
static void
test_record_refill(void)
{
	umem_cache_t *rec = umem_cache_lookup("umem_slab_cache"), *cp;
	umem_cache_stat_t r0, r1, st;
	uint64_t recs, mag;
	size_t n = 2000, i;
	void **v;

	TU_SKIP_IF_OPTION("nomagazines", "records come from their slabs");
	cp = umem_cache_create("tc_refill", 2000, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	v = calloc(n, sizeof (void *));
	CHECK(rec != NULL && cp != NULL && v != NULL);
	if (rec == NULL || cp == NULL || v == NULL)
		return;
	r0 = tu_stat(rec);
	for (i = 0; i < n; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	r1 = tu_stat(rec);
	st = tu_stat(cp);
	recs = r1.cs_alloc - r0.cs_alloc;
	mag = r1.cs_mag_alloc - r0.cs_mag_alloc;
	CHECKF(st.cs_slab_create >= 200 && recs >= st.cs_slab_create &&
	    mag >= recs / 2, "%llu slabs, %llu records taken, %llu of them "
	    "from magazines", (unsigned long long)st.cs_slab_create,
	    (unsigned long long)recs, (unsigned long long)mag);
	for (i = 0; i < n; i++)
		umem_cache_free(cp, v[i]);
	free(v);
	umem_cache_destroy(cp);
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		tu_watchdog(100);
		if (strncmp(argv[2], "nofail", 6) == 0) {
			int mode = argv[2][6] - '0';

			nf_exit_child(&mode);	/* exits */
		}
		if (strcmp(argv[2], "hash") == 0)
			RUN(test_d3_hash);
		if (strcmp(argv[2], "spare") == 0)
			RUN(test_spare_slabs);
		return (tu_child_summary(argv[2]));
	}
	tu_watchdog(300);
	RUN(test_create_errno);
	RUN(test_create_values);
	RUN(test_d1_ctor_dtor);
	RUN(test_d1_ctor_fail);
	RUN(test_d2_geometry);
	RUN(test_d2_mem_baseline);
	RUN(test_spare_child);
	RUN(test_d3_layout);
	RUN(test_d3_hash_child);
	RUN(test_d4_colour);
	RUN(test_d11_nomagazine);
	RUN(test_d17_spans);
	RUN(test_d19_notouch);
	RUN(test_nofail);
	RUN(test_reclaim_on_reap);
	RUN(test_stats_print);
	RUN(test_record_refill);
	return (test_summary(argv[0]));
}
