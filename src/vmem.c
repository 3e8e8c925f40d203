/*
 * vmem.c - the general resource allocator (Bonwick & Adams 2001, section 4).
 *
 * Big theory statement
 * --------------------
 * An arena manages a set of integers: addresses, IDs, ports.  It is made of
 * spans (ranges added at creation, by vmem_add(), or imported from a source
 * arena) which are cut into segments, allocated or free.  Every size is a
 * multiple of the arena's quantum (a power of two).
 *
 * Each segment has an external boundary tag (vmem_seg_t): the resource may
 * not be memory, so nothing is ever stored in it.  Tags sit on two lists:
 *
 *   - the arena list (vs_anext/vs_aprev): every segment in address order,
 *     with a span marker (VMEM_SPAN) in front of each span's segments.  The
 *     sentinel vm_seg0 is typed VMEM_SPAN, so "my neighbour is a span
 *     marker" also covers both ends of the list.  vmem_walk()'s walkers
 *     (VMEM_WALKER) are markers that hold a walk's place while the lock is
 *     dropped; a walker blocks coalescing while it sits between two free
 *     segments, and whoever unlinks it merges them.
 *   - the kin list (vs_knext/vs_kprev), whose meaning depends on the type:
 *     for an allocated segment it is its hash chain (singly linked), for a
 *     free segment its power-of-two freelist, for a span marker the list of
 *     spans (headed by vm_seg0).  A tagged segment (vs_tagged: allocated by
 *     vmem_xalloc_tag(), whose caller keeps the tag) is on no kin list.
 *
 * Invariants (checked by vmem_verify()):
 *   - segments of a span tile it exactly, in address order;
 *   - no two free segments are adjacent unless a marker separates them;
 *   - a free segment of size s is on freelist highbit(s) - 1, and bit n of
 *     vm_freemap is set iff freelist n is non-empty;
 *   - every allocated segment but the tagged ones is in the hash table,
 *     under its start;
 *   - vm_mem_inuse / vm_mem_total equal the sums over segments / spans.
 *
 * Allocation policies.  Instant fit (the default) takes the first segment
 * of the first non-empty freelist whose every member is big enough: a
 * find-first-set on the bitmap, constant time whatever the fragmentation,
 * within 2x of best fit.  Best fit searches the lists from the one the size
 * belongs to and keeps the smallest fit; first fit takes the first fit from
 * there; next fit walks the arena list from a cursor (the rotor) just past
 * the last next-fit allocation, so a range of IDs is used all the way round
 * before any is reused.  Unlike illumos' rotor, which is a marker segment
 * that blocks coalescing, ours is a pointer to a tag plus an address: free
 * space around it coalesces normally, and whoever destroys the tag it
 * points to hands it on to the surviving neighbour.  vmem_xalloc() adds
 * alignment, phase, a boundary not to cross and an address window.
 *
 * Free looks the address up in the hash (a miss is a bad or double free, a
 * size mismatch a wrong-size free: both reported, see vmem_set_abort()),
 * coalesces with free neighbours, and gives a completely free imported
 * span back to its source.  All in constant time.  The slab layer, which
 * frees every slab it makes and can keep a pointer, allocates with
 * vmem_xalloc_tag() and frees with the tag (vmem_xfree_tag()): no hash
 * insert, lookup or resize, whose buckets and chains were cold misses on
 * every slab made or destroyed.  The tag is checked (allocated, tagged,
 * same start and size) before anything changes.  An importing arena can
 * do the same with its source (vmem_set_tagged_import): the span marker
 * keeps the source's tag (vs_srctag) for the span's release.  Such an
 * arena passes its own tagged allocations straight to the source
 * (vmem_direct_alloc): a slab of umem_default is then one tag, the
 * heap's, rather than three (the heap's, a span marker and the
 * allocation), and one lock rather than two.  The arena only counts them
 * (vm_mem_direct); the tag it hands out is the source's, marked in its
 * low bit so that vmem_xfree_tag() knows where it belongs.
 *
 * Boundary tags come from a record pool that maps its own pages (platform),
 * so vmem needs no heap.  Each arena keeps a small reserve of tags, topped
 * up before any operation that may need them (at most VMEM_SEGS_PER_OP),
 * so no operation can fail half way.
 *
 * Locking.  One mutex per arena protects its lists, hash, freelists and
 * statistics.  No arena lock is ever held while another arena's lock is
 * taken: imports, span returns and quantum-cache calls drop the lock
 * first.  The record pools' locks are leaves, taken under arena locks.
 * Lock order: vmem_list_lock -> arena locks (in creation order, only fork
 * takes more than one) -> record pool locks.  VM_SLEEP requests wait on the
 * arena's condition variable, which every free broadcasts.
 */
#define	_GNU_SOURCE
#include "vmem_impl.h"

#include <errno.h>
#include <string.h>

#define	VMEM_MARKER		(VMEM_ROTOR | VMEM_WALKER)

/*
 * Worst case of new tags for one operation: an import creates a span marker
 * and its free segment (2), then carving an allocation out of the middle of
 * a free segment creates the allocated tag and the right remainder (2).
 */
#define	VMEM_SEGS_PER_OP	4
#define	VMEM_SEGS_REFILL	8	/* taken from the pool at a time */
#define	VMEM_SEGS_KEEP		128	/* more than this go back to the pool */

/* Retry interval for VM_SLEEP requests that wait on an import. */
#define	VMEM_SLEEP_RETRY_NS	(100ull * 1000 * 1000)

typedef struct vmem_seg vmem_seg_t;

struct vmem_seg {
	uintptr_t	vs_start;	/* first integer */
	uintptr_t	vs_end;		/* one past the last */
	vmem_seg_t	*vs_knext;	/* hash chain / freelist / span list */
	vmem_seg_t	*vs_kprev;	/* freelist / span list */
	vmem_seg_t	*vs_anext;	/* arena list, address order */
	vmem_seg_t	*vs_aprev;
	uint8_t		vs_type;	/* VMEM_ALLOC, _FREE, _SPAN, ... */
	uint8_t		vs_import;	/* span was imported */
	uint8_t		vs_tagged;	/* allocated, not hashed: the owner */
					/* holds the tag (vmem_xalloc_tag) */
	void		*vs_srctag;	/* imported span: the source's tag */
					/* (vmem_set_tagged_import) */
};

#define	VS_SIZE(vsp)	((vsp)->vs_end - (vsp)->vs_start)

struct vmem {
	umem_lock_t	vm_lock;
	pthread_cond_t	vm_cv;		/* VM_SLEEP waiters */
	uint32_t	vm_nwaiters;
	char		vm_name[VMEM_NAMELEN + 1];
	size_t		vm_quantum;
	int		vm_qshift;	/* log2(quantum) */
	int		vm_cflags;	/* VMC_* */
	size_t		vm_qcache_max;	/* effective: 0 without caches */
	size_t		vm_qcache_asked; /* as passed to vmem_create() */
	vmem_alloc_t	*vm_source_alloc;
	vmem_ximport_t	*vm_source_ximport;
	vmem_free_t	*vm_source_free;
	vmem_talloc_t	*vm_source_talloc;	/* tagged import, if set */
	vmem_tfree_t	*vm_source_tfree;
	vmem_t		*vm_source;
	vmem_t		*vm_next;	/* all arenas (vmem_list) */
	vmem_seg_t	vm_seg0;	/* arena list sentinel; span list head */
	vmem_seg_t	*vm_rotor_seg;	/* next-fit cursor: a linked tag */
	uintptr_t	vm_rotor_addr;	/* next-fit: next address to try */
	uint64_t	vm_freemap;	/* bit n: freelist n non-empty */
	/* NULL-terminated, linked by vs_knext/vs_kprev (head: kprev NULL) */
	vmem_seg_t	*vm_freelist[VMEM_FREELISTS];
	vmem_seg_t	**vm_hash_table;
	size_t		vm_hash_mask;	/* buckets - 1 */
	int		vm_hash_bits;
	vmem_seg_t	*vm_hash0[VMEM_HASH_INITIAL];
	vmem_seg_t	**vm_hash_old;	/* table being migrated, or NULL */
	size_t		vm_hash_old_mask;
	int		vm_hash_old_bits;
	size_t		vm_hash_moved;	/* old buckets migrated so far */
	vmem_seg_t	*vm_segfree;	/* tag reserve, linked by vs_knext */
	size_t		vm_nsegfree;
	void		*vm_qcache[VMEM_NQCACHE_MAX];
	/* statistics */
	uint64_t	vm_mem_inuse;
	uint64_t	vm_mem_import;
	uint64_t	vm_mem_total;
	uint64_t	vm_mem_direct;	/* tagged, straight from the source */
	uint64_t	vm_nsegs_alloc;	/* hashed */
	uint64_t	vm_nsegs_tagged; /* allocated, not hashed */
	uint64_t	vm_nsegs_free;
	uint64_t	vm_nspans;
	uint64_t	vm_alloc;	/* includes quantum-cache allocations */
	uint64_t	vm_free;
	uint64_t	vm_seg_alloc;
	uint64_t	vm_seg_free;
	uint64_t	vm_wait;
	uint64_t	vm_fail;
	uint64_t	vm_lookup;
	uint64_t	vm_search;
	uint64_t	vm_import;
	uint64_t	vm_import_fail;
	uint64_t	vm_span_release;
	uint64_t	vm_contains;
	uint64_t	vm_contains_search;
	uint64_t	vm_bad_free;
	uint64_t	vm_wrong_size;
	uint64_t	vm_hash_rescale;
};

/* Records without a heap: tags and arena structures. */
static umem_pool_t vmem_seg_pool = UMEM_POOL_INIT(sizeof (vmem_seg_t),
    256 * 1024);
static umem_pool_t vmem_arena_pool = UMEM_POOL_INIT(
    (sizeof (vmem_t) + UMEM_CACHE_LINE - 1) & ~(size_t)(UMEM_CACHE_LINE - 1),
    64 * 1024);

static umem_lock_t vmem_list_lock = UMEM_LOCK_INITIALIZER;
static vmem_t *vmem_list;
static pthread_once_t vmem_init_once = PTHREAD_ONCE_INIT;

/* Quantum-cache atomic counters: caches run without the arena lock. */
#define	VMEM_COUNT(vmp, field)	\
	__atomic_fetch_add(&(vmp)->field, 1, __ATOMIC_RELAXED)

/*
 * ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------
 */
UMEM_EXPORT int
vmem_set_abort(int on)
{
	int old = umem_abort_on_error;

	umem_abort_on_error = (on != 0);
	return (old);
}

UMEM_EXPORT size_t
vmem_last_error(char *buf, size_t len)
{
	return (umem_last_report(buf, len));
}

/*
 * ------------------------------------------------------------------------
 * Tag reserve
 * ------------------------------------------------------------------------
 */

/* Top up the arena's tag reserve; 0 if tags cannot be had (ENOMEM). */
static int
vmem_populate(vmem_t *vmp)
{
	void *list = NULL;
	size_t got;

	if (vmp->vm_nsegfree >= VMEM_SEGS_PER_OP)
		return (1);
	got = umem_pool_alloc_list(&vmem_seg_pool, &list, VMEM_SEGS_REFILL);
	while (list != NULL) {
		vmem_seg_t *vsp = list;

		list = *(void **)list;
		vsp->vs_knext = vmp->vm_segfree;
		vmp->vm_segfree = vsp;
	}
	vmp->vm_nsegfree += got;
	return (vmp->vm_nsegfree >= VMEM_SEGS_PER_OP);
}

static vmem_seg_t *
vmem_seg_get(vmem_t *vmp)
{
	vmem_seg_t *vsp = vmp->vm_segfree;

	if (vsp == NULL)
		umem_panic("vmem: arena '%s': tag reserve exhausted",
		    vmp->vm_name);
	vmp->vm_segfree = vsp->vs_knext;
	vmp->vm_nsegfree--;
	return (vsp);
}

/*
 * The tag old is being destroyed; if the next-fit cursor points at it, move
 * the cursor to the tag that survives it (the merged segment, or the
 * element before a released span).
 */
static inline void
vmem_rotor_moved(vmem_t *vmp, vmem_seg_t *old, vmem_seg_t *survivor)
{
	if (vmp->vm_rotor_seg == old)
		vmp->vm_rotor_seg = survivor;
}

static void
vmem_seg_put(vmem_t *vmp, vmem_seg_t *vsp)
{
	vsp->vs_type = 0;
	vsp->vs_knext = vmp->vm_segfree;
	vmp->vm_segfree = vsp;
	if (++vmp->vm_nsegfree > VMEM_SEGS_KEEP) {
		vmem_seg_t *head = vmp->vm_segfree, *tail = head;
		size_t n = VMEM_SEGS_KEEP / 2;

		for (size_t i = 1; i < n; i++)
			tail = tail->vs_knext;
		vmp->vm_segfree = tail->vs_knext;
		vmp->vm_nsegfree -= n;
		/* The pool links records through word 0 (vs_start). */
		for (vmem_seg_t *s = head; s != tail; s = s->vs_knext)
			*(void **)s = s->vs_knext;
		umem_pool_free_list(&vmem_seg_pool, head, tail, n);
	}
}

/*
 * ------------------------------------------------------------------------
 * Lists
 * ------------------------------------------------------------------------
 */
static inline void
vmem_arena_insert_after(vmem_seg_t *prev, vmem_seg_t *vsp)
{
	vmem_seg_t *next = prev->vs_anext;

	vsp->vs_aprev = prev;
	vsp->vs_anext = next;
	prev->vs_anext = vsp;
	next->vs_aprev = vsp;
}

static inline void
vmem_arena_unlink(vmem_seg_t *vsp)
{
	vsp->vs_aprev->vs_anext = vsp->vs_anext;
	vsp->vs_anext->vs_aprev = vsp->vs_aprev;
}

static inline int
vmem_flist_index(uintptr_t size)
{
	return (highbit(size) - 1);
}

static inline void
vmem_freelist_insert(vmem_t *vmp, vmem_seg_t *vsp)
{
	int n = vmem_flist_index(VS_SIZE(vsp));
	vmem_seg_t *first = vmp->vm_freelist[n];

	vsp->vs_type = VMEM_FREE;
	vsp->vs_knext = first;
	vsp->vs_kprev = NULL;
	if (first != NULL)
		first->vs_kprev = vsp;
	vmp->vm_freelist[n] = vsp;
	vmp->vm_freemap |= 1ull << n;
	vmp->vm_nsegs_free++;
}

static inline void
vmem_freelist_remove(vmem_t *vmp, vmem_seg_t *vsp)
{
	if (vsp->vs_knext != NULL)
		vsp->vs_knext->vs_kprev = vsp->vs_kprev;
	if (vsp->vs_kprev != NULL) {
		vsp->vs_kprev->vs_knext = vsp->vs_knext;
	} else {
		int n = vmem_flist_index(VS_SIZE(vsp));

		vmp->vm_freelist[n] = vsp->vs_knext;
		if (vsp->vs_knext == NULL)	/* that list is now empty */
			vmp->vm_freemap &= ~(1ull << n);
	}
	vmp->vm_nsegs_free--;
}

/*
 * ------------------------------------------------------------------------
 * Allocated-segment hash
 * ------------------------------------------------------------------------
 */
static inline size_t
vmem_hash_index(const vmem_t *vmp, uintptr_t addr, int bits)
{
	uint64_t h = (uint64_t)(addr >> vmp->vm_qshift) *
	    0x9e3779b97f4a7c15ull;

	return (bits == 0 ? 0 : (size_t)(h >> (64 - bits)));
}

static inline vmem_seg_t **
vmem_hash_bucket(vmem_t *vmp, uintptr_t addr)
{
	return (&vmp->vm_hash_table[vmem_hash_index(vmp, addr,
	    vmp->vm_hash_bits)]);
}

static void
vmem_hash_table_free(vmem_t *vmp, vmem_seg_t **table, size_t nbuckets)
{
	if (table != vmp->vm_hash0)
		umem_pages_unmap(table, P2ROUNDUP(nbuckets * sizeof (void *),
		    umem_pagesize));
}

/*
 * Move up to n buckets of the old table (if a resize is in progress) into
 * the current one.  Resizing is incremental so that no single alloc or free
 * pays for rehashing the whole table: each hash operation moves a few
 * buckets, and the old table is done long before the next resize is due.
 */
static void
vmem_hash_migrate(vmem_t *vmp, size_t n)
{
	size_t oldn = vmp->vm_hash_old_mask + 1;

	while (n-- > 0 && vmp->vm_hash_moved < oldn) {
		vmem_seg_t *vsp = vmp->vm_hash_old[vmp->vm_hash_moved];

		vmp->vm_hash_old[vmp->vm_hash_moved++] = NULL;
		while (vsp != NULL) {
			vmem_seg_t *next = vsp->vs_knext;
			vmem_seg_t **bucket = vmem_hash_bucket(vmp,
			    vsp->vs_start);

			vsp->vs_knext = *bucket;
			*bucket = vsp;
			vsp = next;
		}
	}
	if (vmp->vm_hash_moved == oldn) {
		vmem_hash_table_free(vmp, vmp->vm_hash_old, oldn);
		vmp->vm_hash_old = NULL;
	}
}

#define	VMEM_HASH_MIGRATE	4	/* old buckets moved per operation */

/*
 * Start resizing the hash to about one bucket per allocated segment (the
 * illumos target, 1 << (highbit(3n + 4) - 2) buckets).
 */
static void
vmem_hash_rescale(vmem_t *vmp)
{
	uint64_t n = vmp->vm_nsegs_alloc;
	size_t nbuckets = (size_t)1 << (highbit(3 * n + 4) - 2);
	size_t oldn = vmp->vm_hash_mask + 1;
	vmem_seg_t **new;

	if (nbuckets < VMEM_HASH_INITIAL)
		nbuckets = VMEM_HASH_INITIAL;
	if (nbuckets == oldn)
		return;
	if (vmp->vm_hash_old != NULL)	/* rare: finish the last resize */
		vmem_hash_migrate(vmp, SIZE_MAX);
	if (nbuckets == VMEM_HASH_INITIAL) {
		/* Shrinking into the embedded table, which is unused now. */
		new = vmp->vm_hash0;
		(void) memset(new, 0, sizeof (vmp->vm_hash0));
	} else {
		new = umem_pages_map(P2ROUNDUP(nbuckets * sizeof (void *),
		    umem_pagesize));
		if (new == NULL)
			return;		/* keep the old table: only slower */
	}
	vmp->vm_hash_old = vmp->vm_hash_table;
	vmp->vm_hash_old_mask = vmp->vm_hash_mask;
	vmp->vm_hash_old_bits = vmp->vm_hash_bits;
	vmp->vm_hash_moved = 0;
	vmp->vm_hash_table = new;
	vmp->vm_hash_mask = nbuckets - 1;
	vmp->vm_hash_bits = highbit(nbuckets) - 1;
	vmp->vm_hash_rescale++;
}

static inline void
vmem_hash_insert(vmem_t *vmp, vmem_seg_t *vsp)
{
	vmem_seg_t **bucket;

	if (UMEM_UNLIKELY(vmp->vm_hash_old != NULL))
		vmem_hash_migrate(vmp, VMEM_HASH_MIGRATE);
	bucket = vmem_hash_bucket(vmp, vsp->vs_start);
	vsp->vs_type = VMEM_ALLOC;
	vsp->vs_knext = *bucket;
	*bucket = vsp;
	vmp->vm_nsegs_alloc++;
	vmp->vm_mem_inuse += VS_SIZE(vsp);
	/* Grow when the average chain passes 2. */
	if (UMEM_UNLIKELY(vmp->vm_nsegs_alloc > 2 * (vmp->vm_hash_mask + 1)))
		vmem_hash_rescale(vmp);
}

/* Find addr's link in one table's chain; counts links followed. */
static inline vmem_seg_t **
vmem_hash_find(vmem_t *vmp, vmem_seg_t **prev, uintptr_t addr)
{
	vmem_seg_t *vsp;

	for (vsp = *prev; vsp != NULL; vsp = *prev) {
		vmp->vm_lookup++;
		if (vsp->vs_start == addr)
			return (prev);
		prev = &vsp->vs_knext;
	}
	return (NULL);
}

/*
 * Remove the allocated segment starting at addr, checking its size.  NULL
 * (after a report) if addr is not allocated or size is wrong.
 */
static vmem_seg_t *
vmem_hash_delete(vmem_t *vmp, uintptr_t addr, size_t size)
{
	vmem_seg_t **prev, *vsp;

	if (UMEM_UNLIKELY(vmp->vm_hash_old != NULL))
		vmem_hash_migrate(vmp, VMEM_HASH_MIGRATE);
	prev = vmem_hash_find(vmp, vmem_hash_bucket(vmp, addr), addr);
	if (prev == NULL && vmp->vm_hash_old != NULL) {
		size_t i = vmem_hash_index(vmp, addr, vmp->vm_hash_old_bits);

		if (i >= vmp->vm_hash_moved)
			prev = vmem_hash_find(vmp, &vmp->vm_hash_old[i], addr);
	}
	if (prev == NULL) {
		vmp->vm_bad_free++;
		umem_error("vmem: arena '%s': bad free of %p (size %zu): "
		    "not allocated, or already freed", vmp->vm_name,
		    (void *)addr, size);
		return (NULL);
	}
	vsp = *prev;
	if (VS_SIZE(vsp) != size) {
		vmp->vm_wrong_size++;
		umem_error("vmem: arena '%s': wrong size: free of %p with "
		    "size %zu, but it was allocated with size %zu",
		    vmp->vm_name, (void *)addr, size, (size_t)VS_SIZE(vsp));
		return (NULL);
	}
	*prev = vsp->vs_knext;
	vmp->vm_nsegs_alloc--;
	vmp->vm_mem_inuse -= size;
	/* Shrink when the average chain falls under 1/8. */
	if (UMEM_UNLIKELY(vmp->vm_hash_mask + 1 > VMEM_HASH_INITIAL &&
	    vmp->vm_nsegs_alloc < (vmp->vm_hash_mask + 1) / 8))
		vmem_hash_rescale(vmp);
	return (vsp);
}

/* Longest chain, both tables (statistics). */
static uint64_t
vmem_hash_maxchain(vmem_t *vmp)
{
	uint64_t maxchain = 0;

	for (int t = 0; t < 2; t++) {
		vmem_seg_t **table = t == 0 ? vmp->vm_hash_table :
		    vmp->vm_hash_old;
		size_t i = t == 0 ? 0 : vmp->vm_hash_moved;
		size_t n = t == 0 ? vmp->vm_hash_mask + 1 :
		    vmp->vm_hash_old_mask + 1;

		if (table == NULL)
			continue;
		for (; i < n; i++) {
			uint64_t len = 0;

			for (vmem_seg_t *v = table[i]; v != NULL;
			    v = v->vs_knext)
				len++;
			if (len > maxchain)
				maxchain = len;
		}
	}
	return (maxchain);
}

/*
 * ------------------------------------------------------------------------
 * Spans
 * ------------------------------------------------------------------------
 */

/* Add the span [addr, addr + size) with one free segment. Tags reserved. */
static vmem_seg_t *
vmem_span_create(vmem_t *vmp, uintptr_t addr, size_t size, int import,
    void *srctag)
{
	vmem_seg_t *span = vmem_seg_get(vmp), *vsp = vmem_seg_get(vmp);
	vmem_seg_t *before = &vmp->vm_seg0;	/* span list position */
	vmem_seg_t *aprev;

	/*
	 * Imported spans go at the end in constant time.  Spans added by the
	 * caller are kept in address order, so next fit walks an added range
	 * in order; that walk is O(spans), and vmem_add() is rare.
	 */
	if (!import) {
		for (before = vmp->vm_seg0.vs_knext; before != &vmp->vm_seg0;
		    before = before->vs_knext) {
			if (!before->vs_import && before->vs_start > addr)
				break;
		}
	}
	aprev = before->vs_aprev;

	span->vs_start = addr;
	span->vs_end = addr + size;
	span->vs_type = VMEM_SPAN;
	span->vs_import = (uint8_t)import;
	span->vs_srctag = srctag;
	span->vs_knext = before;
	span->vs_kprev = before->vs_kprev;
	before->vs_kprev->vs_knext = span;
	before->vs_kprev = span;
	vmem_arena_insert_after(aprev, span);

	vsp->vs_start = addr;
	vsp->vs_end = addr + size;
	vsp->vs_import = 0;
	vmem_arena_insert_after(span, vsp);
	vmem_freelist_insert(vmp, vsp);

	vmp->vm_nspans++;
	vmp->vm_mem_total += size;
	if (import)
		vmp->vm_mem_import += size;
	return (vsp);
}

/* The span marker in front of vsp (skipping markers), and behind it. */
static inline vmem_seg_t *
vmem_prev_nonmarker(vmem_seg_t *vsp)
{
	vmem_seg_t *p = vsp->vs_aprev;

	while (p->vs_type & VMEM_MARKER)
		p = p->vs_aprev;
	return (p);
}

static inline vmem_seg_t *
vmem_next_nonmarker(vmem_seg_t *vsp)
{
	vmem_seg_t *n = vsp->vs_anext;

	while (n->vs_type & VMEM_MARKER)
		n = n->vs_anext;
	return (n);
}

/* Does the arena import from its source, and give back (any pair)? */
static inline int
vmem_source_imports(const vmem_t *vmp)
{
	return (vmp->vm_source_alloc != NULL ||
	    vmp->vm_source_ximport != NULL || vmp->vm_source_talloc != NULL);
}

static inline int
vmem_source_gives(const vmem_t *vmp)
{
	return (vmp->vm_source_free != NULL || vmp->vm_source_tfree != NULL);
}

/*
 * If the free segment vsp is a whole imported span and the arena can give
 * spans back, destroy the span and return 1 with its range in *addrp,
 * *sizep: the caller calls the source's free function after dropping the
 * lock.  Markers inside the span stay where they are in the list.
 */
static int
vmem_span_release_check(vmem_t *vmp, vmem_seg_t *vsp, uintptr_t *addrp,
    size_t *sizep, void **tagp)
{
	vmem_seg_t *span;

	if (!vmem_source_gives(vmp))
		return (0);
	span = vmem_prev_nonmarker(vsp);
	if (span->vs_type != VMEM_SPAN ||
	    !span->vs_import ||
	    vmem_next_nonmarker(vsp)->vs_type != VMEM_SPAN ||
	    span->vs_start != vsp->vs_start || span->vs_end != vsp->vs_end)
		return (0);

	vmem_freelist_remove(vmp, vsp);
	vmem_rotor_moved(vmp, vsp, vmem_prev_nonmarker(span));
	vmem_rotor_moved(vmp, span, vmem_prev_nonmarker(span));
	vmem_arena_unlink(vsp);
	vmem_arena_unlink(span);
	span->vs_kprev->vs_knext = span->vs_knext;
	span->vs_knext->vs_kprev = span->vs_kprev;
	*addrp = span->vs_start;
	*sizep = VS_SIZE(span);
	*tagp = span->vs_srctag;
	vmp->vm_nspans--;
	vmp->vm_mem_total -= *sizep;
	vmp->vm_mem_import -= *sizep;
	vmp->vm_span_release++;
	vmem_seg_put(vmp, vsp);
	vmem_seg_put(vmp, span);
	return (1);
}

/*
 * Take a marker (rotor or walker) out of the arena list.  If it separated
 * two free segments they are merged; the merged segment is returned (so
 * the caller can check for a free span), else NULL.
 */
static vmem_seg_t *
vmem_marker_unlink(vmem_t *vmp, vmem_seg_t *marker)
{
	vmem_seg_t *prev = marker->vs_aprev, *next = marker->vs_anext;

	vmem_arena_unlink(marker);
	if (prev->vs_type != VMEM_FREE || next->vs_type != VMEM_FREE)
		return (NULL);
	vmem_freelist_remove(vmp, prev);
	vmem_freelist_remove(vmp, next);
	vmem_arena_unlink(next);
	prev->vs_end = next->vs_end;
	vmem_rotor_moved(vmp, next, prev);
	vmem_seg_put(vmp, next);
	vmem_freelist_insert(vmp, prev);
	return (prev);
}

/*
 * ------------------------------------------------------------------------
 * Allocation
 * ------------------------------------------------------------------------
 */

/*
 * Carve [addr, addr + size) out of the free segment vsp (tags reserved)
 * and return the allocated segment.
 */
static vmem_seg_t *
vmem_seg_alloc(vmem_t *vmp, vmem_seg_t *vsp, uintptr_t addr, size_t size,
    int hashed)
{
	uintptr_t vs_start = vsp->vs_start, vs_end = vsp->vs_end;
	uintptr_t addr_end = addr + size;
	vmem_seg_t *new;

	if (addr == vs_start && addr_end != vs_end &&
	    highbit(vs_end - addr_end) == highbit(vs_end - vs_start)) {
		/* Cheap path: the remainder stays on the same freelist. */
		new = vmem_seg_get(vmp);
		new->vs_start = addr;
		new->vs_end = addr_end;
		vsp->vs_start = addr_end;
		vmem_arena_insert_after(vsp->vs_aprev, new);
		if (vmp->vm_rotor_seg == vsp && vmp->vm_rotor_addr < addr_end)
			vmp->vm_rotor_seg = new;
	} else {
		vmem_freelist_remove(vmp, vsp);
		if (addr_end != vs_end) {
			vmem_seg_t *right = vmem_seg_get(vmp);

			right->vs_start = addr_end;
			right->vs_end = vs_end;
			vmem_arena_insert_after(vsp, right);
			vmem_freelist_insert(vmp, right);
		}
		if (addr != vs_start) {
			vmem_seg_t *left = vmem_seg_get(vmp);

			left->vs_start = vs_start;
			left->vs_end = addr;
			vmem_arena_insert_after(vsp->vs_aprev, left);
			vmem_freelist_insert(vmp, left);
		}
		vsp->vs_start = addr;
		vsp->vs_end = addr_end;
		new = vsp;
		if (vmp->vm_rotor_seg == vsp) {
			/* Keep the cursor on the piece holding its address. */
			uintptr_t r = vmp->vm_rotor_addr;

			if (r < addr && addr != vs_start)
				vmp->vm_rotor_seg = vsp->vs_aprev;
			else if (r >= addr_end && addr_end != vs_end)
				vmp->vm_rotor_seg = vsp->vs_anext;
		}
	}
	new->vs_import = 0;
	new->vs_tagged = !hashed;
	if (hashed) {
		vmem_hash_insert(vmp, new);
	} else {
		new->vs_type = VMEM_ALLOC;
		new->vs_knext = NULL;
		vmp->vm_nsegs_tagged++;
		vmp->vm_mem_inuse += VS_SIZE(new);
	}
	vmp->vm_seg_alloc++;
	return (new);
}

typedef struct vmem_req {
	size_t		vr_size;
	size_t		vr_align;
	size_t		vr_phase;
	size_t		vr_nocross;
	uintptr_t	vr_min;		/* lowest allowed address */
	uintptr_t	vr_max;		/* one past the highest; 0 = none */
	int		vr_flags;
	vmem_seg_t	**vr_tagp;	/* vmem_xalloc_tag: the tag, unhashed */
} vmem_req_t;

/*
 * Does the request fit in free segment vsp?  If so, the address to use is
 * put in *addrp (lowest fitting, or highest with VM_ENDALLOC).
 */
static int
vmem_seg_fits(const vmem_req_t *rq, const vmem_seg_t *vsp, uintptr_t *addrp)
{
	uintptr_t lo = vsp->vs_start, hi = vsp->vs_end, t;
	size_t size = rq->vr_size, align = rq->vr_align, phase = rq->vr_phase;
	size_t nocross = rq->vr_nocross;

	if (lo < rq->vr_min)
		lo = rq->vr_min;
	if (rq->vr_max != 0 && hi > rq->vr_max)
		hi = rq->vr_max;
	if (hi <= lo || hi - lo < size)
		return (0);

	if (!(rq->vr_flags & VM_ENDALLOC)) {
		t = P2PHASEUP(lo, align, phase);
		if (t < lo)
			return (0);		/* wrapped past the top */
		if (nocross != 0 && P2BOUNDARY(t, size, nocross)) {
			uintptr_t u = t + P2ROUNDUP(P2NPHASE(t, nocross),
			    align);
			if (u < t)
				return (0);
			t = u;
		}
		if (t > hi - size)
			return (0);
	} else {
		if (hi - size < phase)
			return (0);
		t = P2ALIGN(hi - size - phase, align) + phase;
		if (nocross != 0 && P2BOUNDARY(t, size, nocross)) {
			uintptr_t b = P2ALIGN(t + size - 1, nocross);

			if (b < size + phase)
				return (0);
			t = P2ALIGN(b - size - phase, align) + phase;
		}
		if (t < lo)
			return (0);
	}
	*addrp = t;
	return (1);
}

/*
 * The first free segment of the lists in map that fits the request, or
 * with bestfit the smallest one of the first list where any fits.
 */
static vmem_seg_t *
vmem_fit_lists(vmem_t *vmp, const vmem_req_t *rq, uint64_t map, int bestfit,
    uintptr_t *addrp)
{
	vmem_seg_t *best = NULL;
	uintptr_t bestaddr = 0, addr;

	while (map != 0) {
		int i = lowbit(map) - 1;
		vmem_seg_t *vsp;

		map &= map - 1;
		for (vsp = vmp->vm_freelist[i]; vsp != NULL;
		    vsp = vsp->vs_knext) {
			vmp->vm_search++;
			if (!vmem_seg_fits(rq, vsp, &addr))
				continue;
			if (!bestfit) {
				*addrp = addr;
				return (vsp);
			}
			if (best == NULL || VS_SIZE(vsp) < VS_SIZE(best)) {
				best = vsp;
				bestaddr = addr;
				if (VS_SIZE(vsp) == rq->vr_size)
					break;
			}
		}
		if (best != NULL) {
			*addrp = bestaddr;
			return (best);
		}
	}
	return (NULL);
}

/*
 * Find a free segment for the request under the arena's policy, or NULL.
 * The instant fit looks in the lists whose segments surely fit (counting
 * the alignment), then, as a last resort, in the lists below them.
 */
static vmem_seg_t *
vmem_fit(vmem_t *vmp, const vmem_req_t *rq, uintptr_t *addrp)
{
	size_t size = rq->vr_size;
	/* An aligned request surely fits a segment of sure bytes. */
	size_t sure = size + rq->vr_align - vmp->vm_quantum;
	int n = vmem_flist_index(size);
	int instant = !(rq->vr_flags & (VM_BESTFIT | VM_FIRSTFIT));
	int first = n;
	uint64_t sure_lists;
	vmem_seg_t *vsp;

	if (instant) {
		if (sure < size)
			sure = SIZE_MAX;	/* (wrapped: none surely fits) */
		first = vmem_flist_index(sure) + !IS_P2(sure);
	}
	sure_lists = first < VMEM_FREELISTS ? ~0ull << first : 0;
	if ((vsp = vmem_fit_lists(vmp, rq, vmp->vm_freemap & sure_lists,
	    (rq->vr_flags & VM_BESTFIT) != 0, addrp)) != NULL || first == n)
		return (vsp);
	return (vmem_fit_lists(vmp, rq, vmp->vm_freemap & (~0ull << n) &
	    ~sure_lists, 0, addrp));
}

/* Give an imported range back to the source (no lock held). */
static void
vmem_source_give(vmem_t *vmp, uintptr_t addr, size_t size, void *tag)
{
	if (vmp->vm_source_tfree != NULL)
		vmp->vm_source_tfree(vmp->vm_source, (void *)addr, size, tag);
	else
		vmp->vm_source_free(vmp->vm_source, (void *)addr, size);
}

/* The same, from under vm_lock. */
static void
vmem_source_release(vmem_t *vmp, uintptr_t addr, size_t size, void *tag)
{
	umem_unlock(&vmp->vm_lock);
	vmem_source_give(vmp, addr, size, tag);
	umem_lock(&vmp->vm_lock);
}

/*
 * Import a span big enough for the request.  Called and returns with the
 * lock held (dropped meanwhile).  1 on success.
 */
static int
vmem_import(vmem_t *vmp, const vmem_req_t *rq, int vmflag)
{
	size_t q = vmp->vm_quantum, srcq = q, slack, asize;
	void *addr, *tag = NULL;

	if (vmp->vm_source != NULL && vmp->vm_source->vm_quantum > srcq)
		srcq = vmp->vm_source->vm_quantum;
	/* An import is srcq-aligned: ask for room to align within it. */
	/* (A tagged import aligns itself.) */
	slack = rq->vr_align <= srcq || vmp->vm_source_talloc != NULL ?
	    rq->vr_phase : rq->vr_align - q + rq->vr_phase;
	asize = rq->vr_size + slack;
	if (asize < rq->vr_size || P2ROUNDUP(asize, srcq) < asize)
		return (0);
	asize = P2ROUNDUP(asize, srcq);

	umem_unlock(&vmp->vm_lock);
	if (vmp->vm_source_ximport != NULL) {
		size_t want = asize;

		addr = vmp->vm_source_ximport(vmp->vm_source, &asize,
		    vmflag & VM_KMFLAGS);
		if (addr != NULL && (asize < want || !IS_P2ALIGNED(asize, q)))
			umem_panic("vmem: arena '%s': importer returned size "
			    "%zu for a request of %zu", vmp->vm_name, asize,
			    want);
	} else if (vmp->vm_source_talloc != NULL) {
		addr = vmp->vm_source_talloc(vmp->vm_source, asize,
		    rq->vr_align > srcq ? rq->vr_align : 0,
		    vmflag & VM_KMFLAGS, &tag);
	} else {
		addr = vmp->vm_source_alloc(vmp->vm_source, asize,
		    vmflag & VM_KMFLAGS);
	}
	umem_lock(&vmp->vm_lock);

	if (addr == NULL) {
		vmp->vm_import_fail++;
		return (0);
	}
	if (!IS_P2ALIGNED(addr, q) || (uintptr_t)addr + asize <
	    (uintptr_t)addr)
		umem_panic("vmem: arena '%s': import of %zu returned %p, not "
		    "aligned to the quantum", vmp->vm_name, asize, addr);
	if (!vmem_populate(vmp)) {
		/* No tags to describe it: give it straight back. */
		if (vmem_source_gives(vmp))
			vmem_source_release(vmp, (uintptr_t)addr, asize, tag);
		vmp->vm_import_fail++;
		return (0);
	}
	(void) vmem_span_create(vmp, (uintptr_t)addr, asize, 1, tag);
	vmp->vm_import++;
	return (1);
}

static void
vmem_fail(vmem_t *vmp, int vmflag, size_t size)
{
	if (vmflag & VMEM_TRY)
		return;			/* a probe, not a failure */
	VMEM_COUNT(vmp, vm_fail);
	if (vmflag & VM_PANIC)
		umem_panic("vmem: arena '%s': cannot allocate %zu (VM_PANIC)",
		    vmp->vm_name, size);
	errno = ENOMEM;
}

/* Wait for a free (or, when imports may succeed later, a while). */
static void
vmem_wait(vmem_t *vmp)
{
	vmp->vm_wait++;
	vmp->vm_nwaiters++;
	umem_cond_timedwait_ns(&vmp->vm_cv, &vmp->vm_lock,
	    VMEM_SLEEP_RETRY_NS);
	vmp->vm_nwaiters--;
}

/*
 * An allocation found nothing (lock held): caches may hold what it needs,
 * so ask them back once; then wait (VM_SLEEP) or fail.  1 to try again
 * (lock held), 0 if failed (lock dropped, failure counted).
 */
static int
vmem_retry(vmem_t *vmp, size_t size, int vmflag, int *reapedp)
{
	if (!*reapedp && vmem_qcache_ops.qc_reap != NULL &&
	    !(vmflag & VMEM_TRY)) {
		*reapedp = 1;
		umem_unlock(&vmp->vm_lock);
		vmem_qcache_ops.qc_reap();
		umem_lock(&vmp->vm_lock);
		return (1);
	}
	if (vmflag & VM_NOSLEEP) {
		umem_unlock(&vmp->vm_lock);
		vmem_fail(vmp, vmflag, size);
		return (0);
	}
	vmem_wait(vmp);
	return (1);
}

/*
 * The segment-list allocator behind vmem_xalloc() and vmem_alloc().
 * Arguments are validated and rounded.
 */
static void *
vmem_xalloc_locked(vmem_t *vmp, const vmem_req_t *rq, int vmflag)
{
	int can_import = vmem_source_imports(vmp) && rq->vr_nocross == 0 &&
	    rq->vr_min == 0 && rq->vr_max == 0;
	int reaped = 0;
	vmem_seg_t *vsp;
	uintptr_t addr;

	umem_lock(&vmp->vm_lock);
	for (;;) {
		if (!vmem_populate(vmp)) {
			umem_unlock(&vmp->vm_lock);
			vmem_fail(vmp, vmflag, rq->vr_size);
			return (NULL);
		}
		vsp = vmem_fit(vmp, rq, &addr);
		if (vsp != NULL)
			break;
		if (can_import && vmem_import(vmp, rq, vmflag))
			continue;
		if (!vmem_retry(vmp, rq->vr_size, vmflag, &reaped))
			return (NULL);
	}
	vsp = vmem_seg_alloc(vmp, vsp, addr, rq->vr_size, rq->vr_tagp == NULL);
	if (rq->vr_tagp != NULL)
		*rq->vr_tagp = vsp;
	if (vmflag & VM_NEXTFIT) {
		/* A next-fit request that had to import or wait. */
		vmp->vm_rotor_seg = vsp;
		vmp->vm_rotor_addr = addr + rq->vr_size;
	}
	VMEM_COUNT(vmp, vm_alloc);
	umem_unlock(&vmp->vm_lock);
	return ((void *)addr);
}

/* Round size to the quantum; 0 (with errno) if it is 0 or overflows. */
static inline size_t
vmem_roundsize(vmem_t *vmp, size_t size)
{
	size_t r = P2ROUNDUP(size, vmp->vm_quantum);

	if (size == 0) {
		errno = EINVAL;
		return (0);
	}
	if (r < size) {
		errno = ENOMEM;
		return (0);
	}
	return (r);
}

/* A tag from the source, handed out by vmem_direct_alloc(). */
#define	VMEM_TAG_DIRECT		((uintptr_t)1)

/* vmem_direct_alloc()'s source failed: 1 to try again (vmem_retry). */
UMEM_TEXT_COLD static int
vmem_direct_retry(vmem_t *vmp, size_t size, int vmflag, int *reapedp)
{
	umem_lock(&vmp->vm_lock);
	vmp->vm_import_fail++;
	if (!vmem_retry(vmp, size, vmflag, reapedp))
		return (0);
	umem_unlock(&vmp->vm_lock);
	return (1);
}

/*
 * A tagged allocation of an arena with a tagged import: the source's range
 * and tag, marked (see above).  Fails, waits and reaps as an import would.
 */
static void *
vmem_direct_alloc(vmem_t *vmp, const vmem_req_t *rq, int vmflag)
{
	size_t srcq = vmp->vm_source->vm_quantum;
	int reaped = 0;
	void *addr, *tag = NULL;

	while ((addr = vmp->vm_source_talloc(vmp->vm_source, rq->vr_size,
	    rq->vr_align > srcq ? rq->vr_align : 0, vmflag & VM_KMFLAGS,
	    &tag)) == NULL)
		if (!vmem_direct_retry(vmp, rq->vr_size, vmflag, &reaped))
			return (NULL);
	umem_lock(&vmp->vm_lock);
	vmp->vm_mem_direct += rq->vr_size;
	vmp->vm_import++;
	VMEM_COUNT(vmp, vm_alloc);
	umem_unlock(&vmp->vm_lock);
	*rq->vr_tagp = (vmem_seg_t *)((uintptr_t)tag | VMEM_TAG_DIRECT);
	return (addr);
}

/* vmem_xalloc(), and vmem_xalloc_tag() with tagp != NULL. */
static void *
vmem_xalloc_common(vmem_t *vmp, size_t size, size_t align, size_t phase,
    size_t nocross, void *minaddr, void *maxaddr, int vmflag,
    vmem_seg_t **tagp)
{
	size_t q = vmp->vm_quantum;
	vmem_req_t rq;

	if (align == 0)
		align = q;
	if ((size = vmem_roundsize(vmp, size)) == 0) {
		VMEM_COUNT(vmp, vm_fail);
		return (NULL);		/* errno set: EINVAL or ENOMEM */
	}
	if (!IS_P2(align) || P2PHASE(align, q) != 0 ||
	    P2PHASE(phase, q) != 0 || phase >= align ||
	    P2PHASE(nocross, q) != 0 || !IS_P2(nocross) ||
	    (nocross != 0 && (align > nocross || size > nocross ||
	    P2ROUNDUP(phase + size, align) > nocross)) ||
	    (maxaddr != NULL && (uintptr_t)minaddr >= (uintptr_t)maxaddr)) {
		VMEM_COUNT(vmp, vm_fail);
		errno = EINVAL;
		return (NULL);
	}
	rq.vr_size = size;
	rq.vr_align = align;
	rq.vr_phase = phase;
	rq.vr_nocross = nocross;
	rq.vr_min = P2ROUNDUP((uintptr_t)minaddr, q);
	rq.vr_max = P2ALIGN((uintptr_t)maxaddr, q);
	rq.vr_flags = vmflag;
	rq.vr_tagp = tagp;
	if (maxaddr != NULL && (rq.vr_max <= rq.vr_min ||
	    rq.vr_max - rq.vr_min < size)) {
		/* The window cannot hold the request at all. */
		VMEM_COUNT(vmp, vm_fail);
		errno = EINVAL;
		return (NULL);
	}
	if (tagp != NULL && vmp->vm_source_talloc != NULL && phase == 0 &&
	    nocross == 0 && minaddr == NULL && maxaddr == NULL)
		return (vmem_direct_alloc(vmp, &rq, vmflag));
	return (vmem_xalloc_locked(vmp, &rq, vmflag));
}

UMEM_EXPORT void *
vmem_xalloc(vmem_t *vmp, size_t size, size_t align, size_t phase,
    size_t nocross, void *minaddr, void *maxaddr, int vmflag)
{
	return (vmem_xalloc_common(vmp, size, align, phase, nocross, minaddr,
	    maxaddr, vmflag, NULL));
}

/*
 * Next fit.  The rotor is a cursor: vm_rotor_seg, the segment that holds
 * (or precedes) vm_rotor_addr, the address just past the last next-fit
 * allocation.  A search takes the first free space at or after the rotor
 * address, walking the arena list round once.  The cursor is not a marker
 * in the list, so it never blocks coalescing; whoever destroys the tag it
 * points at moves it to the surviving neighbour (vmem_rotor_moved()).
 */
static void *
vmem_nextfit_alloc(vmem_t *vmp, size_t size, int vmflag)
{
	vmem_seg_t *start, *vsp;
	uintptr_t addr, raddr;

	umem_lock(&vmp->vm_lock);
	if (!vmem_populate(vmp)) {
		umem_unlock(&vmp->vm_lock);
		vmem_fail(vmp, vmflag, size);
		return (NULL);
	}
	start = vmp->vm_rotor_seg != NULL ? vmp->vm_rotor_seg : &vmp->vm_seg0;
	raddr = vmp->vm_rotor_addr;
	vsp = start;
	addr = raddr > vsp->vs_start ? raddr : vsp->vs_start;
	if (vsp->vs_type == VMEM_FREE && addr < vsp->vs_end &&
	    vsp->vs_end - addr >= size) {
		/* Continue inside the free segment at the cursor. */
	} else {
		for (vsp = start->vs_anext; vsp != start; vsp = vsp->vs_anext) {
			vmp->vm_search++;
			if (vsp->vs_type == VMEM_FREE && VS_SIZE(vsp) >= size)
				break;
		}
		if (vsp == start && !(start->vs_type == VMEM_FREE &&
		    VS_SIZE(start) >= size)) {
			/* A whole circle: let the general path import/wait. */
			vmem_req_t rq = { size, vmp->vm_quantum, 0, 0, 0, 0,
			    vmflag, NULL };

			umem_unlock(&vmp->vm_lock);
			return (vmem_xalloc_locked(vmp, &rq, vmflag));
		}
		addr = vsp->vs_start;
	}
	vsp = vmem_seg_alloc(vmp, vsp, addr, size, 1);
	vmp->vm_rotor_seg = vsp;
	vmp->vm_rotor_addr = addr + size;
	VMEM_COUNT(vmp, vm_alloc);
	umem_unlock(&vmp->vm_lock);
	return ((void *)addr);
}

UMEM_EXPORT void *
vmem_alloc(vmem_t *vmp, size_t size, int vmflag)
{
	vmem_req_t rq;

	if (size - 1 < vmp->vm_qcache_max) {
		/* size <= qcache_max and size != 0: a quantum cache. */
		void *cp = vmp->vm_qcache[(size - 1) >> vmp->vm_qshift];
		void *buf = vmem_qcache_ops.qc_alloc(cp, vmflag);

		if (buf != NULL)
			VMEM_COUNT(vmp, vm_alloc);
		else
			vmem_fail(vmp, vmflag, size);
		return (buf);
	}
	if ((size = vmem_roundsize(vmp, size)) == 0) {
		VMEM_COUNT(vmp, vm_fail);
		return (NULL);
	}
	if (vmflag & VM_NEXTFIT)
		return (vmem_nextfit_alloc(vmp, size, vmflag));
	rq.vr_size = size;
	rq.vr_align = vmp->vm_quantum;
	rq.vr_phase = 0;
	rq.vr_nocross = 0;
	rq.vr_min = 0;
	rq.vr_max = 0;
	rq.vr_flags = vmflag;
	rq.vr_tagp = NULL;
	return (vmem_xalloc_locked(vmp, &rq, vmflag));
}

/*
 * ------------------------------------------------------------------------
 * Free
 * ------------------------------------------------------------------------
 */
static void vmem_seg_free_locked(vmem_t *vmp, vmem_seg_t *vsp);

UMEM_EXPORT void
vmem_xfree(vmem_t *vmp, void *vaddr, size_t size)
{
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_seg_t *vsp;
	size_t rounded = P2ROUNDUP(size, vmp->vm_quantum);

	umem_lock(&vmp->vm_lock);
	if (size == 0 || rounded < size) {
		vmp->vm_wrong_size++;
		umem_unlock(&vmp->vm_lock);
		umem_error("vmem: arena '%s': wrong size: free of %p with "
		    "size %zu", vmp->vm_name, vaddr, size);
		return;
	}
	vsp = vmem_hash_delete(vmp, addr, rounded);
	if (vsp == NULL) {
		umem_unlock(&vmp->vm_lock);
		return;
	}
	vmem_seg_free_locked(vmp, vsp);
}

/*
 * Free the allocated segment vsp, out of the hash (or never in it):
 * coalesce, release an empty imported span, wake waiters, drop vm_lock.
 */
static void
vmem_seg_free_locked(vmem_t *vmp, vmem_seg_t *vsp)
{
	uintptr_t raddr;
	vmem_seg_t *next, *prev;
	size_t rsize;
	void *rtag;

	VMEM_COUNT(vmp, vm_free);
	vmp->vm_seg_free++;

	next = vsp->vs_anext;
	if (next->vs_type == VMEM_FREE) {
		vmem_freelist_remove(vmp, next);
		vmem_arena_unlink(next);
		vsp->vs_end = next->vs_end;
		vmem_rotor_moved(vmp, next, vsp);
		vmem_seg_put(vmp, next);
	}
	prev = vsp->vs_aprev;
	if (prev->vs_type == VMEM_FREE) {
		vmem_freelist_remove(vmp, prev);
		vmem_arena_unlink(vsp);
		prev->vs_end = vsp->vs_end;
		vmem_rotor_moved(vmp, vsp, prev);
		vmem_seg_put(vmp, vsp);
		vsp = prev;
	}
	vmem_freelist_insert(vmp, vsp);
	if (vmem_span_release_check(vmp, vsp, &raddr, &rsize, &rtag))
		vmem_source_release(vmp, raddr, rsize, rtag);
	if (vmp->vm_nwaiters != 0)
		(void) pthread_cond_broadcast(&vmp->vm_cv);
	umem_unlock(&vmp->vm_lock);
}

UMEM_EXPORT void
vmem_free(vmem_t *vmp, void *addr, size_t size)
{
	if (size - 1 < vmp->vm_qcache_max) {
		void *cp = vmp->vm_qcache[(size - 1) >> vmp->vm_qshift];

		vmem_qcache_ops.qc_free(cp, addr);
		VMEM_COUNT(vmp, vm_free);
		return;
	}
	vmem_xfree(vmp, addr, size);
}

/*
 * The slab layer's pair: an aligned allocation whose boundary tag the
 * caller keeps instead of vmem's hash, so that the free needs no lookup
 * (the bucket and chain were cold misses on every slab destruction, and
 * the hash's growth migrated every slab's tag).  Quantum caches are
 * bypassed, as by vmem_xalloc.
 */
void *
vmem_xalloc_tag(vmem_t *vmp, size_t size, size_t align, int vmflag,
    void **tagp)
{
	return (vmem_xalloc_common(vmp, size, align, 0, 0, NULL, NULL, vmflag,
	    (vmem_seg_t **)tagp));
}

UMEM_TEXT_COLD void *
vmem_xalloc_tag_in(vmem_t *vmp, size_t size, size_t align, void *minaddr,
    void *maxaddr, int vmflag, void **tagp)
{
	return (vmem_xalloc_common(vmp, size, align, 0, 0, minaddr, maxaddr,
	    vmflag, (vmem_seg_t **)tagp));
}

void
vmem_xfree_tag(vmem_t *vmp, void *vaddr, size_t size, void *tag)
{
	vmem_seg_t *vsp = tag;
	size_t rounded = P2ROUNDUP(size, vmp->vm_quantum);

	if ((uintptr_t)tag & VMEM_TAG_DIRECT) {
		umem_lock(&vmp->vm_lock);
		vmp->vm_mem_direct -= rounded;
		VMEM_COUNT(vmp, vm_free);
		umem_unlock(&vmp->vm_lock);
		vmp->vm_source_tfree(vmp->vm_source, vaddr, rounded,
		    (void *)((uintptr_t)tag & ~VMEM_TAG_DIRECT));
		return;
	}
	umem_lock(&vmp->vm_lock);
	if (vsp == NULL || vsp->vs_type != VMEM_ALLOC || !vsp->vs_tagged ||
	    vsp->vs_start != (uintptr_t)vaddr || VS_SIZE(vsp) != rounded) {
		vmp->vm_bad_free++;
		umem_unlock(&vmp->vm_lock);
		umem_error("vmem: arena '%s': bad free of %p (size %zu): "
		    "not the allocation of its tag", vmp->vm_name, vaddr, size);
		return;
	}
	vsp->vs_tagged = 0;
	vmp->vm_nsegs_tagged--;
	vmp->vm_mem_inuse -= rounded;
	vmem_seg_free_locked(vmp, vsp);
}

/*
 * Resize the allocated segment [addr, addr + oldsize) in place to newsize:
 * grow into the free segment after it, or give the tail back.  0, or -1
 * (errno ENOMEM: no room; EINVAL: not an allocated segment of that size).
 * For the malloc layer's realloc.  Bypasses quantum caches, like xalloc.
 */
int
vmem_resize(vmem_t *vmp, void *vaddr, size_t oldsize, size_t newsize)
{
	uintptr_t addr = (uintptr_t)vaddr;
	size_t q = vmp->vm_quantum, delta;
	vmem_seg_t **prev, *vsp, *next;

	oldsize = P2ROUNDUP(oldsize, q);
	newsize = P2ROUNDUP(newsize, q);
	if (newsize == 0 || oldsize == 0) {
		errno = EINVAL;
		return (-1);
	}
	umem_lock(&vmp->vm_lock);
	if (vmp->vm_hash_old != NULL)
		vmem_hash_migrate(vmp, SIZE_MAX);
	prev = vmem_hash_find(vmp, vmem_hash_bucket(vmp, addr), addr);
	if (prev == NULL || VS_SIZE(*prev) != oldsize) {
		umem_unlock(&vmp->vm_lock);
		errno = EINVAL;
		return (-1);
	}
	vsp = *prev;
	next = vsp->vs_anext;
	if (newsize > oldsize) {
		delta = newsize - oldsize;
		if (next->vs_type != VMEM_FREE || VS_SIZE(next) < delta) {
			umem_unlock(&vmp->vm_lock);
			errno = ENOMEM;
			return (-1);
		}
		vmem_freelist_remove(vmp, next);
		if (VS_SIZE(next) == delta) {
			vmem_arena_unlink(next);
			vmem_rotor_moved(vmp, next, vsp);
			vmem_seg_put(vmp, next);
		} else {
			next->vs_start += delta;
			vmem_freelist_insert(vmp, next);
		}
		vsp->vs_end += delta;
		vmp->vm_mem_inuse += delta;
	} else if (newsize < oldsize) {
		delta = oldsize - newsize;
		if (next->vs_type != VMEM_FREE && !vmem_populate(vmp)) {
			umem_unlock(&vmp->vm_lock);
			errno = ENOMEM;
			return (-1);
		}
		vsp->vs_end -= delta;
		vmp->vm_mem_inuse -= delta;
		if (next->vs_type == VMEM_FREE) {
			vmem_freelist_remove(vmp, next);
			next->vs_start -= delta;
		} else {
			next = vmem_seg_get(vmp);
			next->vs_start = vsp->vs_end;
			next->vs_end = vsp->vs_end + delta;
			next->vs_import = 0;
			vmem_arena_insert_after(vsp, next);
		}
		vmem_freelist_insert(vmp, next);
		if (vmp->vm_nwaiters != 0)
			(void) pthread_cond_broadcast(&vmp->vm_cv);
	}
	umem_unlock(&vmp->vm_lock);
	return (0);
}

/*
 * The allocated segment at addr if it has exactly size bytes, else NULL.
 * Finishes a hash resize first, so one table is searched.  Lock held.
 */
static vmem_seg_t **
vmem_hash_exact(vmem_t *vmp, uintptr_t addr, size_t size)
{
	vmem_seg_t **prev;

	if (vmp->vm_hash_old != NULL)
		vmem_hash_migrate(vmp, SIZE_MAX);
	prev = vmem_hash_find(vmp, vmem_hash_bucket(vmp, addr), addr);
	return (prev != NULL && VS_SIZE(*prev) == size ? prev : NULL);
}

/*
 * Cut the allocated segment [vaddr, vaddr + size) in two allocated
 * segments, of first and size - first bytes; or join two adjacent
 * allocated segments [vaddr, vaddr + first) and [vaddr + first,
 * vaddr + size) into one.  Nothing is freed or allocated: the caller owns
 * the range before and after.  0, or -1 (errno EINVAL: not such segments;
 * ENOMEM: no tag).  For the malloc layer's kept large blocks, which it
 * splits and joins while they keep their pages.
 */
int
vmem_split(vmem_t *vmp, void *vaddr, size_t size, size_t first)
{
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_seg_t **prev, *vsp, *tail;

	if (first == 0 || first >= size || P2PHASE(first, vmp->vm_quantum)) {
		errno = EINVAL;
		return (-1);
	}
	umem_lock(&vmp->vm_lock);
	if ((prev = vmem_hash_exact(vmp, addr, size)) == NULL) {
		umem_unlock(&vmp->vm_lock);
		errno = EINVAL;
		return (-1);
	}
	if (!vmem_populate(vmp)) {
		umem_unlock(&vmp->vm_lock);
		errno = ENOMEM;
		return (-1);
	}
	vsp = *prev;
	tail = vmem_seg_get(vmp);
	tail->vs_start = addr + first;
	tail->vs_end = vsp->vs_end;
	tail->vs_import = 0;
	vsp->vs_end = addr + first;
	vmem_arena_insert_after(vsp, tail);
	vmp->vm_mem_inuse -= size - first;	/* vmem_hash_insert adds it */
	vmem_hash_insert(vmp, tail);
	umem_unlock(&vmp->vm_lock);
	return (0);
}

int
vmem_join(vmem_t *vmp, void *vaddr, size_t first, size_t size)
{
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_seg_t **prev, *vsp, *tail;

	if (first == 0 || first >= size) {
		errno = EINVAL;
		return (-1);
	}
	umem_lock(&vmp->vm_lock);
	if ((prev = vmem_hash_exact(vmp, addr, first)) == NULL ||
	    (tail = (*prev)->vs_anext)->vs_type != VMEM_ALLOC ||
	    tail->vs_start != addr + first || tail->vs_end != addr + size ||
	    (prev = vmem_hash_exact(vmp, addr + first, size - first)) ==
	    NULL) {
		umem_unlock(&vmp->vm_lock);
		errno = EINVAL;
		return (-1);
	}
	vsp = tail->vs_aprev;
	*prev = tail->vs_knext;			/* out of the hash */
	vmp->vm_nsegs_alloc--;
	vmem_arena_unlink(tail);
	vmem_rotor_moved(vmp, tail, vsp);
	vmem_seg_put(vmp, tail);
	vsp->vs_end = addr + size;
	umem_unlock(&vmp->vm_lock);
	return (0);
}

/*
 * ------------------------------------------------------------------------
 * Spans, queries, walks
 * ------------------------------------------------------------------------
 */

/*
 * Check a caller-supplied span and trim one that includes address 0 (the
 * failure value) to start at one quantum.  0 (errno EINVAL) if unusable.
 */
static int
vmem_span_args(size_t q, uintptr_t *addrp, size_t *sizep)
{
	uintptr_t addr = *addrp;
	size_t size = *sizep;

	if (P2PHASE(addr, q) != 0 || P2PHASE(size, q) != 0 ||
	    addr + size < addr || size == 0) {
		errno = EINVAL;
		return (0);
	}
	if (addr == 0) {
		if (size == q) {
			errno = EINVAL;
			return (0);
		}
		addr = q;
		size -= q;
	}
	*addrp = addr;
	*sizep = size;
	return (1);
}

UMEM_TEXT_COLD UMEM_EXPORT void *
vmem_add(vmem_t *vmp, void *vaddr, size_t size, int vmflag)
{
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_seg_t *span;

	if (!vmem_span_args(vmp->vm_quantum, &addr, &size))
		return (NULL);
	umem_lock(&vmp->vm_lock);
	for (span = vmp->vm_seg0.vs_knext; span != &vmp->vm_seg0;
	    span = span->vs_knext) {
		if (addr < span->vs_end && span->vs_start < addr + size) {
			umem_unlock(&vmp->vm_lock);
			errno = EINVAL;		/* overlaps a span */
			return (NULL);
		}
	}
	if (!vmem_populate(vmp)) {
		umem_unlock(&vmp->vm_lock);
		errno = ENOMEM;
		return (NULL);
	}
	(void) vmem_span_create(vmp, addr, size, 0, NULL);
	if (vmp->vm_nwaiters != 0)
		(void) pthread_cond_broadcast(&vmp->vm_cv);
	umem_unlock(&vmp->vm_lock);
	return (vaddr);
}

UMEM_EXPORT int
vmem_contains(vmem_t *vmp, void *vaddr, size_t size)
{
	uintptr_t addr = (uintptr_t)vaddr, end = addr + size;
	vmem_seg_t *span;
	int found = 0;

	umem_lock(&vmp->vm_lock);
	vmp->vm_contains++;
	for (span = vmp->vm_seg0.vs_knext; span != &vmp->vm_seg0;
	    span = span->vs_knext) {
		vmp->vm_contains_search++;
		if (addr >= span->vs_start && end <= span->vs_end &&
		    end >= addr) {
			found = 1;
			break;
		}
	}
	umem_unlock(&vmp->vm_lock);
	return (found);
}

UMEM_TEXT_COLD UMEM_EXPORT void
vmem_walk(vmem_t *vmp, int typemask,
    void (*func)(void *, void *, size_t), void *arg)
{
	vmem_seg_t walker, *vsp, *merged;
	uintptr_t raddr, start;
	size_t rsize, size;
	void *rtag;

	(void) memset(&walker, 0, sizeof (walker));
	walker.vs_type = VMEM_WALKER;
	umem_lock(&vmp->vm_lock);
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0;
	    vsp = vsp->vs_anext) {
		if (!(vsp->vs_type & typemask & (VMEM_ALLOC | VMEM_FREE |
		    VMEM_SPAN)))
			continue;
		if (!(typemask & VMEM_REENTRANT)) {
			func(arg, (void *)vsp->vs_start, VS_SIZE(vsp));
			continue;
		}
		/* The walker holds our place while the lock is dropped. */
		start = vsp->vs_start;
		size = VS_SIZE(vsp);
		vmem_arena_insert_after(vsp, &walker);
		umem_unlock(&vmp->vm_lock);
		func(arg, (void *)start, size);
		umem_lock(&vmp->vm_lock);
		for (;;) {
			vmem_seg_t *before;

			vsp = walker.vs_aprev;
			merged = vmem_marker_unlink(vmp, &walker);
			if (merged == NULL)
				break;
			/* The callback's free may have emptied a span. */
			vsp = merged;
			before = vmem_prev_nonmarker(merged)->vs_aprev;
			if (!vmem_span_release_check(vmp, merged, &raddr,
			    &rsize, &rtag))
				break;
			vmem_arena_insert_after(before, &walker);
			vmem_source_release(vmp, raddr, rsize, rtag);
		}
	}
	umem_unlock(&vmp->vm_lock);
}

UMEM_EXPORT size_t
vmem_size(vmem_t *vmp, int typemask)
{
	uint64_t size = 0;

	umem_lock(&vmp->vm_lock);
	if (typemask & VMEM_ALLOC)
		size += vmp->vm_mem_inuse + vmp->vm_mem_direct;
	if (typemask & VMEM_FREE)
		size += vmp->vm_mem_total - vmp->vm_mem_inuse;
	umem_unlock(&vmp->vm_lock);
	return ((size_t)size);
}

size_t
vmem_quantum(const vmem_t *vmp)
{
	return (vmp->vm_quantum);
}

UMEM_TEXT_COLD UMEM_EXPORT int
vmem_getstat(vmem_t *vmp, vmem_stat_t *sp)
{
	if (vmp == NULL || sp == NULL) {
		errno = EINVAL;
		return (-1);
	}
	(void) memset(sp, 0, sizeof (*sp));
	umem_lock(&vmp->vm_lock);
	(void) memcpy(sp->vk_name, vmp->vm_name, sizeof (vmp->vm_name));
	sp->vk_quantum = vmp->vm_quantum;
	sp->vk_qcache_max = vmp->vm_qcache_max;
	sp->vk_mem_inuse = vmp->vm_mem_inuse + vmp->vm_mem_direct;
	sp->vk_mem_import = vmp->vm_mem_import + vmp->vm_mem_direct;
	sp->vk_mem_total = vmp->vm_mem_total + vmp->vm_mem_direct;
	sp->vk_alloc = __atomic_load_n(&vmp->vm_alloc, __ATOMIC_RELAXED);
	sp->vk_free = __atomic_load_n(&vmp->vm_free, __ATOMIC_RELAXED);
	sp->vk_seg_alloc = vmp->vm_seg_alloc;
	sp->vk_seg_free = vmp->vm_seg_free;
	sp->vk_wait = vmp->vm_wait;
	sp->vk_fail = __atomic_load_n(&vmp->vm_fail, __ATOMIC_RELAXED);
	sp->vk_lookup = vmp->vm_lookup;
	sp->vk_search = vmp->vm_search;
	sp->vk_import = vmp->vm_import;
	sp->vk_import_fail = vmp->vm_import_fail;
	sp->vk_span_release = vmp->vm_span_release;
	sp->vk_contains = vmp->vm_contains;
	sp->vk_contains_search = vmp->vm_contains_search;
	sp->vk_bad_free = vmp->vm_bad_free;
	sp->vk_wrong_size = vmp->vm_wrong_size;
	sp->vk_hash_rescale = vmp->vm_hash_rescale;
	sp->vk_nsegs_alloc = vmp->vm_nsegs_alloc + vmp->vm_nsegs_tagged;
	sp->vk_nsegs_free = vmp->vm_nsegs_free;
	sp->vk_nspans = vmp->vm_nspans;
	sp->vk_hash_size = vmp->vm_hash_mask + 1;
	sp->vk_hash_maxchain = vmem_hash_maxchain(vmp);
	umem_unlock(&vmp->vm_lock);
	return (0);
}

/*
 * ------------------------------------------------------------------------
 * Arena creation and destruction
 * ------------------------------------------------------------------------
 */
static void
vmem_init(void)
{
	umem_platform_init();
	umem_atfork_add(vmem_fork_prepare, vmem_fork_parent,
	    vmem_fork_child);
}

size_t
vmem_qcache_slabsize(size_t qcache_max)
{
	size_t s = (size_t)1 << highbit(3 * qcache_max);

	return (s < 64 ? 64 : s);
}

static vmem_t *
vmem_create_common(const char *name, void *base, size_t size, size_t quantum,
    vmem_alloc_t *afunc, vmem_ximport_t *xafunc, vmem_free_t *ffunc,
    vmem_t *source, size_t qcache_max, int vmflag)
{
	uintptr_t addr = (uintptr_t)base;
	vmem_t *vmp;

	(void) pthread_once(&vmem_init_once, vmem_init);
	if (quantum == 0 || !IS_P2(quantum) ||
	    (size != 0 && !vmem_span_args(quantum, &addr, &size)) ||
	    (size == 0 && base != NULL && P2PHASE(addr, quantum) != 0)) {
		errno = EINVAL;
		return (NULL);
	}
	if ((vmp = umem_pool_alloc(&vmem_arena_pool)) == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	(void) memset(vmp, 0, sizeof (*vmp));
	umem_lock_init(&vmp->vm_lock);
	umem_cond_init(&vmp->vm_cv);
	if (name == NULL)
		name = "(anon)";
	umem_strlcpy(vmp->vm_name, name, sizeof (vmp->vm_name));
	vmp->vm_name[VMEM_NAMELEN] = '\0';
	vmp->vm_quantum = quantum;
	vmp->vm_qshift = highbit(quantum) - 1;
	vmp->vm_cflags = vmflag & VMC_FLAGS;
	vmp->vm_source_alloc = afunc;
	vmp->vm_source_ximport = xafunc;
	vmp->vm_source_free = ffunc;
	vmp->vm_source = source;

	vmp->vm_seg0.vs_type = VMEM_SPAN;
	vmp->vm_seg0.vs_anext = vmp->vm_seg0.vs_aprev = &vmp->vm_seg0;
	vmp->vm_seg0.vs_knext = vmp->vm_seg0.vs_kprev = &vmp->vm_seg0;
	vmp->vm_hash_table = vmp->vm_hash0;
	vmp->vm_hash_mask = VMEM_HASH_INITIAL - 1;
	vmp->vm_hash_bits = highbit(VMEM_HASH_INITIAL) - 1;

	if (size != 0) {
		umem_lock(&vmp->vm_lock);
		if (!vmem_populate(vmp)) {
			umem_unlock(&vmp->vm_lock);
			umem_pool_free(&vmem_arena_pool, vmp);
			errno = ENOMEM;
			return (NULL);
		}
		(void) vmem_span_create(vmp, addr, size, 0, NULL);
		umem_unlock(&vmp->vm_lock);
	}

	umem_lock(&vmem_list_lock);
	vmp->vm_next = vmem_list;
	vmem_list = vmp;
	umem_unlock(&vmem_list_lock);

	/*
	 * Quantum caches: one object cache per multiple of the quantum up to
	 * qcache_max, when the object-cache layer is linked in.
	 */
	qcache_max = P2ALIGN(qcache_max, quantum);
	if (qcache_max > VMEM_NQCACHE_MAX * quantum)
		qcache_max = VMEM_NQCACHE_MAX * quantum;
	vmp->vm_qcache_asked = qcache_max;
	if (qcache_max != 0 && !(vmflag & VMC_NO_QCACHE) &&
	    vmem_qcache_ops.qc_create != NULL) {
		size_t slabsize = vmem_qcache_slabsize(qcache_max);
		size_t n = qcache_max >> vmp->vm_qshift, i;

		for (i = 0; i < n; i++) {
			char cname[64];
			size_t nl;

			umem_strlcpy(cname, vmp->vm_name, sizeof (cname));
			nl = umem_strnlen(cname, sizeof (cname));
			umem_name(cname + nl, sizeof (cname) - nl, "_",
			    (i + 1) * quantum);
			vmp->vm_qcache[i] = vmem_qcache_ops.qc_create(cname,
			    (i + 1) * quantum, quantum, slabsize, vmp);
			if (vmp->vm_qcache[i] == NULL)
				break;
		}
		if (i < n) {
			while (i-- > 0)
				vmem_qcache_ops.qc_destroy(vmp->vm_qcache[i]);
			(void) memset(vmp->vm_qcache, 0,
			    sizeof (vmp->vm_qcache));
		} else {
			vmp->vm_qcache_max = qcache_max;
		}
	}
	return (vmp);
}

UMEM_EXPORT vmem_t *
vmem_create(const char *name, void *base, size_t size, size_t quantum,
    vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag)
{
	return (vmem_create_common(name, base, size, quantum, afunc, NULL,
	    ffunc, source, qcache_max, vmflag));
}

UMEM_EXPORT vmem_t *
vmem_xcreate(const char *name, void *base, size_t size, size_t quantum,
    vmem_ximport_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag)
{
	return (vmem_create_common(name, base, size, quantum, NULL, afunc,
	    ffunc, source, qcache_max, vmflag));
}

void
vmem_set_tagged_import(vmem_t *vmp, vmem_talloc_t *afunc, vmem_tfree_t *ffunc)
{
	umem_lock(&vmp->vm_lock);
	if (vmp->vm_nspans != 0 || vmp->vm_source == NULL)
		umem_panic("vmem: arena '%s': tagged import set too late, or "
		    "without a source", vmp->vm_name);
	vmp->vm_source_talloc = afunc;
	vmp->vm_source_tfree = ffunc;
	umem_unlock(&vmp->vm_lock);
}

UMEM_TEXT_COLD UMEM_EXPORT void
vmem_destroy(vmem_t *vmp)
{
	vmem_seg_t *vsp, *next;
	vmem_t **pp;

	if (vmp == NULL)
		return;
	umem_lock(&vmem_list_lock);
	for (pp = &vmem_list; *pp != NULL && *pp != vmp; pp = &(*pp)->vm_next)
		;
	if (*pp == NULL) {
		umem_unlock(&vmem_list_lock);
		umem_error("vmem_destroy: %p is not an arena", (void *)vmp);
		return;
	}
	*pp = vmp->vm_next;
	umem_unlock(&vmem_list_lock);

	for (int i = 0; i < VMEM_NQCACHE_MAX; i++) {
		if (vmp->vm_qcache[i] != NULL)
			vmem_qcache_ops.qc_destroy(vmp->vm_qcache[i]);
	}
	vmp->vm_qcache_max = 0;

	/*
	 * The arena is off the list and its caches are gone: nobody else can
	 * reach it, so no lock is needed (and none may be held while calling
	 * the source's free function).
	 */
	if (vmp->vm_mem_inuse + vmp->vm_mem_direct != 0)
		umem_report("vmem_destroy('%s'): leaked %zu bytes",
		    vmp->vm_name,
		    (size_t)(vmp->vm_mem_inuse + vmp->vm_mem_direct));
	/* Give imported spans back, then every tag to the pool. */
	for (vsp = vmp->vm_seg0.vs_knext; vsp != &vmp->vm_seg0;
	    vsp = vsp->vs_knext) {
		if (vsp->vs_import && vmem_source_gives(vmp))
			vmem_source_give(vmp, vsp->vs_start, VS_SIZE(vsp),
			    vsp->vs_srctag);
	}
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = next) {
		next = vsp->vs_anext;
		if (!(vsp->vs_type & VMEM_MARKER))
			umem_pool_free(&vmem_seg_pool, vsp);
	}
	while ((vsp = vmp->vm_segfree) != NULL) {
		vmp->vm_segfree = vsp->vs_knext;
		umem_pool_free(&vmem_seg_pool, vsp);
	}
	vmem_hash_table_free(vmp, vmp->vm_hash_table, vmp->vm_hash_mask + 1);
	if (vmp->vm_hash_old != NULL)
		vmem_hash_table_free(vmp, vmp->vm_hash_old,
		    vmp->vm_hash_old_mask + 1);
	umem_lock_destroy(&vmp->vm_lock);
	(void) pthread_cond_destroy(&vmp->vm_cv);
	umem_pool_free(&vmem_arena_pool, vmp);
}

/*
 * ------------------------------------------------------------------------
 * Periodic work, fork, verification
 * ------------------------------------------------------------------------
 */
void
vmem_update(void)
{
	umem_lock(&vmem_list_lock);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->vm_next) {
		umem_lock(&vmp->vm_lock);
		if (vmp->vm_hash_old != NULL)
			vmem_hash_migrate(vmp, SIZE_MAX);
		vmem_hash_rescale(vmp);
		/* Waiters on imports retry on their own timer. */
		if (vmp->vm_nwaiters != 0)
			(void) pthread_cond_broadcast(&vmp->vm_cv);
		umem_unlock(&vmp->vm_lock);
	}
	umem_unlock(&vmem_list_lock);
}

UMEM_TEXT_COLD void
vmem_fork_prepare(void)
{
	umem_lock(&vmem_list_lock);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->vm_next)
		umem_lock(&vmp->vm_lock);
	umem_lock(&vmem_arena_pool.pool_lock);
	umem_lock(&vmem_seg_pool.pool_lock);
}

UMEM_TEXT_COLD void
vmem_fork_parent(void)
{
	umem_unlock(&vmem_seg_pool.pool_lock);
	umem_unlock(&vmem_arena_pool.pool_lock);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->vm_next)
		umem_unlock(&vmp->vm_lock);
	umem_unlock(&vmem_list_lock);
}

/* The child has one thread: make every lock and condvar new. */
UMEM_TEXT_COLD void
vmem_fork_child(void)
{
	umem_lock_init(&vmem_seg_pool.pool_lock);
	umem_lock_init(&vmem_arena_pool.pool_lock);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->vm_next) {
		umem_lock_init(&vmp->vm_lock);
		umem_cond_init(&vmp->vm_cv);
		vmp->vm_nwaiters = 0;
	}
	umem_lock_init(&vmem_list_lock);
}

#define	VERIFY(cond, fmt, ...) do {					\
	if (!(cond)) {							\
		umem_report("vmem_verify('%s'): " fmt, vmp->vm_name,	\
		    ##__VA_ARGS__);					\
		umem_unlock(&vmp->vm_lock);				\
		return (-1);						\
	}								\
} while (0)

UMEM_TEXT_COLD int
vmem_verify(vmem_t *vmp)
{
	uint64_t inuse = 0, total = 0, nalloc = 0, nfree = 0, nspans = 0;
	uint64_t nhash = 0, nflist = 0, ntagged = 0;
	vmem_seg_t *vsp, *span = NULL;
	uintptr_t pos = 0;
	size_t q;

	umem_lock(&vmp->vm_lock);
	q = vmp->vm_quantum;
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0;
	    vsp = vsp->vs_anext) {
		VERIFY(vsp->vs_anext->vs_aprev == vsp, "broken arena list");
		if (vsp->vs_type & VMEM_MARKER)
			continue;
		if (vsp->vs_type == VMEM_SPAN) {
			VERIFY(span == NULL || pos == span->vs_end,
			    "span [%p, %p) not tiled: ends at %p",
			    (void *)span->vs_start, (void *)span->vs_end,
			    (void *)pos);
			VERIFY(vsp->vs_start < vsp->vs_end, "empty span");
			span = vsp;
			pos = vsp->vs_start;
			nspans++;
			total += VS_SIZE(vsp);
			continue;
		}
		VERIFY(span != NULL, "segment before any span");
		VERIFY(vsp->vs_start == pos && vsp->vs_end > vsp->vs_start &&
		    vsp->vs_end <= span->vs_end, "segment [%p, %p) out of "
		    "place (expected start %p)", (void *)vsp->vs_start,
		    (void *)vsp->vs_end, (void *)pos);
		VERIFY(P2PHASE(vsp->vs_start, q) == 0 &&
		    P2PHASE(vsp->vs_end, q) == 0, "unaligned segment");
		pos = vsp->vs_end;
		if (vsp->vs_type == VMEM_ALLOC && vsp->vs_tagged) {
			inuse += VS_SIZE(vsp);
			ntagged++;
		} else if (vsp->vs_type == VMEM_ALLOC) {
			vmem_seg_t *h;

			inuse += VS_SIZE(vsp);
			nalloc++;
			for (h = *vmem_hash_bucket(vmp, vsp->vs_start);
			    h != NULL && h != vsp; h = h->vs_knext)
				;
			if (h == NULL && vmp->vm_hash_old != NULL) {
				size_t i = vmem_hash_index(vmp, vsp->vs_start,
				    vmp->vm_hash_old_bits);

				for (h = i < vmp->vm_hash_moved ? NULL :
				    vmp->vm_hash_old[i];
				    h != NULL && h != vsp; h = h->vs_knext)
					;
			}
			VERIFY(h == vsp, "allocated %p not in hash",
			    (void *)vsp->vs_start);
		} else {
			VERIFY(vsp->vs_type == VMEM_FREE, "bad type %d",
			    vsp->vs_type);
			VERIFY(vsp->vs_aprev->vs_type != VMEM_FREE &&
			    vsp->vs_anext->vs_type != VMEM_FREE,
			    "uncoalesced free segment at %p",
			    (void *)vsp->vs_start);
			nfree++;
		}
	}
	VERIFY(span == NULL || pos == span->vs_end, "last span not tiled");
	for (int i = 0; i < VMEM_FREELISTS; i++) {
		int empty = (vmp->vm_freelist[i] == NULL);

		VERIFY(empty == !(vmp->vm_freemap & (1ull << i)),
		    "freemap bit %d wrong", i);
		VERIFY(empty || vmp->vm_freelist[i]->vs_kprev == NULL,
		    "broken freelist head %d", i);
		for (vsp = vmp->vm_freelist[i]; vsp != NULL;
		    vsp = vsp->vs_knext) {
			VERIFY(vsp->vs_type == VMEM_FREE &&
			    vmem_flist_index(VS_SIZE(vsp)) == i,
			    "segment on wrong freelist %d", i);
			VERIFY(vsp->vs_knext == NULL ||
			    vsp->vs_knext->vs_kprev == vsp,
			    "broken freelist %d", i);
			nflist++;
		}
	}
	for (size_t i = 0; i <= vmp->vm_hash_mask; i++) {
		for (vsp = vmp->vm_hash_table[i]; vsp != NULL;
		    vsp = vsp->vs_knext) {
			VERIFY(vsp->vs_type == VMEM_ALLOC, "free seg in hash");
			nhash++;
		}
	}
	for (size_t i = 0; vmp->vm_hash_old != NULL &&
	    i <= vmp->vm_hash_old_mask; i++) {
		VERIFY(i >= vmp->vm_hash_moved || vmp->vm_hash_old[i] == NULL,
		    "migrated bucket %zu not empty", i);
		for (vsp = vmp->vm_hash_old[i]; vsp != NULL;
		    vsp = vsp->vs_knext) {
			VERIFY(vsp->vs_type == VMEM_ALLOC, "free seg in hash");
			nhash++;
		}
	}
	VERIFY(nflist == nfree, "freelists hold %lu, arena list %lu",
	    (unsigned long)nflist, (unsigned long)nfree);
	VERIFY(nhash == nalloc, "hash holds %lu, arena list %lu",
	    (unsigned long)nhash, (unsigned long)nalloc);
	VERIFY(inuse == vmp->vm_mem_inuse, "mem_inuse %lu, segments %lu",
	    (unsigned long)vmp->vm_mem_inuse, (unsigned long)inuse);
	VERIFY(total == vmp->vm_mem_total, "mem_total %lu, spans %lu",
	    (unsigned long)vmp->vm_mem_total, (unsigned long)total);
	VERIFY(nspans == vmp->vm_nspans && nalloc == vmp->vm_nsegs_alloc &&
	    ntagged == vmp->vm_nsegs_tagged && nfree == vmp->vm_nsegs_free,
	    "segment counts disagree");
	umem_unlock(&vmp->vm_lock);
	return (0);
}

/*
 * ------------------------------------------------------------------------
 * Leak detection (leaks.c): walks with every vmem lock already held
 * (vmem_fork_prepare), so that they see the state other threads froze in.
 * ------------------------------------------------------------------------
 */
UMEM_TEXT_COLD void
vmem_walk_locked(vmem_t *vmp, int typemask,
    void (*func)(void *, void *, size_t), void *arg)
{
	for (vmem_seg_t *vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0;
	    vsp = vsp->vs_anext)
		if ((vsp->vs_type & typemask & (VMEM_ALLOC | VMEM_FREE |
		    VMEM_SPAN)) && !(vsp->vs_tagged &&
		    (typemask & VMEM_WALK_UNTAGGED)))
			func(arg, (void *)vsp->vs_start, VS_SIZE(vsp));
}

/*
 * Every record vmem keeps in pool memory: arena structures and boundary
 * tags, in use, in an arena's reserve or free in the pools, and the pools'
 * unused tails.  Tags hold segment bounds, i.e. the addresses of blocks and
 * of their neighbours, so a conservative scan must leave them out.
 */
UMEM_TEXT_COLD void
vmem_walk_records(void (*func)(void *, void *, size_t), void *arg)
{
	umem_pool_t *pools[2] = { &vmem_seg_pool, &vmem_arena_pool };
	vmem_seg_t *vsp;

	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->vm_next) {
		func(arg, vmp, vmem_arena_pool.pool_size);
		for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0;
		    vsp = vsp->vs_anext)
			if (!(vsp->vs_type & VMEM_MARKER))	/* on stacks */
				func(arg, vsp, sizeof (*vsp));
		for (vsp = vmp->vm_segfree; vsp != NULL; vsp = vsp->vs_knext)
			func(arg, vsp, sizeof (*vsp));
	}
	for (int i = 0; i < 2; i++) {
		umem_pool_t *pp = pools[i];

		for (void *rec = pp->pool_free; rec != NULL;
		    rec = *(void **)rec)
			func(arg, rec, pp->pool_size);
		if (pp->pool_next != NULL && pp->pool_limit > pp->pool_next)
			func(arg, pp->pool_next,
			    (size_t)(pp->pool_limit - pp->pool_next));
	}
}
