/*
 * rmalloc.c - first-fit, address-ordered free-list baseline for vmem_bench.
 * See rmalloc.h.  The old resource maps kept a fixed array; a singly linked
 * list has the same linear search and insertion sort without the array's
 * overflow rules, so it is, if anything, a kind baseline.  Like a vmem
 * arena it is MT-safe, with one lock per map, so that both sides of the
 * comparison pay for a lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "rmalloc.h"

typedef struct rmseg {
	struct rmseg	*rs_next;	/* next higher free range */
	uintptr_t	rs_start;
	uintptr_t	rs_end;		/* exclusive */
} rmseg_t;

struct rmap {
	pthread_mutex_t	rm_lock;
	rmseg_t		*rm_head;	/* free ranges, ascending address */
	rmseg_t		*rm_spare;	/* recycled nodes, so libc malloc */
					/* stays out of the timed loop */
	size_t		rm_nfree;
	uint64_t	rm_visits;
};

static rmseg_t *
rmseg_get(rmap_t *rm)
{
	rmseg_t *rs = rm->rm_spare;

	if (rs != NULL) {
		rm->rm_spare = rs->rs_next;
		return (rs);
	}
	if ((rs = malloc(sizeof (*rs))) == NULL) {
		perror("rmalloc: malloc");
		abort();
	}
	return (rs);
}

static void
rmseg_put(rmap_t *rm, rmseg_t *rs)
{
	rs->rs_next = rm->rm_spare;
	rm->rm_spare = rs;
}

rmap_t *
rmap_create(uintptr_t base, size_t size)
{
	rmap_t *rm;

	if (base == 0 || size == 0 || base + size < base)
		return (NULL);
	if ((rm = calloc(1, sizeof (*rm))) == NULL)
		return (NULL);
	(void) pthread_mutex_init(&rm->rm_lock, NULL);
	rm->rm_head = rmseg_get(rm);
	rm->rm_head->rs_next = NULL;
	rm->rm_head->rs_start = base;
	rm->rm_head->rs_end = base + size;
	rm->rm_nfree = 1;
	return (rm);
}

static void
rmseg_freeall(rmseg_t *rs)
{
	while (rs != NULL) {
		rmseg_t *next = rs->rs_next;
		free(rs);
		rs = next;
	}
}

void
rmap_destroy(rmap_t *rm)
{
	if (rm == NULL)
		return;
	rmseg_freeall(rm->rm_head);
	rmseg_freeall(rm->rm_spare);
	(void) pthread_mutex_destroy(&rm->rm_lock);
	free(rm);
}

uintptr_t
rmalloc(rmap_t *rm, size_t size)
{
	rmseg_t **prevp = &rm->rm_head;
	rmseg_t *rs;

	if (size == 0)
		return (0);
	(void) pthread_mutex_lock(&rm->rm_lock);
	for (rs = rm->rm_head; rs != NULL; prevp = &rs->rs_next,
	    rs = rs->rs_next) {
		rm->rm_visits++;
		if (rs->rs_end - rs->rs_start >= size) {
			uintptr_t addr = rs->rs_start;

			rs->rs_start += size;
			if (rs->rs_start == rs->rs_end) {
				*prevp = rs->rs_next;
				rmseg_put(rm, rs);
				rm->rm_nfree--;
			}
			(void) pthread_mutex_unlock(&rm->rm_lock);
			return (addr);
		}
	}
	(void) pthread_mutex_unlock(&rm->rm_lock);
	return (0);
}

void
rmfree(rmap_t *rm, uintptr_t addr, size_t size)
{
	rmseg_t **prevp = &rm->rm_head;
	rmseg_t *prev = NULL, *next, *rs;
	uintptr_t end = addr + size;

	(void) pthread_mutex_lock(&rm->rm_lock);
	/* Insertion sort: find the first free range above addr. */
	for (next = rm->rm_head; next != NULL && next->rs_start < addr;
	    next = next->rs_next) {
		rm->rm_visits++;
		prev = next;
		prevp = &next->rs_next;
	}
	if ((prev != NULL && prev->rs_end > addr) ||
	    (next != NULL && next->rs_start < end) || size == 0) {
		fprintf(stderr, "rmfree: bad free [%#lx, %#lx)\n",
		    (unsigned long)addr, (unsigned long)end);
		abort();
	}
	if (prev != NULL && prev->rs_end == addr) {
		prev->rs_end = end;
		if (next != NULL && next->rs_start == end) {
			prev->rs_end = next->rs_end;
			prev->rs_next = next->rs_next;
			rmseg_put(rm, next);
			rm->rm_nfree--;
		}
		(void) pthread_mutex_unlock(&rm->rm_lock);
		return;
	}
	if (next != NULL && next->rs_start == end) {
		next->rs_start = addr;
		(void) pthread_mutex_unlock(&rm->rm_lock);
		return;
	}
	rs = rmseg_get(rm);
	rs->rs_start = addr;
	rs->rs_end = end;
	rs->rs_next = next;
	*prevp = rs;
	rm->rm_nfree++;
	(void) pthread_mutex_unlock(&rm->rm_lock);
}

size_t
rmap_nfree(const rmap_t *rm)
{
	return (rm->rm_nfree);
}

uint64_t
rmap_visits(const rmap_t *rm)
{
	return (rm->rm_visits);
}
