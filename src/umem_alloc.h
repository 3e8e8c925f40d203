/*
 * umem_alloc.h - the block layer shared by umem_alloc.c and malloc.c:
 * size classes, large blocks, and the inline fast paths.  Not installed.
 */
#ifndef _UMEM_ALLOC_H
#define	_UMEM_ALLOC_H

#include <errno.h>
#include "umem_impl.h"
#include "pagemap.h"
#include "percpu.h"

#define	UMEM_SMALL_MAX	1024		/* classes step 16 up to here */
#define	UMEM_MAXBUF	65536		/* largest class; above: pages */
/* realloc growth above this (into the 32 KiB class and up): pages */
#define	UMEM_REALLOC_PAGES	(28 * 1024)
#define	UMEM_ZERO_LARGE	0x10000		/* private flag: a large block must */
					/* read as zero (calloc, zalloc) */

/*
 * Size -> class cache.  The _table_ arrays are the fast path's: a class
 * with debugging has NULL there, so its allocations take the slow path
 * (umem_block_alloc_slow), which knows the requested size.  The _class_
 * arrays name the class once it exists (umem_size_to_class); both are NULL
 * for a class not created yet (umem_alloc.c: class_create).
 */
/* Hidden: the fast paths reach these PC-relative, not through the GOT. */
extern umem_cache_t *umem_alloc_table_small[UMEM_SMALL_MAX / 16 + 1]
    __attribute__((visibility("hidden")));
extern umem_cache_t *umem_alloc_table_large[UMEM_MAXBUF / 256 + 1]
    __attribute__((visibility("hidden")));
extern umem_cache_t *umem_alloc_class_small[UMEM_SMALL_MAX / 16 + 1];
extern umem_cache_t *umem_alloc_class_large[UMEM_MAXBUF / 256 + 1];
extern uintptr_t umem_free_secret __attribute__((visibility("hidden")));
extern vmem_t *umem_oversize_arena;
extern int umem_alloc_ready;

int umem_alloc_init(void);		/* 1 when the classes exist */
void *umem_large_alloc(size_t size, size_t align, int umflags);
void umem_large_free(void *buf, size_t rsize);
int umem_large_resize(void *buf, size_t rsize, size_t newsize);
void *umem_large_realloc(void *buf, size_t rsize, size_t newsize);
size_t umem_large_moved(void);
extern size_t umem_large_copy_max;	/* realloc copies up to (tests) */
void *umem_alloc_aligned_any(size_t size, size_t align, int umflags);
size_t umem_block_size(void *buf);

/* umem_alloc_info(): bytes unless named _count; large = live large blocks. */
typedef struct umem_alloc_info {
	size_t	ai_inuse;		/* class buffers held by the program */
	size_t	ai_magazine;		/* class buffers in magazines */
	size_t	ai_magazine_count;
	size_t	ai_slab_free_count;	/* free class buffers in slabs */
	size_t	ai_large;		/* large blocks held by the program */
	size_t	ai_large_count;
	size_t	ai_kept;		/* freed large blocks kept for reuse */
	size_t	ai_kept_count;
} umem_alloc_info_t;

void umem_alloc_info(umem_alloc_info_t *ai);
void umem_block_bad_free(void *buf, uintptr_t pm, const char *who);
void umem_block_double_free(void *buf, umem_cache_t *cp, const char *who);
void *umem_block_alloc_slow(size_t size, int umflags);
void *umem_block_alloc_miss(umem_cache_t *cp, int umflags);
void umem_block_free_slow(umem_cache_t *cp, void *buf, uintptr_t key);

/* The class cache for 0 < size <= UMEM_MAXBUF (NULL before init). */
static inline umem_cache_t *
umem_size_to_cache(size_t size)
{
	/*
	 * acquire (a plain load on x86-64): a class is published when made.
	 * Small sizes fall through: one taken branch fewer on their path.
	 */
	if (UMEM_LIKELY(size <= UMEM_SMALL_MAX))
		return (__atomic_load_n(&umem_alloc_table_small[(size + 15) >> 4],
		    __ATOMIC_ACQUIRE));
	return (__atomic_load_n(&umem_alloc_table_large[(size + 255) >> 8],
	    __ATOMIC_ACQUIRE));
}

/* The class cache for 0 < size <= UMEM_MAXBUF, debug or not; NULL if */
/* it was not created yet. */
static inline umem_cache_t *
umem_size_to_class(size_t size)
{
	if (size <= UMEM_SMALL_MAX)
		return (__atomic_load_n(&umem_alloc_class_small[(size + 15) >> 4],
		    __ATOMIC_ACQUIRE));
	return (__atomic_load_n(&umem_alloc_class_large[(size + 255) >> 8],
	    __ATOMIC_ACQUIRE));
}

/*
 * Out-of-line copies start on a cache line: the pair loop's speed moved by
 * ~0.5 ns (7%) with where the linker happened to place these.
 */
#define	UMEM_HOT	__attribute__((aligned(64)))

/*
 * A block of at least size bytes (size may be 0).  Clears the block's
 * first word, where free() keeps its double-free key.
 */
static inline __attribute__((always_inline)) void *
umem_block_alloc(size_t size, int umflags)
{
	if (UMEM_LIKELY(size <= UMEM_MAXBUF)) {
		umem_cache_t *cp = umem_size_to_cache(size);
		void *buf;

		if (UMEM_UNLIKELY(cp == NULL))
			return (umem_block_alloc_slow(size, umflags));
#ifdef UMEM_HAVE_RSEQ
		if (UMEM_LIKELY((buf = umem_rseq_pop(cp,
		    &cp->cache_fast_slots)) != NULL)) {
			*(uintptr_t *)buf = 0;
			return (buf);
		}
#else
		(void) buf;
#endif
		/* A tail call: the fast path saves no registers. */
		return (umem_block_alloc_miss(cp, umflags));
	}
	return (umem_large_alloc(size, 0, umflags));
}

/*
 * Is buf the start of a buffer of cache cp (from the page map)?  Slabs of
 * these caches are aligned to cache_slab_mask + 1 with buffers from offset
 * 0, so the offset is exact.  With chunksize = d * 2^k (d odd) and inv the
 * inverse of d mod 2^64, rotating off * inv right by k gives off /
 * chunksize when chunksize divides off, and a number of at least 2^30
 * when it does not (the low k bits rotate to the top, or the odd part
 * lands above (2^(64-k) - 1) / d): one compare with the buffer count
 * checks both "a buffer start" and "not in the slab's tail".  A multiply
 * and a rotate: shorter than dividing by multiplication and multiplying
 * back, on the path every free takes.
 */
static inline int
umem_block_is_start(const umem_cache_t *cp, const void *buf)
{
	uint64_t off = (uintptr_t)buf & cp->cache_slab_mask;
	uint64_t x = off * cp->cache_chunk_inv;
	unsigned k = cp->cache_chunk_tz;

	return (((x >> k) | (x << ((64 - k) & 63))) < cp->cache_chunks);
}

/*
 * What buf's page-map entry pm says it is.  umem_block_cache(): the class
 * cache if buf starts a block of one, else NULL.  umem_block_large(): the
 * size of the large block buf starts, else 0.  Both 0/NULL: not a block of
 * ours (foreign, interior or misaligned): see umem_block_bad_free().
 */
static inline umem_cache_t *
umem_block_cache(const void *buf, uintptr_t pm)
{
	if (pm > UMEM_PM_INTERIOR && !(pm & UMEM_PM_LARGE) &&
	    umem_block_is_start((umem_cache_t *)pm, buf))
		return ((umem_cache_t *)pm);
	return (NULL);
}

static inline size_t
umem_block_large(const void *buf, uintptr_t pm)
{
	if ((pm & UMEM_PM_LARGE) && IS_P2ALIGNED(buf, umem_pagesize))
		return ((size_t)(pm & ~(UMEM_PM_LARGE | UMEM_PM_MOVED |
		    UMEM_PM_TAGGED)));
	return (0);
}

/*
 * Free a block of ours found by address.  Inlined into free() itself: a
 * call would cost a jump and an argument.  NULL needs no test here: page 0
 * is never ours, so it ends in umem_block_bad_free(), which ignores it.
 */
static inline __attribute__((always_inline)) void
umem_block_free(void *buf, const char *who)
{
	uintptr_t pm = umem_pagemap_get(buf);
	umem_cache_t *cp = umem_block_cache(buf, pm);
	size_t rsize;

	if (UMEM_LIKELY(cp != NULL)) {
		uintptr_t key = umem_free_secret ^ (uintptr_t)buf;

		/*
		 * The first byte first: a load that the program's last store
		 * there covers is forwarded from it, while an 8-byte load after
		 * a 1-byte store waits for the store to reach the cache (1.4 ns
		 * a pair in a loop that stores a byte and frees).  One block in
		 * 256 compares the whole word.
		 */
		if (UMEM_UNLIKELY(*(uint8_t *)buf == (uint8_t)key) &&
		    *(uintptr_t *)buf == key) {
			umem_block_double_free(buf, cp, who);
			return;
		}
#ifdef UMEM_HAVE_RSEQ
		if (UMEM_LIKELY(umem_rseq_push_keyed(cp,
		    &cp->cache_fast_slots, buf, key)))
			return;
#endif
		umem_block_free_slow(cp, buf, key);
		return;
	}
	if ((rsize = umem_block_large(buf, pm)) != 0) {
		umem_large_free(buf, rsize);
		return;
	}
	umem_block_bad_free(buf, pm, who);
}

#endif /* _UMEM_ALLOC_H */
