/*
 * magazine.c - the magazine layer: per-CPU loaded and previous magazines
 * and the per-cache depot of full and empty magazines (Bonwick & Adams
 * 2001 §3).
 *
 * Big theory statement
 * --------------------
 * Objects in magazines are constructed; objects in the slab layer are raw.
 * Each CPU slot holds a loaded magazine (rounds in cc_word) and a previous
 * one (cc_ploaded, cc_prounds).  The rules, exactly as in the paper:
 *
 *  alloc: pop from loaded if it has rounds; else if previous is full, swap
 *	them and retry; else if the depot has a full magazine, return the
 *	previous (empty) one to the depot, make loaded the previous and load
 *	the full one; else take one object from the slab layer and construct
 *	it.
 *  free: push into loaded if it has room; else if previous is empty, swap
 *	and retry; else if the depot has an empty magazine, give the previous
 *	(full) one to the depot, make loaded the previous and load the empty
 *	one; else make an empty magazine (free path only: allocating a full
 *	one would be recursion) with the slot released, put it in the depot
 *	and retry; if that fails, destroy the object to the slab layer.
 * After any reload a slot holds one full and one empty magazine, so at
 * least M allocations and M frees are served before the depot is needed
 * again: the miss rate is at most 1/M for any workload.
 *
 * Who may change a slot (the protocol)
 * ------------------------------------
 * The fast paths (umem.c, percpu.h) only pop or push on the loaded
 * magazine, each committed by the single store of cc_word.  Everything
 * else - swap, depot exchange, purge, resize, drain - happens while a
 * thread OWNS the slot:
 *
 *   - it holds cc_lock (so there is one owner at a time), and
 *   - cc_word's rounds field is UMEM_CC_NONE, so every fast path on that
 *     slot fails over to the slow path (which then waits on cc_lock), and
 *     no fast-path store can land on the slot.
 *
 * Taking ownership (cc_own): lock the slot the caller is on; in rseq mode
 * store UMEM_CC_NONE with a critical section that commits only if the
 * caller is still on that slot (else unlock and try the new slot).  Any
 * fast path that had read the old cc_word on that slot was preempted, so
 * it restarts and sees NONE.  A thread that migrates after taking
 * ownership still owns the slot: nothing on the slot changes under it.
 * Releasing: write the new state, then store cc_word (release order), then
 * unlock; no one else can write cc_word while it is NONE, so a plain
 * store from any CPU is safe.
 *
 * Taking a slot remotely (purge, resize, idle drain; cc_own_all): lock
 * the slots, CAS each cc_word to NONE, then a membarrier rseq fence, which
 * restarts every critical section in flight; a fast path that read the
 * old word before the CAS either committed before the fence (the CAS
 * target moved: we see a word other than NONE and repeat) or restarts and
 * sees NONE.  Without the fence (kernel < 5.10) rseq mode skips these
 * remote operations (resize, idle drain) - correctness never depends on
 * them.  In thread mode every fast path takes cc_lock, so locking is
 * enough.
 *
 * Lock order within a cache: cc_lock (index order when several) ->
 * cache_depot_lock.  Destructors, constructors and nested cache calls
 * run with none of them held.
 *
 * Depot: full and empty lists under cache_depot_lock; a depot exchange
 * that finds another exchange holding or awaiting it (cache_depot_busy)
 * counts as contention (the rare holders - working-set update, reap,
 * purge, resize, statistics - are not seen), and contention above
 * umem_depot_contention_max per update interval grows the magazine size
 * one magtype row (bounded by the row's maxbuf).  Each list tracks its
 * minimum since the last working-set update; the update thread reaps the
 * magazines that stayed unused for a whole interval (ws_reap).
 *
 * Two departures for the malloc size classes (UMC_PAGEMAP) only; user
 * caches keep the paper's rules (docs/DESIGN.md §5):
 *
 *  - Free-only slots.  When a slot's loaded magazine is full and nothing
 *    was allocated on the slot since its previous free-side exchange, the
 *    previous (full) magazine and the loaded one both go to the depot and
 *    the slot loads an empty one, instead of keeping a full previous
 *    magazine that only the slot's own allocations could use.  A thread
 *    that only frees (the consumer of a producer-consumer pair) then
 *    holds 0..M objects of a class, not M..2M.  A slot that allocates too
 *    keeps the paper's rule and its 1/M miss bound; a free-only slot still
 *    makes one depot exchange per M frees.
 *  - Depot cap for the classes above 2 KiB (chunk > UMEM_DEPOT_CAP_ABOVE).
 *    When the depot holds UMEM_DEPOT_CAP_BYTES of full magazines, a full
 *    magazine that would go there gives its rounds to the slab layer
 *    instead (outside the slot).  Their slabs hold at most 8 objects, so
 *    a burst freed even sparsely empties most of them; an empty slab is
 *    kept for the class's next burst until another class grows (slab.c:
 *    spares), then goes back to the arena, where any class (or a large
 *    block) can reuse it, its pages kept a pass (vmem_heap_defer here,
 *    while the update thread runs to give back what stays unused).
 *    Without the cap every class a program passed through keeps the
 *    largest burst it ever freed until the working-set reap, and a burst
 *    of other sizes needs new memory (mallocbench frag: peak 166 -> 141
 *    MB, time within noise; from 1 KiB up, 140 MB for 8% more time); an
 *    object of these classes costs little in the slab layer against
 *    touching it.
 */
#include <errno.h>
#include <string.h>

#include "umem_impl.h"
#include "debug.h"
#include "percpu.h"

/* illumos magtype table: M, alignment, minbuf, maxbuf. */
umem_magtype_t umem_magtype[UMEM_NMAGTYPES] = {
	{ 1,	8,	3200,	65536,	NULL },
	{ 3,	16,	256,	32768,	NULL },
	{ 7,	32,	64,	16384,	NULL },
	{ 15,	64,	0,	8192,	NULL },
	{ 31,	64,	0,	4096,	NULL },
	{ 47,	64,	0,	2048,	NULL },
	{ 63,	64,	0,	1024,	NULL },
	{ 95,	64,	0,	512,	NULL },
	{ UMEM_MAG_ROUNDS_MAX, 64, 0,	0,	NULL },	/* the largest M */
};

umem_magtype_t *
umem_magtype_initial(size_t chunksize)
{
	umem_magtype_t *mtp = umem_magtype;

	while (chunksize <= mtp->mt_minbuf)
		mtp++;
	return (mtp);
}

/*
 * The malloc size classes start bigger than the table's initial row
 * (departure, docs/DESIGN.md §4): the largest row that growth could reach
 * (chunk < previous row's maxbuf) whose magazine holds at most
 * UMEM_MAG_MALLOC_BYTES of objects.  Growth waits for depot contention,
 * which a single thread never causes, and a program that allocates a
 * burst and frees it (or frees across threads) pays a depot exchange
 * every M objects: M = 15 for 64 bytes, 3 for 1 KiB.
 */
#define	UMEM_MAG_MALLOC_BYTES	(32 * 1024)

#define	UMEM_DEPOT_CAP_ABOVE	2048
#define	UMEM_DEPOT_CAP_BYTES	(64 * 1024)

/* The depot cap of a malloc class, in bytes of full magazines; 0: none. */
uint64_t
umem_depot_cap_malloc(size_t chunksize)
{
	return (chunksize > UMEM_DEPOT_CAP_ABOVE ? UMEM_DEPOT_CAP_BYTES : 0);
}

umem_magtype_t *
umem_magtype_malloc(size_t chunksize)
{
	umem_magtype_t *mtp = umem_magtype_initial(chunksize);

	while (mtp + 1 < umem_magtype + UMEM_NMAGTYPES &&
	    chunksize < mtp->mt_maxbuf &&
	    (mtp + 1)->mt_magsize * chunksize <= UMEM_MAG_MALLOC_BYTES)
		mtp++;
	return (mtp);
}

/*
 * ---- depot ----
 */
/*
 * ml_total changes under cache_depot_lock; its stores are atomic because
 * depot_over_cap() reads the full list's count without the lock.
 */
static inline void
ml_add(umem_maglist_t *mlp, int64_t d)
{
	__atomic_store_n(&mlp->ml_total, mlp->ml_total + (uint64_t)d,
	    __ATOMIC_RELAXED);
}

/*
 * Contention is counted as "another thread holds or waits for the lock"
 * (cache_depot_busy), not with pthread_mutex_trylock(): glibc's trylock
 * reads a jump table in libc's rodata, a 64 KiB window of resident file
 * pages that a small program would otherwise not have.
 */
static void
depot_lock(umem_cache_t *cp)
{
	int busy = __atomic_fetch_add(&cp->cache_depot_busy, 1,
	    __ATOMIC_RELAXED) != 0;

	umem_lock(&cp->cache_depot_lock);
	if (busy) {
		cp->cache_depot_contention++;
		umem_update_wanted();
	}
}

static void
depot_unlock(umem_cache_t *cp)
{
	umem_unlock(&cp->cache_depot_lock);
	(void) __atomic_fetch_sub(&cp->cache_depot_busy, 1, __ATOMIC_RELAXED);
}

/* Push mp (if any) on list mlp; cache_depot_lock held. */
static inline void
ml_push(umem_maglist_t *mlp, umem_magazine_t *mp)
{
	if (mp != NULL) {
		mp->mag_next = mlp->ml_list;
		mlp->ml_list = mp;
		ml_add(mlp, 1);
		mlp->ml_free++;
	}
}

/*
 * Take a magazine from list take and, if there was one, give up to two
 * (give0, give1; NULL: none) to list give, under one lock: an exchange
 * with the depot is one lock round, not two.
 */
static umem_magazine_t *
depot_exchange(umem_cache_t *cp, umem_maglist_t *take, umem_maglist_t *give,
    umem_magazine_t *give0, umem_magazine_t *give1)
{
	umem_magazine_t *mp;
	size_t off, size;

	depot_lock(cp);
	if ((mp = take->ml_list) != NULL) {
		take->ml_list = mp->mag_next;
		/* The next pop's load of mag_next, under the lock. */
		__builtin_prefetch(take->ml_list, 1, 3);
		ml_add(take, -1);
		if (take->ml_total < take->ml_min)
			take->ml_min = take->ml_total;
		take->ml_alloc++;
		ml_push(give, give0);
		ml_push(give, give1);
	}
	depot_unlock(cp);
	/*
	 * A depot magazine is cold (a burst's worth of objects passed through
	 * the cache since it was filled or emptied), and the fast paths walk
	 * its rounds one by one: fetch all its lines now, not one miss per
	 * eight rounds on the fast path.
	 */
	if (mp != NULL) {
		size = (cp->cache_magtype->mt_magsize + 1) * sizeof (void *);
		for (off = UMEM_CACHE_LINE; off < size; off += UMEM_CACHE_LINE)
			__builtin_prefetch((char *)mp + off, 1, 3);
	}
	return (mp);
}

void
umem_depot_ws_update(umem_cache_t *cp)
{
	umem_lock(&cp->cache_depot_lock);
	cp->cache_full.ml_reaplimit = cp->cache_full.ml_min;
	cp->cache_full.ml_min = cp->cache_full.ml_total;
	cp->cache_empty.ml_reaplimit = cp->cache_empty.ml_min;
	cp->cache_empty.ml_min = cp->cache_empty.ml_total;
	umem_unlock(&cp->cache_depot_lock);
}

/* Take up to n magazines off a list (reaping: not counted as traffic). */
static umem_magazine_t *
depot_take(umem_cache_t *cp, umem_maglist_t *mlp, uint64_t n)
{
	umem_magazine_t *head = NULL, *mp;

	umem_lock(&cp->cache_depot_lock);
	while (n-- > 0 && (mp = mlp->ml_list) != NULL) {
		mlp->ml_list = mp->mag_next;
		ml_add(mlp, -1);
		mp->mag_next = head;
		head = mp;
	}
	if (mlp->ml_total < mlp->ml_min)
		mlp->ml_min = mlp->ml_total;
	umem_unlock(&cp->cache_depot_lock);
	return (head);
}

/* A magazine's rounds, destructed, to their slabs under one lock. */
static void
mag_rounds_to_slabs(umem_cache_t *cp, umem_magazine_t *mp, uint32_t nrounds)
{
	uint32_t i;

	/* A debug cache's rounds were destructed when they were freed. */
	if (cp->cache_destructor != NULL && !(cp->cache_flags & UMF_DEBUG)) {
		for (i = 0; i < nrounds; i++) {
			cp->cache_destructor(mp->mag_round[i],
			    cp->cache_private);
			UMEM_STAT_ADD(cp->cache_dtor, 1);
		}
	}
	umem_slab_free_batch(cp, mp->mag_round, nrounds);
}

void
umem_mag_destroy(umem_cache_t *cp, umem_magtype_t *mtp, umem_magazine_t *mp,
    uint32_t nrounds)
{
	/*
	 * Rounds and the magazine itself go straight to their slabs, under
	 * one lock each (departure, docs/DESIGN.md §4): magazines are
	 * destroyed to give memory back, and a magazine freed into its
	 * cache's magazine layer would hold its page for more update passes.
	 */
	mag_rounds_to_slabs(cp, mp, nrounds);
	umem_slab_free(umem_magtype_cache(mtp), mp);
}

/* Destroy a list of magazines whose round arrays end at M or a NULL. */
static void
mag_destroy_list(umem_cache_t *cp, umem_magtype_t *mtp, umem_magazine_t *mp)
{
	while (mp != NULL) {
		umem_magazine_t *next = mp->mag_next;
		uint32_t n = 0;

		while (n < mtp->mt_magsize && mp->mag_round[n] != NULL)
			n++;
		umem_mag_destroy(cp, mtp, mp, n);
		mp = next;
	}
}

/* The working-set reap's count: what the list never used last interval. */
static uint64_t
ws_count(umem_maglist_t *mlp)
{
	return (mlp->ml_reaplimit < mlp->ml_min ? mlp->ml_reaplimit :
	    mlp->ml_min);
}

/*
 * The growth scan's count: the magazines the list held at the last scan,
 * if nothing took one since.  Records the list for the next scan.
 */
static uint64_t
scan_count(umem_maglist_t *mlp)
{
	uint64_t n = mlp->ml_alloc == mlp->ml_scan_alloc ?
	    mlp->ml_scan_total : 0;

	mlp->ml_scan_alloc = mlp->ml_alloc;
	mlp->ml_scan_total = mlp->ml_total;
	return (n < mlp->ml_total ? n : mlp->ml_total);
}

static void mag_trim(umem_cache_t *, umem_magtype_t *, umem_magazine_t *,
    uint32_t);

/*
 * Give back the depot magazines that count() says are idle: full ones'
 * rounds to their slabs, empty ones to their cache.  With keep (the
 * growth scan, below), as many of the full magazines as the cache's
 * frees took empty ones since the previous scan give only their rounds
 * and join the empty list, for the frees to come.  umem_cache_lock held:
 * the magazine type cannot change (umem_mag_resize runs under it too).
 * 1 if anything went.
 */
static int
depot_reap(umem_cache_t *cp, uint64_t (*count)(umem_maglist_t *), int keep)
{
	umem_magazine_t *full, *empty, *mp;
	umem_magtype_t *mtp;
	uint64_t nf, ne, nkeep = 0;

	umem_lock(&cp->cache_depot_lock);
	mtp = cp->cache_magtype;
	if (keep)	/* (before count() records the list for next time) */
		nkeep = cp->cache_empty.ml_alloc - cp->cache_empty.ml_scan_alloc;
	nf = count(&cp->cache_full);
	ne = count(&cp->cache_empty);
	umem_unlock(&cp->cache_depot_lock);
	if (mtp == NULL || (nf == 0 && ne == 0))
		return (0);
	full = depot_take(cp, &cp->cache_full, nf);
	empty = depot_take(cp, &cp->cache_empty, ne);
	while ((mp = full) != NULL) {
		full = mp->mag_next;
		if (nkeep != 0) {
			nkeep--;
			mag_trim(cp, mtp, mp, mtp->mt_magsize);
		} else {
			umem_mag_destroy(cp, mtp, mp, mtp->mt_magsize);
		}
	}
	while ((mp = empty) != NULL) {
		empty = mp->mag_next;
		umem_slab_free(umem_magtype_cache(mtp), mp);
	}
	return (1);
}

void
umem_depot_ws_reap(umem_cache_t *cp)
{
	(void) depot_reap(cp, ws_count, 0);
}

/*
 * The growth scan (update.c), the working-set reap clocked by the heap's
 * growth instead of time: the magazines a depot list held at the last
 * scan, if nothing took one from it since, sat unused while the heap grew
 * by UMEM_GROWTH_SCAN_BYTES.  They hold memory the program is not coming
 * back for, and its growing classes are taking fresh pages meanwhile:
 * give them back, so that their emptied slabs serve the growth.  (The
 * timed reap would too, but an update interval or two later, after the
 * growth.)  A cache in the middle of a storm of frees, whose magazines'
 * own imports set the scan off, keeps the magazines it is freeing into
 * (depot_reap's keep).  1 if anything went.
 */
int
umem_depot_purge_idle(umem_cache_t *cp)
{
	return (depot_reap(cp, scan_count, 1));
}

/*
 * ---- owning a CPU slot ----
 */
typedef struct ccown {
	umem_cpu_cache_t	*co_cc;
	umem_magazine_t		*co_loaded;
	int64_t			co_rounds;	/* -1: none */
	umem_magazine_t		*co_ploaded;
	int64_t			co_prounds;
	uint32_t		co_magsize;
} ccown_t;

/* Fold the op count of a detached word into the slot's totals. */
static void
cc_fold(umem_cpu_cache_t *cc, uint64_t w)
{
	uint64_t ops = UMEM_CC_OPS(w);

	if (ops != 0) {
		int64_t net = (int64_t)cc->cc_base -
		    (int64_t)UMEM_CC_ROUNDS(w);		/* pops - pushes */
		uint64_t pops = (uint64_t)((int64_t)ops + net) / 2;

		cc->cc_alloc += pops;
		cc->cc_free += ops - pops;
	}
}

static void
cc_load(ccown_t *o, umem_cpu_cache_t *cc, uint64_t w)
{
	cc_fold(cc, w);
	o->co_cc = cc;
	o->co_loaded = cc->cc_loaded;
	o->co_rounds = UMEM_CC_ROUNDS(w) == UMEM_CC_NONE ? -1 :
	    (int64_t)UMEM_CC_ROUNDS(w);
	o->co_ploaded = cc->cc_ploaded;
	o->co_prounds = cc->cc_prounds;
	o->co_magsize = cc->cc_magsize;
}

/* First use of a slot: the fork handlers lock only used slots. */
void
umem_cc_mark_used(umem_cache_t *cp, uint32_t slot)
{
	__atomic_store_n(&cp->cache_cpu[slot].cc_used, 1, __ATOMIC_RELAXED);
	if (slot < UMEM_USED_WORDS * 64)
		(void) __atomic_fetch_or(&cp->cache_used_map[slot / 64],
		    1ULL << (slot % 64), __ATOMIC_RELAXED);
}

/*
 * Take the caller's slot.  0, or -1: bypass the magazine layer.  In both
 * modes the slot is left detached (cc_word = NONE) while owned, so that a
 * fork child can tell a slot caught in the middle of a slow path.
 */
static int
cc_own(umem_cache_t *cp, ccown_t *o)
{
	umem_cpu_cache_t *cc;
	uint32_t slot;
	uint64_t w;

	for (;;) {
		slot = umem_percpu_slot();
		if (slot >= cp->cache_ncpu)
			return (-1);
		cc = &cp->cache_cpu[slot];
		umem_lock(&cc->cc_lock);
		if (!umem_percpu.pc_rseq) {
			w = cc->cc_word;
			__atomic_store_n(&cc->cc_word, UMEM_CC_NONE,
			    __ATOMIC_RELAXED);
			break;
		}
		w = umem_percpu_claim(cc, slot);
		if (w != UMEM_PC_MOVED)
			break;
		umem_unlock(&cc->cc_lock);
	}
	if (UMEM_UNLIKELY(!__atomic_load_n(&cc->cc_used, __ATOMIC_RELAXED)))
		umem_cc_mark_used(cp, slot);
	cc_load(o, cc, w);
	return (0);
}

static void
cc_store(ccown_t *o)
{
	umem_cpu_cache_t *cc = o->co_cc;
	uint32_t r = o->co_rounds < 0 ? (uint32_t)UMEM_CC_NONE :
	    (uint32_t)o->co_rounds;

	cc->cc_loaded = o->co_loaded;
	cc->cc_ploaded = o->co_ploaded;
	cc->cc_prounds = o->co_prounds;
	cc->cc_magsize = o->co_magsize;
	cc->cc_base = r;
	__atomic_store_n(&cc->cc_word, (uint64_t)r, __ATOMIC_RELEASE);
}

static void
cc_release(ccown_t *o)
{
	cc_store(o);
	umem_unlock(&o->co_cc->cc_lock);
}

static void
cc_swap(ccown_t *o)
{
	umem_magazine_t *mp = o->co_loaded;
	int64_t r = o->co_rounds;

	o->co_loaded = o->co_ploaded;
	o->co_rounds = o->co_prounds;
	o->co_ploaded = mp;
	o->co_prounds = r;
}

void *
umem_mag_alloc(umem_cache_t *cp)
{
	umem_magazine_t *fmp;
	void *obj = NULL;
	ccown_t o;

	if (cc_own(cp, &o) != 0)
		return (NULL);
	for (;;) {
		if (o.co_rounds > 0) {
			obj = o.co_loaded->mag_round[--o.co_rounds];
			o.co_cc->cc_alloc++;
			break;
		}
		if (o.co_prounds > 0) {
			cc_swap(&o);
			continue;
		}
		if (o.co_magsize == 0)
			break;
		if ((fmp = depot_exchange(cp, &cp->cache_full,
		    &cp->cache_empty, o.co_ploaded, NULL)) != NULL) {
			o.co_ploaded = o.co_loaded;
			o.co_prounds = o.co_rounds;
			o.co_loaded = fmp;
			o.co_rounds = o.co_magsize;
			continue;
		}
		break;
	}
	cc_release(&o);
	return (obj);
}

/* The depot holds its cap of full magazines (a racy read: a hint). */
static int
depot_over_cap(umem_cache_t *cp, uint32_t magsize)
{
	uint64_t cap = cp->cache_depot_cap;

	return (cap != 0 && __atomic_load_n(&cp->cache_full.ml_total,
	    __ATOMIC_RELAXED) * magsize * cp->cache_chunksize >= cap);
}

/*
 * An empty magazine of type mtp joins the depot's empty list; if the
 * cache was resized meanwhile, it goes back to its magazine cache.
 */
static void
depot_add_empty(umem_cache_t *cp, umem_magtype_t *mtp, umem_magazine_t *mp,
    int made)
{
	umem_lock(&cp->cache_depot_lock);
	if (cp->cache_magtype == mtp) {
		mp->mag_next = cp->cache_empty.ml_list;
		cp->cache_empty.ml_list = mp;
		ml_add(&cp->cache_empty, 1);
		if (made)
			cp->cache_mag_create++;
		mp = NULL;
	}
	umem_unlock(&cp->cache_depot_lock);
	if (mp != NULL)
		umem_cache_free(umem_magtype_cache(mtp), mp);
}

/* A full magazine's rounds to their slabs; the magazine joins the empties. */
static void
mag_trim(umem_cache_t *cp, umem_magtype_t *mtp, umem_magazine_t *mp,
    uint32_t nrounds)
{
	mag_rounds_to_slabs(cp, mp, nrounds);
	depot_add_empty(cp, mtp, mp, 0);
}

/*
 * Push bufs[0..n) into the caller's slot: into the loaded magazine, else
 * the previous one (if empty), else a full previous magazine goes to the
 * depot for an empty one (made, if the depot has none).  Returns how many
 * were pushed; fewer than n means the magazine layer is off for this
 * slot (or out of memory), and the caller keeps the rest.  count: these
 * are frees (a refill's pushes are not).
 */
static size_t
mag_push(umem_cache_t *cp, void *const *bufs, size_t n, int count)
{
	umem_magazine_t *emp, *t0, *t1, *g0, *g1;
	umem_magtype_t *mtp;
	umem_cache_t *mcp;
	size_t done = 0;
	uint32_t n0, n1;
	ccown_t o;
	int fo, trimmed, was;

	for (;;) {
		if (cc_own(cp, &o) != 0)
			return (done);
		trimmed = 0;
		for (;;) {
			while (done < n && o.co_rounds >= 0 &&
			    o.co_rounds < o.co_magsize) {
				o.co_loaded->mag_round[o.co_rounds++] =
				    bufs[done++];
				if (count)
					o.co_cc->cc_free++;
			}
			if (done == n) {
				cc_release(&o);
				return (done);
			}
			if (o.co_prounds == 0) {
				cc_swap(&o);
				continue;
			}
			if (o.co_magsize == 0) {
				cc_release(&o);
				return (done);
			}
			/* Here loaded is full (or none), previous full or none. */
			fo = o.co_loaded != NULL &&
			    (cp->cache_cflags & UMC_PAGEMAP) &&
			    o.co_cc->cc_alloc == o.co_cc->cc_xalloc;
			if (o.co_loaded != NULL && (o.co_prounds > 0 || fo) &&
			    depot_over_cap(cp, o.co_magsize)) {
				/* What would go to the depot goes to slabs. */
				t0 = t1 = NULL;
				n0 = n1 = 0;
				if (o.co_prounds > 0) {
					t0 = o.co_ploaded;
					n0 = (uint32_t)o.co_prounds;
					o.co_ploaded = NULL;
					o.co_prounds = -1;
				}
				if (fo) {
					t1 = o.co_loaded;
					n1 = (uint32_t)o.co_rounds;
				} else {
					o.co_ploaded = o.co_loaded;
					o.co_prounds = o.co_rounds;
				}
				o.co_loaded = NULL;	/* reloaded on retry */
				o.co_rounds = -1;
				o.co_cc->cc_xalloc = o.co_cc->cc_alloc;
				mtp = cp->cache_magtype;   /* stable: we own */
				cc_release(&o);
				/* (Emptied slabs keep their pages: see above.) */
				was = vmem_heap_defer(umem_update_flushes());
				if (t0 != NULL)
					mag_trim(cp, mtp, t0, n0);
				if (t1 != NULL)
					mag_trim(cp, mtp, t1, n1);
				(void) vmem_heap_defer(was);
				trimmed = 1;	/* and retry */
				break;
			}
			/*
			 * For an empty magazine the depot gets the previous
			 * (full or none) and, free-only, the loaded one too
			 * (free-only keeps no full magazine).
			 */
			g0 = g1 = NULL;
			if (o.co_loaded != NULL) {
				g0 = o.co_prounds > 0 ? o.co_ploaded : NULL;
				g1 = fo ? o.co_loaded : NULL;
			}
			if ((emp = depot_exchange(cp, &cp->cache_empty,
			    &cp->cache_full, g0, g1)) != NULL) {
				if (o.co_loaded == NULL) {
					o.co_loaded = emp;
					o.co_rounds = 0;
					continue;
				}
				o.co_cc->cc_xalloc = o.co_cc->cc_alloc;
				if (g0 != NULL) {
					o.co_ploaded = NULL;
					o.co_prounds = -1;
				}
				if (fo) {
					o.co_loaded = emp;
					o.co_rounds = 0;
					continue;
				}
				o.co_ploaded = o.co_loaded;
				o.co_prounds = o.co_rounds;
				o.co_loaded = emp;
				o.co_rounds = 0;
				continue;
			}
			break;
		}
		if (trimmed)
			continue;
		/*
		 * No empty magazine: make one with the slot released (the
		 * magazine cache may need slabs, and so other caches).
		 */
		mtp = cp->cache_magtype;
		cc_release(&o);
		if ((mcp = umem_magtype_cache(mtp)) == NULL ||
		    (emp = umem_cache_alloc(mcp, UMEM_DEFAULT)) == NULL)
			return (done);
		depot_add_empty(cp, mtp, emp, 1);
	}
}

int
umem_mag_free(umem_cache_t *cp, void *buf)
{
	return (mag_push(cp, &buf, 1, 1) == 1);
}

/*
 * malloc's classes (UMF_PAGEMAP: no constructors, no debugging) and the
 * slab-record caches (UMF_REFILL), on a miss that found no full magazine
 * in the depot: take a magazine's worth
 * of buffers from the slab layer under one cache_lock acquisition, keep
 * one for the caller and load the rest into the slot.  Without it, a
 * program that allocates a heap's worth of new blocks paid the slot,
 * depot and slab locks for each.  (Object caches keep illumos' rule, one
 * buffer constructed per miss: a refill would construct objects nobody
 * asked for.)  NULL: the slab layer has none.
 *
 * The rounds go in reversed, so that the slot hands them out in the
 * order the slab layer gave them: a new slab's buffers by rising address.
 * A program that walks its objects in the order it made them (Python's
 * collector lists, perl's arenas) then walks memory upward, as it would
 * under a bump allocator; handed out top-down, python3 (PYTHONMALLOC=
 * malloc) took 7-9% more time and perl 6% (DESIGN.md §5).
 */
void *
umem_mag_refill(umem_cache_t *cp)
{
	void *bufs[UMEM_MAG_ROUNDS_MAX + 1], *t;
	/* Unlocked: a resize may swap it; either size will do (mag_push). */
	size_t n = __atomic_load_n(&cp->cache_magtype,
	    __ATOMIC_RELAXED)->mt_magsize + 1, k, pushed, i, j;

	k = umem_slab_alloc_batch(cp, bufs, n);
	if (k == 0)
		return (NULL);
	UMEM_STAT_ADD(cp->cache_direct_alloc, 1);
	for (i = 1, j = k - 1; i < j; i++, j--) {
		t = bufs[i];
		bufs[i] = bufs[j];
		bufs[j] = t;
	}
	pushed = mag_push(cp, bufs + 1, k - 1, 0);
	/* What the slot does not take goes back. */
	umem_slab_free_batch(cp, bufs + 1 + pushed, k - 1 - pushed);
	return (bufs[0]);
}

/*
 * ---- remote ownership: purge, resize, idle drain ----
 */

/*
 * Own the slots of cp whose bit is set in want (NULL: all) from any
 * thread: lock them in index order, then (rseq) detach them with CAS and
 * a fence.  Returns 0, or -1 (nothing held) if rseq mode has no fence and
 * the cache is not quiescent.
 */
static int
cc_own_all(umem_cache_t *cp, const uint8_t *want, int quiescent)
{
	uint32_t i, n = cp->cache_ncpu;
	int again;

	if (umem_percpu.pc_rseq && !quiescent && !umem_percpu.pc_fence)
		return (-1);
	for (i = 0; i < n; i++)
		if (want == NULL || want[i])
			umem_lock(&cp->cache_cpu[i].cc_lock);
	if (!umem_percpu.pc_rseq || quiescent) {
		for (i = 0; i < n; i++) {
			umem_cpu_cache_t *cc = &cp->cache_cpu[i];

			if (want == NULL || want[i]) {
				cc->cc_claimed = cc->cc_word;
				cc->cc_word = UMEM_CC_NONE;
			}
		}
		return (0);
	}
	for (i = 0; i < n; i++)
		cp->cache_cpu[i].cc_claimed = UMEM_CC_NONE;
	do {
		again = 0;
		for (i = 0; i < n; i++) {
			umem_cpu_cache_t *cc = &cp->cache_cpu[i];
			uint64_t w;

			if (want != NULL && !want[i])
				continue;
			w = __atomic_load_n(&cc->cc_word, __ATOMIC_ACQUIRE);
			while (w != UMEM_CC_NONE &&
			    !__atomic_compare_exchange_n(&cc->cc_word, &w,
			    UMEM_CC_NONE, 0, __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
				;
			if (w != UMEM_CC_NONE)
				cc->cc_claimed = w;
		}
		if (umem_percpu_fence() != 0)
			umem_panic("umem: membarrier fence failed");
		for (i = 0; i < n; i++) {
			umem_cpu_cache_t *cc = &cp->cache_cpu[i];

			if ((want == NULL || want[i]) && __atomic_load_n(
			    &cc->cc_word, __ATOMIC_ACQUIRE) != UMEM_CC_NONE)
				again = 1;	/* a fast path was first */
		}
	} while (again);
	return (0);
}

/*
 * Empty the owned slots in want into a list of magazines (partial ones
 * NULL-terminated), set their magazine size, and release them.
 */
static umem_magazine_t *
cc_strip_release(umem_cache_t *cp, const uint8_t *want, uint32_t magsize)
{
	umem_magazine_t *list = NULL;
	uint32_t i;

	for (i = 0; i < cp->cache_ncpu; i++) {
		umem_cpu_cache_t *cc = &cp->cache_cpu[i];
		ccown_t o;

		if (want != NULL && !want[i])
			continue;
		cc_load(&o, cc, cc->cc_claimed);
		if (o.co_loaded != NULL) {
			if (o.co_rounds < o.co_magsize)
				o.co_loaded->mag_round[o.co_rounds] = NULL;
			o.co_loaded->mag_next = list;
			list = o.co_loaded;
		}
		if (o.co_ploaded != NULL) {
			if (o.co_prounds < o.co_magsize)
				o.co_ploaded->mag_round[o.co_prounds] = NULL;
			o.co_ploaded->mag_next = list;
			list = o.co_ploaded;
		}
		o.co_loaded = o.co_ploaded = NULL;
		o.co_rounds = o.co_prounds = -1;
		if (magsize != UINT32_MAX)
			o.co_magsize = magsize;
		cc_release(&o);
	}
	return (list);
}

static void
depot_purge(umem_cache_t *cp, umem_magtype_t *mtp, umem_magazine_t **fullp,
    umem_magazine_t **emptyp)
{
	*fullp = cp->cache_full.ml_list;
	*emptyp = cp->cache_empty.ml_list;
	cp->cache_full.ml_list = cp->cache_empty.ml_list = NULL;
	__atomic_store_n(&cp->cache_full.ml_total, 0, __ATOMIC_RELAXED);
	cp->cache_full.ml_min = 0;
	cp->cache_full.ml_reaplimit = 0;
	cp->cache_empty.ml_total = cp->cache_empty.ml_min = 0;
	cp->cache_empty.ml_reaplimit = 0;
	(void) mtp;
}

static void
depot_destroy_lists(umem_cache_t *cp, umem_magtype_t *mtp,
    umem_magazine_t *full, umem_magazine_t *empty)
{
	umem_magazine_t *mp;

	while ((mp = full) != NULL) {
		full = mp->mag_next;
		umem_mag_destroy(cp, mtp, mp, mtp->mt_magsize);
	}
	while ((mp = empty) != NULL) {
		empty = mp->mag_next;
		umem_slab_free(umem_magtype_cache(mtp), mp);
	}
}

/*
 * Empty the whole magazine layer of cp into the slab layer.  quiescent:
 * the caller guarantees no thread uses the cache (cache destroy).
 */
static void
mag_purge(umem_cache_t *cp, int quiescent)
{
	umem_magazine_t *cpul = NULL, *full, *empty;
	umem_magtype_t *mtp = cp->cache_magtype;

	if (mtp == NULL)
		return;
	if (cc_own_all(cp, NULL, quiescent) == 0)
		cpul = cc_strip_release(cp, NULL, UINT32_MAX);
	umem_lock(&cp->cache_depot_lock);
	depot_purge(cp, mtp, &full, &empty);
	umem_unlock(&cp->cache_depot_lock);
	mag_destroy_list(cp, mtp, cpul);
	depot_destroy_lists(cp, mtp, full, empty);
}

void
umem_depot_purge(umem_cache_t *cp)
{
	umem_magazine_t *full, *empty;
	umem_magtype_t *mtp;

	umem_lock(&cp->cache_depot_lock);
	mtp = cp->cache_magtype;
	if (mtp == NULL) {
		umem_unlock(&cp->cache_depot_lock);
		return;
	}
	depot_purge(cp, mtp, &full, &empty);
	umem_unlock(&cp->cache_depot_lock);
	depot_destroy_lists(cp, mtp, full, empty);
}

void
umem_mag_purge(umem_cache_t *cp)
{
	mag_purge(cp, 0);
}

void
umem_mag_purge_quiescent(umem_cache_t *cp)
{
	mag_purge(cp, 1);
}

int
umem_mag_resize_check(umem_cache_t *cp)
{
	umem_magtype_t *mtp;
	uint64_t delta;

	if (cp->cache_flags & UMF_NOMAGAZINE)
		return (0);
	umem_lock(&cp->cache_depot_lock);
	mtp = cp->cache_magtype;
	delta = cp->cache_depot_contention - cp->cache_depot_contention_prev;
	cp->cache_depot_contention_prev = cp->cache_depot_contention;
	if (cp->cache_resize_quiet) {
		/* The interval after a resize (illumos: prev + INT_MAX). */
		cp->cache_resize_quiet = 0;
		delta = 0;
	}
	umem_unlock(&cp->cache_depot_lock);
	return (mtp != NULL && delta > umem_depot_contention_max &&
	    cp->cache_chunksize < mtp->mt_maxbuf &&
	    mtp + 1 < umem_magtype + UMEM_NMAGTYPES &&
	    (!umem_percpu.pc_rseq || umem_percpu.pc_fence));
}

void
umem_mag_resize(umem_cache_t *cp)
{
	umem_magazine_t *cpul, *full, *empty;
	umem_magtype_t *mtp = cp->cache_magtype, *nmtp;

	if (mtp == NULL || mtp + 1 >= umem_magtype + UMEM_NMAGTYPES)
		return;
	nmtp = mtp + 1;
	if (cc_own_all(cp, NULL, 0) != 0)
		return;
	umem_lock(&cp->cache_depot_lock);
	depot_purge(cp, mtp, &full, &empty);
	__atomic_store_n(&cp->cache_magtype, nmtp, __ATOMIC_RELAXED);
	cp->cache_mag_resize++;
	cp->cache_depot_contention_prev = cp->cache_depot_contention;
	cp->cache_resize_quiet = 1;
	umem_unlock(&cp->cache_depot_lock);
	/* Slots come back empty with the new size, before anyone runs. */
	cpul = cc_strip_release(cp, NULL, nmtp->mt_magsize);
	mag_destroy_list(cp, mtp, cpul);
	depot_destroy_lists(cp, mtp, full, empty);
}

void
umem_mag_drain_idle(umem_cache_t *cp)
{
	uint8_t want[1024];
	uint32_t i, n = cp->cache_ncpu, cnt = 0;
	umem_magazine_t *list;
	umem_magtype_t *mtp;

	if (cp->cache_magtype == NULL || n > sizeof (want))
		return;
	for (i = 0; i < n; i++) {
		umem_cpu_cache_t *cc = &cp->cache_cpu[i];
		uint64_t w = __atomic_load_n(&cc->cc_word, __ATOMIC_RELAXED);

		want[i] = 0;
		if (!__atomic_load_n(&cc->cc_used, __ATOMIC_RELAXED))
			continue;
		if (w == cc->cc_seen && UMEM_CC_ROUNDS(w) != UMEM_CC_NONE) {
			want[i] = 1;
			cnt++;
		}
		cc->cc_seen = w;
	}
	if (cnt == 0 || cc_own_all(cp, want, 0) != 0)
		return;
	mtp = cp->cache_magtype;	/* stable: we own slots */
	list = cc_strip_release(cp, want, UINT32_MAX);
	for (i = 0; i < n; i++)
		if (want[i])
			cp->cache_cpu[i].cc_seen = UMEM_CC_NONE;
	UMEM_STAT_ADD(cp->cache_cpu_drain, cnt);
	mag_destroy_list(cp, mtp, list);
}

/*
 * ---- setup and statistics ----
 */
void
umem_cpu_init(umem_cache_t *cp, uint32_t magsize)
{
	uint32_t i;

	for (i = 0; i < cp->cache_ncpu; i++) {
		umem_cpu_cache_t *cc = &cp->cache_cpu[i];

		memset(cc, 0, sizeof (*cc));
		umem_lock_init(&cc->cc_lock);
		cc->cc_word = UMEM_CC_NONE;
		cc->cc_base = (uint32_t)UMEM_CC_NONE;
		cc->cc_prounds = -1;
		cc->cc_magsize = magsize;
		cc->cc_seen = UMEM_CC_NONE;
	}
}

UMEM_TEXT_COLD void
umem_mag_cpu_totals(umem_cache_t *cp, uint64_t *allocp, uint64_t *freep,
    uint64_t *roundsp)
{
	uint64_t a = 0, f = 0, r = 0;
	uint32_t i;

	for (i = 0; i < cp->cache_ncpu; i++) {
		umem_cpu_cache_t *cc = &cp->cache_cpu[i];
		uint64_t w, ops;

		umem_lock(&cc->cc_lock);
		w = __atomic_load_n(&cc->cc_word, __ATOMIC_ACQUIRE);
		a += cc->cc_alloc;
		f += cc->cc_free;
		ops = UMEM_CC_OPS(w);
		if (ops != 0) {
			int64_t net = (int64_t)cc->cc_base -
			    (int64_t)UMEM_CC_ROUNDS(w);
			uint64_t pops = (uint64_t)((int64_t)ops + net) / 2;

			a += pops;
			f += ops - pops;
		}
		if (UMEM_CC_ROUNDS(w) != UMEM_CC_NONE)
			r += UMEM_CC_ROUNDS(w);
		if (cc->cc_prounds > 0)
			r += (uint64_t)cc->cc_prounds;
		umem_unlock(&cc->cc_lock);
	}
	*allocp = a;
	*freep = f;
	*roundsp = r;
}

UMEM_TEXT_COLD int
umem_cc_state(umem_cache_t *cp, uint32_t slot, umem_cc_state_t *sp)
{
	umem_cpu_cache_t *cc;
	uint64_t w;

	if (slot == UINT32_MAX)
		slot = umem_percpu_slot();
	if (slot >= cp->cache_ncpu)
		return (-1);
	cc = &cp->cache_cpu[slot];
	umem_lock(&cc->cc_lock);
	w = __atomic_load_n(&cc->cc_word, __ATOMIC_ACQUIRE);
	sp->cs_rounds = UMEM_CC_ROUNDS(w) == UMEM_CC_NONE ? -1 :
	    (int64_t)UMEM_CC_ROUNDS(w);
	sp->cs_prounds = cc->cc_prounds;
	sp->cs_magsize = cc->cc_magsize;
	sp->cs_slot = slot;
	umem_unlock(&cc->cc_lock);
	return (0);
}
