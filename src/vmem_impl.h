/*
 * vmem_impl.h - vmem internals shared with the layers above and white-box
 * tests.  Not installed.
 */
#ifndef _UMEM_VMEM_IMPL_H
#define	_UMEM_VMEM_IMPL_H

#include <vmem.h>
#include "platform.h"

#define	VMEM_NQCACHE_MAX	16
#define	VMEM_FREELISTS		64
#define	VMEM_HASH_INITIAL	16

/*
 * The quantum-cache hook: the one place where the layers loop (an arena's
 * quantum caches are object caches whose slabs come from that arena).  vmem
 * knows nothing of caches; the object-cache layer defines this table and
 * vmem calls through it.  The reference is a plain (strong) one so that a
 * program linked with libumem.a pulls the object-cache layer in; a table
 * with NULL members means "no quantum caches" (vmem then works alone).
 */
typedef struct vmem_qcache_ops {
	/* Make a cache of size-byte objects, aligned to align, whose slabs */
	/* are slabsize-byte vmem_xalloc()s from vmp.  NULL on failure. */
	void	*(*qc_create)(const char *name, size_t size, size_t align,
		    size_t slabsize, vmem_t *vmp);
	void	(*qc_destroy)(void *cache);
	void	*(*qc_alloc)(void *cache, int vmflag);
	void	(*qc_free)(void *cache, void *buf);
	/* Called when an arena cannot satisfy a request: give memory back. */
	void	(*qc_reap)(void);
} vmem_qcache_ops_t;

extern const vmem_qcache_ops_t vmem_qcache_ops;

/* The arena's quantum (no lock: fixed at creation). */
size_t vmem_quantum(const vmem_t *vmp);

/* Quantum-cache slab size for qcache_max: next power of two above 3x. */
size_t vmem_qcache_slabsize(size_t qcache_max);

/*
 * Full consistency check of an arena (address order, no overlap, coalescing,
 * freelists and bitmap, hash, statistics).  Returns 0, or -1 after writing a
 * report naming the first broken invariant.  O(segments): for tests.
 */
int vmem_verify(vmem_t *vmp);

/*
 * For the slab layer: vmem_xalloc(vmp, size, align, 0, 0, NULL, NULL,
 * vmflag) whose boundary tag goes to *tagp instead of the arena's hash;
 * the only way to free it is vmem_xfree_tag() with that tag, which needs
 * no lookup.  A free whose address, size or tag do not match is reported
 * as a bad free, and nothing changes.
 */
void *vmem_xalloc_tag(vmem_t *vmp, size_t size, size_t align, int vmflag,
    void **tagp);
/*
 * The same within [minaddr, maxaddr) (no import).  VMEM_TRY (beside
 * VM_NOSLEEP): a probe; a miss returns NULL at once, with no reap of the
 * caches, no failure counted and errno untouched.
 */
#define	VMEM_TRY	0x00010000
void *vmem_xalloc_tag_in(vmem_t *vmp, size_t size, size_t align,
    void *minaddr, void *maxaddr, int vmflag, void **tagp);
void vmem_xfree_tag(vmem_t *vmp, void *addr, size_t size, void *tag);

/*
 * Import with tags: an arena whose source is a vmem arena can import
 * through a pair that keeps the source's tag (vmem_xalloc_tag) in the
 * span marker and gives it back on release, so neither side of an import
 * touches the source's hash.  Set before the arena's first import; it
 * replaces the arena's plain pair (which may be NULL, NULL): with it the
 * arena imports, and gives spans back when tfree is not NULL.  talloc
 * aligns its range to align when that is above the source's quantum (an
 * import for an aligned request then needs no room to align in: a span
 * of just the slab, with no slack pieces piling up as free segments that
 * no slab fits in).  The arena's own tagged allocations (vmem_xalloc_tag,
 * no window) go straight to talloc and come back through tfree: the
 * source's range and tag, with no span or segment in the arena, which
 * only counts them (vmem_size, vmem_getstat).  tfree must be set then.
 */
typedef void *vmem_talloc_t(vmem_t *src, size_t size, size_t align,
    int vmflag, void **tagp);
typedef void vmem_tfree_t(vmem_t *src, void *addr, size_t size, void *tag);
void vmem_set_tagged_import(vmem_t *vmp, vmem_talloc_t *afunc,
    vmem_tfree_t *ffunc);

/* Grow or shrink an allocated segment in place: 0, or -1 with errno. */
int vmem_resize(vmem_t *vmp, void *addr, size_t oldsize, size_t newsize);
/*
 * Cut an allocated segment in two at addr + first, or join two adjacent
 * allocated segments (the first of `first' bytes) into one: 0, or -1
 * with errno.  The caller owns the range throughout.
 */
int vmem_split(vmem_t *vmp, void *addr, size_t size, size_t first);
int vmem_join(vmem_t *vmp, void *addr, size_t first, size_t size);

/*
 * The page backend (vmem_heap.c): move pages between two ranges of the
 * heap without copying (0, or -1 with errno); give a range's pages back
 * by mapping it afresh (after a move, so that mappings merge again).
 */
int vmem_heap_move(void *from, void *to, size_t size);
void vmem_heap_renew(void *addr, size_t size);
/*
 * When the dense pair (below) takes huge pages: never (the default), once
 * the heap has outgrown its first reservation, from the start.
 */
#define	VMEM_THP_NEVER		0
#define	VMEM_THP_AUTO		1
#define	VMEM_THP_ALWAYS		2
void vmem_heap_hugepages(int mode);
/*
 * The dense pair: the tagged pair for slabs, backed by huge pages as the
 * mode says.  vmem_heap_sparse(): a range of it will be used in part (a
 * slab of buffers bigger than a page): no huge pages there.
 */
void *vmem_heap_dense_talloc(vmem_t *heap, size_t size, size_t align,
    int vmflag, void **tagp);
void vmem_heap_dense_tfree(vmem_t *heap, void *addr, size_t size, void *tag);
void vmem_heap_sparse(void *addr, size_t size);
void vmem_heap_populate(void *addr, size_t size);
/* heap_huge, the dense pair's source for big heaps, if it was made. */
vmem_t *vmem_heap_huge_made(void);

/*
 * Deferred release (vmem_heap.c): while the calling thread defers, ranges
 * it frees to the heap keep their pages (dirty) for the heap's next
 * allocations; vmem_heap_flush() gives to the OS the dirty pages that
 * stayed so over a whole call interval, or all of them.
 *
 * An arena over the heap can keep the pages of the ranges it takes back
 * too, while vmem_heap_keep_dirty() is on (someone calls vmem_heap_flush()
 * on a clock: umem's update thread): it imports with
 * vmem_heap_alloc_dirty() (free: the vmem_heap_arena() pair's), gives
 * each range it takes back to vmem_heap_keep() first (kept dirty, or
 * given to the OS), and claims each range it hands out with
 * vmem_heap_claim() before its pages are used (the number of dirty pages
 * in it, given to the OS first if zero), so that no flush takes them.
 */
int vmem_heap_defer(int on);	/* the previous setting */
void vmem_heap_keep_dirty(int on);
void *vmem_heap_alloc_dirty(vmem_t *heap, size_t size, int vmflag);
void vmem_heap_keep(void *addr, size_t size);
size_t vmem_heap_claim(void *addr, size_t size, int zero);
/* A probe: size bytes of vmp where the heap keeps dirty pages, or NULL. */
void *vmem_heap_alloc_kept(vmem_t *vmp, size_t size);
void vmem_heap_flush(int all);
size_t vmem_heap_dirty(void);	/* bytes */

/*
 * The heap limit (vmem_heap.c; UMEM_OPTIONS=limit, umem_set_limit): 0 for
 * none; the setter returns the previous one.  usage: what the pairs have
 * handed out (held) and the dirty pages kept, both counted against the
 * limit, and how many allocations the limit refused.
 */
typedef struct vmem_heap_usage {
	size_t		hu_limit;
	size_t		hu_held;
	size_t		hu_dirty;
	uint64_t	hu_refused;
} vmem_heap_usage_t;
size_t vmem_heap_set_limit(size_t bytes);
size_t vmem_heap_limit(void);
void vmem_heap_usage(vmem_heap_usage_t *u);

/* Periodic work: rescale hash tables, wake sleepers.  For the update thread. */
void vmem_update(void);

/*
 * Fork: lock every arena in the documented order; unlock in the parent or
 * the child.
 */
void vmem_fork_prepare(void);
void vmem_fork_parent(void);
void vmem_fork_child(void);

/*
 * Leak detection (leaks.c), with vmem_fork_prepare()'s locks held: walk an
 * arena's segments of the types in typemask without locking; call func for
 * every arena structure and boundary tag vmem keeps (live or free), which a
 * conservative scan must not take for references.
 */
#define	VMEM_WALK_UNTAGGED	0x100	/* vmem_walk_locked: skip tagged */
void vmem_walk_locked(vmem_t *vmp, int typemask,
    void (*func)(void *arg, void *start, size_t size), void *arg);
void vmem_walk_records(void (*func)(void *arg, void *rec, size_t size),
    void *arg);

size_t umem_last_report(char *buf, size_t len);

#endif /* _UMEM_VMEM_IMPL_H */
