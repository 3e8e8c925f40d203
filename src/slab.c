/*
 * slab.c - the slab layer: raw (unconstructed) buffers carved from slabs
 * that come from the cache's source arena.
 *
 * Big theory statement
 * --------------------
 * A slab is slabsize bytes from vmem_xalloc_tag(source), cut into `chunks'
 * buffers of chunksize bytes starting at a colour offset, with a count of
 * allocated buffers (slab_refcnt).  Two layouts (Bonwick 1994 §3.2):
 *
 *  small (chunk < slabsize / 8, or UMC_NOHASH): slabsize is one page (or
 *	the arena quantum if larger), xalloc'ed aligned to its size; the
 *	umem_slab_t sits in the last bytes of the slab, so buf -> slab is
 *	P2END(buf, slabsize) - sizeof (slab).  A free buffer's last word holds
 *	the free-list link (the start of an object is hotter, so a stray write
 *	after free more likely spares the list).
 *
 *  large (otherwise, always for UMC_NOTOUCH): slab and bufctl records come
 *	from the umem_slab / umem_bufctl caches; nothing is ever written into
 *	the buffers (so the "memory" may be integer IDs).  Allocated buffers
 *	are found on free through a per-cache hash of bufctls, rescaled by the
 *	update thread to keep chains near length 1; a free of an address not
 *	in the hash is reported as a bad free.
 *
 *  slabmap (large malloc classes without debugging, UMF_SLABMAP): the
 *	large geometry, with the slab record from umem_slab but no bufctls:
 *	free buffers are linked through their last word as in a small slab
 *	(the last on their first page, when they span pages: slabmap_link),
 *	and the record is found from the address, in the page map's slab
 *	word of the slab's first page (slabs are aligned to a power of two).
 *	No hash to search or rescale, and 24 bytes less per buffer.  Debug
 *	caches keep the hashed layout: their audit records are bufctls.
 *
 * Geometry: small slabs waste less than one chunk < slabsize / 8.  Large
 * slabs try 1..8 chunks per slab and keep the slab size with the least
 * waste per chunk, so waste <= 1/8 wherever 8 chunks are possible.
 * Quantum caches take the slab size vmem gives them.  The leftover space
 * (maxcolor) colours successive slabs: the first buffer moves by `align'
 * per slab, 0, align, ..., maxcolor, 0, ...
 *
 * Slab list: circular, headed by cache_nullslab.  Slabs before
 * cache_freelist are full; from cache_freelist on, every slab has a free
 * buffer, partially used slabs first (a full slab that gets a buffer back
 * moves to the cache_freelist position; new slabs go to the tail).  A slab
 * whose last buffer comes back leaves the list and is kept, empty, as a
 * spare (slab_spare_put), up to a bound, so that a cache that gives a batch
 * back and takes it again does not give each slab's pages to the OS and
 * fault them in again; every update pass gives back the spares that
 * stayed unused since the previous one.
 *
 * Locking: cache_lock protects the list, the hash and the counters; it is
 * dropped around every vmem call and every nested cache call (slab and
 * bufctl records), so the slab layer is a leaf in the lock order.
 */
#include <errno.h>
#include <string.h>

#include "umem_impl.h"
#include "debug.h"
#include "pagemap.h"

const size_t umem_slab_header_size = sizeof (umem_slab_t);

static size_t
roundup_q(size_t x, size_t q)
{
	return ((x + q - 1) / q * q);
}

/* The inverse of an odd d modulo 2^64 (Newton: each step doubles the bits). */
static uint64_t
umem_inverse_odd(uint64_t d)
{
	uint64_t x = d;		/* right to 3 bits: d * d = 1 mod 8 */
	int i;

	for (i = 0; i < 5; i++)
		x *= 2 - d * x;
	return (x);
}

/*
 * Caches whose blocks malloc frees by bare pointer (UMF_PAGEMAP) have no
 * colouring and slabs aligned to a power of two, so the offset of a
 * pointer within its slab is address arithmetic, and free() can check,
 * with a multiply and a rotate, that it is the start of a buffer
 * (umem_block_is_start()).
 */
static void
umem_slab_pagemap_geometry(umem_cache_t *cp)
{
	size_t p2 = cp->cache_slabsize;

	if (!(cp->cache_flags & UMF_PAGEMAP))
		return;
	if (!IS_P2(p2))
		p2 = (size_t)1 << highbit(p2);
	cp->cache_maxcolor = 0;
	cp->cache_slab_mask = p2 - 1;
	cp->cache_chunk_tz = (uint32_t)__builtin_ctzll(cp->cache_chunksize);
	cp->cache_chunk_inv = umem_inverse_odd(cp->cache_chunksize >>
	    cp->cache_chunk_tz);
}

/*
 * Where a UMF_SLABMAP buffer holds its free-list link: its last word, but
 * on the buffer's first page.  A buffer bigger than a page is often used
 * in part (an I/O buffer), and a link on its last page cost a page fault
 * there when the slab was made, for the link alone: bursts of 8000-byte
 * blocks faulted 2 pages a block, tcmalloc 1.  Buffers start at multiples
 * of the chunk, so at multiples of g = gcd(chunk, page) within a page:
 * offset g - 8 is on the first page of every one.
 */
static size_t
slabmap_link(size_t chunk)
{
	size_t g = chunk & -chunk;

	if (chunk <= umem_pagesize)
		return (chunk - sizeof (void *));
	return ((g < umem_pagesize ? g : umem_pagesize) - sizeof (void *));
}

int
umem_slab_geometry(umem_cache_t *cp, size_t forced)
{
	size_t chunk = cp->cache_chunksize;
	size_t q = cp->cache_arena_quantum;
	size_t page = umem_pagesize;
	size_t small_slab = q > page ? q : page;
	size_t avail;

	if (forced != 0) {
		/* vmem quantum cache: external layout, vmem's slab size. */
		if (forced < chunk)
			return (EINVAL);
		cp->cache_flags |= UMF_HASH;
		cp->cache_slabsize = forced;
		cp->cache_chunks = (uint32_t)(forced / chunk);
		cp->cache_maxcolor = P2ALIGN(forced % chunk, cp->cache_align);
		return (0);
	}
	if ((cp->cache_cflags & UMC_NOHASH) ||
	    (!(cp->cache_flags & UMF_NOTOUCH) &&
	    chunk < small_slab / UMEM_VOID_FRACTION)) {
		if (!IS_P2(small_slab))
			return (EINVAL);
		if (chunk + sizeof (umem_slab_t) > small_slab)
			return (EINVAL);
		avail = small_slab - sizeof (umem_slab_t);
		cp->cache_slabsize = small_slab;
		cp->cache_chunks = (uint32_t)(avail / chunk);
		cp->cache_maxcolor = P2ALIGN(avail % chunk, cp->cache_align);
		cp->cache_bufctl = chunk - sizeof (void *);
		umem_slab_pagemap_geometry(cp);
		return (0);
	} else {
		size_t best = 0, bestwaste = SIZE_MAX, n;

		for (n = 1; n <= UMEM_VOID_FRACTION; n++) {
			size_t ss, fit, waste;

			if (chunk > SIZE_MAX / n)
				break;
			ss = roundup_q(chunk * n, q);
			if (ss < chunk * n)
				break;
			fit = ss / chunk;
			waste = (ss % chunk) / fit;
			if (waste < bestwaste) {
				bestwaste = waste;
				best = ss;
			}
		}
		if (best == 0)
			return (ENOMEM);
		if ((cp->cache_flags & (UMF_PAGEMAP | UMF_NOTOUCH |
		    UMF_DEBUG)) == UMF_PAGEMAP) {
			cp->cache_flags |= UMF_SLABMAP;
			cp->cache_bufctl = slabmap_link(chunk);
		} else {
			cp->cache_flags |= UMF_HASH;
		}
		cp->cache_slabsize = best;
		cp->cache_chunks = (uint32_t)(best / chunk);
		cp->cache_maxcolor = P2ALIGN(best % chunk, cp->cache_align);
		umem_slab_pagemap_geometry(cp);
		return (0);
	}
}

/*
 * ---- hash of allocated bufctls (large slabs) ----
 */
#define	UMEM_HASH(cp, addr) (&(cp)->cache_hash_table[			\
	((uintptr_t)(addr) >> (cp)->cache_hash_shift) & (cp)->cache_hash_mask])

int
umem_hash_init(umem_cache_t *cp)
{
	size_t sz = UMEM_HASH_INITIAL * sizeof (void *);
	vmem_t *arena = umem_hash_arena_get();

	cp->cache_hash_shift = highbit(cp->cache_chunksize) - 1;
	cp->cache_hash_table = arena == NULL ? NULL :
	    vmem_alloc(arena, sz, VM_NOSLEEP);
	if (cp->cache_hash_table == NULL)
		return (-1);
	memset(cp->cache_hash_table, 0, sz);
	cp->cache_hash_mask = UMEM_HASH_INITIAL - 1;
	return (0);
}

UMEM_TEXT_COLD void
umem_hash_fini(umem_cache_t *cp)
{
	if (cp->cache_hash_table != NULL)
		vmem_free(umem_hash_arena, cp->cache_hash_table,
		    (cp->cache_hash_mask + 1) * sizeof (void *));
	cp->cache_hash_table = NULL;
}

static size_t
hash_target(uint64_t buftotal)
{
	size_t n = (size_t)1 << (highbit(3 * buftotal + 4) - 2);

	return (n < UMEM_HASH_INITIAL ? UMEM_HASH_INITIAL : n);
}

int
umem_hash_rescale_needed(umem_cache_t *cp)
{
	uint64_t total;
	size_t size;

	if (!(cp->cache_flags & UMF_HASH))
		return (0);
	umem_lock(&cp->cache_lock);
	total = cp->cache_buftotal;
	size = cp->cache_hash_mask + 1;
	umem_unlock(&cp->cache_lock);
	return ((total > 2 * size || (total < size / 2 &&
	    size > UMEM_HASH_INITIAL)) && hash_target(total) != size);
}

/* (Cold: malloc's caches have no hash, only debugging and big user ones.) */
UMEM_TEXT_COLD void
umem_hash_rescale(umem_cache_t *cp)
{
	umem_bufctl_t **newtab, **oldtab;
	size_t newsize, oldsize, i;

	umem_lock(&cp->cache_lock);
	newsize = hash_target(cp->cache_buftotal);
	umem_unlock(&cp->cache_lock);

	newtab = vmem_alloc(umem_hash_arena, newsize * sizeof (void *),
	    VM_NOSLEEP);
	if (newtab == NULL)
		return;
	memset(newtab, 0, newsize * sizeof (void *));

	umem_lock(&cp->cache_lock);
	oldtab = cp->cache_hash_table;
	oldsize = cp->cache_hash_mask + 1;
	for (i = 0; i < oldsize; i++) {
		umem_bufctl_t *bcp = oldtab[i], *next;

		for (; bcp != NULL; bcp = next) {
			umem_bufctl_t **hp;

			next = bcp->bc_next;
			hp = &newtab[((uintptr_t)bcp->bc_addr >>
			    cp->cache_hash_shift) & (newsize - 1)];
			bcp->bc_next = *hp;
			*hp = bcp;
		}
	}
	cp->cache_hash_table = newtab;
	cp->cache_hash_mask = newsize - 1;
	cp->cache_hash_rescale++;
	umem_unlock(&cp->cache_lock);

	vmem_free(umem_hash_arena, oldtab, oldsize * sizeof (void *));
}

/*
 * ---- slabs ----
 */

/*
 * The slab of buf in a cache whose buffers are linked in place (not
 * UMF_HASH): the record at the end of a small slab, or the one the page
 * map holds for a UMF_SLABMAP slab (NULL if there is none).  buf may be
 * any address; the caller checks the record.
 */
static umem_slab_t *
slab_of(const umem_cache_t *cp, const void *buf)
{
	if (cp->cache_flags & UMF_SLABMAP)
		return (umem_pagemap_slab((void *)((uintptr_t)buf &
		    ~cp->cache_slab_mask)));
	return ((umem_slab_t *)(P2END((uintptr_t)buf, cp->cache_slabsize) -
	    sizeof (umem_slab_t)));
}

/* The slab record of a new slab: inside it, or from umem_slab. */
static umem_slab_t *
slab_record(umem_cache_t *cp, char *mem)
{
	if (cp->cache_flags & (UMF_HASH | UMF_SLABMAP))
		return (umem_cache_alloc(umem_slab_cache, UMEM_DEFAULT));
	return ((umem_slab_t *)(mem + cp->cache_slabsize -
	    sizeof (umem_slab_t)));
}

static umem_slab_t *
slab_create(umem_cache_t *cp)
{
	size_t slabsize = cp->cache_slabsize, chunk = cp->cache_chunksize;
	size_t color, xalign;
	umem_slab_t *sp;
	umem_bufctl_t *head = NULL, **tailp = &head;
	char *mem, *buf;
	void *vtag = NULL;
	uint32_t chunks, i;

	color = 0;
	if (cp->cache_maxcolor != 0) {	/* malloc's classes have none */
		umem_lock(&cp->cache_lock);
		color = cp->cache_color;
		cp->cache_color = (color + cp->cache_align >
		    cp->cache_maxcolor) ? 0 : color + cp->cache_align;
		umem_unlock(&cp->cache_lock);
	}

	if (cp->cache_flags & UMF_PAGEMAP)
		xalign = cp->cache_slab_mask + 1;	/* see above */
	else if (!(cp->cache_flags & UMF_HASH))
		xalign = slabsize;	/* buf -> slab by address arithmetic */
	else
		xalign = cp->cache_align > cp->cache_arena_quantum ?
		    cp->cache_align : 0;
	if (cp->cache_flags & UMF_FIREWALL) {
		/* One buffer, ending where the guard page starts. */
		mem = umem_firewall_slab_alloc(slabsize);
		color = slabsize - chunk;
	} else {
		mem = vmem_xalloc_tag(cp->cache_arena, slabsize, xalign,
		    VM_NOSLEEP, &vtag);
		/* Pages a destroyed slab kept (slab_destroy): ours now. */
		if (mem != NULL && cp->cache_arena == umem_default_arena)
			(void) vmem_heap_claim(mem, slabsize, 0);
		/* Buffers over a page are often used in part. */
		if (mem != NULL && chunk > umem_pagesize)
			vmem_heap_sparse(mem, slabsize);
		/* The free list below writes on every page. */
		else if (mem != NULL && !(cp->cache_flags & UMF_NOTOUCH))
			vmem_heap_populate(mem, slabsize);
	}
	if (mem == NULL)
		return (NULL);

	if (!(cp->cache_flags & UMF_HASH)) {
		if ((sp = slab_record(cp, mem)) == NULL)
			goto fail;
		chunks = (uint32_t)(((cp->cache_flags & UMF_SLABMAP) ?
		    slabsize : slabsize - sizeof (umem_slab_t)) - color) / chunk;
		buf = mem + color;
		for (i = 0; i < chunks; i++, buf += chunk) {
			umem_bufctl_t *bcp =
			    (umem_bufctl_t *)(buf + cp->cache_bufctl);

			*tailp = bcp;
			tailp = &bcp->bc_next;
		}
		*tailp = NULL;
	} else {
		if ((sp = slab_record(cp, mem)) == NULL)
			goto fail;
		chunks = (uint32_t)((slabsize - color) / chunk);
		buf = mem + color;
		for (i = 0; i < chunks; i++, buf += chunk) {
			umem_bufctl_t *bcp =
			    umem_cache_alloc(umem_bufctl_cache, UMEM_DEFAULT);

			if (bcp == NULL) {
				*tailp = NULL;
				while (head != NULL) {
					bcp = head;
					head = head->bc_next;
					umem_cache_free(umem_bufctl_cache, bcp);
				}
				umem_cache_free(umem_slab_cache, sp);
				goto fail;
			}
			bcp->bc_addr = buf;
			bcp->bc_slab = sp;
			*tailp = bcp;
			tailp = &bcp->bc_next;
		}
		*tailp = NULL;
	}
	/* malloc finds a block's cache from its address: record the pages. */
	if ((cp->cache_flags & UMF_PAGEMAP) &&
	    umem_pagemap_set(mem, slabsize, (uintptr_t)cp, (uintptr_t)cp) != 0) {
		while ((cp->cache_flags & UMF_HASH) && head != NULL) {
			umem_bufctl_t *bcp = head;

			head = head->bc_next;
			umem_cache_free(umem_bufctl_cache, bcp);
		}
		if (cp->cache_flags & (UMF_HASH | UMF_SLABMAP))
			umem_cache_free(umem_slab_cache, sp);
		goto fail;
	}
	if (cp->cache_flags & UMF_SLABMAP)
		umem_pagemap_set_slab(mem, sp);
	if (cp->cache_flags & UMF_DEBUG)
		umem_debug_slab_init(cp, mem + color, chunks);
	sp->slab_cache = cp;
	sp->slab_mem = mem;
	sp->slab_base = mem + color;
	sp->slab_head = head;
	sp->slab_refcnt = 0;
	sp->slab_chunks = chunks;
	sp->slab_vtag = vtag;
	sp->slab_next = sp->slab_prev = NULL;
	return (sp);
fail:
	if (cp->cache_flags & UMF_FIREWALL)
		umem_firewall_slab_free(mem, slabsize);
	else
		vmem_xfree_tag(cp->cache_arena, mem, slabsize, vtag);
	return (NULL);
}

/* Give a slab with no allocated buffers back to the source.  No locks. */
static void
slab_destroy(umem_cache_t *cp, umem_slab_t *sp)
{
	void *mem = sp->slab_mem, *vtag = sp->slab_vtag;

	if (cp->cache_flags & UMF_HASH) {
		umem_bufctl_t *bcp = sp->slab_head, *next;
		void *recs[UMEM_VOID_FRACTION * 4];
		size_t n = 0;

		/*
		 * Straight to their slabs, not the magazine layer: slabs are
		 * destroyed when memory goes back (reap, spare), and records
		 * parked in magazines would hold their pages for more passes.
		 */
		for (; bcp != NULL; bcp = next) {
			next = bcp->bc_next;
			recs[n++] = bcp;
			if (n == sizeof (recs) / sizeof (recs[0])) {
				umem_slab_free_batch(umem_bufctl_cache, recs,
				    n);
				n = 0;
			}
		}
		umem_slab_free_batch(umem_bufctl_cache, recs, n);
		umem_slab_free(umem_slab_cache, sp);
	} else if (cp->cache_flags & UMF_SLABMAP) {
		umem_pagemap_set_slab(mem, NULL);
		umem_slab_free(umem_slab_cache, sp);
	}
	if (cp->cache_flags & UMF_PAGEMAP)
		(void) umem_pagemap_set(mem, cp->cache_slabsize, 0, 0);
	if (cp->cache_flags & UMF_FIREWALL) {
		umem_firewall_slab_free(mem, cp->cache_slabsize);
	} else {
		/*
		 * The source arena gives pages back only with a whole span,
		 * and an aligned slab's span is shared with its neighbours:
		 * without this, a capped depot (magazine.c) would move the
		 * memory of the big classes from the cache to the arena, not
		 * to the OS.  (Smaller slabs stay for reuse: a system call
		 * per 4 KiB slab made a capped burst ~20% slower.)  The pages
		 * stay a pass or two, dirty, for the next slabs or large
		 * blocks (vmem_heap_keep; slab_create claims them): a burst of
		 * the big classes otherwise paid a fault per page again.
		 */
		if (cp->cache_depot_cap != 0 &&
		    cp->cache_chunksize >= UMEM_RELEASE_CHUNK_MIN) {
			if (cp->cache_arena == umem_default_arena)
				vmem_heap_keep(mem, cp->cache_slabsize);
			else
				umem_pages_release(mem, cp->cache_slabsize);
		}
		vmem_xfree_tag(cp->cache_arena, mem, cp->cache_slabsize, vtag);
	}
}

/* Insert sp at the tail of the list (it has free buffers).  cache_lock. */
static void
slab_insert_tail(umem_cache_t *cp, umem_slab_t *sp)
{
	umem_slab_t *null = &cp->cache_nullslab;

	sp->slab_next = null;
	sp->slab_prev = null->slab_prev;
	null->slab_prev->slab_next = sp;
	null->slab_prev = sp;
	if (cp->cache_freelist == null)
		cp->cache_freelist = sp;
}

static void
slab_unlink(umem_cache_t *cp, umem_slab_t *sp)
{
	if (cp->cache_freelist == sp)
		cp->cache_freelist = sp->slab_next;
	sp->slab_prev->slab_next = sp->slab_next;
	sp->slab_next->slab_prev = sp->slab_prev;
	sp->slab_next = sp->slab_prev = NULL;
}

/*
 * Spare slabs: empty slabs a cache keeps, newest first, linked through
 * slab_next.  Before, as in illumos, an emptied slab went back at once
 * (one spare excepted): a realloc-growth loop whose classes free 16
 * blocks at a time spent 10% of its time in the kernel, giving slabs'
 * pages back and faulting them in again.  A cache keeps up to
 * UMEM_SPARE_BYTES of spares, and at least one slab; all caches together
 * keep at most UMEM_SPARE_TOTAL beyond their first.  Each update pass
 * gives back the spares that stayed unused since the previous pass (the
 * list's low-water mark, as the depot's working set), and all of them when
 * the cache took no buffer from its slabs meanwhile; reap and malloc_trim
 * give back all.
 * A class of buffers of UMEM_RELEASE_CHUNK_MIN and up keeps up to
 * UMEM_SPARE_SLABS spares whatever their size: its destroyed slabs give
 * their pages to the OS at once, and a slab holds one to eight buffers,
 * so a program that frees and takes back a few dozen such buffers (a
 * realloc chain, a pool of I/O buffers) otherwise pays a madvise and
 * a page fault a page for every one (mallocbench realloc: 562 calls and
 * 1.8k faults of 3.5k).
 * A burst bigger than that (thousands of I/O buffers allocated and freed
 * together) made and destroyed every slab of it again at every round:
 * while no other cache grows, a malloc class (UMC_PAGEMAP; other caches
 * keep the paper's rules) keeps up to UMEM_SPARE_BURST_BYTES of spares
 * (UMEM_SPARE_BURST_TOTAL in all), and the heap's growth scan cuts them
 * back to UMEM_SPARE_BYTES (umem_slab_trim_spares): another cache needs
 * memory, and takes their pages (mallocbench burst: 0.28 -> 0.12 s, its
 * peak 56 -> 33 MB).
 * A firewall slab is never kept: a stale pointer into it must fault.  A
 * cache that never touches its buffers (integer IDs, quantum caches of an
 * ID arena) keeps one spare, as before: it has no page faults to save,
 * and its spares would hold IDs out of the arena.
 */
#define	UMEM_SPARE_BYTES	(128ul << 10)
#define	UMEM_SPARE_BURST_BYTES	(16ul << 20)
#define	UMEM_SPARE_SLABS	16
#define	UMEM_SPARE_TOTAL	(1ul << 20)
#define	UMEM_SPARE_BURST_TOTAL	(64ul << 20)

static size_t umem_spare_bytes;	/* spares beyond each cache's first */

/* How many spares cp may keep within bytes (at least one). */
static uint32_t
spare_max(const umem_cache_t *cp, size_t bytes)
{
	size_t n = bytes / cp->cache_slabsize;

	if (cp->cache_chunksize >= UMEM_RELEASE_CHUNK_MIN &&
	    n < UMEM_SPARE_SLABS)
		n = UMEM_SPARE_SLABS;
	return (n > 1 ? (uint32_t)n : 1);
}

/* A cache's spares go from `from' to `to' (fewer): uncount them. */
static void
spare_uncharge(umem_cache_t *cp, uint32_t from, uint32_t to)
{
	uint32_t gone = (from > 0 ? from - 1 : 0) - (to > 0 ? to - 1 : 0);

	if (gone != 0)
		(void) __atomic_fetch_sub(&umem_spare_bytes, (size_t)gone *
		    cp->cache_slabsize, __ATOMIC_RELAXED);
}

/* Keep sp (empty, off the list) as a spare; 0 if it must go.  cache_lock. */
static int
slab_spare_put(umem_cache_t *cp, umem_slab_t *sp)
{
	uint32_t n = cp->cache_spare_count;

	if (cp->cache_flags & UMF_FIREWALL)
		return (0);
	if (n > 0) {
		int burst = (cp->cache_cflags & UMC_PAGEMAP) != 0;

		if (n + 1 > spare_max(cp, burst ? UMEM_SPARE_BURST_BYTES :
		    UMEM_SPARE_BYTES) || (cp->cache_flags & UMF_NOTOUCH))
			return (0);
		if (__atomic_add_fetch(&umem_spare_bytes, cp->cache_slabsize,
		    __ATOMIC_RELAXED) > (burst ? UMEM_SPARE_BURST_TOTAL :
		    UMEM_SPARE_TOTAL)) {
			(void) __atomic_fetch_sub(&umem_spare_bytes,
			    cp->cache_slabsize, __ATOMIC_RELAXED);
			return (0);
		}
	}
	sp->slab_next = cp->cache_spare;
	cp->cache_spare = sp;
	cp->cache_spare_count = n + 1;
	return (1);
}

/* The newest spare, off the spare list, or NULL.  cache_lock. */
static umem_slab_t *
slab_spare_get(umem_cache_t *cp)
{
	umem_slab_t *sp = cp->cache_spare;

	if (sp == NULL)
		return (NULL);
	cp->cache_spare = sp->slab_next;
	spare_uncharge(cp, cp->cache_spare_count, cp->cache_spare_count - 1);
	if (--cp->cache_spare_count < cp->cache_spare_min)
		cp->cache_spare_min = cp->cache_spare_count;
	return (sp);
}

/* umem_slab_alloc() again, entered with cache_lock held (noabort path). */
static void *
umem_slab_alloc_relock(umem_cache_t *cp)
{
	umem_unlock(&cp->cache_lock);
	return (umem_slab_alloc(cp));
}

/*
 * With cache_lock held: the first slab with a free buffer, after making
 * one if there is none (the lock is dropped around slab_create).  NULL,
 * with the lock dropped, if no slab can be made.
 */
static umem_slab_t *
slab_get_locked(umem_cache_t *cp)
{
	umem_slab_t *sp, *nsp;

	while ((sp = cp->cache_freelist) == &cp->cache_nullslab) {
		if ((nsp = slab_spare_get(cp)) == NULL) {
			umem_unlock(&cp->cache_lock);
			nsp = slab_create(cp);
			if (nsp == NULL)
				return (NULL);
			umem_lock(&cp->cache_lock);
			cp->cache_slab_create++;
			cp->cache_buftotal += nsp->slab_chunks;
			if (cp->cache_buftotal > cp->cache_bufmax)
				cp->cache_bufmax = cp->cache_buftotal;
			if (cp->cache_freelist != &cp->cache_nullslab) {
				/* Another thread made one meanwhile. */
				if (slab_spare_put(cp, nsp))
					continue;
				cp->cache_buftotal -= nsp->slab_chunks;
				cp->cache_slab_destroy++;
				umem_unlock(&cp->cache_lock);
				slab_destroy(cp, nsp);
				umem_lock(&cp->cache_lock);
				continue;
			}
		}
		slab_insert_tail(cp, nsp);
	}
	return (sp);
}

/* Take the first free buffer of sp (cache_lock held). */
static void *
slab_take_locked(umem_cache_t *cp, umem_slab_t *sp)
{
	umem_bufctl_t *bcp = sp->slab_head;
	void *buf;

	sp->slab_head = bcp->bc_next;
	sp->slab_refcnt++;
	if (sp->slab_head == NULL)
		cp->cache_freelist = sp->slab_next;	/* sp is now full */
	if (cp->cache_flags & UMF_HASH) {
		umem_bufctl_t **hp = UMEM_HASH(cp, bcp->bc_addr);

		buf = bcp->bc_addr;
		bcp->bc_next = *hp;
		*hp = bcp;
	} else {
		buf = (char *)bcp - cp->cache_bufctl;
	}
	cp->cache_slab_alloc++;
	return (buf);
}

void *
umem_slab_alloc(umem_cache_t *cp)
{
	umem_slab_t *sp;
	umem_bufctl_t *bcp;
	void *buf;

	umem_lock(&cp->cache_lock);
	if ((sp = slab_get_locked(cp)) == NULL)
		return (NULL);
	bcp = sp->slab_head;
	if (UMEM_UNLIKELY(cp->cache_flags & UMF_DEBUG) &&
	    !(cp->cache_flags & UMF_HASH) && bcp->bc_next != NULL &&
	    ((char *)bcp->bc_next < (char *)sp->slab_base ||
	    (char *)bcp->bc_next >= (char *)sp ||
	    ((size_t)((char *)bcp->bc_next - (char *)sp->slab_base) %
	    cp->cache_chunksize) != cp->cache_bufctl)) {
		/* A write after free hit the link: drop the rest. */
		void *bad = bcp->bc_next;

		bcp->bc_next = NULL;
		umem_unlock(&cp->cache_lock);
		umem_debug_error(UMERR_BADBUFCTL, cp,
		    (char *)bcp - cp->cache_bufctl, "free-list link %p of "
		    "the buffer's slab is corrupted", bad);
		umem_lock(&cp->cache_lock);
		if (sp->slab_head != bcp)
			return (umem_slab_alloc_relock(cp));
	}
	buf = slab_take_locked(cp, sp);
	umem_unlock(&cp->cache_lock);
	return (buf);
}

/*
 * Up to n buffers under one acquisition of cache_lock: from the slabs
 * that have free buffers, after making one if none has (never more than
 * one new slab a call).  Returns how many.  The magazine layer's refill
 * (not for debug caches, whose buffers are checked one at a time).
 */
size_t
umem_slab_alloc_batch(umem_cache_t *cp, void **bufs, size_t n)
{
	size_t k = 0;

	umem_lock(&cp->cache_lock);
	if (slab_get_locked(cp) == NULL)
		return (0);
	while (k < n && cp->cache_freelist != &cp->cache_nullslab)
		bufs[k++] = slab_take_locked(cp, cp->cache_freelist);
	umem_unlock(&cp->cache_lock);
	return (k);
}

/*
 * Return one buffer to its slab, cache_lock held.  A slab that empties
 * becomes a spare, or (beyond the bound) goes on *deadp for the caller to
 * destroy after dropping the lock.  -1 (lock dropped, error reported)
 * if buf is not a buffer of cp.
 */
static int
slab_free_locked(umem_cache_t *cp, void *buf, umem_slab_t **deadp)
{
	umem_slab_t *sp;
	umem_bufctl_t *bcp;

	if (cp->cache_flags & UMF_HASH) {
		umem_bufctl_t **prevp = UMEM_HASH(cp, buf);
		uint64_t depth = 1;

		while ((bcp = *prevp) != NULL && bcp->bc_addr != buf) {
			prevp = &bcp->bc_next;
			depth++;
		}
		cp->cache_hash_lookup++;
		cp->cache_hash_depth += depth;
		if (bcp == NULL)
			goto bad;
		*prevp = bcp->bc_next;
		sp = bcp->bc_slab;
	} else {
		sp = slab_of(cp, buf);
		if (sp == NULL || sp->slab_cache != cp || (char *)buf <
		    (char *)sp->slab_base || (size_t)((char *)buf -
		    (char *)sp->slab_base) % cp->cache_chunksize != 0 ||
		    (size_t)((char *)buf - (char *)sp->slab_base) /
		    cp->cache_chunksize >= sp->slab_chunks ||
		    sp->slab_refcnt == 0)
			goto bad;
		bcp = (umem_bufctl_t *)((char *)buf + cp->cache_bufctl);
	}
	if (sp->slab_head == NULL) {
		/* Was full: now partial, so it goes to the freelist front. */
		umem_slab_t *fl = cp->cache_freelist;

		sp->slab_prev->slab_next = sp->slab_next;
		sp->slab_next->slab_prev = sp->slab_prev;
		sp->slab_next = fl;
		sp->slab_prev = fl->slab_prev;
		fl->slab_prev->slab_next = sp;
		fl->slab_prev = sp;
		cp->cache_freelist = sp;
	}
	bcp->bc_next = sp->slab_head;
	sp->slab_head = bcp;
	sp->slab_refcnt--;
	cp->cache_slab_free++;
	if (sp->slab_refcnt == 0) {
		slab_unlink(cp, sp);
		if (!slab_spare_put(cp, sp)) {
			cp->cache_buftotal -= sp->slab_chunks;
			cp->cache_slab_destroy++;
			sp->slab_next = *deadp;
			*deadp = sp;
		}
	}
	return (0);
bad:
	umem_unlock(&cp->cache_lock);
	umem_debug_error(UMERR_BADADDR, cp, buf, "umem_cache_free: '%s' "
	    "(%p): buffer %p was not allocated from this cache",
	    cp->cache_name, (void *)cp, buf);
	return (-1);
}

static void
slab_destroy_list(umem_cache_t *cp, umem_slab_t *dead)
{
	umem_slab_t *sp;

	while ((sp = dead) != NULL) {
		dead = sp->slab_next;
		slab_destroy(cp, sp);
	}
}

/*
 * The end of every free to the slab layer: drop cache_lock, destroy the
 * slabs that emptied, and grow the bufctl hash if the cache outgrew it.
 * The update thread resizes it every pass, but a burst that gives tens of
 * thousands of buffers back (a capped depot's rounds) walked chains
 * hundreds long before then: past 4 buffers a bucket, the freeing thread
 * resizes it itself, with no lock held.
 */
static void
slab_free_finish(umem_cache_t *cp, umem_slab_t *dead)
{
	int grow = (cp->cache_flags & UMF_HASH) &&
	    cp->cache_buftotal > 4 * (uint64_t)(cp->cache_hash_mask + 1);

	umem_unlock(&cp->cache_lock);
	slab_destroy_list(cp, dead);
	if (grow)
		umem_hash_rescale(cp);
}

void
umem_slab_free(umem_cache_t *cp, void *buf)
{
	umem_slab_t *dead = NULL;

	umem_lock(&cp->cache_lock);
	if (slab_free_locked(cp, buf, &dead) != 0)
		return;
	slab_free_finish(cp, dead);
}

/*
 * n buffers back to their slabs under one acquisition of cache_lock (a
 * reaped magazine's rounds: reclaim is not slowed by one lock round trip
 * per object).
 */
void
umem_slab_free_batch(umem_cache_t *cp, void **bufs, size_t n)
{
	umem_slab_t *dead = NULL;
	size_t i;

	if (n == 0)
		return;
	umem_lock(&cp->cache_lock);
	for (i = 0; i < n; i++) {
		if (slab_free_locked(cp, bufs[i], &dead) != 0)
			umem_lock(&cp->cache_lock);
	}
	slab_free_finish(cp, dead);
}

/*
 * The newest keep spares stay, the rest go back to the source arena
 * (cache_lock held, dropped).  How many went.
 */
UMEM_TEXT_COLD static int
spare_cut(umem_cache_t *cp, uint32_t keep)
{
	umem_slab_t *dead, **spp;
	uint32_t n = cp->cache_spare_count, i;

	if (keep >= n) {
		umem_unlock(&cp->cache_lock);
		return (0);
	}
	/* The newest keep stay; the rest, at the list's end, go. */
	for (spp = &cp->cache_spare, i = 0; i < keep; i++)
		spp = &(*spp)->slab_next;
	if ((dead = *spp) != NULL) {
		*spp = NULL;
		spare_uncharge(cp, n, keep);
		cp->cache_spare_count = keep;
		cp->cache_buftotal -= (uint64_t)(n - keep) * dead->slab_chunks;
		cp->cache_slab_destroy += n - keep;
	}
	umem_unlock(&cp->cache_lock);
	slab_destroy_list(cp, dead);
	return ((int)(n - keep));
}

/*
 * Give spare slabs back to the source arena: all of them (all = 1), or,
 * at an update pass (all = 0), those unused since the previous pass, and
 * every one if the cache took no buffer from its slabs since then (the
 * spares are for churn, which an idle cache does not have).  Returns how
 * many went back.
 */
UMEM_TEXT_COLD int
umem_slab_release_spare(umem_cache_t *cp, int all)
{
	uint32_t keep, n;

	umem_lock(&cp->cache_lock);
	n = cp->cache_spare_count;
	keep = (all || cp->cache_slab_alloc == cp->cache_spare_seen) ? 0 :
	    n - cp->cache_spare_min;
	cp->cache_spare_seen = cp->cache_slab_alloc;
	cp->cache_spare_min = keep;
	return (spare_cut(cp, keep));
}

/* The growth scan: spares cut back to UMEM_SPARE_BYTES (see above). */
UMEM_TEXT_COLD int
umem_slab_trim_spares(umem_cache_t *cp)
{
	umem_lock(&cp->cache_lock);
	return (spare_cut(cp, spare_max(cp, UMEM_SPARE_BYTES)));
}

size_t
umem_slab_color(umem_cache_t *cp, void *buf)
{
	umem_slab_t *sp = NULL;
	size_t color = SIZE_MAX;

	umem_lock(&cp->cache_lock);
	if (cp->cache_flags & UMF_HASH) {
		umem_bufctl_t *bcp = *UMEM_HASH(cp, buf);

		while (bcp != NULL && bcp->bc_addr != buf)
			bcp = bcp->bc_next;
		if (bcp != NULL)
			sp = bcp->bc_slab;
	} else {
		sp = slab_of(cp, buf);
	}
	if (sp != NULL)
		color = (size_t)((char *)sp->slab_base - (char *)sp->slab_mem);
	umem_unlock(&cp->cache_lock);
	return (color);
}

/*
 * Cache destruction: give back every slab; the ones with allocated buffers
 * (the caller broke the contract) are counted and left alone.  Returns the
 * number of buffers still allocated.
 */
UMEM_TEXT_COLD uint64_t
umem_slab_destroy_all(umem_cache_t *cp)
{
	umem_slab_t *sp, *next, *dead = NULL;
	uint64_t busy = 0;

	umem_lock(&cp->cache_lock);
	for (sp = cp->cache_nullslab.slab_next; sp != &cp->cache_nullslab;
	    sp = next) {
		next = sp->slab_next;
		if (sp->slab_refcnt != 0) {
			busy += sp->slab_refcnt;
			continue;
		}
		slab_unlink(cp, sp);
		cp->cache_buftotal -= sp->slab_chunks;
		cp->cache_slab_destroy++;
		sp->slab_next = dead;
		dead = sp;
	}
	umem_unlock(&cp->cache_lock);
	while ((sp = dead) != NULL) {
		dead = sp->slab_next;
		slab_destroy(cp, sp);
	}
	(void) umem_slab_release_spare(cp, 1);
	return (busy);
}

/*
 * ---- lookups for the debugging layer (debug.c) ----
 */
int
umem_slab_lookup(umem_cache_t *cp, const void *buf)
{
	umem_bufctl_t *bcp;

	if (!(cp->cache_flags & UMF_HASH))
		return (0);
	umem_lock(&cp->cache_lock);
	for (bcp = *UMEM_HASH(cp, buf); bcp != NULL; bcp = bcp->bc_next)
		if (bcp->bc_addr == buf)
			break;
	umem_unlock(&cp->cache_lock);
	return (bcp != NULL);
}

static int
slab_contains(umem_cache_t *cp, umem_slab_t *sp, const void *buf,
    void **startp)
{
	uintptr_t b = (uintptr_t)buf, base = (uintptr_t)sp->slab_base;
	uint32_t chunks = (cp->cache_flags & (UMF_HASH | UMF_SLABMAP)) ?
	    sp->slab_chunks :
	    (uint32_t)(((uintptr_t)sp - base) / cp->cache_chunksize);

	if (b < base || b >= base + (uintptr_t)chunks * cp->cache_chunksize)
		return (0);
	*startp = (void *)(base + (b - base) / cp->cache_chunksize *
	    cp->cache_chunksize);
	if ((char *)buf >= (char *)*startp + cp->cache_bufsize &&
	    (cp->cache_flags & UMF_DEBUG))
		return (0);	/* in the tag, not the buffer */
	return (1);
}

int
umem_slab_find(umem_cache_t *cp, const void *buf, void **startp)
{
	umem_slab_t *sp;
	int found = 0;

	if (cp->cache_flags & UMF_NOTOUCH)
		return (0);
	umem_lock(&cp->cache_lock);
	for (sp = cp->cache_nullslab.slab_next; sp != &cp->cache_nullslab &&
	    !found; sp = sp->slab_next)
		found = slab_contains(cp, sp, buf, startp);
	for (sp = cp->cache_spare; sp != NULL && !found; sp = sp->slab_next)
		found = slab_contains(cp, sp, buf, startp);
	umem_unlock(&cp->cache_lock);
	return (found);
}

int
umem_slab_small_find(umem_cache_t *cp, const void *buf, void **startp)
{
	umem_slab_t *sp;

	if (cp->cache_flags & UMF_HASH)
		return (0);
	sp = slab_of(cp, buf);
	if (sp == NULL || sp->slab_cache != cp)
		return (0);
	return (slab_contains(cp, sp, buf, startp));
}
