/*
 * vmem.h - general-purpose resource allocator (libumem for Linux)
 *
 * Source-compatible with illumos <sys/vmem.h> as used by libumem: the same
 * names, types, flag values and function signatures.  Everything we add
 * beyond illumos is in the "Extensions" section at the end and is marked as
 * such; see vmem(3) and docs/DESIGN.md.
 */
#ifndef _VMEM_H
#define	_VMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Per-allocation flags.
 */
#define	VM_SLEEP	0x00000000	/* may block until resources exist */
#define	VM_NOSLEEP	0x00000001	/* fail at once with NULL */
#define	VM_PANIC	0x00000002	/* abort instead of failing */
#define	VM_PUSHPAGE	0x00000004	/* kernel only; accepted, ignored */
#define	VM_KMFLAGS	0x000000ff	/* flags that must match KM_* */

#define	VM_BESTFIT	0x00000100	/* smallest adequate free segment */
#define	VM_FIRSTFIT	0x00000200	/* first adequate free segment */
#define	VM_NEXTFIT	0x00000400	/* cycle through the range (rotor) */

#define	VM_MEMLOAD	0x00000800	/* kernel only; accepted, ignored */
#define	VM_NORELOC	0x00001000	/* kernel only; accepted, ignored */
#define	VM_ABORT	0x00002000	/* kernel only; accepted, ignored */
#define	VM_ENDALLOC	0x00004000	/* take the high end of the segment */

#define	VM_FLAGS	0x0000ffff

/*
 * Arena creation flags.
 */
#define	VMC_POPULATOR	0x00010000
#define	VMC_NO_QCACHE	0x00020000	/* no quantum caches */
#define	VMC_IDENTIFIER	0x00040000	/* integer IDs, not memory */
#define	VMC_XALLOC	0x00080000	/* afunc is a vmem_ximport_t */
#define	VMC_XALIGN	0x00100000
#define	VMC_FLAGS	0xffff0000

/*
 * Segment types for vmem_walk() and vmem_size().
 */
#define	VMEM_ALLOC	0x01
#define	VMEM_FREE	0x02
#define	VMEM_SPAN	0x10
#define	VMEM_ROTOR	0x20
#define	VMEM_WALKER	0x40

/*
 * VMEM_REENTRANT: vmem_walk() drops the arena lock around each callback,
 * so the callback may call into the arena.
 */
#define	VMEM_REENTRANT	0x80000000

#define	VMEM_NAMELEN	30

typedef struct vmem vmem_t;
typedef void *(vmem_alloc_t)(vmem_t *, size_t, int);
typedef void (vmem_free_t)(vmem_t *, void *, size_t);

/*
 * An importer that may enlarge the import: *sizep holds the size wanted and
 * is set to the size actually imported (>= the size wanted).
 */
typedef void *(vmem_ximport_t)(vmem_t *, size_t *, int);

extern vmem_t *vmem_create(const char *name, void *base, size_t size,
    size_t quantum, vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag);
extern vmem_t *vmem_xcreate(const char *name, void *base, size_t size,
    size_t quantum, vmem_ximport_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag);
extern void vmem_destroy(vmem_t *vmp);

extern void *vmem_alloc(vmem_t *vmp, size_t size, int vmflag);
extern void vmem_free(vmem_t *vmp, void *addr, size_t size);
extern void *vmem_xalloc(vmem_t *vmp, size_t size, size_t align, size_t phase,
    size_t nocross, void *minaddr, void *maxaddr, int vmflag);
extern void vmem_xfree(vmem_t *vmp, void *addr, size_t size);
extern void *vmem_add(vmem_t *vmp, void *addr, size_t size, int vmflag);
extern int vmem_contains(vmem_t *vmp, void *addr, size_t size);
extern void vmem_walk(vmem_t *vmp, int typemask,
    void (*func)(void *arg, void *start, size_t size), void *arg);
extern size_t vmem_size(vmem_t *vmp, int typemask);

/*
 * ------------------------------------------------------------------------
 * Extensions (not in illumos <sys/vmem.h>)
 * ------------------------------------------------------------------------
 */

/*
 * The process's page-backed heap arena and the import pair that arenas
 * should use to get memory from it: heap_alloc makes the pages usable,
 * heap_free returns the pages to the OS and the address space to the heap.
 * (illumos has this as a private interface with the same signature.)
 */
extern vmem_t *vmem_heap_arena(vmem_alloc_t **allocp, vmem_free_t **freep);

/* Per-arena statistics, read with vmem_getstat(). */
typedef struct vmem_stat {
	char		vk_name[VMEM_NAMELEN + 2];
	size_t		vk_quantum;
	size_t		vk_qcache_max;	/* largest quantum-cached size */
	uint64_t	vk_mem_inuse;	/* bytes allocated */
	uint64_t	vk_mem_import;	/* bytes imported from the source */
	uint64_t	vk_mem_total;	/* bytes in all spans */
	uint64_t	vk_alloc;	/* successful allocations */
	uint64_t	vk_free;	/* frees */
	uint64_t	vk_seg_alloc;	/* allocations from the segment list */
	uint64_t	vk_seg_free;	/* frees to the segment list */
	uint64_t	vk_wait;	/* VM_SLEEP waits */
	uint64_t	vk_fail;	/* failed allocations */
	uint64_t	vk_lookup;	/* hash chain links followed on free */
	uint64_t	vk_search;	/* free segments examined on alloc */
	uint64_t	vk_import;	/* spans imported */
	uint64_t	vk_import_fail;	/* imports that failed */
	uint64_t	vk_span_release; /* imported spans given back */
	uint64_t	vk_contains;	/* vmem_contains() calls */
	uint64_t	vk_contains_search; /* spans examined by vmem_contains */
	uint64_t	vk_bad_free;	/* frees of unallocated addresses */
	uint64_t	vk_wrong_size;	/* frees with the wrong size */
	uint64_t	vk_hash_rescale; /* hash table resizes */
	uint64_t	vk_nsegs_alloc;	/* allocated segments now */
	uint64_t	vk_nsegs_free;	/* free segments now */
	uint64_t	vk_nspans;	/* spans now */
	uint64_t	vk_hash_size;	/* hash buckets now */
	uint64_t	vk_hash_maxchain; /* longest hash chain now */
} vmem_stat_t;

/* Fill *sp with a consistent snapshot of vmp's statistics; 0 or -1. */
extern int vmem_getstat(vmem_t *vmp, vmem_stat_t *sp);

/*
 * Error handling.  A free of an address that is not allocated, a free with
 * the wrong size, and invalid use of the API are reported on stderr with a
 * message naming the arena, the address and the size; then the process
 * aborts.  vmem_set_abort(0) makes such reports non-fatal: the bad call is
 * counted and ignored (nothing is corrupted).  Returns the previous setting.
 * vmem_last_error() copies the most recent report into buf (NUL-terminated,
 * truncated to len) and returns its full length, 0 if there was none.
 */
extern int vmem_set_abort(int on);
extern size_t vmem_last_error(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* _VMEM_H */
