/*
 * pagemap.c - the address -> owner map (see pagemap.h).
 *
 * Leaves are mapped on first use and never freed: a leaf covers 1 GiB of
 * address space with 2 MiB of owner entries and 2 MiB of slab entries,
 * and only the entries of pages that were ever recorded are touched, so
 * its cost in memory is one word per page of heap ever used (0.2%), two
 * for the first pages of UMF_SLABMAP slabs.  Making a leaf takes a lock;
 * writing entries and reading take none.
 */
#include "pagemap.h"
#include "platform.h"

/* 2 MiB, of which a process touches a page or two. */
UMEM_BSS_LARGE uintptr_t *umem_pagemap_root[1 << UMEM_PM_ROOT_SHIFT];
/* A leaf lock; the fork handlers (update.c) hold it across fork. */
umem_lock_t umem_pagemap_lock = UMEM_LOCK_INITIALIZER;

#define	PM_LEAF_ENTRIES	((size_t)1 << UMEM_PM_LEAF_SHIFT)

static uintptr_t *
pagemap_leaf(size_t r)
{
	uintptr_t *leaf = umem_pagemap_root[r];

	if (leaf == NULL) {
		leaf = umem_pages_map(2 * PM_LEAF_ENTRIES * sizeof (uintptr_t));
		if (leaf == NULL)
			return (NULL);
		__atomic_store_n(&umem_pagemap_root[r], leaf, __ATOMIC_RELEASE);
	}
	return (leaf);
}

int
umem_pagemap_set(const void *addr, size_t size, uintptr_t first,
    uintptr_t rest)
{
	uintptr_t a = (uintptr_t)addr, end = a + size, r0, r1, r;

	if (end >> UMEM_PM_VA_BITS || end < a)
		return (-1);
	if (size == 0)
		return (0);
	r0 = a >> (UMEM_PM_PAGE_SHIFT + UMEM_PM_LEAF_SHIFT);
	r1 = (end - 1) >> (UMEM_PM_PAGE_SHIFT + UMEM_PM_LEAF_SHIFT);
	/*
	 * The lock is for making leaves only: the entries of a range belong
	 * to whoever owns the range (vmem gave it to one caller), so no two
	 * threads write one entry at once.  Map every leaf first, so that a
	 * failure changes nothing.
	 */
	for (r = r0; r <= r1; r++)
		if (__atomic_load_n(&umem_pagemap_root[r],
		    __ATOMIC_ACQUIRE) == NULL)
			break;
	if (r <= r1) {
		umem_lock(&umem_pagemap_lock);
		for (r = r0; r <= r1; r++) {
			if (pagemap_leaf(r) == NULL) {
				umem_unlock(&umem_pagemap_lock);
				return (-1);
			}
		}
		umem_unlock(&umem_pagemap_lock);
	}
	for (uintptr_t p = a; p < end; p += (uintptr_t)1 << UMEM_PM_PAGE_SHIFT) {
		uintptr_t *leaf = __atomic_load_n(&umem_pagemap_root[p >>
		    (UMEM_PM_PAGE_SHIFT + UMEM_PM_LEAF_SHIFT)],
		    __ATOMIC_ACQUIRE);

		__atomic_store_n(&leaf[(p >> UMEM_PM_PAGE_SHIFT) &
		    (PM_LEAF_ENTRIES - 1)], p == a ? first : rest,
		    __ATOMIC_RELAXED);
	}
	return (0);
}

void
umem_pagemap_set_slab(const void *addr, void *slab)
{
	uintptr_t a = (uintptr_t)addr;
	uintptr_t *leaf = umem_pagemap_root[a >> (UMEM_PM_PAGE_SHIFT +
	    UMEM_PM_LEAF_SHIFT)];

	__atomic_store_n(&leaf[UMEM_PM_SLAB_HALF + ((a >> UMEM_PM_PAGE_SHIFT) &
	    (PM_LEAF_ENTRIES - 1))], (uintptr_t)slab, __ATOMIC_RELAXED);
}
