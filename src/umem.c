/*
 * umem.c - object caches: initialisation, cache creation and destruction,
 * the umem_cache_alloc / umem_cache_free fast paths, UMEM_NOFAIL, the vmem
 * quantum-cache hook, and statistics.
 *
 * Big theory statement
 * --------------------
 * A cache hands out constructed objects (Bonwick 1994): the constructor
 * runs when a buffer leaves the slab layer, the destructor when it goes
 * back (2001 placement), so objects cycling through the magazine layer
 * keep their constructed state and come back unchanged.
 *
 * umem_cache_alloc: rseq pop from the loaded magazine of the caller's CPU
 *	slot (percpu.h) or, in thread mode, the same pop under the slot lock;
 *	on a miss, the magazine slow path (magazine.c), then the slab layer
 *	(slab.c) and the constructor; on failure, UMEM_NOFAIL's callback.
 * umem_cache_free: the mirror image; a free that finds no room anywhere in
 *	the magazine layer destructs the object into the slab layer.
 *
 * Initialisation (umem_init, under umem_init_lock, once): read
 * UMEM_OPTIONS, pick the CPU-identity mode, create the arenas
 *
 *	umem_internal	page quantum, imports from the vmem heap arena
 *	umem_cache	128-byte quantum, from umem_internal: cache structures
 *	umem_hash	8-byte quantum, from umem_internal: hash tables
 *			(created when the first hashed cache is)
 *	umem_default	page quantum, from the heap: slabs of user caches
 *
 * then the magazine caches (umem_magazine_<M>), umem_slab and umem_bufctl,
 * then turn magazines on.  The update thread is started later, when the
 * heap has grown (update.c; pthread_create may allocate, through us once
 * we are the malloc).
 *
 * The caches form a list headed by umem_null_cache under umem_cache_lock
 * (creation, destruction, the update thread's pass, fork, statistics).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "umem_impl.h"
#include "debug.h"
#include "percpu.h"

umem_lock_t umem_init_lock = UMEM_LOCK_INITIALIZER;
umem_lock_t umem_cache_lock = UMEM_LOCK_INITIALIZER;
umem_cache_t umem_null_cache;
vmem_t *umem_default_arena;
vmem_t *umem_internal_arena;
vmem_t *umem_cache_arena;
vmem_t *umem_hash_arena;
umem_cache_t *umem_slab_cache;
umem_cache_t *umem_bufctl_cache;
int umem_ready;
int umem_nomagazines;
int umem_stats_at_exit;
/*
 * 250 ms (illumos: 15 s): memory comes back within two intervals of
 * idleness, and an idle pass costs ~50 us (0.02% of a CPU).
 */
uint64_t umem_update_interval_ns = 250000000ULL;
uint64_t umem_reap_interval_ns = 1000000000ULL;
uint64_t umem_depot_contention_max = 2;
int umem_drain_idle = 1;

static int umem_init_failed;
static int umem_initing;		/* umem_init_locked() running */
static pthread_t umem_init_thread;
static umem_nofail_callback_t *umem_nofail_cb;
static umem_lock_t umem_nofail_lock = UMEM_LOCK_INITIALIZER;
static pthread_t umem_nofail_thread;
static int umem_nofail_exiting;

/*
 * ---- options ----
 */
static int
opt_match(const char *s, size_t n, const char *name, const char **valp)
{
	size_t l = umem_strnlen(name, SIZE_MAX);

	if (n < l || strncmp(s, name, l) != 0)
		return (0);
	if (n == l) {
		*valp = NULL;
		return (1);
	}
	if (s[l] != '=')
		return (0);
	*valp = s + l + 1;
	return (1);
}

/* Is the value [v, v + l) the word w? */
static int
opt_is(const char *v, size_t l, const char *w)
{
	return (v != NULL && l == umem_strnlen(w, SIZE_MAX) &&
	    strncmp(v, w, l) == 0);
}

/*
 * A whole decimal number in [v, end); 0 (after a report naming the option)
 * if it is empty, has anything but digits, or overflows.
 * Cold: only a program that sets a number runs it.
 */
UMEM_TEXT_COLD static __attribute__((noinline)) int
opt_num(const char *name, const char *v, const char *end, uint64_t *np)
{
	uint64_t n = 0;
	const char *p;

	for (p = v; p != NULL && p < end && *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			break;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (v == NULL || p == v || p != end || n > UINT64_MAX / 1000000ULL) {
		umem_report("UMEM_OPTIONS: %s needs a whole number, got '%.*s'; "
		    "option ignored", name, v == NULL ? 0 : (int)(end - v),
		    v == NULL ? "" : v);
		return (0);
	}
	*np = n;
	return (1);
}

/*
 * A size in [v, end): a whole number of bytes, or of KiB, MiB or GiB with
 * a suffix k, m or g (either case); 0 (after a report) if malformed or
 * too big.
 */
UMEM_TEXT_COLD static int
opt_size(const char *name, const char *v, const char *end, uint64_t *np)
{
	static const char units[] = "kmg";
	uint64_t n;
	int shift = 0;

	if (v != NULL && end > v) {
		for (int i = 0; i < 3; i++)
			if ((end[-1] | 0x20) == units[i])
				shift = 10 * (i + 1);
	}
	if (!opt_num(name, v, shift != 0 ? end - 1 : end, &n))
		return (0);
	if (n > (SIZE_MAX >> shift)) {
		umem_report("UMEM_OPTIONS: %s is too big, got '%.*s'; option "
		    "ignored", name, (int)(end - v), v);
		return (0);
	}
	*np = n << shift;
	return (1);
}

/*
 * UMEM_OPTIONS=opt[,opt...] (see umem.h).  Blanks around an option are
 * ignored; an unknown option or a bad value is reported on stderr and
 * ignored, never fatal.
 */
static void
umem_options(char *percpu, size_t plen)
{
	const char *s = umem_getenv("UMEM_OPTIONS"), *e, *v;

	if (s == NULL)
		s = umem_options_hook();
	uint64_t n = 2;

	percpu[0] = '\0';
	while (s != NULL && *s != '\0') {
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		for (e = s; *e != '\0' && *e != ','; e++)
			;
		len = (size_t)(e - s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0) {
			/* empty item: nothing to do */
		} else if (opt_match(s, len, "nomagazines", &v) && v == NULL) {
			umem_nomagazines = 1;
		} else if (opt_match(s, len, "stats", &v) && v == NULL) {
			umem_stats_at_exit = 1;
		} else if (opt_match(s, len, "hugepages", &v)) {
			size_t l = v == NULL ? 0 : (size_t)(s + len - v);

			if (v == NULL || opt_is(v, l, "auto"))
				vmem_heap_hugepages(VMEM_THP_AUTO);
			else if (opt_is(v, l, "always"))
				vmem_heap_hugepages(VMEM_THP_ALWAYS);
			else if (opt_is(v, l, "never"))
				vmem_heap_hugepages(VMEM_THP_NEVER);
			else
				umem_report("UMEM_OPTIONS: hugepages must be "
				    "auto, always or never, got '%.*s'; option "
				    "ignored", (int)l, v);
		} else if (opt_match(s, len, "percpu", &v) && v != NULL) {
			size_t l = (size_t)(s + len - v);

			if (opt_is(v, l, "auto") || opt_is(v, l, "mmcid") ||
			    opt_is(v, l, "cpu") || opt_is(v, l, "thread")) {
				memcpy(percpu, v, l < plen ? l : plen - 1);
				percpu[l < plen ? l : plen - 1] = '\0';
			} else {
				umem_report("UMEM_OPTIONS: percpu must be auto, "
				    "mmcid, cpu or thread, got '%.*s'; option "
				    "ignored", (int)l, v);
			}
		} else if (opt_match(s, len, "update_interval", &v)) {
			if (opt_num("update_interval", v, s + len, &n))
				umem_update_interval_ns = n * 1000000ULL;
		} else if (opt_match(s, len, "reap_interval", &v)) {
			if (opt_num("reap_interval", v, s + len, &n))
				umem_reap_interval_ns = n * 1000000ULL;
		} else if (opt_match(s, len, "limit", &v)) {
			if (opt_size("limit", v, s + len, &n))
				(void) vmem_heap_set_limit((size_t)n);
		} else if (opt_match(s, len, "max_contention", &v)) {
			if (opt_num("max_contention", v, s + len, &n))
				umem_depot_contention_max = n;
		} else if (opt_match(s, len, "drain_idle", &v)) {
			if (opt_num("drain_idle", v, s + len, &n) && n > 1)
				umem_report("UMEM_OPTIONS: drain_idle is 0 or 1, "
				    "got %lu; option ignored", (unsigned long)n);
			else if (v != NULL && n <= 1)
				umem_drain_idle = (int)n;
		} else {
			umem_report("UMEM_OPTIONS: unknown option '%.*s' "
			    "ignored", (int)len, s);
		}
		s = (*e == ',') ? e + 1 : e;
	}
}

/*
 * ---- initialisation ----
 */
static umem_cache_t *
internal_cache(const char *name, size_t size, size_t align)
{
	return (umem_cache_create_internal(name, size, align, NULL, NULL,
	    NULL, NULL, umem_internal_arena, UMC_NOHASH | UMC_INTERNAL, 0));
}

/*
 * The magazine cache of type mtp, made on first use, so that a program
 * pays only for the magazine sizes its caches use (each cache structure
 * is about 1.4 KiB of touched memory; a small program uses two or three
 * of the nine sizes).  Called with no umem lock held (magazine.c makes
 * empty magazines with its slot released).  Two threads may race to make
 * it; the loser destroys its copy.  NULL if it cannot be made.
 */
umem_cache_t *
umem_magtype_cache(umem_magtype_t *mtp)
{
	umem_cache_t *cp = __atomic_load_n(&mtp->mt_cache, __ATOMIC_ACQUIRE);
	umem_cache_t *none = NULL;
	char name[UMEM_NAMELEN + 1];

	if (UMEM_LIKELY(cp != NULL))
		return (cp);
	umem_name(name, sizeof (name), "umem_magazine_", mtp->mt_magsize);
	if ((cp = internal_cache(name, (mtp->mt_magsize + 1) *
	    sizeof (void *), mtp->mt_align)) == NULL)
		return (NULL);
	if (!__atomic_compare_exchange_n(&mtp->mt_cache, &none, cp, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		umem_cache_destroy(cp);
		cp = none;
	}
	return (cp);
}

/* The heap imports of umem_internal and umem_default, counted. */
static vmem_alloc_t *umem_heap_af;

static void *
umem_heap_import(vmem_t *src, size_t size, int vmflag)
{
	void *p = umem_heap_af(src, size, vmflag);

	if (p != NULL)
		umem_update_heap_grew(size);
	return (p);
}

/*
 * umem_default's imports: tagged (no heap hash), counted, through the
 * dense pair (huge pages for a big heap; vmem_heap.c).
 */
static void *
umem_default_import(vmem_t *src, size_t size, size_t align, int vmflag,
    void **tagp)
{
	void *p = vmem_heap_dense_talloc(src, size, align, vmflag, tagp);

	if (p != NULL)
		umem_update_heap_grew(size);
	return (p);
}

static int
umem_init_locked(void)
{
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap;
	char percpu[16];
	size_t pg;

	umem_platform_init();
	pg = umem_pagesize;
	umem_options(percpu, sizeof (percpu));
	umem_percpu_init(percpu[0] != '\0' ? percpu : NULL);
	umem_debug_options();

	umem_null_cache.cache_next = umem_null_cache.cache_prev =
	    &umem_null_cache;
	umem_strlcpy(umem_null_cache.cache_name, "umem_null_cache",
	    sizeof (umem_null_cache.cache_name));

	if ((heap = vmem_heap_arena(&af, &ff)) == NULL)
		return (-1);
	umem_heap_af = af;
	af = umem_heap_import;
	umem_internal_arena = vmem_create("umem_internal", NULL, 0, pg,
	    af, ff, heap, 0, VM_NOSLEEP);
	if (umem_internal_arena == NULL)
		return (-1);
	umem_cache_arena = vmem_create("umem_cache", NULL, 0,
	    UMEM_CPU_CACHE_SIZE, vmem_alloc, vmem_free, umem_internal_arena,
	    0, VM_NOSLEEP);
	/* (imports through the tagged pair, set below) */
	umem_default_arena = vmem_create("umem_default", NULL, 0, pg,
	    NULL, NULL, heap, 0, VM_NOSLEEP);
	if (umem_cache_arena == NULL || umem_default_arena == NULL)
		return (-1);
	vmem_set_tagged_import(umem_default_arena, umem_default_import,
	    vmem_heap_dense_tfree);

	/* (magazine caches: on first use, umem_magtype_cache) */
	umem_slab_cache = internal_cache("umem_slab_cache",
	    sizeof (umem_slab_t), 0);
	umem_bufctl_cache = internal_cache("umem_bufctl_cache",
	    sizeof (umem_bufctl_t), 0);
	if (umem_slab_cache == NULL || umem_bufctl_cache == NULL)
		return (-1);
	/*
	 * Slab records come back to their slabs, not to magazines, when a
	 * slab is destroyed (slab.c), so their magazines are always empty:
	 * without batch refills every record cost the slot, depot and slab
	 * locks (frag: 23k misses, a fifth of its lock acquisitions).
	 */
	umem_slab_cache->cache_flags |= UMF_REFILL;
	umem_bufctl_cache->cache_flags |= UMF_REFILL;
	umem_fork_init();
	return (0);
}

/*
 * umem_hash is created on first use (the first cache with a hash table):
 * a program whose caches are all small never needs it, and an arena
 * structure is 4 KiB of touched memory.
 */
static pthread_once_t umem_hash_once = PTHREAD_ONCE_INIT;

static void
umem_hash_create(void)
{
	umem_hash_arena = vmem_create("umem_hash", NULL, 0, 8,
	    vmem_alloc, vmem_free, umem_internal_arena, 0, VM_NOSLEEP);
}

vmem_t *
umem_hash_arena_get(void)
{
	if (UMEM_UNLIKELY(__atomic_load_n(&umem_hash_arena,
	    __ATOMIC_ACQUIRE) == NULL))
		(void) pthread_once(&umem_hash_once, umem_hash_create);
	return (umem_hash_arena);
}

int
umem_init(void)
{
	int rv = 0;

	if (UMEM_LIKELY(__atomic_load_n(&umem_ready, __ATOMIC_ACQUIRE)))
		return (0);
	/* Re-entered by init itself (an arena with quantum caches). */
	if (__atomic_load_n(&umem_initing, __ATOMIC_ACQUIRE) &&
	    pthread_equal(umem_init_thread, pthread_self()))
		return (0);
	umem_lock(&umem_init_lock);
	if (!umem_ready && !umem_init_failed) {
		umem_init_thread = pthread_self();
		__atomic_store_n(&umem_initing, 1, __ATOMIC_RELEASE);
		rv = umem_init_locked();
		__atomic_store_n(&umem_initing, 0, __ATOMIC_RELEASE);
		if (rv == 0) {
			__atomic_store_n(&umem_ready, 1, __ATOMIC_RELEASE);
		} else {
			umem_init_failed = 1;
		}
	}
	rv = umem_ready ? 0 : -1;
	umem_unlock(&umem_init_lock);
	return (rv);
}

/*
 * ---- cache creation and destruction ----
 */
umem_cache_t *
umem_cache_create_internal(const char *name, size_t bufsize, size_t align,
    umem_constructor_t *ctor, umem_destructor_t *dtor, umem_reclaim_t *reclaim,
    void *priv, vmem_t *source, int cflags, size_t forced_slabsize)
{
	umem_cache_t *cp;
	size_t natural, chunk, size, quantum;
	uint32_t ncpu;
	int notouch = (cflags & UMC_NOTOUCH) != 0;
	int err;

	if (name == NULL || bufsize == 0 ||
	    (notouch && (cflags & UMC_NOHASH)) ||
	    (align != 0 && !IS_P2(align))) {
		errno = EINVAL;
		return (NULL);
	}
	if (!(cflags & UMC_INTERNAL) && umem_init() != 0) {
		errno = EAGAIN;
		return (NULL);
	}
	if (align > umem_pagesize && !(cflags & UMC_QCACHE)) {
		errno = EINVAL;
		return (NULL);
	}
	if (source == NULL)
		source = umem_default_arena;
	/* Not vmem_getstat(): its statistics walk the arena's hash. */
	quantum = vmem_quantum(source);
	if (bufsize > SIZE_MAX / 2) {
		errno = ENOMEM;
		return (NULL);
	}
	natural = P2ROUNDUP(bufsize, UMEM_ALIGN) >= UMEM_SECOND_ALIGN ?
	    UMEM_SECOND_ALIGN : UMEM_ALIGN;
	/* Beyond the natural alignment, slabs must provide it. */
	if (align > natural && align > quantum && !(cflags & UMC_QCACHE)) {
		errno = EINVAL;
		return (NULL);
	}
	if (align == 0)
		align = (notouch && quantum < natural) ? quantum : natural;
	else if (align < UMEM_ALIGN && !notouch)
		align = UMEM_ALIGN;
	chunk = notouch ? P2ROUNDUP(bufsize, align) :
	    P2ROUNDUP(P2ROUNDUP(bufsize, UMEM_ALIGN), align);

	ncpu = umem_percpu.pc_nslots;
	size = offsetof(umem_cache_t, cache_cpu) +
	    (size_t)ncpu * sizeof (umem_cpu_cache_t);
	size = P2ROUNDUP(size, UMEM_CPU_CACHE_SIZE);
	cp = vmem_alloc(umem_cache_arena, size, VM_NOSLEEP);
	if (cp == NULL) {
		errno = EAGAIN;
		return (NULL);
	}
	memset(cp, 0, offsetof(umem_cache_t, cache_cpu));
	cp->cache_size = size;
	umem_strlcpy(cp->cache_name, name, sizeof (cp->cache_name));
	cp->cache_cflags = (uint32_t)cflags;
	if (notouch)
		cp->cache_flags |= UMF_NOTOUCH;
	if ((cflags & UMC_NOMAGAZINE) || umem_nomagazines)
		cp->cache_flags |= UMF_NOMAGAZINE;
	if (cflags & UMC_PAGEMAP)
		cp->cache_flags |= UMF_PAGEMAP;
	/*
	 * A debug cache keeps its magazines, but the inline fast paths never
	 * see them (cache_fast_slots = 0): every call reaches debug.c, which
	 * checks the buffer and then uses the magazine layer itself.  A
	 * firewall cache has none: a freed buffer's page must go at once.
	 */
	cp->cache_flags |= umem_debug_cache_flags(cflags, bufsize);
	if (cp->cache_flags & UMF_FIREWALL)
		cp->cache_flags |= UMF_NOMAGAZINE;
	cp->cache_bufsize = bufsize;
	cp->cache_align = align;
	cp->cache_chunksize = chunk;
	cp->cache_constructor = ctor;
	cp->cache_destructor = dtor;
	cp->cache_reclaim = reclaim;
	cp->cache_private = priv;
	cp->cache_arena = source;
	cp->cache_arena_quantum = quantum;
	cp->cache_ncpu = ncpu;
	cp->cache_fast_slots = (cp->cache_flags & UMF_DEBUG) ? 0 : ncpu;
	cp->cache_cpu_mask = ncpu - 1;
	umem_lock_init(&cp->cache_lock);
	umem_lock_init(&cp->cache_depot_lock);
	cp->cache_nullslab.slab_next = cp->cache_nullslab.slab_prev =
	    &cp->cache_nullslab;
	cp->cache_nullslab.slab_cache = cp;
	cp->cache_freelist = &cp->cache_nullslab;

	if ((cp->cache_flags & UMF_DEBUG) &&
	    (err = umem_debug_geometry(cp)) != 0) {
		vmem_free(umem_cache_arena, cp, size);
		errno = err;
		return (NULL);
	}
	if ((err = umem_slab_geometry(cp, forced_slabsize)) != 0) {
		vmem_free(umem_cache_arena, cp, size);
		errno = err;
		return (NULL);
	}
	if (cp->cache_flags & UMF_DEBUG)
		umem_debug_geometry_post(cp);
	if ((cp->cache_flags & UMF_HASH) && umem_hash_init(cp) != 0) {
		vmem_free(umem_cache_arena, cp, size);
		errno = EAGAIN;
		return (NULL);
	}
	if (!(cp->cache_flags & UMF_NOMAGAZINE)) {
		umem_magtype_t *mtp = (cflags & UMC_PAGEMAP) ?
		    umem_magtype_malloc(chunk) : umem_magtype_initial(chunk);

		cp->cache_magtype = mtp;
		if (cflags & UMC_PAGEMAP)
			cp->cache_depot_cap = umem_depot_cap_malloc(chunk);
	}
	umem_cpu_init(cp, cp->cache_magtype != NULL ?
	    cp->cache_magtype->mt_magsize : 0);

	umem_lock(&umem_cache_lock);
	cp->cache_next = &umem_null_cache;
	cp->cache_prev = umem_null_cache.cache_prev;
	umem_null_cache.cache_prev->cache_next = cp;
	umem_null_cache.cache_prev = cp;
	umem_unlock(&umem_cache_lock);
	return (cp);
}

UMEM_EXPORT umem_cache_t *
umem_cache_create(char *name, size_t bufsize, size_t align,
    umem_constructor_t *ctor, umem_destructor_t *dtor, umem_reclaim_t *reclaim,
    void *priv, vmem_t *source, int cflags)
{
	umem_cache_t *cp;

	if (cflags & ~UMC_PUBLIC) {
		errno = EINVAL;
		return (NULL);
	}
	cp = umem_cache_create_internal(name, bufsize, align, ctor, dtor,
	    reclaim, priv, source, cflags, 0);
	/* A program with caches of its own gets reaping from the start. */
	if (cp != NULL)
		umem_update_wanted();
	return (cp);
}

UMEM_TEXT_COLD UMEM_EXPORT void
umem_cache_destroy(umem_cache_t *cp)
{
	umem_lock(&umem_cache_lock);
	cp->cache_prev->cache_next = cp->cache_next;
	cp->cache_next->cache_prev = cp->cache_prev;
	umem_unlock(&umem_cache_lock);

	umem_mag_purge_quiescent(cp);
	if (umem_slab_destroy_all(cp) != 0)
		umem_report("umem_cache_destroy: '%s' (%p) not empty",
		    cp->cache_name, (void *)cp);
	if (cp->cache_flags & UMF_HASH)
		umem_hash_fini(cp);
	/* Land mines for stray use. */
	cp->cache_constructor = (umem_constructor_t *)1;
	cp->cache_destructor = (umem_destructor_t *)2;
	cp->cache_flags |= UMF_DEAD;
	vmem_free(umem_cache_arena, cp, cp->cache_size);
}

/*
 * ---- allocation ----
 */
UMEM_TEXT_COLD void
umem_nofail(void)
{
	umem_nofail_callback_t *cb;
	int rv;

	cb = __atomic_load_n(&umem_nofail_cb, __ATOMIC_ACQUIRE);
	rv = (cb == NULL) ? UMEM_CALLBACK_EXIT(255) : cb();
	if (rv == UMEM_CALLBACK_RETRY)
		return;
	if ((rv & ~0xff) != 0x100) {
		umem_report("nofail callback returned %x", (unsigned)rv);
		rv = UMEM_CALLBACK_EXIT(255);
	}
	if (__atomic_load_n(&umem_nofail_exiting, __ATOMIC_ACQUIRE) &&
	    pthread_equal(umem_nofail_thread, pthread_self()))
		umem_panic("recursive UMEM_CALLBACK_EXIT()");
	umem_lock(&umem_nofail_lock);	/* never released: we exit */
	umem_nofail_thread = pthread_self();
	__atomic_store_n(&umem_nofail_exiting, 1, __ATOMIC_RELEASE);
	exit(rv & 0xff);
}

UMEM_EXPORT void
umem_nofail_callback(umem_nofail_callback_t *cb)
{
	__atomic_store_n(&umem_nofail_cb, cb, __ATOMIC_RELEASE);
}

/*
 * Thread mode's pop and push: the rseq fast path's state machine, under
 * the slot lock.  0 / NULL: the loaded magazine is empty / full.
 */
static inline void *
mag_pop_locked(umem_cache_t *cp)
{
	umem_cpu_cache_t *cc = &cp->cache_cpu[umem_percpu_slot()];
	void *buf = NULL;
	uint64_t w;
	uint32_t r;

	umem_lock(&cc->cc_lock);
	w = cc->cc_word;
	r = UMEM_CC_ROUNDS(w) - 1;
	if (r < 0xfffe) {
		buf = cc->cc_loaded->mag_round[r];
		__atomic_store_n(&cc->cc_word, w + UMEM_CC_ONE_OP - 1,
		    __ATOMIC_RELAXED);
	}
	umem_unlock(&cc->cc_lock);
	return (buf);
}

static inline int
mag_push_locked(umem_cache_t *cp, void *buf)
{
	umem_cpu_cache_t *cc = &cp->cache_cpu[umem_percpu_slot()];
	int done = 0;
	uint64_t w;
	uint32_t r;

	umem_lock(&cc->cc_lock);
	w = cc->cc_word;
	r = UMEM_CC_ROUNDS(w);
	if (r < cc->cc_magsize) {
		cc->cc_loaded->mag_round[r] = buf;
		__atomic_store_n(&cc->cc_word, w + UMEM_CC_ONE_OP + 1,
		    __ATOMIC_RELAXED);
		done = 1;
	}
	umem_unlock(&cc->cc_lock);
	return (done);
}

/* umem_mag_get/put (percpu.h) past the rseq pop or push. */
void *
umem_mag_get_slow(umem_cache_t *cp)
{
	void *buf;

	if (cp->cache_flags & UMF_NOMAGAZINE)
		return (NULL);
	if (!umem_percpu.pc_rseq && (buf = mag_pop_locked(cp)) != NULL)
		return (buf);
	return (umem_mag_alloc(cp));
}

int
umem_mag_put_slow(umem_cache_t *cp, void *buf)
{
	if (cp->cache_flags & UMF_NOMAGAZINE)
		return (0);
	if (!umem_percpu.pc_rseq && mag_push_locked(cp, buf))
		return (1);
	return (umem_mag_free(cp, buf));
}

/*
 * Everything but the rseq hit: kept out of line so that the fast path
 * needs no callee-saved registers and ends in a tail call.  A debug cache
 * (every call comes here: its slots are out of the fast path's reach)
 * goes straight to the debug layer, whose checks come before its
 * magazines (umem_mag_get), with no frame of its own here.
 */
static __attribute__((noinline)) void *
cache_alloc_miss(umem_cache_t *cp, int flags)
{
	void *buf;
	int trimmed = 0;

	if (!umem_percpu.pc_rseq && !(cp->cache_flags & UMF_NOMAGAZINE) &&
	    (buf = mag_pop_locked(cp)) != NULL)
		return (buf);
	umem_update_poll();
	for (;;) {
		if (!(cp->cache_flags & UMF_NOMAGAZINE) &&
		    ((buf = umem_mag_alloc(cp)) != NULL ||
		    ((cp->cache_flags & (UMF_PAGEMAP | UMF_REFILL)) &&
		    (buf = umem_mag_refill(cp)) != NULL)))
			return (buf);
		if ((buf = umem_slab_alloc(cp)) != NULL) {
			if (cp->cache_constructor == NULL) {
				UMEM_STAT_ADD(cp->cache_direct_alloc, 1);
				return (buf);
			}
			if (cp->cache_constructor(buf, cp->cache_private,
			    UMEM_DEFAULT) == 0) {
				UMEM_STAT_ADD(cp->cache_ctor, 1);
				UMEM_STAT_ADD(cp->cache_direct_alloc, 1);
				return (buf);
			}
			UMEM_STAT_ADD(cp->cache_ctor_fail, 1);
			umem_slab_free(cp, buf);
		}
		UMEM_STAT_ADD(cp->cache_alloc_fail, 1);
		if (umem_alloc_failed(&trimmed))
			continue;	/* under a heap limit, room was made */
		if (!(flags & UMEM_NOFAIL))
			return (NULL);
		umem_nofail();
	}
}

__attribute__((noinline)) void *
umem_cache_alloc_slow(umem_cache_t *cp, int flags)
{
	if (UMEM_UNLIKELY(cp->cache_flags & UMF_DEBUG)) {
		umem_update_poll();
		return (umem_debug_alloc(cp, flags));
	}
	return (cache_alloc_miss(cp, flags));
}

static __attribute__((noinline)) void
cache_free_miss(umem_cache_t *cp, void *buf)
{
	if (!umem_percpu.pc_rseq && !(cp->cache_flags & UMF_NOMAGAZINE) &&
	    mag_push_locked(cp, buf))
		return;
	umem_update_poll();
	if (!(cp->cache_flags & UMF_NOMAGAZINE) && umem_mag_free(cp, buf))
		return;
	if (cp->cache_destructor != NULL) {
		cp->cache_destructor(buf, cp->cache_private);
		UMEM_STAT_ADD(cp->cache_dtor, 1);
	}
	umem_slab_free(cp, buf);
	UMEM_STAT_ADD(cp->cache_direct_free, 1);
}

__attribute__((noinline)) void
umem_cache_free_slow(umem_cache_t *cp, void *buf)
{
	if (UMEM_UNLIKELY(cp->cache_flags & UMF_DEBUG)) {
		umem_update_poll();
		umem_debug_free(cp, buf);
		return;
	}
	cache_free_miss(cp, buf);
}

UMEM_EXPORT void *
umem_cache_alloc(umem_cache_t *cp, int flags)
{
	return (umem_cache_alloc_fast(cp, flags));
}

UMEM_EXPORT void
umem_cache_free(umem_cache_t *cp, void *buf)
{
	umem_cache_free_fast(cp, buf);
}

/*
 * ---- vmem quantum caches ----
 */
static void *
qc_create(const char *name, size_t size, size_t align, size_t slabsize,
    vmem_t *vmp)
{
	if (umem_init() != 0)
		return (NULL);
	return (umem_cache_create_internal(name, size, align, NULL, NULL,
	    NULL, NULL, vmp, UMC_NOTOUCH | UMC_QCACHE, slabsize));
}

static void
qc_destroy(void *cache)
{
	umem_cache_destroy(cache);
}

static void *
qc_alloc(void *cache, int vmflag)
{
	(void) vmflag;
	return (umem_cache_alloc(cache, UMEM_DEFAULT));
}

static void
qc_free(void *cache, void *buf)
{
	umem_cache_free(cache, buf);
}

static void
qc_reap(void)
{
	umem_reap_short();
}

const vmem_qcache_ops_t vmem_qcache_ops = {
	.qc_create = qc_create,
	.qc_destroy = qc_destroy,
	.qc_alloc = qc_alloc,
	.qc_free = qc_free,
	.qc_reap = qc_reap,
};

/*
 * ---- statistics ----
 */
UMEM_EXPORT const char *
umem_percpu_mode(void)
{
	(void) umem_init();
	return (umem_percpu_mode_name());
}

UMEM_TEXT_COLD UMEM_EXPORT size_t
umem_set_limit(size_t bytes)
{
	return (vmem_heap_set_limit(bytes));
}

/* umem_cache_lock held: no update pass or reap moves objects meanwhile. */
UMEM_TEXT_COLD static void
cache_getstat_locked(umem_cache_t *cp, umem_cache_stat_t *sp)
{
	uint64_t ca, cf, cr;

	memset(sp, 0, sizeof (*sp));
	(void) umem_format(sp->cs_name, sizeof (sp->cs_name), "%s",
	    cp->cache_name);
	(void) umem_format(sp->cs_percpu_mode, sizeof (sp->cs_percpu_mode),
	    "%s", umem_percpu_mode_name());
	sp->cs_bufsize = cp->cache_bufsize;
	sp->cs_chunksize = cp->cache_chunksize;
	sp->cs_align = cp->cache_align;
	sp->cs_slabsize = cp->cache_slabsize;
	sp->cs_cflags = cp->cache_cflags;
	sp->cs_hashed = (cp->cache_flags & UMF_HASH) != 0;
	sp->cs_chunks = cp->cache_chunks;
	sp->cs_maxcolor = (uint32_t)cp->cache_maxcolor;

	umem_mag_cpu_totals(cp, &ca, &cf, &cr);
	sp->cs_mag_alloc = ca;
	sp->cs_mag_free = cf;
	sp->cs_buf_magazine = cr;

	umem_lock(&cp->cache_depot_lock);
	sp->cs_magsize = cp->cache_magtype != NULL &&
	    !(cp->cache_flags & UMF_NOMAGAZINE) ?
	    cp->cache_magtype->mt_magsize : 0;
	sp->cs_mag_resize = cp->cache_mag_resize;
	sp->cs_depot_full = cp->cache_full.ml_total;
	sp->cs_depot_empty = cp->cache_empty.ml_total;
	sp->cs_depot_alloc = cp->cache_full.ml_alloc + cp->cache_empty.ml_alloc;
	sp->cs_depot_free = cp->cache_full.ml_free + cp->cache_empty.ml_free;
	sp->cs_depot_contention = cp->cache_depot_contention;
	sp->cs_mag_create = cp->cache_mag_create;
	sp->cs_buf_magazine += cp->cache_full.ml_total *
	    (cp->cache_magtype != NULL ? cp->cache_magtype->mt_magsize : 0);
	umem_unlock(&cp->cache_depot_lock);

	umem_lock(&cp->cache_lock);
	sp->cs_slab_alloc = cp->cache_slab_alloc;
	sp->cs_slab_free = cp->cache_slab_free;
	sp->cs_slab_create = cp->cache_slab_create;
	sp->cs_slab_destroy = cp->cache_slab_destroy;
	sp->cs_buf_total = cp->cache_buftotal;
	sp->cs_buf_max = cp->cache_bufmax;
	sp->cs_buf_inuse = cp->cache_slab_alloc - cp->cache_slab_free;
	sp->cs_mem_total = (cp->cache_slab_create - cp->cache_slab_destroy) *
	    cp->cache_slabsize;
	sp->cs_hash_size = (cp->cache_flags & UMF_HASH) ?
	    cp->cache_hash_mask + 1 : 0;
	sp->cs_hash_rescale = cp->cache_hash_rescale;
	sp->cs_hash_lookup = cp->cache_hash_lookup;
	sp->cs_hash_depth = cp->cache_hash_depth;
	sp->cs_slab_spare = cp->cache_spare_count;
	umem_unlock(&cp->cache_lock);

	sp->cs_alloc = ca + UMEM_STAT_READ(cp->cache_direct_alloc);
	sp->cs_free = cf + UMEM_STAT_READ(cp->cache_direct_free);
	sp->cs_alloc_fail = UMEM_STAT_READ(cp->cache_alloc_fail);
	sp->cs_ctor = UMEM_STAT_READ(cp->cache_ctor);
	sp->cs_dtor = UMEM_STAT_READ(cp->cache_dtor);
	sp->cs_ctor_fail = UMEM_STAT_READ(cp->cache_ctor_fail);
	sp->cs_reap = UMEM_STAT_READ(cp->cache_reap_count);
	sp->cs_reclaim = UMEM_STAT_READ(cp->cache_reclaim_count);
	sp->cs_cpu_drain = UMEM_STAT_READ(cp->cache_cpu_drain);
}

UMEM_TEXT_COLD UMEM_EXPORT int
umem_cache_getstat(umem_cache_t *cp, umem_cache_stat_t *sp)
{
	if (cp == NULL || sp == NULL || (cp->cache_flags & UMF_DEAD)) {
		errno = EINVAL;
		return (-1);
	}
	umem_lock(&umem_cache_lock);
	cache_getstat_locked(cp, sp);
	umem_unlock(&umem_cache_lock);
	return (0);
}

UMEM_TEXT_COLD UMEM_EXPORT umem_cache_t *
umem_cache_lookup(const char *name)
{
	umem_cache_t *cp, *found = NULL;

	if (name == NULL || umem_init() != 0)
		return (NULL);
	umem_lock(&umem_cache_lock);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		if (strcmp(cp->cache_name, name) == 0) {
			found = cp;
			break;
		}
	}
	umem_unlock(&umem_cache_lock);
	return (found);
}

/* Left-justify s in a field of w characters (umem_format has no '-'). */
static size_t
pad(char *buf, size_t len, const char *s, size_t w)
{
	size_t n = 0;

	while (*s != '\0' && n + 1 < len)
		buf[n++] = *s++;
	while (n < w && n + 1 < len)
		buf[n++] = ' ';
	buf[n] = '\0';
	return (n);
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

UMEM_TEXT_COLD UMEM_EXPORT int
umem_cache_stats_print(int fd)
{
	char line[256];
	umem_cache_t *cp;
	umem_cache_stat_t st;
	size_t n;
	int rv = 0;

	if (umem_init() != 0)
		return (-1);
	n = umem_format(line, sizeof (line), "umem caches (per-CPU mode: "
	    "%s, %u slots)\n", umem_percpu_mode_name(), umem_percpu.pc_nslots);
	rv |= write_all(fd, line, n);
	if (vmem_heap_limit() != 0) {
		vmem_heap_usage_t hu;

		vmem_heap_usage(&hu);
		n = umem_format(line, sizeof (line), "heap limit %zu KiB: "
		    "held %zu KiB, dirty %zu KiB, %llu allocations refused\n",
		    hu.hu_limit >> 10, hu.hu_held >> 10, hu.hu_dirty >> 10,
		    (unsigned long long)hu.hu_refused);
		rv |= write_all(fd, line, n);
	}
	n = pad(line, sizeof (line), "cache", 25);
	n += umem_format(line + n, sizeof (line) - n, "%8s %10s %10s %10s "
	    "%12s %6s %4s %8s\n", "buf", "inuse", "total", "memory",
	    "allocs", "hit%", "mag", "contend");
	rv |= write_all(fd, line, n);
	umem_lock(&umem_cache_lock);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		uint64_t hit10, inuse;

		cache_getstat_locked(cp, &st);
		hit10 = st.cs_alloc == 0 ? 0 :
		    st.cs_mag_alloc * 1000 / st.cs_alloc;
		inuse = st.cs_buf_inuse - st.cs_buf_magazine;
		if (st.cs_buf_magazine > st.cs_buf_inuse)
			inuse = 0;
		n = pad(line, sizeof (line), st.cs_name, 25);
		n += umem_format(line + n, sizeof (line) - n, "%8zu %10llu "
		    "%10llu %9lluK %12llu %4llu.%llu %4llu %8llu\n",
		    st.cs_bufsize, (unsigned long long)inuse,
		    (unsigned long long)st.cs_buf_total,
		    (unsigned long long)(st.cs_mem_total / 1024),
		    (unsigned long long)st.cs_alloc,
		    (unsigned long long)(hit10 / 10),
		    (unsigned long long)(hit10 % 10),
		    (unsigned long long)st.cs_magsize,
		    (unsigned long long)st.cs_depot_contention);
		rv |= write_all(fd, line, n);
	}
	umem_unlock(&umem_cache_lock);
	return (rv == 0 ? 0 : -1);
}
