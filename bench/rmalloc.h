/*
 * rmalloc.h - the benchmark's stand-in for the classic resource map
 * (rmalloc/rmfree) that vmem replaced: an address-ordered list of free
 * ranges, first-fit linear search on allocation, insertion-sorted free that
 * coalesces with both neighbours.  Both operations are O(free fragments),
 * which is what vmem_bench sets out to show against vmem's O(1).
 *
 * Written for the benchmark only; not part of the library.
 */
#ifndef _BENCH_RMALLOC_H
#define	_BENCH_RMALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef struct rmap rmap_t;

/* A map whose one free range is [base, base + size); base must be > 0. */
rmap_t *rmap_create(uintptr_t base, size_t size);
void rmap_destroy(rmap_t *rm);

/* First fit from the lowest address; 0 if no free range is big enough. */
uintptr_t rmalloc(rmap_t *rm, size_t size);

/* Give [addr, addr + size) back; it must not overlap a free range. */
void rmfree(rmap_t *rm, uintptr_t addr, size_t size);

/* Free ranges now, and free ranges examined so far by rmalloc and rmfree. */
size_t rmap_nfree(const rmap_t *rm);
uint64_t rmap_visits(const rmap_t *rm);

#endif /* _BENCH_RMALLOC_H */
