/*
 * umem_impl.h - object-cache internals shared by the slab layer (slab.c),
 * the magazine layer (magazine.c), CPU identity (percpu.c), the cache
 * glue (umem.c), the update thread (update.c) and white-box tests.
 * Not installed.
 *
 * Layering, top-down (see docs/DESIGN.md, "Object caches and magazines"):
 *
 *	umem_cache_alloc/free	umem.c: fast path inline (rseq or slot lock)
 *	magazine layer		magazine.c: per-CPU loaded + previous
 *				magazines, depot of full / empty magazines
 *	slab layer		slab.c: raw buffers carved from slabs
 *	vmem			slabs are vmem_xalloc()s from the source arena
 *
 * Lock order (earlier first); nothing is ever taken in the other order:
 *
 *	umem_init_lock -> umem_update_lock -> umem_cache_lock (cache list)
 *	  -> per cache: cache_cpu[0..n-1].cc_lock (index order)
 *	  -> cache_depot_lock -> cache_lock (slab layer)
 *	  -> umem_pagemap_lock (a leaf) -> vmem locks (vmem_fork_prepare)
 *	  -> platform pools
 *
 * The slab layer drops cache_lock around every call into vmem, and no
 * cache lock is held while a constructor, destructor, reclaim callback or
 * a nested umem_cache_alloc/free (magazines, slab and bufctl records) runs.
 */
#ifndef _UMEM_IMPL_H
#define	_UMEM_IMPL_H

#include <umem.h>
#include "platform.h"
#include "vmem_impl.h"

/* Private cflags (illumos values). */
#define	UMC_QCACHE	0x00100000	/* vmem quantum cache */
#define	UMC_PAGEMAP	0x00200000	/* record slabs in the page map */
#define	UMC_INTERNAL	0x80000000	/* the library's own caches */
#define	UMC_PUBLIC	\
	(UMC_NOTOUCH | UMC_NODEBUG | UMC_NOMAGAZINE | UMC_NOHASH)

/* cache_flags */
#define	UMF_HASH	0x0001	/* external slab + bufctl, hashed */
#define	UMF_NOMAGAZINE	0x0002	/* no magazine layer */
#define	UMF_NOTOUCH	0x0004	/* never write into buffers */
#define	UMF_DEAD	0x0008	/* destroyed (catches use after destroy) */
#define	UMF_PAGEMAP	0x0010	/* slab pages recorded in the page map */
#define	UMF_SLABMAP	0x0020	/* large slab, buffers linked in place, */
				/* record found through the page map */
#define	UMF_REFILL	0x0040	/* a miss refills a magazine from the */
				/* slabs at once (no constructor) */

#define	UMEM_NAMELEN		31
#define	UMEM_ALIGN		8	/* minimum alignment */
#define	UMEM_SECOND_ALIGN	16	/* for buffers of 16 bytes or more */
#define	UMEM_VOID_FRACTION	8	/* at most 1/8 of a slab wasted */
#define	UMEM_HASH_INITIAL	64	/* buckets */
#define	UMEM_RELEASE_CHUNK_MIN	(8 * 1024) /* slab_destroy: see there */

/*
 * A magazine: M pointers to constructed objects plus a link for the depot
 * lists.  Its round count lives in the CPU cache (cc_word / cc_prounds)
 * while loaded, and is implicit in the depot (full = M, empty = 0).
 */
typedef struct umem_magazine {
	struct umem_magazine	*mag_next;
	void			*mag_round[];
} umem_magazine_t;

/* A row of the magazine-type table (illumos umem_magtype[]). */
typedef struct umem_magtype {
	uint32_t	mt_magsize;	/* M, rounds per magazine */
	uint32_t	mt_align;	/* magazine alignment */
	size_t		mt_minbuf;	/* initial type iff chunk > minbuf */
	size_t		mt_maxbuf;	/* grow beyond only if chunk < maxbuf */
	struct umem_cache *mt_cache;	/* "umem_magazine_<M>" */
} umem_magtype_t;

#define	UMEM_NMAGTYPES	9
#define	UMEM_MAG_ROUNDS_MAX	143	/* the last row's M */
extern umem_magtype_t umem_magtype[UMEM_NMAGTYPES];

/* A depot list of full or empty magazines. */
typedef struct umem_maglist {
	umem_magazine_t	*ml_list;
	uint64_t	ml_total;	/* magazines on the list */
	uint64_t	ml_min;		/* least ml_total since last update */
	uint64_t	ml_reaplimit;	/* ml_min of the previous interval */
	uint64_t	ml_alloc;	/* magazines taken */
	uint64_t	ml_free;	/* magazines given */
	uint64_t	ml_scan_alloc;	/* ml_alloc and ml_total at the */
	uint64_t	ml_scan_total;	/* last growth scan */
} umem_maglist_t;

/*
 * A bufctl: one per buffer of a hashed (large) slab, from umem_bufctl.
 * For small and UMF_SLABMAP slabs the "bufctl" is the last word of the
 * free buffer itself, so only bc_next exists there.  bc_next links the
 * slab's free list while the buffer is free and the hash chain while it is
 * allocated.
 */
typedef struct umem_bufctl {
	struct umem_bufctl	*bc_next;
	void			*bc_addr;
	struct umem_slab	*bc_slab;
} umem_bufctl_t;

/*
 * A slab.  Small slabs embed it at the end of their single page; large
 * slabs get it from umem_slab.  Slabs are on a circular list headed by the
 * cache's null slab; every slab from cache_freelist to the end of the
 * list has a free buffer, the ones before it are fully allocated.
 */
typedef struct umem_slab {
	struct umem_cache	*slab_cache;
	void			*slab_mem;	/* from vmem_xalloc_tag() */
	void			*slab_base;	/* first buffer: mem + colour */
	umem_bufctl_t		*slab_head;	/* free buffers */
	struct umem_slab	*slab_next;
	struct umem_slab	*slab_prev;
	uint32_t		slab_refcnt;	/* buffers allocated */
	uint32_t		slab_chunks;	/* buffers in the slab */
	void			*slab_vtag;	/* slab_mem's vmem tag */
} umem_slab_t;

/*
 * Per-CPU cache, one per CPU slot, 128 bytes (two cache lines: adjacent-
 * line prefetch) and 128-aligned.  The first line is all the rseq fast
 * path touches.
 *
 * cc_word is the one word that commits a CPU-cache change:
 *	bits 0-15	rounds in the loaded magazine; UMEM_CC_NONE (0xffff)
 *			when there is no loaded magazine or the slot is
 *			"detached" (owned by a slow path, see magazine.c);
 *			both make the fast paths take the slow path
 *	bits 16-63	operations (pops + pushes) since the last fold
 * Folding: pops - pushes = cc_base - rounds, so the two counts follow from
 * the op count; slow paths fold them into cc_alloc / cc_free.
 */
#define	UMEM_CC_NONE		0xffffULL
#define	UMEM_CC_ROUNDS(w)	((uint32_t)((w) & 0xffff))
#define	UMEM_CC_OPS(w)		((w) >> 16)
#define	UMEM_CC_ONE_OP		0x10000ULL
#define	UMEM_CPU_CACHE_SHIFT	7
#define	UMEM_CPU_CACHE_SIZE	(1 << UMEM_CPU_CACHE_SHIFT)

typedef struct umem_cpu_cache {
	union {
		struct {
			/* line 0: fast path */
			uint64_t	cc_word;
			umem_magazine_t	*cc_loaded;
			uint32_t	cc_magsize;	/* M; 0 = layer off */
			uint32_t	cc_base;	/* rounds at fold */
			umem_magazine_t	*cc_ploaded;	/* previous magazine */
			int64_t		cc_prounds;	/* its rounds; -1 none */
			uint64_t	cc_alloc;	/* folded magazine hits */
			uint64_t	cc_free;
			uint64_t	cc_seen;	/* update thread's view */
			/* line 1: slow path */
			umem_lock_t	cc_lock;
			uint32_t	cc_used;	/* ever used */
			uint64_t	cc_claimed;	/* word when detached */
			uint64_t	cc_xalloc;	/* cc_alloc at last free-side
						   depot exchange */
		};
		char	cc_pad[UMEM_CPU_CACHE_SIZE];
	};
} __attribute__((aligned(UMEM_CPU_CACHE_SIZE))) umem_cpu_cache_t;
_Static_assert(sizeof (umem_cpu_cache_t) == UMEM_CPU_CACHE_SIZE,
    "a CPU slot is one 128-byte block");

#define	UMEM_USED_WORDS		16	/* slots >= 1024 count as used */

/*
 * An object cache.  Allocated from umem_cache_arena, 128-aligned, with
 * cache_ncpu CPU caches at the end.
 */
struct umem_cache {
	/* read-mostly, used by every slow path */
	char			cache_name[UMEM_NAMELEN + 1];
	uint32_t		cache_flags;	/* UMF_* */
	uint32_t		cache_cflags;	/* UMC_* as created */
	size_t			cache_bufsize;
	size_t			cache_align;
	size_t			cache_chunksize;
	size_t			cache_slabsize;
	size_t			cache_bufctl;	/* unhashed: link offset in buf */
	uint32_t		cache_chunks;	/* per slab at colour 0 */
	uint32_t		cache_ncpu;	/* CPU cache slots */
	uint32_t		cache_fast_slots; /* inline fast path's: 0 debug */
	uint32_t		cache_cpu_mask;	/* thread mode: ncpu - 1 */
	/* UMF_PAGEMAP: free() checks a pointer is a buffer start */
	uintptr_t		cache_slab_mask; /* slab alignment - 1 */
	uint64_t		cache_chunk_inv; /* odd part of chunksize^-1 */
	uint32_t		cache_chunk_tz;	/* trailing zeros of chunksize */
	umem_constructor_t	*cache_constructor;
	umem_destructor_t	*cache_destructor;
	umem_reclaim_t		*cache_reclaim;
	void			*cache_private;
	vmem_t			*cache_arena;
	size_t			cache_arena_quantum;
	struct umem_cache	*cache_next;	/* all caches */
	struct umem_cache	*cache_prev;
	uint64_t		cache_size;	/* bytes of this structure */
	/* debugging (UMF_DEBUG, debug.h) */
	ptrdiff_t		cache_buftag;	/* tag offset; < 0 firewall */
	size_t			cache_verify;	/* pattern bytes checked */
	size_t			cache_audit;	/* bytes per audit record */

	/* counters kept outside any lock (relaxed atomics) */
	uint64_t		cache_alloc_fail;
	uint64_t		cache_ctor;
	uint64_t		cache_dtor;
	uint64_t		cache_ctor_fail;
	uint64_t		cache_reclaim_count;
	uint64_t		cache_reap_count;
	uint64_t		cache_cpu_drain;
	uint64_t		cache_direct_alloc; /* served by the slab layer */
	uint64_t		cache_direct_free;  /* umem_cache_free to slab */

	/* depot (magazine layer), under cache_depot_lock */
	umem_lock_t		cache_depot_lock __attribute__((aligned(64)));
	uint32_t		cache_depot_busy; /* holders + waiters (atomic) */
	umem_magtype_t		*cache_magtype;
	umem_maglist_t		cache_full;
	umem_maglist_t		cache_empty;
	uint64_t		cache_depot_contention;
	uint64_t		cache_depot_contention_prev;
	uint64_t		cache_mag_create;
	uint64_t		cache_mag_resize;
	int			cache_resize_quiet; /* skip next check */
	uint64_t		cache_depot_cap; /* bytes of full magazines; also:
					   with chunk >= UMEM_RELEASE_CHUNK_MIN,
					   its slabs release their pages */

	/* slab layer, under cache_lock */
	umem_lock_t		cache_lock __attribute__((aligned(64)));
	umem_slab_t		*cache_freelist;
	umem_slab_t		cache_nullslab;	/* list head */
	umem_slab_t		*cache_spare;	/* empty slabs kept, newest first */
	uint32_t		cache_spare_count;
	uint32_t		cache_spare_min; /* low water since last pass */
	uint64_t		cache_spare_seen; /* slab_alloc at last pass */
	size_t			cache_color;	/* next slab's colour */
	size_t			cache_maxcolor;
	umem_bufctl_t		**cache_hash_table;
	size_t			cache_hash_mask;
	int			cache_hash_shift;
	uint64_t		cache_slab_create;
	uint64_t		cache_slab_destroy;
	uint64_t		cache_slab_alloc;
	uint64_t		cache_slab_free;
	uint64_t		cache_buftotal;
	uint64_t		cache_bufmax;
	uint64_t		cache_hash_rescale;
	uint64_t		cache_hash_lookup;
	uint64_t		cache_hash_depth;

	/* slots ever used (fork locks only these); bit set on first use */
	uint64_t		cache_used_map[UMEM_USED_WORDS];
	uint64_t		cache_fork_map[UMEM_USED_WORDS];

	umem_cpu_cache_t	cache_cpu[]
	    __attribute__((aligned(UMEM_CPU_CACHE_SIZE)));
};

#define	UMEM_STAT_ADD(x, n)	\
	((void) __atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED))
#define	UMEM_STAT_READ(x)	__atomic_load_n(&(x), __ATOMIC_RELAXED)

/*
 * ---- Global state (umem.c) ----
 */
extern umem_lock_t umem_init_lock;
extern umem_lock_t umem_cache_lock;	/* the cache list */
extern umem_cache_t umem_null_cache;	/* list head, never used */
extern vmem_t *umem_default_arena;	/* slabs of user caches */
extern vmem_t *umem_internal_arena;	/* library metadata, page quantum */
extern vmem_t *umem_cache_arena;	/* cache structures */
extern vmem_t *umem_hash_arena;		/* hash tables; NULL until used */
vmem_t *umem_hash_arena_get(void);	/* creates it on first use */
extern umem_cache_t *umem_slab_cache;
extern umem_cache_t *umem_bufctl_cache;
extern int umem_ready;			/* init finished */
extern int umem_nomagazines;		/* UMEM_OPTIONS=nomagazines */
extern int umem_stats_at_exit;		/* UMEM_OPTIONS=stats */
extern uint64_t umem_update_interval_ns; /* 0 = no update thread */
extern uint64_t umem_reap_interval_ns;
extern uint64_t umem_depot_contention_max;
extern int umem_drain_idle;

int umem_init(void);			/* 0, or -1 with errno */
/* UMEM_NOFAIL failure: run the callback; returns to retry, or exits. */
void umem_nofail(void);

/*
 * ---- Slab layer (slab.c) ----
 */
/* Compute the slab geometry of a new cache; 0 or an errno value. */
int umem_slab_geometry(umem_cache_t *cp, size_t forced_slabsize);
void *umem_slab_alloc(umem_cache_t *cp);	/* raw buffer or NULL */
void umem_slab_free(umem_cache_t *cp, void *buf);
void umem_slab_free_batch(umem_cache_t *cp, void **bufs, size_t n);
size_t umem_slab_alloc_batch(umem_cache_t *cp, void **bufs, size_t n);
/* all: 0 if unused since the last pass, 1 anyway, 2 update pass */
int umem_slab_release_spare(umem_cache_t *cp, int all);
int umem_slab_trim_spares(umem_cache_t *cp);
uint64_t umem_slab_destroy_all(umem_cache_t *cp);	/* -> buffers in use */
int umem_hash_init(umem_cache_t *cp);		/* 0 or -1 */
void umem_hash_fini(umem_cache_t *cp);
int umem_hash_rescale_needed(umem_cache_t *cp);
void umem_hash_rescale(umem_cache_t *cp);
/*
 * Debugging and error reports (no locks held by the caller).
 * umem_slab_lookup: 1 if buf is an allocated buffer of hashed cache cp.
 * umem_slab_find: 1 if buf lies in a buffer of one of cp's slabs (*startp
 * set to that buffer), from the slab list (reads no buffer memory).
 * umem_slab_small_find: the same for a small-slab cache, from buf's
 * address (reads the slab header, as a free does).
 */
int umem_slab_lookup(umem_cache_t *cp, const void *buf);
int umem_slab_find(umem_cache_t *cp, const void *buf, void **startp);
int umem_slab_small_find(umem_cache_t *cp, const void *buf, void **startp);
/* Colour (offset of the first buffer) of the slab holding buf; tests. */
size_t umem_slab_color(umem_cache_t *cp, void *buf);
/* Small-slab header size, for geometry tests. */
extern const size_t umem_slab_header_size;

/*
 * ---- Magazine layer (magazine.c) ----
 */
void umem_cpu_init(umem_cache_t *cp, uint32_t magsize);
void umem_cc_mark_used(umem_cache_t *cp, uint32_t slot);
/* Slow paths: an object from the magazine layer, or NULL (go to slabs). */
void *umem_mag_alloc(umem_cache_t *cp);
/* 1 if the magazine layer took buf, 0 if the caller must destroy it. */
int umem_mag_free(umem_cache_t *cp, void *buf);
void *umem_mag_refill(umem_cache_t *cp);	/* malloc classes: batch */
/* Destruct the first nrounds rounds of a magazine of type mtp, free it. */
void umem_mag_destroy(umem_cache_t *cp, umem_magtype_t *mtp,
    umem_magazine_t *mp, uint32_t nrounds);
void umem_depot_ws_update(umem_cache_t *cp);
void umem_depot_ws_reap(umem_cache_t *cp);
/* Empty every CPU cache and the depot (all objects to the slab layer). */
void umem_mag_purge(umem_cache_t *cp);
void umem_mag_purge_quiescent(umem_cache_t *cp);	/* nobody uses cp */
void umem_depot_purge(umem_cache_t *cp);	/* the depot only */
int umem_depot_purge_idle(umem_cache_t *cp); /* lists untouched since */
					/* the last call (growth scan) */
/* Grow the magazine size one magtype row if contention asks; 1 if grown. */
int umem_mag_resize_check(umem_cache_t *cp);
void umem_mag_resize(umem_cache_t *cp);
/* Give back the magazines of CPU slots unused since the last call. */
void umem_mag_drain_idle(umem_cache_t *cp);
/* Totals over the CPU caches, for statistics. */
void umem_mag_cpu_totals(umem_cache_t *cp, uint64_t *allocp, uint64_t *freep,
    uint64_t *roundsp);
umem_magtype_t *umem_magtype_initial(size_t chunksize);
umem_magtype_t *umem_magtype_malloc(size_t chunksize);	/* UMC_PAGEMAP */
umem_cache_t *umem_magtype_cache(umem_magtype_t *mtp);	/* made on demand */
uint64_t umem_depot_cap_malloc(size_t chunksize);	/* UMC_PAGEMAP */

/* White-box test hooks: snapshot of the caller's CPU cache state. */
typedef struct umem_cc_state {
	int64_t		cs_rounds;	/* loaded: -1 none */
	int64_t		cs_prounds;	/* previous: -1 none */
	uint32_t	cs_magsize;
	uint32_t	cs_slot;
} umem_cc_state_t;
int umem_cc_state(umem_cache_t *cp, uint32_t slot, umem_cc_state_t *sp);

/*
 * ---- Update thread, reap, fork (update.c) ----
 */
/*
 * Work the update layer wants done by the next slow path (no lock held
 * there): start the update thread, or run the growth scan.  Set from
 * anywhere (any lock may be held); one load on the slow paths.
 */
#define	UMEM_PENDING_START	1
#define	UMEM_PENDING_SCAN	2
extern int umem_update_pending;		/* UMEM_PENDING_*, relaxed atomics */
void umem_update_run_pending(void);
static inline void
umem_update_poll(void)
{
	if (UMEM_UNLIKELY(__atomic_load_n(&umem_update_pending,
	    __ATOMIC_RELAXED)))
		umem_update_run_pending();
}
void umem_update_heap_grew(size_t bytes); /* heap imports: lazy start */
void umem_update_wanted(void);		/* depot contention: lazy start */
int umem_update_flushes(void);		/* pages may stay dirty: a flusher */
void umem_update_all(void);		/* one pass (the thread's body) */
void umem_reap_now(void);		/* unthrottled reap of every cache */
void umem_trim(void);			/* purge every cache: malloc_trim */
int umem_alloc_failed(int *trimmedp);	/* 1: try again (heap limit) */
void umem_reap_async(void);		/* ask the update thread to reap */
void umem_reap_short(void);		/* an arena is short: give all back */
void umem_reap_failing(void);		/* throttled, never blocks on locks */
void umem_fork_init(void);
extern umem_lock_t umem_pagemap_lock;	/* pagemap.c: held across fork */
/* Give back kept large blocks (umem_alloc.c): all, or unused a pass. */
void umem_large_cache_reap(int all);
extern uint64_t umem_update_passes;	/* passes run (tests wait on it) */
/* Frame of the update thread's body: its stack below it never holds a */
/* program's references (leaks.c leaves it out of the roots). */
extern uintptr_t umem_update_frame;

/*
 * ---- Cache creation used by vmem's quantum caches ----
 */
umem_cache_t *umem_cache_create_internal(const char *name, size_t bufsize,
    size_t align, umem_constructor_t *ctor, umem_destructor_t *dtor,
    umem_reclaim_t *reclaim, void *priv, vmem_t *source, int cflags,
    size_t forced_slabsize);

#endif /* _UMEM_IMPL_H */
