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

static vmem_t *vmem_heap;
static pthread_once_t vmem_heap_once = PTHREAD_ONCE_INIT;
static size_t vmem_heap_reserved;	/* under the heap's import path */
static int vmem_heap_thp;		/* advise MADV_HUGEPAGE */

/*
 * Import for the heap itself: reserve address space.  Reservations grow
 * with the heap (an eighth of what is reserved already), so a large heap
 * needs few of them.
 */
static void *
vmem_heap_reserve(vmem_t *src, size_t *sizep, int vmflag)
{
	size_t want = *sizep, size;
	size_t grow = __atomic_load_n(&vmem_heap_reserved, __ATOMIC_RELAXED) / 8;
	void *p;

	if (grow > VMEM_HEAP_RESERVE_MAX)
		grow = VMEM_HEAP_RESERVE_MAX;
	size = want > grow ? want : grow;
	if (size < VMEM_HEAP_RESERVE)
		size = VMEM_HEAP_RESERVE;
	size = P2ROUNDUP(size, VMEM_HEAP_ALIGN);
	if (size < want)
		return (NULL);
	p = umem_pages_reserve(size, VMEM_HEAP_ALIGN);
	if (p == NULL && size > want) {
		/* Short of address space: try for just what was asked. */
		size = P2ROUNDUP(want, umem_pagesize);
		p = umem_pages_reserve(size, umem_pagesize);
	}
	if (p == NULL)
		return (NULL);
	if (__atomic_load_n(&vmem_heap_thp, __ATOMIC_RELAXED))
		(void) madvise(p, size, MADV_HUGEPAGE);
	__atomic_fetch_add(&vmem_heap_reserved, size, __ATOMIC_RELAXED);
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
 * UMEM_OPTIONS=hugepages: reservations made from now on are advised
 * MADV_HUGEPAGE, so that the kernel may back them with transparent huge
 * pages (when its policy is "madvise" or "always").  Fewer TLB misses for
 * big heaps; resident memory grows in 2 MiB steps where a huge page is
 * used, and a page given back inside one splits it.
 */
void
vmem_heap_hugepages(int on)
{
	__atomic_store_n(&vmem_heap_thp, on, __ATOMIC_RELAXED);
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

	if (mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		umem_pages_release(addr, size);
	else if (__atomic_load_n(&vmem_heap_thp, __ATOMIC_RELAXED))
		(void) madvise(addr, size, MADV_HUGEPAGE);  /* flags as around */
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
