/*
 * test_umem_magazine.c - the magazine layer against the paper (digest
 * A2, D5, D6, D9, D10, D11) and the memory-return promise of umem.h:
 *
 *  D5  a model of the paper's alloc/free rules (loaded and previous
 *	magazines, depot of full and empty ones, empty magazines made only
 *	on the free path) run beside the library; after every operation the
 *	CPU slot's state (white-box umem_cc_state), the depot counts, the
 *	objects handed out (LIFO) and the magazine cache's allocations must
 *	agree with the model.
 *  D6  depot accesses per operation stay <= 1/M for adversarial patterns
 *	(alloc-alloc-free-free at every offset of a magazine boundary, random
 *	walks, bursts), while a single-magazine model (the paper's Fig. 3.1a
 *	ablation) misses about half the time on the same patterns.
 *  D9  the initial magazine size follows the magtype table; a quiet cache
 *	never resizes; contention grows M one table row at a time and never
 *	past the row where chunksize >= maxbuf (8 KiB objects: M <= 15).
 *  D10 depot working-set reaping: magazines in use survive, idle ones go
 *	back (objects destructed), umem_reap() calls the reclaim callback.
 *  D11 UMEM_OPTIONS=nomagazines sends every transaction to the slab layer.
 *  and the malloc classes' departures (magazine.c): a slot that only
 *	frees keeps no full previous magazine; the depot of a class of 8 KiB
 *	and more holds at most 64 KiB of full magazines, the rest goes back
 *	to the slabs, and the slabs to the arena.
 *  and: freed memory goes back to the source arena within a few update
 *	intervals without umem_reap().
 *
 * The exact (model) tests run in children with UMEM_OPTIONS=
 * update_interval=0 (no background thread: nothing drains or reaps behind
 * the model's back), pinned to one CPU, in the default per-CPU mode and in
 * percpu=thread.
 */
#include "test_umem.h"
#include "umem_impl.h"

#include <math.h>
#include <stdatomic.h>

/* The illumos magtype table: M, minbuf, maxbuf (digest A2.4). */
static const struct { uint32_t m; size_t minbuf, maxbuf; } magtab[] = {
	{ 1, 3200, 65536 }, { 3, 256, 32768 }, { 7, 64, 16384 },
	{ 15, 0, 8192 }, { 31, 0, 4096 }, { 47, 0, 2048 }, { 63, 0, 1024 },
	{ 95, 0, 512 }, { 143, 0, 0 },
};
#define	NMAGTAB	(sizeof (magtab) / sizeof (magtab[0]))

static int
magtab_index(uint64_t m)
{
	size_t i;

	for (i = 0; i < NMAGTAB; i++)
		if (magtab[i].m == m)
			return ((int)i);
	return (-1);
}

static int
magtab_initial(size_t chunk)
{
	int i = 0;

	while (chunk <= magtab[i].minbuf)
		i++;
	return (i);
}

/* Largest row reachable by growth: grow past row i only if chunk < maxbuf. */
static int
magtab_max(size_t chunk)
{
	int i = magtab_initial(chunk);

	while (i + 1 < (int)NMAGTAB && chunk < magtab[i].maxbuf)
		i++;
	return (i);
}

/*
 * ------------------------------------------------------------------------
 * The paper's algorithm, as a model (digest A2.2)
 * ------------------------------------------------------------------------
 */
#define	MODEL_MAXMAG	4096
#define	MODEL_MAXM	143

typedef struct mmag {
	int	mm_n;
	void	*mm_round[MODEL_MAXM];
} mmag_t;

typedef struct model {
	int	m_M;
	int	m_single;	/* ablation: no previous magazine */
	mmag_t	*m_loaded, *m_prev;	/* NULL: none */
	mmag_t	*m_full[MODEL_MAXMAG], *m_empty[MODEL_MAXMAG];
	int	m_nfull, m_nempty;
	mmag_t	m_pool[MODEL_MAXMAG];
	int	m_npool;
	/* counters */
	uint64_t m_created, m_depot_get, m_depot_put, m_slab_alloc,
		m_slab_free, m_misses;
} model_t;

static void
model_init(model_t *md, int M, int single)
{
	memset(md, 0, sizeof (*md));
	md->m_M = M;
	md->m_single = single;
}

static int
mrounds(const mmag_t *mp)
{
	return (mp == NULL ? -1 : mp->mm_n);
}

static void
mswap(model_t *md)
{
	mmag_t *t = md->m_loaded;

	md->m_loaded = md->m_prev;
	md->m_prev = t;
}

/* Returns the object the model hands out, or NULL for "from the slab". */
static void *
model_alloc(model_t *md)
{
	int missed = 0;

	for (;;) {
		if (mrounds(md->m_loaded) > 0)
			break;
		if (!md->m_single && mrounds(md->m_prev) > 0) {
			mswap(md);
			continue;
		}
		missed = 1;
		if (md->m_nfull > 0) {
			mmag_t *full = md->m_full[--md->m_nfull];

			md->m_depot_get++;
			if (md->m_single) {
				if (md->m_loaded != NULL) {
					md->m_empty[md->m_nempty++] =
					    md->m_loaded;
					md->m_depot_put++;
				}
			} else {
				if (md->m_prev != NULL) {
					md->m_empty[md->m_nempty++] =
					    md->m_prev;
					md->m_depot_put++;
				}
				md->m_prev = md->m_loaded;
			}
			md->m_loaded = full;
			continue;
		}
		md->m_misses++;
		md->m_slab_alloc++;
		return (NULL);
	}
	md->m_misses += missed;
	return (md->m_loaded->mm_round[--md->m_loaded->mm_n]);
}

static void
model_free(model_t *md, void *obj)
{
	int missed = 0;

	for (;;) {
		if (md->m_loaded != NULL && md->m_loaded->mm_n < md->m_M)
			break;
		if (!md->m_single && mrounds(md->m_prev) == 0) {
			mswap(md);
			continue;
		}
		missed = 1;
		if (md->m_nempty > 0) {
			mmag_t *empty = md->m_empty[--md->m_nempty];

			md->m_depot_get++;
			if (md->m_single) {
				if (md->m_loaded != NULL) {
					md->m_full[md->m_nfull++] =
					    md->m_loaded;
					md->m_depot_put++;
				}
			} else {
				if (md->m_prev != NULL) {
					md->m_full[md->m_nfull++] = md->m_prev;
					md->m_depot_put++;
				}
				md->m_prev = md->m_loaded;
			}
			md->m_loaded = empty;
			continue;
		}
		/* Make an empty magazine and put it in the depot. */
		if (md->m_npool == MODEL_MAXMAG)
			abort();
		md->m_empty[md->m_nempty++] = &md->m_pool[md->m_npool++];
		md->m_created++;
		md->m_depot_put++;
	}
	md->m_misses += missed;
	md->m_loaded->mm_round[md->m_loaded->mm_n++] = obj;
}

/* Is obj in one of the model's magazines? */
static int
model_holds(const model_t *md, const void *obj)
{
	int i, j;

	for (i = 0; i < md->m_npool; i++)
		for (j = 0; j < md->m_pool[i].mm_n; j++)
			if (md->m_pool[i].mm_round[j] == obj)
				return (1);
	return (0);
}

/*
 * ------------------------------------------------------------------------
 * D5: the library against the model, operation by operation
 * ------------------------------------------------------------------------
 */
typedef struct d5run {
	umem_cache_t	*r_cp;
	umem_cache_t	*r_magcache;
	model_t		*r_md;
	uint32_t	r_slot;
	void		**r_live;
	size_t		r_nlive, r_cap;
	uint64_t	r_ops;
	int		r_bad;		/* stop after the first divergence */
	uint64_t	r_mag0;		/* magazine cache's cs_alloc at start */
	char		r_magname[32];	/* umem_magazine_<M> */
} d5run_t;

static void
d5_compare(d5run_t *r, const char *op)
{
	umem_cc_state_t cs;
	umem_cache_stat_t st;
	model_t *md = r->r_md;

	if (r->r_bad)
		return;
	if (umem_cc_state(r->r_cp, UINT32_MAX, &cs) != 0) {
		CHECKF(0, "umem_cc_state failed");
		r->r_bad = 1;
		return;
	}
	st = tu_stat(r->r_cp);
	if (cs.cs_slot != r->r_slot) {
		CHECKF(0, "op %llu: the pinned thread moved from slot %u to %u",
		    (unsigned long long)r->r_ops, r->r_slot, cs.cs_slot);
		r->r_bad = 1;
		return;
	}
	if (cs.cs_rounds != mrounds(md->m_loaded) ||
	    cs.cs_prounds != mrounds(md->m_prev) ||
	    st.cs_depot_full != (uint64_t)md->m_nfull ||
	    st.cs_depot_empty != (uint64_t)md->m_nempty ||
	    st.cs_mag_create != md->m_created ||
	    st.cs_depot_alloc != md->m_depot_get ||
	    st.cs_depot_free + st.cs_mag_create != md->m_depot_put ||
	    st.cs_slab_alloc != md->m_slab_alloc ||
	    st.cs_slab_free != md->m_slab_free ||
	    cs.cs_magsize != (uint32_t)md->m_M) {
		CHECKF(0, "after op %llu (%s), library vs paper model:\n"
		    "    loaded rounds %lld vs %d, previous %lld vs %d, depot "
		    "full %llu vs %d, empty %llu vs %d,\n    magazines made "
		    "%llu vs %llu, depot gets %llu vs %llu, puts %llu vs %llu, "
		    "slab allocs %llu vs %llu, slab frees %llu vs %llu, M %u vs "
		    "%d", (unsigned long long)r->r_ops, op,
		    (long long)cs.cs_rounds, mrounds(md->m_loaded),
		    (long long)cs.cs_prounds, mrounds(md->m_prev),
		    (unsigned long long)st.cs_depot_full, md->m_nfull,
		    (unsigned long long)st.cs_depot_empty, md->m_nempty,
		    (unsigned long long)st.cs_mag_create,
		    (unsigned long long)md->m_created,
		    (unsigned long long)st.cs_depot_alloc,
		    (unsigned long long)md->m_depot_get,
		    (unsigned long long)(st.cs_depot_free + st.cs_mag_create),
		    (unsigned long long)md->m_depot_put,
		    (unsigned long long)st.cs_slab_alloc,
		    (unsigned long long)md->m_slab_alloc,
		    (unsigned long long)st.cs_slab_free,
		    (unsigned long long)md->m_slab_free, cs.cs_magsize,
		    md->m_M);
		r->r_bad = 1;
	}
	/*
	 * Magazines come from the magazine cache only when one is made; the
	 * cache itself is made with the first magazine of its size (0 at
	 * start if it did not exist then).
	 */
	if (r->r_magcache == NULL && (r->r_magcache =
	    umem_cache_lookup(r->r_magname)) == NULL && md->m_created > 0) {
		CHECKF(0, "after op %llu (%s): %llu magazines made, no cache "
		    "%s", (unsigned long long)r->r_ops, op,
		    (unsigned long long)md->m_created, r->r_magname);
		r->r_bad = 1;
	}
	if (r->r_magcache != NULL) {
		uint64_t a = tu_stat(r->r_magcache).cs_alloc - r->r_mag0;

		if (a != md->m_created) {
			CHECKF(0, "after op %llu (%s): umem_magazine_%d made "
			    "%llu magazines, the model %llu",
			    (unsigned long long)r->r_ops, op, md->m_M,
			    (unsigned long long)a,
			    (unsigned long long)md->m_created);
			r->r_bad = 1;
		}
	}
}

static void
d5_alloc(d5run_t *r)
{
	void *want = model_alloc(r->r_md), *got;

	got = umem_cache_alloc(r->r_cp, UMEM_DEFAULT);
	r->r_ops++;
	if (got == NULL) {
		CHECKF(0, "alloc failed");
		r->r_bad = 1;
		return;
	}
	if (!r->r_bad && want != NULL && got != want) {
		CHECKF(0, "op %llu: alloc returned %p, the magazine's top "
		    "round is %p (LIFO)", (unsigned long long)r->r_ops, got,
		    want);
		r->r_bad = 1;
	}
	if (!r->r_bad && want == NULL && model_holds(r->r_md, got)) {
		CHECKF(0, "op %llu: a slab allocation returned %p, which is "
		    "in a magazine (double issue)",
		    (unsigned long long)r->r_ops, got);
		r->r_bad = 1;
	}
	r->r_live[r->r_nlive++] = got;
	d5_compare(r, "alloc");
}

static void
d5_free(d5run_t *r, size_t idx)
{
	void *obj = r->r_live[idx];

	r->r_live[idx] = r->r_live[--r->r_nlive];
	model_free(r->r_md, obj);
	umem_cache_free(r->r_cp, obj);
	r->r_ops++;
	d5_compare(r, "free");
}

static void
d5_sequence(size_t bufsize, unsigned long long seed, size_t nops)
{
	static model_t md;
	d5run_t r;
	umem_cache_stat_t st;
	size_t i, burst = 0;
	int kind = 0;

	memset(&r, 0, sizeof (r));
	r.r_cp = umem_cache_create("tm_d5", bufsize, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	CHECK(r.r_cp != NULL);
	if (r.r_cp == NULL)
		return;
	st = tu_stat(r.r_cp);
	CHECKF(st.cs_magsize > 0 && st.cs_magsize <= MODEL_MAXM, "M %llu",
	    (unsigned long long)st.cs_magsize);
	if (st.cs_magsize == 0 || st.cs_magsize > MODEL_MAXM)
		return;
	model_init(&md, (int)st.cs_magsize, 0);
	r.r_md = &md;
	snprintf(r.r_magname, sizeof (r.r_magname), "umem_magazine_%d",
	    md.m_M);
	/* NULL if no cache has used magazines of this size yet */
	r.r_magcache = umem_cache_lookup(r.r_magname);
	if (r.r_magcache != NULL)
		r.r_mag0 = tu_stat(r.r_magcache).cs_alloc;
	r.r_cap = 20 * (size_t)md.m_M + 64;
	r.r_live = calloc(r.r_cap, sizeof (void *));
	{
		umem_cc_state_t cs;

		CHECK(umem_cc_state(r.r_cp, UINT32_MAX, &cs) == 0);
		r.r_slot = cs.cs_slot;
		/* A fresh cache: nothing loaded, M set. */
		CHECKF(cs.cs_rounds == -1 && cs.cs_prounds == -1 &&
		    cs.cs_magsize == (uint32_t)md.m_M, "fresh slot: rounds "
		    "%lld prounds %lld magsize %u", (long long)cs.cs_rounds,
		    (long long)cs.cs_prounds, cs.cs_magsize);
	}

	/* Scripted start (digest A2.2): a cold miss gives one object. */
	d5_alloc(&r);
	st = tu_stat(r.r_cp);
	CHECK(st.cs_slab_alloc == 1 && st.cs_buf_magazine == 0 &&
	    st.cs_mag_create == 0);
	d5_free(&r, 0);
	/* 3M allocations, 3M frees, 3M allocations, one more, all frees. */
	for (i = 0; i < 3 * (size_t)md.m_M; i++)
		d5_alloc(&r);
	while (r.r_nlive > 0)
		d5_free(&r, r.r_nlive - 1);
	for (i = 0; i < 3 * (size_t)md.m_M + 1; i++)
		d5_alloc(&r);
	while (r.r_nlive > 0)
		d5_free(&r, 0);

	/* Then random bursts and walks, bounded by r_cap live objects. */
	for (i = 0; i < nops && !r.r_bad; i++) {
		int up;

		if (burst == 0) {
			/* 0: allocations, 1: frees, 2: a random walk */
			burst = 1 + test_rand(&seed) % (3 * (size_t)md.m_M);
			kind = (int)(test_rand(&seed) % 3);
		}
		burst--;
		up = kind == 2 ? (int)(test_rand(&seed) & 1) : kind == 0;
		if ((up && r.r_nlive < r.r_cap) || r.r_nlive == 0)
			d5_alloc(&r);
		else
			d5_free(&r, (size_t)(test_rand(&seed) % r.r_nlive));
	}
	while (r.r_nlive > 0)
		d5_free(&r, r.r_nlive - 1);
	st = tu_stat(r.r_cp);
	CHECKF(st.cs_buf_inuse == st.cs_buf_magazine, "all freed: %llu "
	    "buffers out of the slab layer, %llu in magazines",
	    (unsigned long long)st.cs_buf_inuse,
	    (unsigned long long)st.cs_buf_magazine);
	CHECK(st.cs_alloc == st.cs_free);
	CHECK(st.cs_mag_alloc + st.cs_slab_alloc == st.cs_alloc);
	umem_cache_destroy(r.r_cp);
	free(r.r_live);
}

static void
test_d5_model(void)
{
	(void) tu_pin_here();
	d5_sequence(64, 5, TU_SCALE(20000, 4));		/* M = 15 */
	d5_sequence(200, 55, TU_SCALE(10000, 4));	/* M = 7 */
	d5_sequence(1000, 555, TU_SCALE(5000, 4));	/* M = 3 */
	d5_sequence(5000, 5555, TU_SCALE(2000, 4));	/* M = 1 */
}

/*
 * ------------------------------------------------------------------------
 * D6: miss rate <= 1/M under adversarial patterns
 * ------------------------------------------------------------------------
 */

/* CPU-layer misses: depot exchanges plus trips to the slab layer. */
static uint64_t
misses(const umem_cache_stat_t *st)
{
	return (st->cs_depot_alloc + st->cs_slab_alloc + st->cs_slab_free);
}

typedef struct pat {
	const char	*p_name;
	double		p_worst;	/* library: misses per op */
	double		p_single;	/* single-magazine model */
	double		p_double;	/* loaded+previous model */
} pat_t;

/*
 * Run a pattern generator on the cache and on both models; warm-up
 * operations are not counted.  gen(i, nlive, seed) says 1 = alloc.
 */
typedef int pattern_fn(size_t i, size_t nlive, size_t M,
    unsigned long long *seed);

static int
pat_thrash(size_t i, size_t nlive, size_t M, unsigned long long *seed)
{
	return ((i & 3) < 2);		/* alloc, alloc, free, free */
}

static int
pat_walk(size_t i, size_t nlive, size_t M, unsigned long long *seed)
{
	if (nlive == 0)
		return (1);
	if (nlive >= 6 * M)
		return (0);
	return ((int)(test_rand(seed) & 1));
}

static int
pat_burst(size_t i, size_t nlive, size_t M, unsigned long long *seed)
{
	/* Bursts of 2M+1 allocations then 2M+1 frees: worst for M. */
	return ((i / (2 * M + 1)) % 2 == 0);
}

static int
pat_sawtooth(size_t i, size_t nlive, size_t M, unsigned long long *seed)
{
	/* M+1 up, M+1 down, around a magazine boundary. */
	return ((i / (M + 1)) % 2 == 0);
}

static void
run_pattern(const char *name, pattern_fn *gen, size_t bufsize,
    size_t offset, size_t nops, pat_t *res)
{
	static model_t m1, m2;
	umem_cache_t *cp;
	umem_cache_stat_t st0, st;
	unsigned long long seed = 6 + offset;
	size_t M, cap, i, nlive = 0, warm;
	void **live;
	uint64_t m1_0, m2_0;
	double rate, r1, r2;

	cp = umem_cache_create("tm_d6", bufsize, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	M = tu_stat(cp).cs_magsize;
	model_init(&m1, (int)M, 1);
	model_init(&m2, (int)M, 0);
	cap = 8 * M + offset + 16;
	live = calloc(cap + nops, sizeof (void *));

	/*
	 * Warm up: 4M constructed objects into magazines, then `offset'
	 * allocations, which leave the loaded magazine `offset' rounds
	 * (mod M) short of full: every position relative to a boundary.
	 */
	warm = 4 * M;
	for (i = 0; i < warm; i++) {
		live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
		(void) model_alloc(&m1);
		(void) model_alloc(&m2);
	}
	while (nlive > 0) {
		void *o = live[--nlive];

		umem_cache_free(cp, o);
		model_free(&m1, o);
		model_free(&m2, o);
	}
	for (i = 0; i < offset; i++) {
		live[nlive++] = umem_cache_alloc(cp, UMEM_DEFAULT);
		(void) model_alloc(&m1);
		(void) model_alloc(&m2);
	}
	st0 = tu_stat(cp);
	m1_0 = m1.m_misses;
	m2_0 = m2.m_misses;
	for (i = 0; i < nops; i++) {
		if (gen(i, nlive, M, &seed) || nlive == 0) {
			void *o = umem_cache_alloc(cp, UMEM_DEFAULT);

			live[nlive++] = o;
			(void) model_alloc(&m1);
			(void) model_alloc(&m2);
		} else {
			void *o = live[--nlive];

			umem_cache_free(cp, o);
			model_free(&m1, o);
			model_free(&m2, o);
		}
	}
	st = tu_stat(cp);
	rate = (double)(misses(&st) - misses(&st0)) / (double)nops;
	r1 = (double)(m1.m_misses - m1_0) / (double)nops;
	r2 = (double)(m2.m_misses - m2_0) / (double)nops;
	/* Bound: one miss per M operations, plus the first reload. */
	CHECKF(rate <= 1.0 / (double)M + 2.0 / (double)nops, "%s, %zu-byte "
	    "objects (M = %zu), offset %zu: %.4f CPU-layer misses per op "
	    "(depot exchanges %llu, slab allocs %llu, slab frees %llu in %zu "
	    "ops) > 1/M = %.4f", name, bufsize, M, offset, rate,
	    (unsigned long long)(st.cs_depot_alloc - st0.cs_depot_alloc),
	    (unsigned long long)(st.cs_slab_alloc - st0.cs_slab_alloc),
	    (unsigned long long)(st.cs_slab_free - st0.cs_slab_free), nops,
	    1.0 / (double)M);
	CHECKF(fabs(rate - r2) <= 2.0 / (double)nops, "%s offset %zu: library "
	    "%.4f misses per op, paper model %.4f", name, offset, rate, r2);
	if (rate > res->p_worst)
		res->p_worst = rate;
	if (r1 > res->p_single)
		res->p_single = r1;
	if (r2 > res->p_double)
		res->p_double = r2;
	while (nlive > 0)
		umem_cache_free(cp, live[--nlive]);
	umem_cache_destroy(cp);
	free(live);
}

static void
test_d6_missrate(void)
{
	static const struct { const char *name; pattern_fn *fn; int adv; }
	    pats[] = {
		{ "alloc-alloc-free-free", pat_thrash, 1 },
		{ "random walk", pat_walk, 0 },
		{ "bursts of 2M+1", pat_burst, 0 },
		{ "sawtooth M+1", pat_sawtooth, 0 },
	};
	static const size_t sizes[] = { 64, 200, 1000 };	/* M 15, 7, 3 */
	size_t nops = TU_SCALE(4000, 2), p, s, off;

	(void) tu_pin_here();
	for (p = 0; p < sizeof (pats) / sizeof (pats[0]); p++) {
		for (s = 0; s < sizeof (sizes) / sizeof (sizes[0]); s++) {
			pat_t res = { pats[p].name, 0, 0, 0 };
			size_t M = magtab[magtab_initial(sizes[s] < 16 ? 16 :
			    sizes[s])].m;

			/* Every offset across two magazines. */
			for (off = 0; off <= 2 * M; off++)
				run_pattern(pats[p].name, pats[p].fn,
				    sizes[s], off, nops, &res);
			if (getenv("TEST_VERBOSE"))
				fprintf(stderr, "  %-22s M=%-3zu worst misses/op:"
				    " library %.4f, model %.4f, single-magazine"
				    " model %.4f (1/M = %.4f)\n", pats[p].name,
				    M, res.p_worst, res.p_double, res.p_single,
				    1.0 / (double)M);
			/*
			 * The thrash pattern really is adversarial: with
			 * one magazine (no previous) half the operations
			 * miss at the boundary, whatever M (Fig. 3.1a).
			 */
			if (pats[p].adv)
				CHECKF(res.p_single >= 0.45, "%s M=%zu: the "
				    "single-magazine model misses only %.3f "
				    "per op: pattern not adversarial",
				    pats[p].name, M, res.p_single);
		}
	}
}

/*
 * ------------------------------------------------------------------------
 * D9: magazine sizes and resizing
 * ------------------------------------------------------------------------
 */
static void
test_d9_initial(void)
{
	static const struct { size_t size; uint32_t m; } init[] = {
		{ 1, 15 }, { 8, 15 }, { 64, 15 }, { 65, 7 }, { 200, 7 },
		{ 256, 7 }, { 257, 3 }, { 1000, 3 }, { 3200, 3 }, { 3201, 1 },
		{ 4096, 1 }, { 100000, 1 },
	};
	size_t i;

	TU_SKIP_IF_OPTION("nomagazines", "M is 0 (D11)");
	for (i = 0; i < sizeof (init) / sizeof (init[0]); i++) {
		umem_cache_t *cp = umem_cache_create("tm_m0", init[i].size, 0,
		    NULL, NULL, NULL, NULL, NULL, 0);
		umem_cache_stat_t st;

		CHECK(cp != NULL);
		if (cp == NULL)
			continue;
		st = tu_stat(cp);
		CHECKF(st.cs_magsize == init[i].m && st.cs_magsize ==
		    magtab[magtab_initial(st.cs_chunksize)].m, "%zu-byte "
		    "objects (chunk %zu): initial M %llu, want %u", init[i].size,
		    st.cs_chunksize, (unsigned long long)st.cs_magsize,
		    init[i].m);
		CHECK(st.cs_mag_resize == 0);
		umem_cache_destroy(cp);
	}
}

/* Bursts longer than two magazines of M = 31: every size needs the depot. */
#define	HAMMER_BURST	64

typedef struct hammer {
	umem_cache_t	**h_caches;
	int		h_ncaches;
	atomic_int	*h_stop;
	int		h_id;
} hammer_t;

static void *
hammer_thread(void *arg)
{
	hammer_t *h = arg;
	void *v[HAMMER_BURST];
	int i, k;

	while (!atomic_load_explicit(h->h_stop, memory_order_relaxed)) {
		for (k = 0; k < h->h_ncaches; k++) {
			for (i = 0; i < HAMMER_BURST; i++)
				v[i] = umem_cache_alloc(h->h_caches[k],
				    UMEM_DEFAULT);
			for (i = 0; i < HAMMER_BURST; i++)
				if (v[i] != NULL)
					umem_cache_free(h->h_caches[k], v[i]);
		}
	}
	return (NULL);
}

/*
 * Child (update_interval=50,max_contention=0): threads contend on the
 * depots of a 4 KiB and an 8 KiB cache; the main thread uses a third,
 * quiet, cache alone.
 */
static void
test_d9_resize(void)
{
	enum { NT = 8 };
	static const size_t sizes[2] = { 4096, 8192 };
	umem_cache_t *cp[2], *quiet;
	uint64_t seen[2][NMAGTAB], t0, dur = TU_SCALE(4000ull, 1);
	int nseen[2] = { 0, 0 }, k, i;
	pthread_t t[NT];
	hammer_t h[NT];
	atomic_int stop = 0;
	void *q;

	for (k = 0; k < 2; k++) {
		cp[k] = umem_cache_create("tm_d9", sizes[k], 0, NULL, NULL,
		    NULL, NULL, NULL, 0);
		CHECK(cp[k] != NULL);
		if (cp[k] == NULL)
			return;
		seen[k][nseen[k]++] = tu_stat(cp[k]).cs_magsize;
	}
	quiet = umem_cache_create("tm_quiet", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	CHECK(quiet != NULL);
	for (i = 0; i < NT; i++) {
		h[i].h_caches = cp;
		h[i].h_ncaches = 2;
		h[i].h_stop = &stop;
		h[i].h_id = i;
		pthread_create(&t[i], NULL, hammer_thread, &h[i]);
	}
	t0 = tu_now_ns();
	while (tu_now_ns() - t0 < dur * 1000000ull) {
		int done = 1;

		for (i = 0; i < 1000; i++) {
			q = umem_cache_alloc(quiet, UMEM_DEFAULT);
			umem_cache_free(quiet, q);
		}
		for (k = 0; k < 2; k++) {
			uint64_t m = tu_stat(cp[k]).cs_magsize;

			if (m != seen[k][nseen[k] - 1] &&
			    nseen[k] < (int)NMAGTAB)
				seen[k][nseen[k]++] = m;
			if (magtab_index(m) < magtab_max(sizes[k]))
				done = 0;
		}
		/* Both at their ceiling: a little longer to try to pass it. */
		if (done && tu_now_ns() - t0 > dur * 1000000ull / 2)
			break;
		tu_sleep_ms(5);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NT; i++)
		pthread_join(t[i], NULL);

	for (k = 0; k < 2; k++) {
		umem_cache_stat_t st = tu_stat(cp[k]);
		int i0 = magtab_initial(st.cs_chunksize), imax =
		    magtab_max(st.cs_chunksize), last = i0, j;

		if (getenv("TEST_VERBOSE")) {
			fprintf(stderr, "  %zu-byte cache: M", sizes[k]);
			for (j = 0; j < nseen[k]; j++)
				fprintf(stderr, " %llu",
				    (unsigned long long)seen[k][j]);
			fprintf(stderr, " (table ceiling %u); %llu resizes, "
			    "%llu depot contentions\n", magtab[imax].m,
			    (unsigned long long)st.cs_mag_resize,
			    (unsigned long long)st.cs_depot_contention);
		}
		for (j = 1; j < nseen[k]; j++) {
			int ix = magtab_index(seen[k][j]);

			CHECKF(ix == last + 1, "%zu-byte cache: M went %llu -> "
			    "%llu (one table row at a time)", sizes[k],
			    (unsigned long long)seen[k][j - 1],
			    (unsigned long long)seen[k][j]);
			last = ix;
		}
		CHECKF(magtab_index(st.cs_magsize) <= imax, "%zu-byte cache "
		    "grew to M = %llu, past the table's ceiling %u", sizes[k],
		    (unsigned long long)st.cs_magsize, magtab[imax].m);
		CHECKF(st.cs_mag_resize == (uint64_t)(magtab_index(
		    st.cs_magsize) - i0), "%zu-byte cache: %llu resizes from "
		    "M=%u to M=%llu", sizes[k],
		    (unsigned long long)st.cs_mag_resize, magtab[i0].m,
		    (unsigned long long)st.cs_magsize);
		CHECKF(st.cs_mag_resize > 0, "%zu-byte cache: %llu depot "
		    "contentions in %.1f s of %d threads, never resized",
		    sizes[k], (unsigned long long)st.cs_depot_contention,
		    (double)(tu_now_ns() - t0) / 1e9, NT);
		CHECK(st.cs_alloc == st.cs_free);
		CHECK(st.cs_buf_inuse == st.cs_buf_magazine);
		umem_cache_destroy(cp[k]);
	}
	{
		umem_cache_stat_t st = tu_stat(quiet);

		CHECKF(st.cs_mag_resize == 0 && st.cs_magsize == 15,
		    "quiet cache: M %llu, %llu resizes, %llu contentions",
		    (unsigned long long)st.cs_magsize,
		    (unsigned long long)st.cs_mag_resize,
		    (unsigned long long)st.cs_depot_contention);
		umem_cache_destroy(quiet);
	}
	/* The digest's example of the ceiling: 8 KiB objects stop at 15. */
	CHECK(magtab[magtab_max(8192)].m == 15);
}

/*
 * ------------------------------------------------------------------------
 * D10: working-set reaping (child: update_interval=200,reap_interval=200)
 * ------------------------------------------------------------------------
 */
static atomic_int d10_reclaims;
static atomic_ulong d10_dtor;
static int d10_priv;

static void
d10_reclaim(void *priv)
{
	if (priv == &d10_priv)
		atomic_fetch_add(&d10_reclaims, 1);
}

static void
d10_destruct(void *buf, void *priv)
{
	atomic_fetch_add(&d10_dtor, 1);
}

static void
test_d10_reap(void)
{
	enum { F = 20, W = 5 };
	umem_cache_t *cp;
	umem_cache_stat_t st;
	size_t M, n, i;
	void **v;
	uint64_t t0, full_busy;
	unsigned long dt0;

	(void) tu_pin_here();
	cp = umem_cache_create("tm_d10", 64, 0, NULL, d10_destruct,
	    d10_reclaim, &d10_priv, NULL, 0);
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	M = tu_stat(cp).cs_magsize;
	n = (F + 2) * M;
	v = calloc(n, sizeof (void *));
	tu_alloc_free(cp, v, n);
	st = tu_stat(cp);
	CHECKF(st.cs_depot_full >= F - 1, "depot holds %llu full magazines "
	    "after freeing %zu objects", (unsigned long long)st.cs_depot_full,
	    n);
	dt0 = atomic_load(&d10_dtor);

	/* Busy for 6 intervals using W magazines' worth: the rest goes. */
	t0 = tu_now_ns();
	while (tu_now_ns() - t0 < 1200000000ull) {
		for (i = 0; i < W * M; i++)
			v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		for (i = 0; i < W * M; i++)
			umem_cache_free(cp, v[i]);
		tu_sleep_ms(1);
	}
	st = tu_stat(cp);
	full_busy = st.cs_depot_full;
	CHECKF(full_busy >= 1 && full_busy <= W + 1, "busy with %d "
	    "magazines' worth: %llu full magazines left in the depot (of %d)",
	    W, (unsigned long long)full_busy, F);
	CHECKF(atomic_load(&d10_dtor) - dt0 >= (F - W - 1) * M, "reaping "
	    "destructed only %lu objects", atomic_load(&d10_dtor) - dt0);
	CHECK(st.cs_dtor == atomic_load(&d10_dtor));

	/* Idle: the depot empties (and idle CPU magazines are given back). */
	t0 = tu_now_ns();
	do {
		tu_sleep_ms(50);
		st = tu_stat(cp);
	} while ((st.cs_depot_full | st.cs_depot_empty) != 0 &&
	    tu_now_ns() - t0 < 3000000000ull);
	CHECKF(st.cs_depot_full == 0 && st.cs_depot_empty == 0, "idle for "
	    "3 s (15 intervals): depot still has %llu full and %llu empty "
	    "magazines", (unsigned long long)st.cs_depot_full,
	    (unsigned long long)st.cs_depot_empty);
	CHECK(st.cs_reap > 0 || st.cs_dtor > 0);

	/* umem_reap() runs the reclaim callback. */
	t0 = tu_now_ns();
	while (atomic_load(&d10_reclaims) == 0 &&
	    tu_now_ns() - t0 < 2000000000ull) {
		umem_reap();
		tu_sleep_ms(20);
	}
	CHECKF(atomic_load(&d10_reclaims) > 0, "umem_reap() did not call the "
	    "reclaim callback");
	st = tu_stat(cp);
	CHECK(st.cs_reclaim > 0 && st.cs_reap > 0);
	umem_cache_destroy(cp);
	free(v);
}

/*
 * ------------------------------------------------------------------------
 * Malloc classes (child: update_interval=0, pinned)
 * ------------------------------------------------------------------------
 */
static void
test_malloc_classes(void)
{
	enum { NBIG = 32, BIG = 16384, CAP = 64 * 1024, NMID = 4096,
	    MID = 3000 };
	umem_cache_t *cp;
	umem_cache_stat_t st;
	size_t M, n, i, cpu;
	void **v;

	(void) tu_pin_here();
	umem_free(umem_alloc(256, UMEM_DEFAULT), 256);	/* make the class */
	cp = umem_cache_lookup("umem_alloc_256");
	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	M = tu_stat(cp).cs_magsize;
	n = 10 * M;
	v = calloc(n > NBIG ? n : NBIG, sizeof (void *));
	for (i = 0; i < n; i++)
		v[i] = umem_alloc(256, UMEM_DEFAULT);
	for (i = 0; i < n; i++)
		umem_free(v[i], 256);
	st = tu_stat(cp);
	cpu = st.cs_buf_magazine - st.cs_depot_full * st.cs_magsize;
	CHECKF(cpu <= M, "after %zu frees and no allocation, the CPU slots "
	    "hold %zu objects of 256 bytes (M = %zu; the paper's rule "
	    "keeps 2M)", n, cpu, M);
	CHECKF(st.cs_depot_full >= n / M - 1, "the depot holds %llu full "
	    "magazines after %zu frees (M = %zu)",
	    (unsigned long long)st.cs_depot_full, n, M);

	umem_free(umem_alloc(BIG, UMEM_DEFAULT), BIG);
	cp = umem_cache_lookup("umem_alloc_16384");
	CHECK(cp != NULL);
	if (cp == NULL) {
		free(v);
		return;
	}
	for (i = 0; i < NBIG; i++) {
		v[i] = umem_alloc(BIG, UMEM_DEFAULT);
		CHECK(v[i] != NULL);
		if (v[i] != NULL)
			memset(v[i], (int)i, BIG);
	}
	for (i = 0; i < NBIG; i++)
		umem_free(v[i], BIG);
	st = tu_stat(cp);
	CHECKF(st.cs_depot_full * st.cs_magsize * st.cs_chunksize <= CAP,
	    "the depot of umem_alloc_16384 holds %llu full magazines of %llu",
	    (unsigned long long)st.cs_depot_full,
	    (unsigned long long)st.cs_magsize);
	/*
	 * depot (4) + loaded + previous, and the emptied slabs kept as spares
	 * for the next burst (slab.c; below: until another class grows)
	 */
	CHECKF(st.cs_mem_total - st.cs_slab_spare * st.cs_slabsize <=
	    (CAP / BIG + 2) * st.cs_slabsize, "%llu KiB of slabs left after "
	    "freeing %d blocks of 16 KiB, %llu spares",
	    (unsigned long long)(st.cs_mem_total / 1024), NBIG,
	    (unsigned long long)st.cs_slab_spare);
	CHECK(st.cs_buf_inuse == st.cs_buf_magazine);
	/* Trimmed objects come back (fresh pages). */
	for (i = 0; i < NBIG; i++) {
		unsigned char *p = umem_alloc(BIG, UMEM_DEFAULT);

		CHECK(p != NULL);
		if (p != NULL) {
			p[0] = p[BIG - 1] = 1;
			v[i] = p;
		}
	}
	for (i = 0; i < NBIG; i++)
		if (v[i] != NULL)
			umem_free(v[i], BIG);
	free(v);

	/*
	 * The cap covers the classes above 2 KiB: a burst of 3 KiB blocks
	 * freed goes back to its slabs (4 buffers each), which the class
	 * keeps empty for its next burst until another class grows: then
	 * they go back to the arena (the growth scan, umem_slab_trim_spares),
	 * for the growing class to take.  The class has no bufctls or hash:
	 * its slab records are found through the page map (UMF_SLABMAP).
	 */
	umem_free(umem_alloc(MID, UMEM_DEFAULT), MID);
	cp = umem_cache_lookup("umem_alloc_3072");
	CHECK(cp != NULL);
	v = calloc(NMID, sizeof (void *));
	if (cp == NULL || v == NULL) {
		free(v);
		return;
	}
	for (i = 0; i < NMID; i++)
		v[i] = umem_alloc(MID, UMEM_DEFAULT);
	for (i = 0; i < NMID; i++)
		umem_free(v[i], MID);
	st = tu_stat(cp);
	/* (the cap is checked before an exchange, which adds up to 2) */
	CHECKF(st.cs_depot_full <= 2 ||
	    (st.cs_depot_full - 2) * st.cs_magsize * st.cs_chunksize < CAP,
	    "the depot of umem_alloc_3072 holds %llu full magazines of %llu",
	    (unsigned long long)st.cs_depot_full,
	    (unsigned long long)st.cs_magsize);
	CHECKF(st.cs_slab_spare * 2 >= st.cs_slab_create, "%llu of %llu "
	    "slabs of 3 KiB blocks kept empty after freeing all %d",
	    (unsigned long long)st.cs_slab_spare,
	    (unsigned long long)st.cs_slab_create, NMID);
	for (i = 0; i < NMID; i++)		/* 20 MB of 5 KiB blocks */
		v[i] = umem_alloc(5000, UMEM_DEFAULT);
	for (i = 0; i < NMID; i++)
		umem_free(v[i], 5000);
	st = tu_stat(cp);
	CHECKF(st.cs_slab_destroy * 2 >= st.cs_slab_create &&
	    st.cs_slab_spare * st.cs_slabsize <= 128 * 1024, "%llu of %llu "
	    "slabs of 3 KiB blocks given back, %llu kept, after another "
	    "class grew by 20 MB", (unsigned long long)st.cs_slab_destroy,
	    (unsigned long long)st.cs_slab_create,
	    (unsigned long long)st.cs_slab_spare);
	CHECKF(!st.cs_hashed && st.cs_hash_size == 0, "umem_alloc_3072 "
	    "has a bufctl hash of %llu buckets", (unsigned long long)
	    st.cs_hash_size);

	/*
	 * A hashed cache whose burst of frees reaches its slabs grows the
	 * hash it outgrew in the freeing thread (this child has no update
	 * thread to do it).
	 */
	cp = umem_cache_create("t_hash_grow", MID, 0, NULL, NULL, NULL, NULL,
	    NULL, UMC_NOMAGAZINE);
	CHECK(cp != NULL);
	if (cp == NULL) {
		free(v);
		return;
	}
	for (i = 0; i < NMID; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 0; i < NMID; i++)
		umem_cache_free(cp, v[i]);
	st = tu_stat(cp);
	CHECK(st.cs_hashed);
	CHECKF(st.cs_hash_size * 4 >= st.cs_buf_max, "a hash of %llu "
	    "buckets for up to %llu buffers", (unsigned long long)
	    st.cs_hash_size, (unsigned long long)st.cs_buf_max);
	umem_cache_destroy(cp);
	free(v);
}

/*
 * ------------------------------------------------------------------------
 * Memory goes back without umem_reap (child: update_interval=200)
 * ------------------------------------------------------------------------
 */
static void
test_memory_return(void)
{
	static const size_t sizes[] = { 64, 256, 1000, 5000 };
	enum { NS = sizeof (sizes) / sizeof (sizes[0]) };
	vmem_t *src = tu_mem_arena("tm_return");
	umem_cache_t *cp[NS];
	size_t n = TU_SCALE(20000, 4), i, k;
	void **v = calloc(n, sizeof (void *));
	uint64_t peak, now, t0, t_tenth = 0;

	if (src == NULL)
		return;
	for (k = 0; k < NS; k++) {
		cp[k] = umem_cache_create("tm_ret", sizes[k], 0, NULL, NULL,
		    NULL, NULL, src, 0);
		CHECK(cp[k] != NULL);
		if (cp[k] == NULL)
			return;
	}
	for (k = 0; k < NS; k++) {
		for (i = 0; i < n; i++)
			v[i] = umem_cache_alloc(cp[k], UMEM_DEFAULT);
		for (i = 0; i < n; i++)
			umem_cache_free(cp[k], v[i]);
	}
	peak = tu_inuse(src);
	CHECK(peak > 0);
	t0 = tu_now_ns();
	do {
		tu_sleep_ms(20);
		now = tu_inuse(src);
		if (t_tenth == 0 && now <= peak / 10)
			t_tenth = tu_now_ns() - t0;
	} while (now != 0 && tu_now_ns() - t0 < 4000000000ull);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  %llu KiB cached after the frees; below a "
		    "tenth after %.2f s; %llu KiB after %.2f s\n",
		    (unsigned long long)(peak / 1024), (double)t_tenth / 1e9,
		    (unsigned long long)(now / 1024),
		    (double)(tu_now_ns() - t0) / 1e9);
	CHECKF(now == 0, "4 s (20 update intervals) after freeing "
	    "everything, without umem_reap: %llu of %llu bytes still held",
	    (unsigned long long)now, (unsigned long long)peak);
	CHECKF(t_tenth != 0 && t_tenth <= 1000000000ull, "memory fell below "
	    "a tenth of the peak only after %.2f s (5 intervals)",
	    (double)t_tenth / 1e9);
	for (k = 0; k < NS; k++)
		umem_cache_destroy(cp[k]);
	vmem_destroy(src);
	free(v);
}

/*
 * ------------------------------------------------------------------------
 * D11: UMEM_OPTIONS=nomagazines (child)
 * ------------------------------------------------------------------------
 */
static void
test_d11_env(void)
{
	umem_cache_t *cp = umem_cache_create("tm_nomag", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	umem_cache_stat_t st;
	void *v[100];
	int i, r;

	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	for (r = 0; r < 100; r++) {
		for (i = 0; i < 100; i++)
			v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		for (i = 0; i < 100; i++)
			umem_cache_free(cp, v[i]);
	}
	st = tu_stat(cp);
	CHECKF(st.cs_alloc == 10000 && st.cs_slab_alloc == st.cs_alloc &&
	    st.cs_slab_free == st.cs_free && st.cs_mag_alloc == 0 &&
	    st.cs_magsize == 0, "nomagazines: %llu allocs, %llu from slabs, "
	    "%llu from magazines, M %llu", (unsigned long long)st.cs_alloc,
	    (unsigned long long)st.cs_slab_alloc,
	    (unsigned long long)st.cs_mag_alloc,
	    (unsigned long long)st.cs_magsize);
	umem_cache_destroy(cp);
}

/*
 * ------------------------------------------------------------------------
 * Children
 * ------------------------------------------------------------------------
 */
static const char *const env_model[] = {
	"UMEM_OPTIONS=update_interval=0", NULL };
static const char *const env_model_thr[] = {
	"UMEM_OPTIONS=update_interval=0,percpu=thread", NULL };
static const char *const env_resize[] = {
	"UMEM_OPTIONS=update_interval=50,max_contention=0", NULL };
static const char *const env_resize_thr[] = {
	"UMEM_OPTIONS=update_interval=50,max_contention=0,percpu=thread",
	NULL };
/* 200 ms: a loaded machine must not stall the busy loop a whole interval. */
static const char *const env_reap[] = {
	"UMEM_OPTIONS=update_interval=200,reap_interval=200", NULL };
static const char *const env_reap_thr[] = {
	"UMEM_OPTIONS=update_interval=200,reap_interval=200,percpu=thread",
	NULL };
static const char *const env_nomag[] = {
	"UMEM_OPTIONS=nomagazines", NULL };

/*
 * Magazine caches are made with the first magazine of their size: a
 * process whose caches hold small objects never makes umem_magazine_1,
 * the size of caches of buffers over 3200 bytes, until such a cache
 * needs a magazine.
 */
static void
test_lazy_magazines(void)
{
	static const int sizes[] = { 1, 3, 7, 15, 31, 47, 63, 95, 143 };
	umem_cache_t *small, *big;
	void *p[4];
	int made = 0;

	small = umem_cache_create("tm_lazy_small", 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	CHECK(small != NULL);
	if (small == NULL)
		return;
	for (int i = 0; i < 4; i++)
		p[i] = umem_cache_alloc(small, UMEM_DEFAULT);
	for (int i = 0; i < 4; i++)
		umem_cache_free(small, p[i]);
	for (size_t i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		char name[32];

		snprintf(name, sizeof (name), "umem_magazine_%d", sizes[i]);
		made += umem_cache_lookup(name) != NULL;
	}
	CHECKF(made >= 1 && made < 9, "%d magazine caches made", made);
	CHECK(umem_cache_lookup("umem_magazine_1") == NULL);

	big = umem_cache_create("tm_lazy_big", 8000, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	CHECK(big != NULL);
	if (big == NULL)
		return;
	CHECK(umem_cache_lookup("umem_magazine_1") == NULL);
	for (int i = 0; i < 4; i++)
		p[i] = umem_cache_alloc(big, UMEM_DEFAULT);
	for (int i = 0; i < 4; i++)
		umem_cache_free(big, p[i]);
	CHECK(umem_cache_lookup("umem_magazine_1") != NULL);
	umem_cache_destroy(big);
	umem_cache_destroy(small);
}

static void
test_lazy_default(void)
{
	tu_check_child("lazy", env_model, 60);
}

static void
test_model_default(void)
{
	tu_check_child("model", env_model, 240);
}

static void
test_model_thread(void)
{
	tu_check_child("model", env_model_thr, 240);
}

static void
test_resize_default(void)
{
	tu_check_child("resize", env_resize, 120);
}

static void
test_resize_thread(void)
{
	tu_check_child("resize", env_resize_thr, 120);
}

static void
test_reap_default(void)
{
	tu_check_child("reap", env_reap, 120);
}

static void
test_reap_thread(void)
{
	tu_check_child("reap", env_reap_thr, 120);
}

static void
test_nomagazines_env(void)
{
	tu_check_child("nomag", env_nomag, 60);
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		const char *w = argv[2];

		tu_watchdog(200);
		if (strcmp(w, "model") == 0) {
			RUN(test_d5_model);
			RUN(test_d6_missrate);
			RUN(test_malloc_classes);
		} else if (strcmp(w, "resize") == 0) {
			RUN(test_d9_resize);
		} else if (strcmp(w, "reap") == 0) {
			RUN(test_d10_reap);
			RUN(test_memory_return);
		} else if (strcmp(w, "nomag") == 0) {
			RUN(test_d11_env);
		} else if (strcmp(w, "lazy") == 0) {
			RUN(test_lazy_magazines);
		}
		return (tu_child_summary(w));
	}
	tu_watchdog(600);
	RUN(test_d9_initial);
	RUN(test_model_default);
	RUN(test_model_thread);
	RUN(test_resize_default);
	RUN(test_resize_thread);
	RUN(test_reap_default);
	RUN(test_reap_thread);
	RUN(test_nomagazines_env);
	RUN(test_lazy_default);
	return (test_summary(argv[0]));
}
