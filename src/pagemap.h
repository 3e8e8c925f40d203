/*
 * pagemap.h - address -> owner map, one word per 4 KiB page.
 *
 * This is how free() finds a block's cache without a per-object header:
 * the slab layer records every page of a malloc cache's slabs, the large-
 * allocation path records its blocks.  Lookups take no lock: two loads
 * (a root of 1 GiB regions, then a leaf of pages) and never fault, since
 * a missing leaf reads as 0 ("not ours").
 *
 * A leaf has a second half, one more word per page, that free() never
 * reads: the slab record of a slab that starts on that page, for caches
 * whose slab records live outside their slabs (UMF_SLABMAP, slab.c).
 *
 * Values: 0 = not ours; a umem_cache_t pointer (128-aligned) = a slab page
 * of that cache; (size | UMEM_PM_LARGE) = the first page of a large block
 * of that many bytes, with UMEM_PM_MOVED also set if realloc moved its
 * pages there (umem_alloc.c) and UMEM_PM_TAGGED if it ends in a debug tag
 * (debug.c); UMEM_PM_INTERIOR = any other page of a large block.
 */
#ifndef _UMEM_PAGEMAP_H
#define	_UMEM_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"

#define	UMEM_PM_PAGE_SHIFT	12
#define	UMEM_PM_LEAF_SHIFT	18	/* pages per leaf: 1 GiB */
#define	UMEM_PM_ROOT_SHIFT	18	/* leaves: 2^48 bytes in all */
#define	UMEM_PM_VA_BITS		(UMEM_PM_PAGE_SHIFT + UMEM_PM_LEAF_SHIFT + \
				    UMEM_PM_ROOT_SHIFT)
#define	UMEM_PM_LARGE		((uintptr_t)1)
#define	UMEM_PM_INTERIOR	((uintptr_t)2)
#define	UMEM_PM_MOVED		((uintptr_t)2)	/* with UMEM_PM_LARGE only */
#define	UMEM_PM_TAGGED		((uintptr_t)4)	/* with LARGE: debug tag */

extern uintptr_t *umem_pagemap_root[1 << UMEM_PM_ROOT_SHIFT]
    __attribute__((visibility("hidden")));

/* Word `half + page index' of p's leaf (half: 0 or UMEM_PM_SLAB_HALF). */
#define	UMEM_PM_SLAB_HALF	((size_t)1 << UMEM_PM_LEAF_SHIFT)

static inline __attribute__((always_inline)) uintptr_t
umem_pagemap_word(const void *p, size_t half)
{
	uintptr_t a = (uintptr_t)p;
	uintptr_t *leaf;

	/* (Expected: free()'s path then has no taken branch.) */
	if (UMEM_UNLIKELY(a >> UMEM_PM_VA_BITS))
		return (0);
	leaf = __atomic_load_n(&umem_pagemap_root[a >> (UMEM_PM_PAGE_SHIFT +
	    UMEM_PM_LEAF_SHIFT)], __ATOMIC_ACQUIRE);
	if (UMEM_UNLIKELY(leaf == NULL))
		return (0);
	return (__atomic_load_n(&leaf[half + ((a >> UMEM_PM_PAGE_SHIFT) &
	    ((1u << UMEM_PM_LEAF_SHIFT) - 1))], __ATOMIC_RELAXED));
}

static inline uintptr_t
umem_pagemap_get(const void *p)
{
	return (umem_pagemap_word(p, 0));
}

/*
 * The slab record of the slab starting on p's page (UMF_SLABMAP); NULL if
 * none.  Slow paths only; the record was published by the slab list's
 * lock, which the caller holds.
 */
static inline void *
umem_pagemap_slab(const void *p)
{
	return ((void *)umem_pagemap_word(p, UMEM_PM_SLAB_HALF));
}

/*
 * Record slab as the slab record of the page at addr, whose owner entry
 * umem_pagemap_set() has already recorded (so its leaf exists).
 */
void umem_pagemap_set_slab(const void *addr, void *slab);

/*
 * Record value for every page of [addr, addr + size) (page-aligned).
 * The first page gets first, the others rest.  0, or -1 if a leaf could
 * not be mapped (nothing is changed then).
 */
int umem_pagemap_set(const void *addr, size_t size, uintptr_t first,
    uintptr_t rest);

#endif /* _UMEM_PAGEMAP_H */
