/*
 * umem_alloc.c - umem_alloc(), umem_zalloc(), umem_free() and the block
 * layer under malloc: size classes over object caches, large blocks from
 * vmem, and the page map that finds a block's owner from its address.
 *
 * Big theory statement
 * --------------------
 * Sizes up to UMEM_MAXBUF are served by one object cache per size class
 * (umem_alloc_<size>), chosen by table lookup: (size + 15) >> 4 up to 1 KiB,
 * (size + 255) >> 8 above.  Every class is a multiple of 16, so every block
 * of 16 bytes or more is 16-aligned; power-of-two classes up to a page are
 * aligned to their size, which is what the aligned allocators use.  A
 * class's cache is created on its first allocation (class_create).
 *
 * Larger sizes are whole pages from the umem_oversize arena (each block a
 * span imported from the heap at its size; recently freed blocks up to
 * 1 MiB are kept whole a little while for reuse, see large_cache_get, and
 * the pages of the others stay a pass or two for the next blocks, see
 * large_release).
 *
 * No per-block header.  The slabs of the class caches are recorded page by
 * page in the page map (pagemap.h), and so are large blocks (their size in
 * the first page's entry), so a free of a bare pointer finds its cache in
 * two loads.  This is how malloc(16) costs 16 bytes rather than illumos' 32.
 * The page map also makes bad frees cheap to detect: a pointer that is not
 * ours, an interior pointer of a large block, and a misaligned pointer are
 * reported (umem_error: abort unless aborting is off).
 *
 * Double frees of class blocks are caught with a key: a free stores, in the
 * block's first word, a value derived from a per-process secret and the
 * block's address; an allocation clears it.  A free that finds its key
 * already there is a double free (the block is free, in a magazine or in
 * its slab).  The slab layer links free buffers through their last word,
 * never the first, so the key survives there too.  Blocks of classes with
 * debugging never get a key: the debug layer checks them itself and must
 * see their bytes as the program left them (the fast path stores the key
 * inside its rseq push, which a debug cache's slots always miss, and the
 * miss path below skips it).
 */
#define	_GNU_SOURCE
#include "umem_alloc.h"
#include "debug.h"
#include "pagemap.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* The size classes. */
static const uint32_t umem_alloc_sizes[] = {
	16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240,
	256, 320, 384, 448, 512, 640, 768, 896, 1024,
	1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096,
	5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384,
	20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536
};
#define	UMEM_NCLASSES	(sizeof (umem_alloc_sizes) / sizeof (uint32_t))

umem_cache_t *umem_alloc_table_small[UMEM_SMALL_MAX / 16 + 1];
umem_cache_t *umem_alloc_table_large[UMEM_MAXBUF / 256 + 1];
umem_cache_t *umem_alloc_class_small[UMEM_SMALL_MAX / 16 + 1];
umem_cache_t *umem_alloc_class_large[UMEM_MAXBUF / 256 + 1];
static umem_cache_t *umem_alloc_caches[UMEM_NCLASSES];
/* Size -> class index, for creating a class on its first use. */
static uint8_t umem_alloc_index_small[UMEM_SMALL_MAX / 16 + 1];
static uint8_t umem_alloc_index_large[UMEM_MAXBUF / 256 + 1];
/* Power-of-two classes 16..pagesize, naturally aligned: for memalign. */
#define	UMEM_NP2	17		/* 2^0 .. 2^16 = UMEM_MAXBUF */
static umem_cache_t *umem_alloc_p2[UMEM_NP2];

vmem_t *umem_oversize_arena;
uintptr_t umem_free_secret;

static umem_lock_t umem_alloc_init_lock = UMEM_LOCK_INITIALIZER;
static umem_lock_t umem_class_lock = UMEM_LOCK_INITIALIZER;

/*
 * Each large block's range is a span of its own, imported at its size:
 * freed (not kept whole), it goes straight back to the heap, merges there
 * with its free neighbours, and its pages (dirty, see large_release) serve
 * the next import of any size, a slab's as well.  Spans of 1 MiB left a
 * block room to grow in place, but kept their free part from everything
 * but large blocks (mallocbench grow's peak 95.5 -> 87.4 MB, and 9%
 * faster; realloc's 8.60 -> 8.15 MB).  A block still grows in place into
 * a kept tail that was cut from it (large_join_next).
 */
static void *
umem_oversize_import(vmem_t *heap, size_t size, int vmflag)
{
	void *p = vmem_heap_alloc_dirty(heap, size, vmflag);

	if (p != NULL)
		umem_update_heap_grew(size);
	return (p);
}

/* Once (pthread_once): it needs only vmem, never the allocator. */
static pthread_once_t umem_oversize_once = PTHREAD_ONCE_INIT;

static void
umem_oversize_create(void)
{
	/* (Imports through vmem_heap_alloc_dirty: the pair's free only.) */
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);

	umem_oversize_arena = vmem_create("umem_oversize", NULL, 0,
	    umem_pagesize, umem_oversize_import, ff, heap, 0, VM_NOSLEEP);
}
static pthread_t umem_alloc_init_thread;
static int umem_alloc_initing;
int umem_alloc_ready;

/*
 * ------------------------------------------------------------------------
 * Initialisation
 * ------------------------------------------------------------------------
 */
/*
 * Fork: no class is half-created in the child.  Registered after the
 * object caches' handlers, so this prepare runs first: the class lock
 * comes before every lock that creating a cache takes.
 */
UMEM_TEXT_COLD static void
class_fork_prepare(void)
{
	umem_lock(&umem_class_lock);
}

UMEM_TEXT_COLD static void
class_fork_parent(void)
{
	umem_unlock(&umem_class_lock);
}

UMEM_TEXT_COLD static void
class_fork_child(void)
{
	umem_lock_init(&umem_class_lock);
}

/* index[k]: the smallest class that holds k * step bytes. */
static void
class_index(uint8_t *index, size_t n, size_t step)
{
	for (size_t k = 0, i = 0; k < n; k++) {
		while (umem_alloc_sizes[i] < k * step)
			i++;
		index[k] = (uint8_t)i;
	}
}

/* Name the new class cp (index i) in a pair of lookup tables. */
static void
class_publish(umem_cache_t *cp, size_t i, const uint8_t *index, size_t n,
    umem_cache_t **class_tab, umem_cache_t **fast_tab)
{
	for (size_t k = 0; k < n; k++) {
		if (index[k] != i)
			continue;
		__atomic_store_n(&class_tab[k], cp, __ATOMIC_RELEASE);
		if (!(cp->cache_flags & UMF_DEBUG))
			__atomic_store_n(&fast_tab[k], cp, __ATOMIC_RELEASE);
	}
}

static int
umem_alloc_init_locked(void)
{
	/* umem_oversize is created by the first large allocation. */
	if (umem_init() != 0)
		return (-1);
	if (getrandom(&umem_free_secret, sizeof (umem_free_secret),
	    GRND_NONBLOCK) != sizeof (umem_free_secret))
		umem_free_secret = (uintptr_t)umem_gethrtime() *
		    0x9e3779b97f4a7c15ull;
	umem_free_secret |= 1;	/* never equal to a zeroed word */

	/* The classes themselves are created on first use (class_create). */
	class_index(umem_alloc_index_small, UMEM_SMALL_MAX / 16 + 1, 16);
	class_index(umem_alloc_index_large, UMEM_MAXBUF / 256 + 1, 256);
	umem_atfork_add(class_fork_prepare, class_fork_parent,
	    class_fork_child);
	return (0);
}

/*
 * Size classes are created when first used: a program touches a handful
 * of the 48, and each costs a cache structure with a slot per CPU (1.4 KiB
 * with 2 CPUs, 9 KiB with 64).  Until then its table entries are NULL and
 * allocations of its sizes take the slow path to here.  The entries are
 * published after the cache is complete.
 */
static umem_cache_t *
class_create(size_t i)
{
	umem_cache_t *cp;
	size_t size = umem_alloc_sizes[i], align = 16;

	umem_lock(&umem_class_lock);
	if ((cp = umem_alloc_caches[i]) != NULL) {
		umem_unlock(&umem_class_lock);
		return (cp);
	}
	if (IS_P2(size))
		align = size < umem_pagesize ? size : umem_pagesize;
	{
		char name[32];

		umem_name(name, sizeof (name), "umem_alloc_", size);
		cp = umem_cache_create_internal(name, size, align, NULL, NULL,
		    NULL, NULL, NULL, UMC_PAGEMAP, 0);
	}
	if (cp == NULL) {
		umem_unlock(&umem_class_lock);
		return (NULL);
	}
	class_publish(cp, i, umem_alloc_index_small, UMEM_SMALL_MAX / 16 + 1,
	    umem_alloc_class_small, umem_alloc_table_small);
	class_publish(cp, i, umem_alloc_index_large, UMEM_MAXBUF / 256 + 1,
	    umem_alloc_class_large, umem_alloc_table_large);
	if (IS_P2(size) && highbit(size) <= UMEM_NP2)
		__atomic_store_n(&umem_alloc_p2[highbit(size) - 1], cp,
		    __ATOMIC_RELEASE);
	__atomic_store_n(&umem_alloc_caches[i], cp, __ATOMIC_RELEASE);
	umem_unlock(&umem_class_lock);
	return (cp);
}

/* The class cache for 0 <= size <= UMEM_MAXBUF, created if need be. */
static umem_cache_t *
umem_size_class_get(size_t size)
{
	umem_cache_t *cp = umem_size_to_class(size);

	if (UMEM_LIKELY(cp != NULL))
		return (cp);
	return (class_create(size <= UMEM_SMALL_MAX ?
	    umem_alloc_index_small[(size + 15) >> 4] :
	    umem_alloc_index_large[(size + 255) >> 8]));
}

/*
 * 1 when the class caches exist.  A thread that calls back into the
 * allocator while initialising it (pthread_create of the update thread
 * needs calloc) gets 0 and is served from pages meanwhile.
 */
int
umem_alloc_init(void)
{
	int rv;

	if (__atomic_load_n(&umem_alloc_ready, __ATOMIC_ACQUIRE))
		return (1);
	if (__atomic_load_n(&umem_alloc_initing, __ATOMIC_ACQUIRE) &&
	    pthread_equal(umem_alloc_init_thread, pthread_self()))
		return (0);
	umem_lock(&umem_alloc_init_lock);
	if (!umem_alloc_ready) {
		umem_alloc_init_thread = pthread_self();
		__atomic_store_n(&umem_alloc_initing, 1, __ATOMIC_RELEASE);
		rv = umem_alloc_init_locked();
		__atomic_store_n(&umem_alloc_initing, 0, __ATOMIC_RELEASE);
		if (rv == 0)
			__atomic_store_n(&umem_alloc_ready, 1,
			    __ATOMIC_RELEASE);
	}
	umem_unlock(&umem_alloc_init_lock);
	return (umem_alloc_ready);
}

/*
 * ------------------------------------------------------------------------
 * Large blocks
 * ------------------------------------------------------------------------
 */
/*
 * Recently freed large blocks (up to UMEM_LC_BLOCK bytes, UMEM_LC_BYTES in
 * all) keep their pages and are reused by an allocation of the same page
 * count: a program that frees and reallocates large buffers (realloc
 * growth, a loop over big temporaries) would otherwise pay a page fault
 * and a kernel page clear per page every time the block's pages had gone
 * back to the OS.  The update thread gives a kept block's pages to the OS
 * once it has sat unused across a whole pass (within two update
 * intervals), malloc_trim and a short arena at once.  Calloc and
 * umem_zalloc (UMEM_ZERO_LARGE) clear a reused block; fresh pages are zero.
 *
 * Lock-free (so fork needs no handler): a slot holds the block's address
 * with, in the low bits, its page count and whether it was moved (below),
 * or 0; CAS moves blocks in and out.
 */
#define	UMEM_LC_SLOTS	32
#define	UMEM_LC_BLOCK	(1ul << 20)
#define	UMEM_LC_BYTES	(8ul << 20)

static uintptr_t umem_lc_slot[UMEM_LC_SLOTS];
static uint64_t umem_lc_pass[UMEM_LC_SLOTS];	/* update pass when kept */
static size_t umem_lc_bytes;

/*
 * Slot words: address | pages << 2 | tail << 1 | moved (pages <
 * pagesize / 4).  A tail is the rest of a block that was cut for a smaller
 * allocation (large_cache_get) or a smaller realloc (large_trim): it is
 * that block's room to grow in place, so it is the last choice of
 * large_cache_get.
 */
#define	LC_WORD(buf, pages, tail, moved) ((uintptr_t)(buf) | (pages) << 2 | \
					    ((tail) != 0) << 1 | ((moved) != 0))
#define	LC_PAGES(w)	(((w) & (umem_pagesize - 1)) >> 2)
#define	LC_TAIL(w)	(((w) >> 1) & 1)
#define	LC_MOVED(w)	((w) & 1 ? UMEM_PM_MOVED : 0)
#define	LC_ADDR(w)	((void *)((w) & ~(uintptr_t)(umem_pagesize - 1)))

/*
 * Realloc growth moves the pages of a block over umem_large_copy_max
 * rather than copying them (large_move): vmem_heap_move() costs a mapping
 * of its own per moved block alive, given back when the block's pages
 * are (vmem_heap_renew()).  Moved blocks carry UMEM_PM_MOVED in the page
 * map; at most UMEM_MOVED_MAX of them live at a time (2 mappings each at
 * worst, a quarter of Linux's default vm.max_map_count), then realloc
 * copies.
 */
#define	UMEM_MOVED_MAX	8192

static size_t umem_moved_live;
static int umem_move_broken;	/* the kernel cannot (old, or refuses) */

/* Moved blocks alive (for tests). */
size_t
umem_large_moved(void)
{
	return (__atomic_load_n(&umem_moved_live, __ATOMIC_RELAXED));
}

/* Take the kept block in slot i if its word is still w; 1 if taken. */
static int
large_cache_take(int i, uintptr_t w)
{
	if (!__atomic_compare_exchange_n(&umem_lc_slot[i], &w, 0, 0,
	    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return (0);
	(void) __atomic_fetch_sub(&umem_lc_bytes, LC_PAGES(w) * umem_pagesize,
	    __ATOMIC_RELAXED);
	return (1);
}

static int large_cache_put(void *buf, size_t rsize, int tail,
    uintptr_t moved);
static void large_release(void *buf, size_t rsize, uintptr_t moved);

/*
 * Keep the tail [buf + keep, buf + size) of a block just taken from the
 * cache (it keeps its pages), handing out the head: 0, or -1 if the block
 * could not be cut (it is released then).
 */
static int
large_cache_split(void *buf, size_t size, size_t keep, uintptr_t moved)
{
	char *tail = (char *)buf + keep;

	if (vmem_split(umem_oversize_arena, buf, size, keep) != 0) {
		large_release(buf, size, moved);
		return (-1);
	}
	/* A moved block cut in two is two moved blocks. */
	if (moved)
		(void) __atomic_fetch_add(&umem_moved_live, 1,
		    __ATOMIC_RELAXED);
	if (!large_cache_put(tail, size - keep, 1, moved))
		large_release(tail, size - keep, moved);
	return (0);
}

/*
 * A kept block of rsize bytes: in order of preference, a block of exactly
 * that size, the head of the smallest larger block (the rest stays kept,
 * as a tail), a tail of that size, the head of the smallest larger tail.
 * NULL if none.
 */
static void *
large_cache_get(size_t rsize, uintptr_t *movedp)
{
	uintptr_t want = rsize / umem_pagesize, best = 0;
	int besti = -1;

	if (__atomic_load_n(&umem_lc_bytes, __ATOMIC_RELAXED) == 0)
		return (NULL);
	for (int i = 0; i < UMEM_LC_SLOTS; i++) {
		uintptr_t w = __atomic_load_n(&umem_lc_slot[i],
		    __ATOMIC_RELAXED);

		if (w == 0 || LC_PAGES(w) < want)
			continue;
		if (LC_PAGES(w) == want && !LC_TAIL(w) &&
		    large_cache_take(i, w)) {
			*movedp = LC_MOVED(w);
			return (LC_ADDR(w));
		}
		/* Rank: not a tail first, then exact, then smaller. */
		if (besti < 0 || LC_TAIL(w) < LC_TAIL(best) ||
		    (LC_TAIL(w) == LC_TAIL(best) &&
		    LC_PAGES(w) < LC_PAGES(best))) {
			best = w;
			besti = i;
		}
	}
	if (besti < 0 || !large_cache_take(besti, best))
		return (NULL);
	if (LC_PAGES(best) == want) {
		*movedp = LC_MOVED(best);
		return (LC_ADDR(best));
	}
	if (large_cache_split(LC_ADDR(best), LC_PAGES(best) * umem_pagesize,
	    rsize, LC_MOVED(best)) != 0)
		return (NULL);
	*movedp = LC_MOVED(best);
	return (LC_ADDR(best));
}

/* The size of the kept block at addr, now taken out of the cache, or 0. */
static size_t
large_cache_get_at(void *addr, uintptr_t *movedp)
{
	if (__atomic_load_n(&umem_lc_bytes, __ATOMIC_RELAXED) == 0)
		return (0);
	for (int i = 0; i < UMEM_LC_SLOTS; i++) {
		uintptr_t w = __atomic_load_n(&umem_lc_slot[i],
		    __ATOMIC_RELAXED);

		if (w != 0 && LC_ADDR(w) == addr) {
			if (!large_cache_take(i, w))
				return (0);
			*movedp = LC_MOVED(w);
			return (LC_PAGES(w) * umem_pagesize);
		}
	}
	return (0);
}

/* 1 if buf (already out of the page map) is now kept. */
static int
large_cache_put(void *buf, size_t rsize, int tail, uintptr_t moved)
{
	uintptr_t w = LC_WORD(buf, rsize / umem_pagesize, tail, moved);

	if (rsize > UMEM_LC_BLOCK ||
	    rsize / umem_pagesize >= umem_pagesize / 4 ||
	    __atomic_add_fetch(&umem_lc_bytes, rsize, __ATOMIC_RELAXED) >
	    UMEM_LC_BYTES)
		goto full;
	for (int i = 0; i < UMEM_LC_SLOTS; i++) {
		uintptr_t z = 0;

		if (__atomic_load_n(&umem_lc_slot[i], __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&umem_lc_slot[i], &z, w, 0,
		    __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
			__atomic_store_n(&umem_lc_pass[i],
			    UMEM_STAT_READ(umem_update_passes),
			    __ATOMIC_RELAXED);
			return (1);
		}
	}
full:
	if (rsize <= UMEM_LC_BLOCK)
		(void) __atomic_fetch_sub(&umem_lc_bytes, rsize,
		    __ATOMIC_RELAXED);
	return (0);
}

/*
 * Range to the arena (out of the page map already), its pages kept dirty
 * for the next blocks (vmem_heap_keep: until an update pass finds them
 * unused) or, if aged (a kept block given back by the cache's reap) or
 * moved (its mapping merges again), to the OS.
 */
static void
large_release_as(void *buf, size_t rsize, uintptr_t moved, int aged)
{
	if (moved) {
		vmem_heap_renew(buf, rsize);
		(void) __atomic_fetch_sub(&umem_moved_live, 1,
		    __ATOMIC_RELAXED);
	} else if (aged) {
		umem_pages_release(buf, rsize);
	} else {
		vmem_heap_keep(buf, rsize);
	}
	vmem_xfree(umem_oversize_arena, buf, rsize);
}

static void
large_release(void *buf, size_t rsize, uintptr_t moved)
{
	large_release_as(buf, rsize, moved, 0);
}

/*
 * Give back kept blocks: all, or those kept before the last update pass.
 * (The pass stamp is written after the block is published, so a block
 * kept just now may be given back early: harmless.)
 */
void
umem_large_cache_reap(int all)
{
	uint64_t pass = UMEM_STAT_READ(umem_update_passes);

	if (__atomic_load_n(&umem_lc_bytes, __ATOMIC_RELAXED) == 0)
		return;
	for (int i = 0; i < UMEM_LC_SLOTS; i++) {
		uintptr_t w = __atomic_load_n(&umem_lc_slot[i],
		    __ATOMIC_RELAXED);
		size_t rsize;

		if (w == 0 || (!all && __atomic_load_n(&umem_lc_pass[i],
		    __ATOMIC_RELAXED) >= pass) ||
		    !__atomic_compare_exchange_n(&umem_lc_slot[i], &w, 0, 0,
		    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		rsize = LC_PAGES(w) * umem_pagesize;
		(void) __atomic_fetch_sub(&umem_lc_bytes, rsize,
		    __ATOMIC_RELAXED);
		large_release_as(LC_ADDR(w), rsize, LC_MOVED(w), 1);
	}
}

/*
 * A range just taken from the oversize arena: out of the heap's dirty set
 * (which a release of freed blocks left it in, vmem_heap_keep), so that
 * no flush takes its pages now.  (Every free range of the arena has zero
 * pages or is in the dirty set: a range claimed and then not used goes
 * back through large_release or vmem_heap_keep too.)  A block to be
 * zeroed gets zero pages: up to UMEM_LC_BLOCK, dirty pages are cleared
 * (cheaper than the page faults their release would cost the caller),
 * above, given to the OS.
 */
static void
large_claim(void *buf, size_t rsize, size_t size, int umflags)
{
	if (!(umflags & UMEM_ZERO_LARGE))
		(void) vmem_heap_claim(buf, rsize, 0);
	else if (rsize > UMEM_LC_BLOCK)
		(void) vmem_heap_claim(buf, rsize, 1);
	else if (vmem_heap_claim(buf, rsize, 0) != 0)
		(void) memset(buf, 0, size);
}

/*
 * A range of the arena for a large block: where the heap keeps dirty
 * pages first (the arena's instant fit cannot tell which free ranges have
 * pages), so that the block needs no page faults and the pages kept need
 * not wait for their flush while new ones are touched.
 */
static void *
large_range(size_t rsize, size_t align)
{
	void *buf;

	if (align == 0 && (buf = vmem_heap_alloc_kept(umem_oversize_arena,
	    rsize)) != NULL)
		return (buf);
	return (vmem_xalloc(umem_oversize_arena, rsize, align, 0, 0, NULL,
	    NULL, VM_NOSLEEP));
}

void *
umem_large_alloc(size_t size, size_t align, int umflags)
{
	/* (first: UMEM_DEBUG is read there, and decides the tag) */
	int ready = umem_alloc_init();
	size_t extra = ready ? umem_debug_large_extra() : 0;
	size_t rsize = P2ROUNDUP(size + extra, umem_pagesize);
	uintptr_t tagged = extra != 0 ? UMEM_PM_TAGGED : 0;
	uintptr_t moved;
	void *buf;
	int trimmed = 0;

	umem_update_poll();
	if (rsize < size || rsize > (SIZE_MAX >> 2) || size == 0) {
		errno = ENOMEM;
		return (NULL);
	}
	(void) pthread_once(&umem_oversize_once, umem_oversize_create);
	if (umem_oversize_arena == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	if (align <= umem_pagesize) {
		align = 0;
		if (rsize <= UMEM_LC_BLOCK &&
		    (buf = large_cache_get(rsize, &moved)) != NULL) {
			if (umem_pagemap_set(buf, rsize, rsize | moved |
			    tagged | UMEM_PM_LARGE, UMEM_PM_INTERIOR) != 0) {
				large_release(buf, rsize, moved);
			} else {
				if (umflags & UMEM_ZERO_LARGE)
					(void) memset(buf, 0, size);
				if (tagged)
					umem_debug_large_init(buf, rsize, size);
				return (buf);
			}
		}
	}
	for (;;) {
		buf = large_range(rsize, align);
		if (buf != NULL && umem_pagemap_set(buf, rsize,
		    rsize | tagged | UMEM_PM_LARGE, UMEM_PM_INTERIOR) == 0) {
			large_claim(buf, rsize, size, umflags);
			if (tagged)
				umem_debug_large_init(buf, rsize, size);
			return (buf);
		}
		if (buf != NULL)
			vmem_xfree(umem_oversize_arena, buf, rsize);
		umem_large_cache_reap(1);
		if (umem_alloc_failed(&trimmed))
			continue;	/* under a heap limit, room was made */
		if (!(umflags & UMEM_NOFAIL)) {
			errno = ENOMEM;
			return (NULL);
		}
		umem_nofail();
	}
}

/*
 * Free a large block: kept whole for a block of its size (large_cache_put)
 * if keep_whole, else to the arena with its pages (large_release).
 */
static void
large_free(void *buf, size_t rsize, int keep_whole)
{
	uintptr_t pm = umem_pagemap_get(buf), moved = pm & UMEM_PM_MOVED;

	/* A damaged block is reported and kept out of use (noabort). */
	if ((pm & UMEM_PM_TAGGED) &&
	    umem_debug_large_size(buf, rsize, 1) == SIZE_MAX)
		return;

	(void) umem_pagemap_set(buf, rsize, 0, 0);
	if (!keep_whole || !large_cache_put(buf, rsize, 0, moved))
		large_release(buf, rsize, moved);
}

void
umem_large_free(void *buf, size_t rsize)
{
	large_free(buf, rsize, 1);
}

/*
 * Grow or shrink a large block in place; 1 if done.  (Growth succeeds when
 * the pages after it are free in its span: a tail cut from it.)
 */
int
umem_large_resize(void *buf, size_t rsize, size_t newsize)
{
	size_t nsize = P2ROUNDUP(newsize, umem_pagesize);
	uintptr_t moved = umem_pagemap_get(buf) & UMEM_PM_MOVED;

	if (nsize < newsize)
		return (0);
	if (nsize == rsize)
		return (1);
	if (nsize > rsize) {
		if (vmem_resize(umem_oversize_arena, buf, rsize, nsize) != 0)
			return (0);
		(void) vmem_heap_claim((char *)buf + rsize, nsize - rsize, 0);
		if (umem_pagemap_set(buf, nsize, nsize | moved |
		    UMEM_PM_LARGE, UMEM_PM_INTERIOR) != 0) {
			vmem_heap_keep((char *)buf + rsize, nsize - rsize);
			(void) vmem_resize(umem_oversize_arena, buf, nsize,
			    rsize);
			return (0);
		}
	} else {
		/* Forget and release the tail before anyone can reuse it. */
		char *tail = (char *)buf + nsize;

		(void) umem_pagemap_set(tail, rsize - nsize, 0, 0);
		if (moved)	/* so that its mappings merge again */
			vmem_heap_renew(tail, rsize - nsize);
		else
			vmem_heap_keep(tail, rsize - nsize);
		if (vmem_resize(umem_oversize_arena, buf, rsize, nsize) != 0) {
			/* The block keeps its tail: no flush may take it. */
			if (!moved)
				(void) vmem_heap_claim(tail, rsize - nsize, 0);
			(void) umem_pagemap_set(buf, rsize,
			    rsize | moved | UMEM_PM_LARGE, UMEM_PM_INTERIOR);
			return (0);
		}
		(void) umem_pagemap_set(buf, umem_pagesize,
		    nsize | moved | UMEM_PM_LARGE, UMEM_PM_INTERIOR);
	}
	return (1);
}

/*
 * Copy a block into nbuf (nsize bytes, taken for it), then free it: to
 * the arena, not kept whole.  The block grew out of its size: a block of
 * that size is not what the program asks for next, but its pages serve
 * any block that fits where it lay, merged with its free neighbours
 * (mallocbench realloc's peak: 11.3 MB with the old blocks kept whole,
 * 8.6 MB so).
 */
static void *
large_copy(void *buf, size_t rsize, void *nbuf, size_t nsize,
    uintptr_t nmoved)
{
	if (umem_pagemap_set(nbuf, nsize, nsize | nmoved | UMEM_PM_LARGE,
	    UMEM_PM_INTERIOR) != 0) {
		large_release(nbuf, nsize, nmoved);
		return (NULL);
	}
	(void) memcpy(nbuf, buf, rsize);
	large_free(buf, rsize, 0);
	return (nbuf);
}

/*
 * Move a large block of rsize bytes to a new range of nsize > rsize bytes,
 * by copying it or by moving its pages (vmem_heap_move: the rest of the
 * new range keeps what pages it had, the old range goes back to the arena
 * with no pages).  Up to umem_large_copy_max (UMEM_COPY_MAX) it is
 * copied.  A copy into a resident page costs about 0.05 us, into a fresh
 * one a page fault; a moved page costs its share of a system call and a
 * TLB shootdown, and, where the hypervisor shadows the page tables (the
 * PVM guests this is measured on), an exit of about 5.4 us on its next
 * touch, as much as a page fault.  And a copy leaves the old block's
 * pages for the next blocks (large_copy), where a move takes them along
 * and the next growth faults fresh pages in: mallocbench grow 0.29 ->
 * 0.20 s copying every block up to 4 MiB rather than those of 1 MiB or
 * more and those going into resident pages, its peak 108 -> 98 MB.
 * Where page tables are cheap to change, moving a big block wins
 * (nothing is read or written): hence the bound.  The new address, or
 * NULL (nothing changed: the caller copies).
 */
#define	UMEM_COPY_MAX	(4ul << 20)

size_t umem_large_copy_max = UMEM_COPY_MAX;

/* Move the pages of buf into nbuf, taken for it; NULL if it cannot. */
UMEM_TEXT_COLD static void *
large_move_pages(void *buf, size_t rsize, void *nbuf, size_t nsize)
{
	uintptr_t moved = umem_pagemap_get(buf) & UMEM_PM_MOVED;

	/* One more moved block alive (unless buf was one already). */
	if (!moved && __atomic_add_fetch(&umem_moved_live, 1,
	    __ATOMIC_RELAXED) > UMEM_MOVED_MAX) {
		(void) __atomic_fetch_sub(&umem_moved_live, 1,
		    __ATOMIC_RELAXED);
		return (large_copy(buf, rsize, nbuf, nsize, 0));
	}
	if (umem_pagemap_set(nbuf, nsize, nsize | UMEM_PM_MOVED |
	    UMEM_PM_LARGE, UMEM_PM_INTERIOR) != 0) {
		large_release(nbuf, nsize, 0);
		goto fail;
	}
	if (vmem_heap_move(buf, nbuf, rsize) != 0) {
		if (errno == EINVAL || errno == ENOSYS)
			__atomic_store_n(&umem_move_broken, 1,
			    __ATOMIC_RELAXED);
		(void) umem_pagemap_set(nbuf, nsize, 0, 0);
		large_release(nbuf, nsize, 0);
		goto fail;
	}
	/* The old range: no pages now; merge it back if it was moved to. */
	(void) umem_pagemap_set(buf, rsize, 0, 0);
	if (moved)
		vmem_heap_renew(buf, rsize);
	vmem_xfree(umem_oversize_arena, buf, rsize);
	return (nbuf);
fail:
	if (!moved)
		(void) __atomic_fetch_sub(&umem_moved_live, 1,
		    __ATOMIC_RELAXED);
	return (NULL);
}

static void *
large_move(void *buf, size_t rsize, size_t nsize)
{
	uintptr_t nmoved = 0;
	void *nbuf;

	if (nsize <= UMEM_LC_BLOCK &&
	    (nbuf = large_cache_get(nsize, &nmoved)) != NULL)
		return (large_copy(buf, rsize, nbuf, nsize, nmoved));
	nbuf = large_range(nsize, 0);
	if (nbuf == NULL)
		return (NULL);
	(void) vmem_heap_claim(nbuf, nsize, 0);
	if (rsize <= umem_large_copy_max ||
	    __atomic_load_n(&umem_move_broken, __ATOMIC_RELAXED))
		return (large_copy(buf, rsize, nbuf, nsize, 0));
	return (large_move_pages(buf, rsize, nbuf, nsize));
}

/*
 * Grow a large block of rsize bytes in place into the kept block right
 * after it, if there is one (it has its pages: realloc growth then neither
 * copies nor faults).  The block's new size, or rsize.
 */
static size_t
large_join_next(void *buf, size_t rsize)
{
	uintptr_t moved = umem_pagemap_get(buf) & UMEM_PM_MOVED, tmoved = 0;
	size_t tsize = large_cache_get_at((char *)buf + rsize, &tmoved);

	if (tsize == 0)
		return (rsize);
	if (vmem_join(umem_oversize_arena, buf, rsize, rsize + tsize) != 0 ||
	    umem_pagemap_set(buf, rsize + tsize, (rsize + tsize) | moved |
	    tmoved | UMEM_PM_LARGE, UMEM_PM_INTERIOR) != 0) {
		/* (cannot fail: the pages' leaf exists) */
		if (!large_cache_put((char *)buf + rsize, tsize, 1, tmoved))
			large_release((char *)buf + rsize, tsize, tmoved);
		return (rsize);
	}
	/* Two moved blocks made one. */
	if (moved && tmoved)
		(void) __atomic_fetch_sub(&umem_moved_live, 1,
		    __ATOMIC_RELAXED);
	return (rsize + tsize);
}

/*
 * Cut a large block of size bytes to keep bytes, keeping the tail with its
 * pages in the cache (or releasing it).
 */
static void
large_trim(void *buf, size_t size, size_t keep)
{
	uintptr_t moved = umem_pagemap_get(buf) & UMEM_PM_MOVED;
	char *tail = (char *)buf + keep;

	if (vmem_split(umem_oversize_arena, buf, size, keep) != 0) {
		(void) umem_large_resize(buf, size, keep);
		return;
	}
	(void) umem_pagemap_set(tail, size - keep, 0, 0);
	(void) umem_pagemap_set(buf, umem_pagesize, keep | moved |
	    UMEM_PM_LARGE, UMEM_PM_INTERIOR);
	if (moved)
		(void) __atomic_fetch_add(&umem_moved_live, 1,
		    __ATOMIC_RELAXED);
	if (!large_cache_put(tail, size - keep, 1, moved))
		large_release(tail, size - keep, moved);
}

/*
 * realloc of a large block (rsize bytes) to newsize > UMEM_REALLOC_PAGES
 * bytes without copying: in place if it can (shrink; growth into free pages
 * after it in its span, or into a kept block after it), else by copying it
 * or moving its pages (growth, large_move).  The block, at its old or new
 * address, or NULL: nothing changed, the caller must copy.
 */
void *
umem_large_realloc(void *buf, size_t rsize, size_t newsize)
{
	size_t nsize = P2ROUNDUP(newsize, umem_pagesize);

	if (nsize < newsize || nsize > (SIZE_MAX >> 2))
		return (NULL);
	if (umem_large_resize(buf, rsize, newsize))
		return (buf);
	if (nsize < rsize)
		return (NULL);
	/* Take the kept block after it; keep what it has too much. */
	if ((rsize = large_join_next(buf, rsize)) > nsize) {
		large_trim(buf, rsize, nsize);
		return (buf);
	}
	if (rsize == nsize || umem_large_resize(buf, rsize, newsize))
		return (buf);
	return (large_move(buf, rsize, nsize));
}

/*
 * The rest of umem_block_alloc() when the magazine fast path misses: out
 * of line, so that the inline fast path needs no frame and saves no
 * registers (it ends in a tail call to here).
 */
__attribute__((noinline)) void *
umem_block_alloc_miss(umem_cache_t *cp, int umflags)
{
	void *buf = umem_cache_alloc_slow(cp, umflags);

	if (UMEM_LIKELY(buf != NULL)) {
		*(uintptr_t *)buf = 0;
		return (buf);
	}
	errno = ENOMEM;
	return (NULL);
}

/*
 * The rest of umem_block_free() when the push misses (a full magazine, a
 * debug class, thread mode): the key, then the cache's slow path.
 */
__attribute__((noinline)) void
umem_block_free_slow(umem_cache_t *cp, void *buf, uintptr_t key)
{
	if (!(cp->cache_flags & UMF_DEBUG))
		*(uintptr_t *)buf = key;
	umem_cache_free_slow(cp, buf);
}

/*
 * ------------------------------------------------------------------------
 * Aligned blocks
 * ------------------------------------------------------------------------
 */

/* A block of size bytes aligned to align (a power of two). */
void *
umem_alloc_aligned_any(size_t size, size_t align, int umflags)
{
	if (size == 0)
		size = 1;
	if (align <= 16)
		return (umem_block_alloc(size, umflags));
	if (align <= umem_pagesize && size <= umem_pagesize &&
	    umem_alloc_init()) {
		size_t c = size <= align ? align : (size_t)1 << highbit(size - 1);
		umem_cache_t *cp = __atomic_load_n(&umem_alloc_p2[highbit(c) -
		    1], __ATOMIC_ACQUIRE);
		void *buf;

		if (cp == NULL && (cp = umem_size_class_get(c)) == NULL)
			return (umem_large_alloc(size, align, umflags));
		if (cp->cache_flags & UMF_DEBUG)
			return (umem_debug_block_alloc(cp, size, umflags));
		if ((buf = umem_cache_alloc(cp, umflags)) == NULL)
			errno = ENOMEM;
		else
			*(uintptr_t *)buf = 0;
		return (buf);
	}
	return (umem_large_alloc(size, align, umflags));
}

/*
 * ------------------------------------------------------------------------
 * Free of a bare pointer
 * ------------------------------------------------------------------------
 */
UMEM_TEXT_COLD static void
umem_block_bad_report(void *buf, uintptr_t pm, const char *who)
{
	if (pm == 0)
		umem_debug_error(UMERR_BADADDR, NULL, buf, "%s(%p): not "
		    "allocated by libumem", who, buf);
	else if (pm == UMEM_PM_INTERIOR || (pm & UMEM_PM_LARGE))
		umem_debug_error(UMERR_BADBASE, NULL, buf, "%s(%p): pointer "
		    "into the middle of a large block", who, buf);
	else
		umem_debug_error(UMERR_BADBASE, (umem_cache_t *)pm, buf,
		    "%s(%p): pointer into the middle of a block of %zu bytes",
		    who, buf, ((umem_cache_t *)pm)->cache_bufsize);
}

/*
 * Not cold itself: free(NULL) comes here (page 0 is never ours), and most
 * programs make that call, so a cold home would map the debugging layers'
 * text pages into every process.
 */
void
umem_block_bad_free(void *buf, uintptr_t pm, const char *who)
{
	if (buf != NULL)
		umem_block_bad_report(buf, pm, who);
}

UMEM_TEXT_COLD void
umem_block_double_free(void *buf, umem_cache_t *cp, const char *who)
{
	umem_debug_error(UMERR_DUPFREE, cp, buf, "%s(%p): block of %zu bytes "
	    "already free", who, buf, cp->cache_bufsize);
}

/*
 * ------------------------------------------------------------------------
 * umem_alloc(3)
 * ------------------------------------------------------------------------
 */
UMEM_EXPORT void *
umem_alloc(size_t size, int flags)
{
	if (size == 0)
		return (NULL);
	return (umem_block_alloc(size, flags & UMEM_FLAGS));
}

UMEM_EXPORT void *
umem_zalloc(size_t size, int flags)
{
	void *buf;

	if (size == 0)
		return (NULL);
	buf = umem_block_alloc(size, (flags & UMEM_FLAGS) | UMEM_ZERO_LARGE);
	if (buf != NULL && size <= UMEM_MAXBUF)
		(void) memset(buf, 0, size);	/* large blocks are zeroed */
	return (buf);
}

UMEM_EXPORT void
umem_free(void *buf, size_t size)
{
	uintptr_t pm;
	umem_cache_t *cp;
	size_t rsize;

	if (buf == NULL)
		return;
	pm = umem_pagemap_get(buf);
	cp = umem_block_cache(buf, pm);
	rsize = umem_block_large(buf, pm);
	if (cp == NULL && rsize == 0) {
		umem_block_bad_free(buf, pm, "umem_free");
		return;
	}
	/* The size must name the block's class, or its page count. */
	if (cp == NULL && (pm & UMEM_PM_TAGGED)) {
		size_t want = umem_debug_large_size(buf, rsize, 0);

		if (want == SIZE_MAX)
			return;
		if (want != size) {
			umem_debug_error(UMERR_BADSIZE, NULL, buf, "umem_free(%p, "
			    "%zu): the block holds %zu bytes", buf, size, want);
			return;
		}
		umem_block_free(buf, "umem_free");
		return;
	}
	if (cp != NULL && (cp->cache_flags & UMF_DEBUG)) {
		/* exact size check (or a report of what else is wrong) */
		if (umem_debug_check_size(cp, buf, size) == 0)
			umem_cache_free(cp, buf);
		return;
	}
	if (cp != NULL ? size == 0 || size > UMEM_MAXBUF ||
	    umem_size_to_class(size) != cp :
	    P2ROUNDUP(size, umem_pagesize) != rsize) {
		umem_debug_error(UMERR_BADSIZE, cp, buf, "umem_free(%p, %zu): "
		    "the block holds %zu bytes", buf, size, cp != NULL ?
		    cp->cache_bufsize : rsize);
		return;
	}
	umem_block_free(buf, "umem_free");
}

UMEM_EXPORT void *
umem_alloc_align(size_t size, size_t align, int flags)
{
	if (size == 0)
		return (NULL);
	if (align == 0 || !IS_P2(align)) {
		errno = EINVAL;
		return (NULL);
	}
	return (umem_alloc_aligned_any(size, align, flags & UMEM_FLAGS));
}

UMEM_EXPORT void
umem_free_align(void *buf, size_t size)
{
	(void) size;
	if (buf != NULL)
		umem_block_free(buf, "umem_free_align");
}

/* The usable size of a block of ours (0 for NULL). */
size_t
umem_block_size(void *buf)
{
	uintptr_t pm;
	umem_cache_t *cp;
	size_t rsize;

	if (buf == NULL)
		return (0);
	pm = umem_pagemap_get(buf);
	if ((cp = umem_block_cache(buf, pm)) != NULL) {
		if (cp->cache_flags & UMF_DEBUG) {
			/* the requested size: the rest is redzone */
			rsize = umem_debug_get_size(cp, buf);
			return (rsize == SIZE_MAX ? 0 : rsize);
		}
		return (cp->cache_bufsize);
	}
	if ((rsize = umem_block_large(buf, pm)) == 0)
		umem_block_bad_free(buf, pm, "malloc_usable_size");
	else if (pm & UMEM_PM_TAGGED)
		rsize = umem_debug_large_size(buf, rsize, 0);	/* the rest is redzone */
	return (rsize == SIZE_MAX ? 0 : rsize);
}

/*
 * Before the classes exist: initialise, or serve pages meanwhile; else
 * create the size's class (a debug class is served from here the first
 * time only).
 */
static __attribute__((noinline)) void *
block_alloc_first(size_t size, int umflags)
{
	umem_cache_t *cp;

	if (!umem_alloc_init() || (cp = umem_size_class_get(size)) == NULL)
		return (umem_large_alloc(size == 0 ? 1 : size, 0, umflags));
	if (!(cp->cache_flags & UMF_DEBUG))
		return (umem_block_alloc(size, umflags));
	/* A debug class (a tail call keeps the audit stack whole). */
	return (umem_debug_block_alloc(cp, size, umflags));
}

/*
 * A class whose fast-path entry is NULL: not created yet, or a debug
 * class (every allocation from one comes here: that case with no call and
 * no frame of its own).
 */
void *
umem_block_alloc_slow(size_t size, int umflags)
{
	umem_cache_t *cp;

	if (__atomic_load_n(&umem_alloc_ready, __ATOMIC_ACQUIRE) &&
	    (cp = umem_size_to_class(size)) != NULL &&
	    (cp->cache_flags & UMF_DEBUG))
		return (umem_debug_block_alloc(cp, size, umflags));
	return (block_alloc_first(size, umflags));
}

/*
 * The class caches' and the large blocks' totals (mallinfo2, malloc_info,
 * UMEM_OPTIONS=stats).  Each figure is read without stopping the other
 * threads, so the totals are a moment's view only when the program is
 * quiescent.
 */
UMEM_TEXT_COLD void
umem_alloc_info(umem_alloc_info_t *ai)
{
	vmem_stat_t vs;

	(void) memset(ai, 0, sizeof (*ai));
	for (size_t i = 0; i < UMEM_NCLASSES; i++) {
		umem_cache_t *cp = __atomic_load_n(&umem_alloc_caches[i],
		    __ATOMIC_ACQUIRE);
		umem_cache_stat_t st;

		if (cp == NULL || umem_cache_getstat(cp, &st) != 0)
			continue;
		if (st.cs_buf_inuse > st.cs_buf_magazine)
			ai->ai_inuse += (st.cs_buf_inuse - st.cs_buf_magazine) *
			    st.cs_bufsize;
		ai->ai_magazine_count += st.cs_buf_magazine;
		ai->ai_magazine += st.cs_buf_magazine * st.cs_bufsize;
		if (st.cs_buf_total > st.cs_buf_inuse)
			ai->ai_slab_free_count += st.cs_buf_total -
			    st.cs_buf_inuse;
	}
	for (int i = 0; i < UMEM_LC_SLOTS; i++) {
		uintptr_t w = __atomic_load_n(&umem_lc_slot[i],
		    __ATOMIC_RELAXED);

		if (w != 0) {
			ai->ai_kept_count++;
			ai->ai_kept += LC_PAGES(w) * umem_pagesize;
		}
	}
	if (umem_oversize_arena != NULL &&
	    vmem_getstat(umem_oversize_arena, &vs) == 0 &&
	    vs.vk_nsegs_alloc >= ai->ai_kept_count &&
	    vs.vk_mem_inuse >= ai->ai_kept) {
		ai->ai_large_count = vs.vk_nsegs_alloc - ai->ai_kept_count;
		ai->ai_large = vs.vk_mem_inuse - ai->ai_kept;
	}
}
