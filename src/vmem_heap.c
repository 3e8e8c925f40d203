/*
 * vmem_heap.c - the page backend: the heap arena over mmap.
 *
 * The heap arena ("heap", quantum = page size) holds address space that is
 * mapped readable and writable from the start.  It grows by importing
 * large reservations (at least VMEM_HEAP_RESERVE, more as the heap grows)
 * through umem_pages_reserve(), and keeps them: address space is cheap,
 * mappings are not.  Arenas that want memory import from it through the
 * pair returned by vmem_heap_arena():
 *
 *   vmem_heap_alloc  takes pages from the heap; they read as zero (fresh
 *                    mappings, or pages given back with MADV_DONTNEED);
 *   vmem_heap_free   gives the physical pages to the OS (MADV_DONTNEED)
 *                    and the address range back to the heap.
 *
 * vmem_heap_talloc and vmem_heap_tfree are the same with tags
 * (vmem_xalloc_tag): umem_default imports through them, so its spans
 * never touch the heap's hash.
 *
 * Because the protection of a reservation never changes, the kernel never
 * splits it: the number of mappings is the number of reservations (and
 * neighbouring reservations usually merge), whatever the fragmentation.
 * A 64 GiB heap of 128 KiB slabs stays within a few dozen mappings, far
 * below vm.max_map_count.  Guard pages (the debugging firewall) will need
 * a separate arena whose mappings do change protection.
 *
 * Transparent huge pages, for slabs only.  A second arena, heap_huge,
 * holds chunks of the heap (2 MiB-aligned, 16 MiB or an eighth of what it
 * holds already, kept like the reservations) advised MADV_HUGEPAGE.  Only
 * slabs come from it (the dense pair, umem_default's): a slab of buffers
 * up to a page has a buffer start, which malloc writes, on every page, so
 * a huge page there is mostly used.  Large blocks never do, and a 2 MiB
 * block that gets a slab of bigger buffers gives up huge pages before the
 * slab is used (vmem_heap_sparse): such buffers are often touched in part
 * (a 64 KiB buffer of which a program writes 100 bytes).  With
 * UMEM_OPTIONS=hugepages (auto) the dense pair turns to heap_huge once the
 * heap has outgrown its first reservation (64 MiB): a big heap takes far
 * fewer TLB misses, a small program pays nothing.  Off by default: where
 * the hypervisor reclaims free guest memory (free page reporting), a huge
 * page's first touch costs far more than 512 small ones (DESIGN.md §5).
 * Memory given back inside heap_huge first advises
 * its 2 MiB blocks MADV_NOHUGEPAGE too, because khugepaged would otherwise
 * collapse a block with any page left resident into a whole huge page
 * again (max_ptes_none is 511 by default) and undo the release.  A block
 * that gave up huge pages keeps small pages.  Its advice may split
 * heap_huge's mapping (at most one mapping per block); if the kernel
 * refuses (vm.max_map_count), the whole chunk gives up huge pages, which
 * merges it again.
 *
 * Two calls let a large block move without copying (realloc growth):
 *
 *   vmem_heap_move   moves the pages of one range of the heap onto another
 *                    (mremap MAYMOVE | FIXED | DONTUNMAP): the source stays
 *                    mapped, now without pages, as if released;
 *   vmem_heap_renew  gives a range's pages back by mapping it afresh
 *                    (mmap MAP_FIXED, atomic: the range is never unmapped).
 *
 * A moved range costs mappings: the kernel keeps the moved pages in a
 * mapping of their own (their page offsets are those of the old address),
 * which splits the destination reservation in up to three.  Mapping it
 * afresh when it is released (vmem_heap_renew) lets the kernel merge it
 * back into its neighbours, so the extra mappings are bounded by the moved
 * blocks alive; the caller bounds those (see umem_alloc.c).
 */
#define	_GNU_SOURCE
#include "vmem_impl.h"

#include <errno.h>
#include <sys/mman.h>

#ifndef MREMAP_DONTUNMAP
#define	MREMAP_DONTUNMAP	4	/* Linux 5.7 */
#endif

#define	VMEM_HEAP_RESERVE	(64ul << 20)	/* smallest reservation */
#define	VMEM_HEAP_RESERVE_MAX	(4ul << 30)	/* growth stops doubling */
#define	VMEM_HEAP_ALIGN		(2ul << 20)	/* huge-page friendly */

#define	VMEM_HUGE_CHUNK		(16ul << 20)	/* smallest heap_huge chunk */
#define	VMEM_THP_BLOCK		(2ul << 20)	/* a huge page */
#define	VMEM_THP_WORDS		(VMEM_HEAP_RESERVE_MAX / VMEM_THP_BLOCK / 64)
#define	VMEM_THP_CHUNKS		64		/* ~200 GiB of chunks */
#define	VMEM_THP_RUNS_MAX	256	/* split advice: <= 512 mappings */

static vmem_t *vmem_heap;
static pthread_once_t vmem_heap_once = PTHREAD_ONCE_INIT;
static size_t vmem_heap_reserved;	/* under the heap's import path */
static unsigned vmem_heap_nreserved;	/* reservations made */
static int vmem_heap_thp = VMEM_THP_NEVER;	/* vmem_heap_hugepages() */

static vmem_t *vmem_heap_huge;		/* made on first use */
static pthread_once_t vmem_heap_huge_once = PTHREAD_ONCE_INIT;
static size_t vmem_heap_huge_size;	/* under heap_huge's import path */

/*
 * A chunk of heap_huge: a bit per 2 MiB block still allowed huge pages.
 * Slots are claimed once and never freed (chunks are kept); a slot is
 * valid once thp_nblocks is published.  Block numbers, not addresses: the
 * leak detector must not take a chunk's start for a reference to the
 * buffer there.
 */
typedef struct vmem_thp_chunk {
	uintptr_t thp_block0;			/* address / VMEM_THP_BLOCK */
	uintptr_t thp_nblocks;			/* 0 until published */
	uint64_t thp_huge[VMEM_THP_WORDS];
} vmem_thp_chunk_t;

UMEM_BSS_LARGE static vmem_thp_chunk_t vmem_thp_chunks[VMEM_THP_CHUNKS];
static unsigned vmem_thp_nchunks;	/* slots claimed */
static unsigned vmem_thp_runs;		/* runs of blocks advised */

/*
 * The largest reservation worth asking for.  It halves each time the
 * kernel refuses one (RLIMIT_AS, strict overcommit) and doubles back after
 * each reservation made, so a process short of address space pays about
 * one refused mmap per reservation instead of one per import, and gets
 * the largest reservations that fit instead of one mapping per import.
 */
static size_t vmem_heap_reserve_cap = VMEM_HEAP_RESERVE_MAX;

/*
 * Import for the heap itself: reserve address space.  Reservations grow
 * with the heap (an eighth of what is reserved already), so a large heap
 * needs few of them.
 */
static void *
vmem_heap_reserve(vmem_t *src, size_t *sizep, int vmflag)
{
	size_t want = P2ROUNDUP(*sizep, umem_pagesize), size, align;
	size_t grow = __atomic_load_n(&vmem_heap_reserved, __ATOMIC_RELAXED) / 8;
	size_t cap = __atomic_load_n(&vmem_heap_reserve_cap, __ATOMIC_RELAXED);
	void *p;

	if (want < *sizep)
		return (NULL);
	size = grow > VMEM_HEAP_RESERVE ? grow : VMEM_HEAP_RESERVE;
	if (size > VMEM_HEAP_RESERVE_MAX)
		size = VMEM_HEAP_RESERVE_MAX;
	if (size > cap)
		size = cap;
	if (size < want)
		size = want;
	for (;;) {
		/* Huge-page aligned when it can hold one, else a page. */
		align = size >= VMEM_HEAP_ALIGN ? VMEM_HEAP_ALIGN :
		    umem_pagesize;
		if (P2ROUNDUP(size, align) >= size &&
		    (p = umem_pages_reserve(P2ROUNDUP(size, align), align)) !=
		    NULL) {
			size = P2ROUNDUP(size, align);
			break;
		}
		if (size == want) {
			/* Last, the import alone, without the alignment slack. */
			if (align == umem_pagesize ||
			    (p = umem_pages_reserve(want, umem_pagesize)) == NULL)
				return (NULL);
			break;
		}
		size = P2ROUNDUP(size / 2, umem_pagesize);
		if (size < want)
			size = want;
		cap = size;
		__atomic_store_n(&vmem_heap_reserve_cap, cap, __ATOMIC_RELAXED);
	}
	if (cap < VMEM_HEAP_RESERVE_MAX)
		__atomic_store_n(&vmem_heap_reserve_cap,
		    size < VMEM_HEAP_RESERVE_MAX / 2 ? 2 * size :
		    VMEM_HEAP_RESERVE_MAX, __ATOMIC_RELAXED);
	__atomic_fetch_add(&vmem_heap_reserved, size, __ATOMIC_RELAXED);
	__atomic_fetch_add(&vmem_heap_nreserved, 1, __ATOMIC_RELEASE);
	*sizep = size;
	return (p);
}

static void *
vmem_heap_alloc(vmem_t *heap, size_t size, int vmflag)
{
	return (vmem_alloc(heap, size, vmflag));
}

static void
vmem_heap_free(vmem_t *heap, void *addr, size_t size)
{
	umem_pages_release(addr, size);
	vmem_free(heap, addr, size);
}

/*
 * UMEM_OPTIONS=hugepages=...: when the dense pair turns to heap_huge:
 * never (the default), once the heap outgrew its first reservation, or
 * from the start.
 */
void
vmem_heap_hugepages(int mode)
{
	__atomic_store_n(&vmem_heap_thp, mode, __ATOMIC_RELAXED);
}

/* madvise blocks [b0, b1) of c: 0, or -1 (errno as it was: free paths) */
static int
vmem_thp_advise(const vmem_thp_chunk_t *c, size_t b0, size_t b1, int advice)
{
	int saved = errno;
	int r = madvise((void *)((c->thp_block0 + b0) * VMEM_THP_BLOCK),
	    (b1 - b0) * VMEM_THP_BLOCK, advice);

	errno = saved;
	return (r);
}

/*
 * heap_huge's import: a chunk of the heap, advised MADV_HUGEPAGE, tracked
 * in a slot (no slot left: no chunk, and the dense pair uses the heap).
 */
static void *
vmem_heap_huge_import(vmem_t *heap, size_t *sizep, int vmflag)
{
	size_t size = *sizep, chunk = __atomic_load_n(&vmem_heap_huge_size,
	    __ATOMIC_RELAXED) / 8;
	vmem_thp_chunk_t *c;
	unsigned i;
	void *p;

	if (chunk > VMEM_HEAP_RESERVE_MAX)
		chunk = VMEM_HEAP_RESERVE_MAX;
	if (chunk < VMEM_HUGE_CHUNK)
		chunk = VMEM_HUGE_CHUNK;
	if (size > chunk)
		chunk = size;
	chunk = P2ROUNDUP(chunk, VMEM_THP_BLOCK);
	if (chunk > VMEM_HEAP_RESERVE_MAX || chunk < size)
		return (NULL);
	i = __atomic_load_n(&vmem_thp_nchunks, __ATOMIC_RELAXED);
	do {
		if (i >= VMEM_THP_CHUNKS)
			return (NULL);
	} while (!__atomic_compare_exchange_n(&vmem_thp_nchunks, &i, i + 1, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	p = vmem_xalloc(heap, chunk, VMEM_THP_BLOCK, 0, 0, NULL, NULL, vmflag);
	c = &vmem_thp_chunks[i];
	if (p == NULL)
		return (NULL);		/* (the slot stays empty) */
	for (size_t b = 0; b < chunk / VMEM_THP_BLOCK; b++)
		c->thp_huge[b / 64] |= (uint64_t)1 << (b % 64);
	c->thp_block0 = (uintptr_t)p / VMEM_THP_BLOCK;
	__atomic_store_n(&c->thp_nblocks, chunk / VMEM_THP_BLOCK,
	    __ATOMIC_RELEASE);
	__atomic_fetch_add(&vmem_heap_huge_size, chunk, __ATOMIC_RELAXED);
	(void) vmem_thp_advise(c, 0, chunk / VMEM_THP_BLOCK, MADV_HUGEPAGE);
	*sizep = chunk;
	return (p);
}

static void
vmem_heap_huge_init(void)
{
	/* No free function: chunks are kept, like the reservations. */
	vmem_heap_huge = vmem_xcreate("heap_huge", NULL, 0, umem_pagesize,
	    vmem_heap_huge_import, NULL, vmem_heap, 0, VM_SLEEP);
}

/* heap_huge, once the mode says so and it could be made; else NULL. */
static vmem_t *
vmem_heap_huge_arena(void)
{
	switch (__atomic_load_n(&vmem_heap_thp, __ATOMIC_RELAXED)) {
	case VMEM_THP_AUTO:
		if (__atomic_load_n(&vmem_heap_nreserved,
		    __ATOMIC_ACQUIRE) < 2)
			return (NULL);
		break;
	case VMEM_THP_ALWAYS:
		break;
	default:
		return (NULL);
	}
	(void) pthread_once(&vmem_heap_huge_once, vmem_heap_huge_init);
	return (vmem_heap_huge);
}

/* The chunk of heap_huge holding addr, or NULL. */
static vmem_thp_chunk_t *
vmem_thp_chunk(uintptr_t addr)
{
	unsigned n = __atomic_load_n(&vmem_thp_nchunks, __ATOMIC_RELAXED);

	for (unsigned i = 0; i < n; i++) {
		vmem_thp_chunk_t *c = &vmem_thp_chunks[i];
		uintptr_t nb = __atomic_load_n(&c->thp_nblocks,
		    __ATOMIC_ACQUIRE);

		if (addr / VMEM_THP_BLOCK - c->thp_block0 < nb)
			return (c);
	}
	return (NULL);
}

/* All of chunk c gives up huge pages: one mapping again. */
static void
vmem_thp_unhuge_chunk(vmem_thp_chunk_t *c)
{
	for (size_t w = 0; w < VMEM_THP_WORDS; w++)
		__atomic_store_n(&c->thp_huge[w], 0, __ATOMIC_RELAXED);
	(void) vmem_thp_advise(c, 0, c->thp_nblocks, MADV_NOHUGEPAGE);
}

/*
 * The 2 MiB blocks of [addr, addr + size), in chunk c, give up huge pages
 * (see above).  The caller owns the range; a block's bit is cleared by
 * one thread, which advises it.  Each run of blocks advised may split a
 * mapping in three: past VMEM_THP_RUNS_MAX runs, or if the kernel refuses
 * (out of mappings), the whole chunk gives up huge pages instead.
 */
static void
vmem_thp_unhuge(vmem_thp_chunk_t *c, uintptr_t addr, size_t size)
{
	size_t b0 = addr / VMEM_THP_BLOCK - c->thp_block0;
	size_t b1 = (addr + size - 1) / VMEM_THP_BLOCK - c->thp_block0 + 1;
	size_t run = SIZE_MAX;

	for (size_t b = b0; b <= b1; b++) {
		uint64_t bit = (uint64_t)1 << (b % 64);

		if (b < b1 && (__atomic_fetch_and(&c->thp_huge[b / 64], ~bit,
		    __ATOMIC_RELAXED) & bit)) {
			if (run == SIZE_MAX)
				run = b;
			continue;
		}
		if (run != SIZE_MAX && (__atomic_fetch_add(&vmem_thp_runs, 1,
		    __ATOMIC_RELAXED) >= VMEM_THP_RUNS_MAX ||
		    vmem_thp_advise(c, run, b, MADV_NOHUGEPAGE) != 0)) {
			vmem_thp_unhuge_chunk(c);
			return;
		}
		run = SIZE_MAX;
	}
}

/*
 * The dense pair: the tagged pair (below), from heap_huge when it is on
 * (see above).  The free finds the arena by address.
 */
void *
vmem_heap_dense_talloc(vmem_t *heap, size_t size, int vmflag, void **tagp)
{
	vmem_t *huge = vmem_heap_huge_arena();
	void *p;

	if (huge != NULL &&
	    (p = vmem_xalloc_tag(huge, size, 0, vmflag, tagp)) != NULL)
		return (p);
	return (vmem_xalloc_tag(heap, size, 0, vmflag, tagp));
}

void
vmem_heap_dense_tfree(vmem_t *heap, void *addr, size_t size, void *tag)
{
	vmem_thp_chunk_t *c = vmem_thp_chunk((uintptr_t)addr);

	if (c == NULL) {
		vmem_heap_tfree(heap, addr, size, tag);
		return;
	}
	vmem_thp_unhuge(c, (uintptr_t)addr, size);
	umem_pages_release(addr, size);
	vmem_xfree_tag(vmem_heap_huge, addr, size, tag);
}

/*
 * [addr, addr + size) will be used in part: inside heap_huge, its 2 MiB
 * blocks give up huge pages (see above).
 */
void
vmem_heap_sparse(void *addr, size_t size)
{
	vmem_thp_chunk_t *c;

	if (__atomic_load_n(&vmem_thp_nchunks, __ATOMIC_RELAXED) != 0 &&
	    (c = vmem_thp_chunk((uintptr_t)addr)) != NULL)
		vmem_thp_unhuge(c, (uintptr_t)addr, size);
}

/* heap_huge if it was made (the leak walker's list of our arenas). */
vmem_t *
vmem_heap_huge_made(void)
{
	return (__atomic_load_n(&vmem_heap_huge, __ATOMIC_ACQUIRE));
}

void *
vmem_heap_talloc(vmem_t *heap, size_t size, int vmflag, void **tagp)
{
	return (vmem_xalloc_tag(heap, size, 0, vmflag, tagp));
}

void
vmem_heap_tfree(vmem_t *heap, void *addr, size_t size, void *tag)
{
	umem_pages_release(addr, size);
	vmem_xfree_tag(heap, addr, size, tag);
}

/*
 * Move the pages of [from, from + size) to [to, to + size), both ranges of
 * the heap's reservations, disjoint, page-aligned; whatever was at `to'
 * is replaced.  Afterwards `from' reads as zero.  0, or -1 (nothing
 * changed; errno EINVAL or ENOSYS: the kernel cannot do it at all, EFAULT:
 * not for this range, ENOMEM: out of mappings).
 */
int
vmem_heap_move(void *from, void *to, size_t size)
{
	int saved = errno;
	void *p = mremap(from, size, size,
	    MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);

	if (p == MAP_FAILED)
		return (-1);
	errno = saved;
	if (p != to)		/* cannot happen with MREMAP_FIXED */
		umem_panic("vmem: mremap moved %p to %p, not %p", from, p, to);
	return (0);
}

/*
 * Give the pages of [addr, addr + size) back by mapping the range afresh
 * (the same protection and flags as a reservation), so that a range that
 * was the target of vmem_heap_move() can merge back into the mappings
 * around it.  Falls back to umem_pages_release() if the kernel refuses.
 */
void
vmem_heap_renew(void *addr, size_t size)
{
	int saved = errno;

	/* (Large blocks are never in heap_huge: no advice to match.) */
	if (mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		umem_pages_release(addr, size);
	errno = saved;
}

static void
vmem_heap_init(void)
{
	umem_platform_init();
	/* No free function: reservations are kept (see above). */
	vmem_heap = vmem_xcreate("heap", NULL, 0, umem_pagesize,
	    vmem_heap_reserve, NULL, NULL, 0, VM_SLEEP);
	if (vmem_heap == NULL)
		umem_panic("vmem: cannot create the heap arena");
}

UMEM_EXPORT vmem_t *
vmem_heap_arena(vmem_alloc_t **allocp, vmem_free_t **freep)
{
	(void) pthread_once(&vmem_heap_once, vmem_heap_init);
	if (allocp != NULL)
		*allocp = vmem_heap_alloc;
	if (freep != NULL)
		*freep = vmem_heap_free;
	return (vmem_heap);
}
