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
 * The dense pair (vmem_heap_dense_talloc, vmem_heap_dense_tfree) is the
 * same with tags (vmem_xalloc_tag), for slabs: umem_default imports
 * through it, so its spans never touch the heap's hash.
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
 * The limit (UMEM_OPTIONS=limit, umem_set_limit: vmem_heap_set_limit).
 * Everything the two pairs hand out (slabs, the spans of large blocks, the
 * library's own records, arenas a program makes over vmem_heap_arena()'s
 * pair) is counted, touched or not, with the dirty pages kept beside it:
 * what the heap could have resident.  An allocation that would take the
 * count past the limit fails (ENOMEM) before anything changes; the layers
 * above then give back what they cache (umem_alloc_failed) and try once
 * more.  Reservations and heap_huge's chunks are address space and are not
 * counted; the slabs inside the chunks are.
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
 *
 * Deferred release.  A range freed while the freeing thread defers
 * (vmem_heap_defer: umem's growth scan, which frees memory because the
 * heap is growing), or one of VMEM_KEEP_MIN or more while pages are kept
 * (vmem_heap_keep_dirty: while umem's update thread runs, which flushes),
 * keeps its pages: it goes back to the heap at once, so it merges with
 * its free neighbours and the next import can take it, but it is
 * recorded as dirty instead of being given to the OS.  An arena over the
 * heap may keep the pages of what it takes back as well (vmem_heap_keep:
 * umem's large blocks, and the slabs of its big classes in umem_default)
 * if it claims every range it hands out (vmem_heap_claim) before the
 * range is used; it imports with vmem_heap_alloc_dirty, which leaves the
 * dirty pages of an import recorded for those claims.  Every other
 * allocation from the heap takes its range out of the dirty set
 * (dirty_claim) before using it; one whose user counts on zero pages
 * (vmem_heap_alloc) gives the dirty part to the OS first, so only slabs
 * (the dense pair) and the claiming arenas reuse dirty pages as they
 * are, and both look there first (dirty_alloc).  heap_huge's slabs defer,
 * claim and look alike (its chunks lie in the reservations); a flush
 * gives up a block's huge page before its dirty pages, as an immediate
 * release does.
 * vmem_heap_flush() gives back what stayed dirty over a whole update pass
 * (or all of it: trim, reap).  The set is a bitmap per reservation (a bit
 * a page, two generations for that age), made on the reservation's first
 * dirty page: the pages a growth scan frees are scattered (python3's
 * malloc mode: 27k one-page ranges, rarely neighbours).  Bounded by
 * VMEM_DIRTY_MAX bytes; past that, a release gives its pages to the OS at
 * once, as without deferral.  A claim or a flush gives pages back with
 * the dirty lock held, and a claim comes before its caller writes the
 * range: so a flush never takes the pages of a range in use.
 */
#define	_GNU_SOURCE
#include "vmem_impl.h"

#include <errno.h>
#include <string.h>
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
static size_t vmem_heap_limit_bytes;	/* 0: none (atomic) */
static size_t vmem_heap_held;		/* handed out by the pairs (atomic) */
static uint64_t vmem_heap_refused;	/* allocations the limit refused */

#define	VMEM_DIRTY_MAX		(128ul << 20)
#define	VMEM_KEEP_MIN		(64ul << 10)	/* vmem_heap_give */
#define	VMEM_DIRTY_RESV		64	/* reservations with a bitmap */

/* A reservation and its dirty pages: bit p of word p / 64, per generation. */
typedef struct vmem_resv {
	uintptr_t	vr_start;
	uintptr_t	vr_end;
	uint64_t	*vr_bits[2];	/* NULL until the first dirty page */
	size_t		vr_lo[2];	/* words [lo, hi) may have bits set */
	size_t		vr_hi[2];
} vmem_resv_t;

static vmem_resv_t vmem_resv[VMEM_DIRTY_RESV];
static unsigned vmem_nresv;
static unsigned vmem_dirty_gen;		/* the generation pages join */
static size_t vmem_dirty_bytes;		/* read unlocked: 0 = nothing to do */
/* dirty_alloc found nothing, per user: slabs, vmem_heap_alloc_kept's, */
/* vmem_heap_alloc_dirty's */
static int vmem_dirty_miss_slabs, vmem_dirty_miss_kept, vmem_dirty_miss_import;
static umem_lock_t vmem_dirty_lock = UMEM_LOCK_INITIALIZER;
static __thread int vmem_heap_deferring
    __attribute__((tls_model("initial-exec")));
static int vmem_heap_keeping;		/* vmem_heap_keep_dirty() (atomic) */

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
 * The deferred release's code (below) runs only once pages turn dirty,
 * in programs whose heap grows by megabytes: it is cold (UMEM_TEXT_COLD,
 * out of the hot layers' 64 KiB code window, libumem.ld), with a test of
 * the dirty byte count inline where the heap's paths pass.  So is the
 * huge-page code (UMEM_OPTIONS=hugepages is off by default).
 */

/*
 * A new reservation gets a slot (its bitmap comes with its first dirty
 * page).  Every process makes one: not cold.
 */
static void
dirty_resv_add(void *p, size_t size)
{
	umem_lock(&vmem_dirty_lock);
	if (vmem_nresv < VMEM_DIRTY_RESV) {
		vmem_resv_t *r = &vmem_resv[vmem_nresv++];

		r->vr_start = (uintptr_t)p;
		r->vr_end = (uintptr_t)p + size;
		r->vr_lo[0] = r->vr_lo[1] = SIZE_MAX;
	}
	umem_unlock(&vmem_dirty_lock);
}

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
	dirty_resv_add(p, size);
	*sizep = size;
	return (p);
}

/*
 * ---- deferred release (see the top) ----
 */
/* The reservation holding addr, or NULL.  vmem_dirty_lock. */
UMEM_TEXT_COLD static vmem_resv_t *
dirty_resv(uintptr_t addr)
{
	for (unsigned i = 0; i < vmem_nresv; i++) {
		if (addr >= vmem_resv[i].vr_start && addr < vmem_resv[i].vr_end)
			return (&vmem_resv[i]);
	}
	return (NULL);
}

static void vmem_thp_unhuge_range(uintptr_t addr, size_t size);

/*
 * Pages of the heap to the OS; those of heap_huge's blocks give up huge
 * pages first (see the top).
 */
static void
heap_pages_release(void *addr, size_t size)
{
	if (__atomic_load_n(&vmem_thp_nchunks, __ATOMIC_RELAXED) != 0)
		vmem_thp_unhuge_range((uintptr_t)addr, size);
	umem_pages_release(addr, size);
}

/* Give the OS pages [from, to) of r. */
UMEM_TEXT_COLD static void
dirty_give(const vmem_resv_t *r, size_t from, size_t to)
{
	heap_pages_release((void *)(r->vr_start + from * umem_pagesize),
	    (to - from) * umem_pagesize);
}

/*
 * Clear generation g's bits for pages [p0, p1) of r (page numbers within
 * r); with release, give the pages whose bits were set to the OS, a call
 * per run.  The number of bits cleared.  vmem_dirty_lock.
 */
/* The bits of pages [p, p1) in p's bitmap word; *np: how many. */
static inline uint64_t
dirty_word_mask(size_t p, size_t p1, size_t *np)
{
	size_t b = p % 64, n = 64 - b < p1 - p ? 64 - b : p1 - p;

	*np = n;
	return ((n == 64 ? ~0ULL : (1ULL << n) - 1) << b);
}

UMEM_TEXT_COLD static size_t
dirty_take(vmem_resv_t *r, int g, size_t p0, size_t p1, int release)
{
	uint64_t *bits = r->vr_bits[g];
	size_t taken = 0, run = SIZE_MAX, p, n;

	for (p = p0; p < p1; p += n) {
		size_t w = p / 64, b = p % 64;
		uint64_t mask = dirty_word_mask(p, p1, &n), m;

		m = bits[w] & mask;
		bits[w] &= ~m;
		taken += (size_t)__builtin_popcountll(m);
		/* Skip a word in which no run starts or ends. */
		if (!release || m == (run == SIZE_MAX ? 0 : mask))
			continue;
		for (size_t i = b; i < b + n; i++) {
			if (((m >> i) & 1) && run == SIZE_MAX) {
				run = w * 64 + i;
			} else if (!((m >> i) & 1) && run != SIZE_MAX) {
				dirty_give(r, run, w * 64 + i);
				run = SIZE_MAX;
			}
		}
	}
	if (run != SIZE_MAX)
		dirty_give(r, run, p1);
	return (taken);
}

/*
 * Record [addr, addr + size), about to go back to the heap or to the
 * arena it was taken from, as dirty: 1, or 0 (the caller gives the pages
 * back): over the bound, or no bitmap.  Pages dirty already (part of a
 * span whose blocks were kept dirty) stay in their generation.
 */
UMEM_TEXT_COLD static int
dirty_add(void *addr, size_t size)
{
	size_t p0, p1, g, words, added = 0;
	vmem_resv_t *r;

	umem_lock(&vmem_dirty_lock);
	if (vmem_dirty_bytes + size > VMEM_DIRTY_MAX ||
	    (r = dirty_resv((uintptr_t)addr)) == NULL)
		goto no;
	words = ((r->vr_end - r->vr_start) / umem_pagesize + 63) / 64;
	if (r->vr_bits[0] == NULL) {
		uint64_t *b = umem_pages_reserve(P2ROUNDUP(2 * words *
		    sizeof (uint64_t), umem_pagesize), umem_pagesize);

		if (b == NULL)
			goto no;
		r->vr_bits[0] = b;
		r->vr_bits[1] = b + words;
	}
	g = vmem_dirty_gen;
	p0 = ((uintptr_t)addr - r->vr_start) / umem_pagesize;
	p1 = p0 + size / umem_pagesize;
	for (size_t p = p0, n; p < p1; p += n) {
		size_t w = p / 64;
		uint64_t m = dirty_word_mask(p, p1, &n) &
		    ~(r->vr_bits[0][w] | r->vr_bits[1][w]);

		r->vr_bits[g][w] |= m;
		added += (size_t)__builtin_popcountll(m);
	}
	if (p0 / 64 < r->vr_lo[g])
		r->vr_lo[g] = p0 / 64;
	if ((p1 + 63) / 64 > r->vr_hi[g])
		r->vr_hi[g] = (p1 + 63) / 64;
	__atomic_store_n(&vmem_dirty_bytes, vmem_dirty_bytes +
	    added * umem_pagesize, __ATOMIC_RELEASE);
	__atomic_store_n(&vmem_dirty_miss_slabs, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&vmem_dirty_miss_kept, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&vmem_dirty_miss_import, 0, __ATOMIC_RELAXED);
	umem_unlock(&vmem_dirty_lock);
	return (1);
no:
	umem_unlock(&vmem_dirty_lock);
	return (0);
}

/*
 * [addr, addr + size) was just allocated from the heap: take it out of
 * the dirty set, giving its dirty pages to the OS first if the caller
 * counts on zero pages.
 */
UMEM_TEXT_COLD static size_t
dirty_claim_some(void *addr, size_t size, int zero)
{
	size_t p0, taken = 0;
	vmem_resv_t *r;

	umem_lock(&vmem_dirty_lock);
	if ((r = dirty_resv((uintptr_t)addr)) != NULL &&
	    r->vr_bits[0] != NULL) {
		p0 = ((uintptr_t)addr - r->vr_start) / umem_pagesize;
		for (int g = 0; g < 2; g++)
			taken += dirty_take(r, g, p0, p0 + size / umem_pagesize,
			    zero);
		__atomic_store_n(&vmem_dirty_bytes, vmem_dirty_bytes -
		    taken * umem_pagesize, __ATOMIC_RELEASE);
	}
	umem_unlock(&vmem_dirty_lock);
	return (taken);
}

/* The number of dirty pages [addr, addr + size) held. */
static inline size_t
dirty_claim(void *addr, size_t size, int zero)
{
	if (__atomic_load_n(&vmem_dirty_bytes, __ATOMIC_ACQUIRE) != 0)
		return (dirty_claim_some(addr, size, zero));
	return (0);
}

/*
 * The span of the dirty pages of the next reservation from *ip that has
 * any, [*lop, *hip); *ip moves past it.  0 if none is left.
 */
static int
dirty_span(unsigned *ip, uintptr_t *lop, uintptr_t *hip)
{
	int found = 0;

	umem_lock(&vmem_dirty_lock);
	for (; *ip < vmem_nresv && !found; (*ip)++) {
		vmem_resv_t *r = &vmem_resv[*ip];
		size_t w0 = r->vr_lo[0] < r->vr_lo[1] ? r->vr_lo[0] :
		    r->vr_lo[1];
		size_t w1 = r->vr_hi[0] > r->vr_hi[1] ? r->vr_hi[0] :
		    r->vr_hi[1];

		if (w0 < w1) {
			*lop = r->vr_start + w0 * 64 * umem_pagesize;
			*hip = r->vr_start + w1 * 64 * umem_pagesize;
			if (*hip > r->vr_end)
				*hip = r->vr_end;
			found = 1;
		}
	}
	umem_unlock(&vmem_dirty_lock);
	return (found);
}

/*
 * Dirty pages first: a slab's pages from the span of the dirty pages of
 * a reservation (each that has any, in turn), if a free segment there
 * fits.
 * The heap's instant fit takes a segment of the smallest list whose
 * sizes surely fit, which is often the untouched tail of a reservation
 * rather than a run of dirty pages: t_growth_reuse's second burst took
 * 8 MiB of fresh pages that way, with 14 MiB dirty beside them.  Within
 * the span, the best fit: the instant fit there cut long runs that a
 * later, bigger import then could not find (mallocbench mixed's peak
 * 106 -> 97 MB).  A miss turns the search off until more pages turn
 * dirty (it walks free lists: not on every import).
 */
UMEM_TEXT_COLD static void *
dirty_alloc_some(vmem_t *vmp, size_t size, size_t align, void **tagp,
    int *missp)
{
	uintptr_t lo = 0, hi = 0;
	unsigned i = 0;
	void *p;

	while (dirty_span(&i, &lo, &hi)) {
		if (hi - lo >= size && (p = vmem_xalloc_tag_in(vmp, size,
		    align, (void *)lo, (void *)hi, VM_NOSLEEP | VM_BESTFIT |
		    VMEM_TRY, tagp)) != NULL)
			return (p);
	}
	__atomic_store_n(missp, 1, __ATOMIC_RELAXED);
	return (NULL);
}

static inline void *
dirty_alloc(vmem_t *vmp, size_t size, size_t align, void **tagp,
    int *missp)
{
	if (__atomic_load_n(&vmem_dirty_bytes, __ATOMIC_ACQUIRE) < size ||
	    __atomic_load_n(missp, __ATOMIC_RELAXED))
		return (NULL);
	return (dirty_alloc_some(vmp, size, align, tagp, missp));
}

/*
 * The same for an arena that keeps pages (vmem_heap_keep: umem_oversize's
 * large blocks), whose instant fit does not know which of its free ranges
 * have pages either.
 */
void *
vmem_heap_alloc_kept(vmem_t *vmp, size_t size)
{
	return (dirty_alloc(vmp, size, 0, NULL, &vmem_dirty_miss_kept));
}

/*
 * Pages of a range going back to the heap: kept dirty while this thread
 * defers, or if the range is VMEM_KEEP_MIN or more while pages are kept
 * (vmem_heap_keep_dirty); else to the OS.  A range that size is likely
 * taken again whole by the next import of its size (the span of a large
 * block, a span of big slabs).  Single pages, the spans of one-page slabs
 * freed here and there, rarely are: the imports that follow a free of
 * scattered slabs need runs of pages, and kept, those pages would only
 * raise the peak (mallocbench frag: 139 -> 144 MB).  Going to the OS, a
 * range's pages leave the dirty set first: some may be there, kept by
 * vmem_heap_keep() (a large block freed inside a span that now goes back).
 */
static void
vmem_heap_give(void *addr, size_t size)
{
	if ((vmem_heap_deferring || (size >= VMEM_KEEP_MIN &&
	    __atomic_load_n(&vmem_heap_keeping, __ATOMIC_RELAXED))) &&
	    dirty_add(addr, size))
		return;
	(void) dirty_claim(addr, size, 0);
	heap_pages_release(addr, size);
}

int
vmem_heap_defer(int on)
{
	int was = vmem_heap_deferring;

	vmem_heap_deferring = on;
	return (was);
}

void
vmem_heap_keep_dirty(int on)
{
	__atomic_store_n(&vmem_heap_keeping, on, __ATOMIC_RELAXED);
}

/* (The range was claimed when it was handed out: none of it is dirty.) */
void
vmem_heap_keep(void *addr, size_t size)
{
	if (!__atomic_load_n(&vmem_heap_keeping, __ATOMIC_RELAXED) ||
	    !dirty_add(addr, size))
		heap_pages_release(addr, size);
}

size_t
vmem_heap_claim(void *addr, size_t size, int zero)
{
	return (dirty_claim(addr, size, zero));
}

/*
 * Give the OS the pages that stayed dirty since the previous call (the
 * older generation), or all of them; the newer generation becomes the
 * older.
 */
UMEM_TEXT_COLD static void
dirty_flush(int all)
{
	size_t taken = 0;
	int old;

	umem_lock(&vmem_dirty_lock);
	old = (int)vmem_dirty_gen ^ 1;
	for (unsigned i = 0; i < vmem_nresv; i++) {
		vmem_resv_t *r = &vmem_resv[i];

		for (int g = 0; g < 2 && r->vr_bits[0] != NULL; g++) {
			if ((g != old && !all) || r->vr_lo[g] >= r->vr_hi[g])
				continue;
			taken += dirty_take(r, g, r->vr_lo[g] * 64,
			    r->vr_hi[g] * 64, 1);
			r->vr_lo[g] = SIZE_MAX;
			r->vr_hi[g] = 0;
		}
	}
	vmem_dirty_gen = (unsigned)old;
	__atomic_store_n(&vmem_dirty_bytes, vmem_dirty_bytes - taken *
	    umem_pagesize, __ATOMIC_RELEASE);
	umem_unlock(&vmem_dirty_lock);
}

void
vmem_heap_flush(int all)
{
	if (__atomic_load_n(&vmem_dirty_bytes, __ATOMIC_ACQUIRE) != 0)
		dirty_flush(all);
}

UMEM_TEXT_COLD size_t
vmem_heap_dirty(void)
{
	return (__atomic_load_n(&vmem_dirty_bytes, __ATOMIC_RELAXED));
}

/* Fork: the dirty lock is a leaf (nothing is taken under it). */
UMEM_TEXT_COLD static void
dirty_fork_prepare(void)
{
	umem_lock(&vmem_dirty_lock);
}

UMEM_TEXT_COLD static void
dirty_fork_parent(void)
{
	umem_unlock(&vmem_dirty_lock);
}

UMEM_TEXT_COLD static void
dirty_fork_child(void)
{
	umem_lock_init(&vmem_dirty_lock);
}

/* heap_charge() past the limit: take the count back. */
UMEM_TEXT_COLD static __attribute__((noinline)) int
heap_refuse(size_t size)
{
	__atomic_sub_fetch(&vmem_heap_held, size, __ATOMIC_RELAXED);
	__atomic_add_fetch(&vmem_heap_refused, 1, __ATOMIC_RELAXED);
	errno = ENOMEM;
	return (0);
}

/*
 * Count size bytes as handed out: 1, or 0 (errno ENOMEM, nothing counted)
 * if that would take them, with the dirty pages, past the limit.
 */
static inline int
heap_charge(size_t size)
{
	size_t held = __atomic_add_fetch(&vmem_heap_held, size,
	    __ATOMIC_RELAXED);
	size_t limit = __atomic_load_n(&vmem_heap_limit_bytes,
	    __ATOMIC_RELAXED);

	if (UMEM_LIKELY(limit == 0) || (held <= limit &&
	    __atomic_load_n(&vmem_dirty_bytes, __ATOMIC_RELAXED) <=
	    limit - held))
		return (1);
	return (heap_refuse(size));
}

static inline void
heap_uncharge(size_t size)
{
	__atomic_sub_fetch(&vmem_heap_held, size, __ATOMIC_RELAXED);
}

UMEM_TEXT_COLD size_t
vmem_heap_set_limit(size_t bytes)
{
	return (__atomic_exchange_n(&vmem_heap_limit_bytes, bytes,
	    __ATOMIC_RELAXED));
}

UMEM_TEXT_COLD size_t
vmem_heap_limit(void)
{
	return (__atomic_load_n(&vmem_heap_limit_bytes, __ATOMIC_RELAXED));
}

UMEM_TEXT_COLD void
vmem_heap_usage(vmem_heap_usage_t *u)
{
	u->hu_limit = vmem_heap_limit();
	u->hu_held = __atomic_load_n(&vmem_heap_held, __ATOMIC_RELAXED);
	u->hu_dirty = __atomic_load_n(&vmem_dirty_bytes, __ATOMIC_RELAXED);
	u->hu_refused = __atomic_load_n(&vmem_heap_refused, __ATOMIC_RELAXED);
}

/* A range of the heap, charged to the limit; dirty pages first if asked. */
static void *
heap_alloc_charged(vmem_t *heap, size_t size, int vmflag, int dirty_first)
{
	void *p = NULL;

	if (!heap_charge(size))
		return (NULL);
	if (dirty_first)
		p = dirty_alloc(heap, size, 0, NULL, &vmem_dirty_miss_import);
	if (p == NULL && (p = vmem_alloc(heap, size, vmflag)) == NULL)
		heap_uncharge(size);
	return (p);
}

/*
 * The import of an arena that claims every range it hands out itself
 * (vmem_heap_claim; umem's large blocks): dirty pages first, as slabs
 * look for them (a freed span of large blocks goes back to the heap with
 * its pages: mallocbench grow 0.20 -> 0.18 s, its peak 105 -> 98 MB);
 * they stay recorded, to be claimed block by block.
 */
void *
vmem_heap_alloc_dirty(vmem_t *heap, size_t size, int vmflag)
{
	return (heap_alloc_charged(heap, size, vmflag, 1));
}

/* The plain pair's import: zero pages (dirty ones go to the OS first). */
static void *
vmem_heap_alloc(vmem_t *heap, size_t size, int vmflag)
{
	void *p = heap_alloc_charged(heap, size, vmflag, 0);

	if (p != NULL)
		(void) dirty_claim(p, size, 1);
	return (p);
}

static void
vmem_heap_free(vmem_t *heap, void *addr, size_t size)
{
	vmem_heap_give(addr, size);
	vmem_free(heap, addr, size);
	heap_uncharge(size);
}

/*
 * UMEM_OPTIONS=hugepages=...: when the dense pair turns to heap_huge:
 * never (the default), once the heap outgrew its first reservation, or
 * from the start.
 */
UMEM_TEXT_COLD void
vmem_heap_hugepages(int mode)
{
	__atomic_store_n(&vmem_heap_thp, mode, __ATOMIC_RELAXED);
}

/* madvise blocks [b0, b1) of c: 0, or -1 (errno as it was: free paths) */
UMEM_TEXT_COLD static int
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
UMEM_TEXT_COLD static void *
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
	dirty_claim(p, chunk, 0);	/* slabs only: dirty pages will do */
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

UMEM_TEXT_COLD static void
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
UMEM_TEXT_COLD static void
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
UMEM_TEXT_COLD static void
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
 * The blocks of every chunk that [addr, addr + size) meets give up huge
 * pages: pages of heap_huge going to the OS.  The caller owns the range.
 */
UMEM_TEXT_COLD static void
vmem_thp_unhuge_range(uintptr_t addr, size_t size)
{
	unsigned n = __atomic_load_n(&vmem_thp_nchunks, __ATOMIC_RELAXED);

	for (unsigned i = 0; i < n; i++) {
		vmem_thp_chunk_t *c = &vmem_thp_chunks[i];
		uintptr_t nb = __atomic_load_n(&c->thp_nblocks,
		    __ATOMIC_ACQUIRE);
		uintptr_t lo = c->thp_block0 * VMEM_THP_BLOCK;
		uintptr_t hi = lo + nb * VMEM_THP_BLOCK;

		if (nb != 0 && addr < hi && addr + size > lo)
			vmem_thp_unhuge(c, addr > lo ? addr : lo,
			    (addr + size < hi ? addr + size : hi) -
			    (addr > lo ? addr : lo));
	}
}

/*
 * The part of this thread's last import from the heap whose pages are
 * still fresh, as page numbers (address / page size): the leak detector
 * must not take its start for a reference to the buffer there.
 */
static __thread uintptr_t vmem_heap_fresh_lo, vmem_heap_fresh_hi
    __attribute__((tls_model("initial-exec")));

/*
 * The dense pair: tagged imports from the heap, or from heap_huge when it
 * is on (see above).  The free finds the arena by address.  Both defer
 * and claim dirty pages alike: in heap_huge a page kept dirty also keeps
 * its block's huge page, until the flush gives it up.  An import that
 * held no dirty page is recorded as fresh (vmem_heap_populate).
 */
static void *
dense_alloc_in(vmem_t *vmp, size_t size, size_t align, int vmflag,
    void **tagp)
{
	void *p;

	/* (Slabs: dirty pages will do as they are.) */
	if ((p = dirty_alloc(vmp, size, align, tagp,
	    &vmem_dirty_miss_slabs)) != NULL) {
		(void) dirty_claim(p, size, 0);
	} else if ((p = vmem_xalloc_tag(vmp, size, align, vmflag,
	    tagp)) != NULL && dirty_claim(p, size, 0) == 0) {
		vmem_heap_fresh_lo = (uintptr_t)p / umem_pagesize;
		vmem_heap_fresh_hi = ((uintptr_t)p + size) / umem_pagesize;
	}
	return (p);
}

/*
 * [addr, addr + size), of the dense pair, is about to be written on every
 * page (a slab's free list): if it lies in the part of this thread's last
 * import from the heap that is still fresh, fault it in with one call.  A
 * page fault costs more than a system call that populates many pages at
 * once (DESIGN.md §3.1); pages that stayed dirty are resident already.
 * An import is often bigger than the slab (room to align it), and the
 * next slabs take the rest: the fresh part left is the larger side.
 */
void
vmem_heap_populate(void *addr, size_t size)
{
	uintptr_t a = (uintptr_t)addr / umem_pagesize,
	    b = a + size / umem_pagesize;

	if (a < vmem_heap_fresh_lo || b > vmem_heap_fresh_hi)
		return;
	if (a - vmem_heap_fresh_lo >= vmem_heap_fresh_hi - b)
		vmem_heap_fresh_hi = a;
	else
		vmem_heap_fresh_lo = b;
	umem_pages_populate(addr, size);
}

void *
vmem_heap_dense_talloc(vmem_t *heap, size_t size, size_t align, int vmflag,
    void **tagp)
{
	vmem_t *huge;
	void *p;

	if (!heap_charge(size))
		return (NULL);
	if (((huge = vmem_heap_huge_arena()) == NULL ||
	    (p = dense_alloc_in(huge, size, align, vmflag, tagp)) == NULL) &&
	    (p = dense_alloc_in(heap, size, align, vmflag, tagp)) == NULL)
		heap_uncharge(size);
	return (p);
}

void
vmem_heap_dense_tfree(vmem_t *heap, void *addr, size_t size, void *tag)
{
	vmem_heap_give(addr, size);
	vmem_xfree_tag(vmem_thp_chunk((uintptr_t)addr) != NULL ?
	    vmem_heap_huge : heap, addr, size, tag);
	heap_uncharge(size);
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
UMEM_TEXT_COLD vmem_t *
vmem_heap_huge_made(void)
{
	return (__atomic_load_n(&vmem_heap_huge, __ATOMIC_ACQUIRE));
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
	umem_atfork_add(dirty_fork_prepare, dirty_fork_parent,
	    dirty_fork_child);
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
