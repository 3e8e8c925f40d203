/*
 * umem.h - object caches (libumem for Linux)
 *
 * THIS HEADER IS THE CONTRACT.  Tests, benchmarks and the layers above are
 * written against it; change it only together with umem(3).
 *
 * Source-compatible with illumos <umem.h>: the same names, types, flag
 * values and function signatures.  Everything we add beyond illumos is in
 * the "Extensions" section at the end and is marked as such.
 */
#ifndef _UMEM_H
#define	_UMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <vmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Allocation flags.
 */
#define	UMEM_DEFAULT	0x0000	/* may fail: returns NULL */
#define	UMEM_NOFAIL	0x0100	/* never fails; runs the nofail callback */
#define	UMEM_FLAGS	0xffff	/* all settable allocation flags */

/*
 * General-purpose allocation.  umem_alloc(0) returns NULL; umem_free() must
 * be given the size that was allocated (a different size is reported as
 * an error), and umem_free(NULL, size) does nothing.  umem_zalloc() zeroes
 * the block.  With UMEM_NOFAIL they never return NULL (see
 * umem_nofail_callback below).  Blocks of 16 bytes or more are 16-aligned.
 */
extern void *umem_alloc(size_t size, int flags);
extern void *umem_zalloc(size_t size, int flags);
extern void umem_free(void *buf, size_t size);

/*
 * Extension (OpenZFS' umem_alloc_aligned under our name): a block aligned
 * to align, a power of two (else NULL with EINVAL), freed with
 * umem_free_align() and the same size.
 */
extern void *umem_alloc_align(size_t size, size_t align, int flags);
extern void umem_free_align(void *buf, size_t size);

/*
 * The process-wide UMEM_NOFAIL callback.  When a UMEM_NOFAIL allocation
 * cannot be satisfied, the callback is called with no library locks held.
 * It returns UMEM_CALLBACK_RETRY to retry the allocation, or
 * UMEM_CALLBACK_EXIT(status) to have exit(status) called (exactly once in
 * the process; other threads block); it may also longjmp or pthread_exit.
 * Any other value, and no callback at all, behave as UMEM_CALLBACK_EXIT(255).
 */
typedef int umem_nofail_callback_t(void);

#define	UMEM_CALLBACK_RETRY		0
#define	UMEM_CALLBACK_EXIT(status)	(0x100 | ((status) & 0xFF))

extern void umem_nofail_callback(umem_nofail_callback_t *cb);

/*
 * Object caches.
 */
typedef struct umem_cache umem_cache_t;

/* Constructors return 0 on success and nonzero on failure. */
typedef int umem_constructor_t(void *buf, void *priv, int flags);
typedef void umem_destructor_t(void *buf, void *priv);
typedef void umem_reclaim_t(void *priv);

/*
 * umem_cache_create() cflags.
 */
#define	UMC_NOTOUCH	0x00010000	/* never write into free buffers */
#define	UMC_NODEBUG	0x00020000	/* no debugging for this cache */
#define	UMC_NOMAGAZINE	0x00040000	/* no per-CPU magazine layer */
#define	UMC_NOHASH	0x00080000	/* embedded slab layout, no hash */

/*
 * umem_cache_create(name, bufsize, align, ctor, dtor, reclaim, private,
 *     source, cflags)
 *
 * name		copied (up to 31 characters); NULL is EINVAL.
 * bufsize	object size; 0 is EINVAL, a size that overflows is ENOMEM.
 * align	0 (natural: 8, or 16 for objects of 16 bytes or more), or a
 *		power of two no larger than the page size and, if larger than
 *		the natural alignment, no larger than the source's quantum;
 *		else EINVAL.  Values below 8 are raised to 8 unless UMC_NOTOUCH.
 * ctor, dtor	run when an object enters / leaves the constructed state:
 *		the constructor when it leaves the slab layer, the destructor
 *		when it goes back (magazine full, reap, purge, destroy).  A
 *		freed and re-allocated object is returned unchanged.  The
 *		constructor's flags argument is always UMEM_DEFAULT.
 * reclaim	advisory: "give memory back"; called on reap and when the
 *		source arena runs short.
 * source	any vmem arena to take slabs from; NULL means the default
 *		page heap.  Arenas that are not memory (integer IDs) need
 *		UMC_NOTOUCH.
 * cflags	0 or UMC_* above; UMC_NOTOUCH together with UMC_NOHASH is
 *		EINVAL.
 *
 * Returns NULL with errno set on failure (EINVAL, EAGAIN: no memory for
 * the cache structure, ENOMEM).
 */
extern umem_cache_t *umem_cache_create(char *name, size_t bufsize,
    size_t align, umem_constructor_t *ctor, umem_destructor_t *dtor,
    umem_reclaim_t *reclaim, void *priv, vmem_t *source, int cflags);

/* Every object must have been freed; the behaviour otherwise is undefined. */
extern void umem_cache_destroy(umem_cache_t *cp);

extern void *umem_cache_alloc(umem_cache_t *cp, int flags);
/* buf must not be NULL. */
extern void umem_cache_free(umem_cache_t *cp, void *buf);

/*
 * Ask every cache to give back cached memory now: reclaim callbacks, then
 * the depot magazines outside the working set.  Throttled to once per
 * reap interval; the update thread also does this on its own.
 */
extern void umem_reap(void);

/*
 * ------------------------------------------------------------------------
 * Extensions (not in illumos <umem.h>)
 * ------------------------------------------------------------------------
 */

/*
 * Per-cache statistics, read with umem_cache_getstat().  Counters are
 * totals since the cache was created; "now" fields are a snapshot.
 * Magazine hit rate = (cs_alloc - cs_slab_alloc) / cs_alloc.
 */
typedef struct umem_cache_stat {
	char		cs_name[32];
	size_t		cs_bufsize;	/* as created */
	size_t		cs_chunksize;	/* bufsize rounded up to align */
	size_t		cs_align;
	size_t		cs_slabsize;	/* bytes per slab */
	uint32_t	cs_cflags;	/* UMC_* as created */
	uint32_t	cs_hashed;	/* 1 = external slabs + hash */
	uint32_t	cs_chunks;	/* buffers per slab (colour 0) */
	uint32_t	cs_maxcolor;	/* largest slab colour, bytes */
	uint64_t	cs_alloc;	/* umem_cache_alloc() successes */
	uint64_t	cs_free;	/* umem_cache_free() calls */
	uint64_t	cs_alloc_fail;	/* failed umem_cache_alloc() */
	uint64_t	cs_mag_alloc;	/* allocations served by magazines */
	uint64_t	cs_mag_free;	/* frees absorbed by magazines */
	uint64_t	cs_slab_alloc;	/* buffers taken from the slab layer */
	uint64_t	cs_slab_free;	/* buffers given back to it */
	uint64_t	cs_ctor;	/* constructor calls */
	uint64_t	cs_dtor;	/* destructor calls */
	uint64_t	cs_ctor_fail;	/* constructor failures */
	uint64_t	cs_slab_create;	/* slabs made */
	uint64_t	cs_slab_destroy; /* slabs given back to the source */
	uint64_t	cs_buf_total;	/* buffers in all slabs now */
	uint64_t	cs_buf_inuse;	/* buffers outside the slab layer now */
	uint64_t	cs_buf_max;	/* largest cs_buf_total seen */
	uint64_t	cs_buf_magazine; /* buffers in magazines now */
	uint64_t	cs_mem_total;	/* bytes of slabs now */
	uint64_t	cs_magsize;	/* current magazine size M (0 = none) */
	uint64_t	cs_mag_resize;	/* magazine size increases */
	uint64_t	cs_depot_full;	/* full magazines in the depot now */
	uint64_t	cs_depot_empty;	/* empty magazines in the depot now */
	uint64_t	cs_depot_alloc;	/* magazines taken from the depot */
	uint64_t	cs_depot_free;	/* magazines given to the depot */
	uint64_t	cs_depot_contention; /* depot trylock failures */
	uint64_t	cs_mag_create;	/* empty magazines made (free path) */
	uint64_t	cs_reap;	/* depot reaps run */
	uint64_t	cs_reclaim;	/* reclaim callback calls */
	uint64_t	cs_hash_size;	/* hash buckets now (0 = unhashed) */
	uint64_t	cs_hash_rescale; /* hash table resizes */
	uint64_t	cs_hash_lookup;	/* hash lookups on free */
	uint64_t	cs_hash_depth;	/* chain links followed by them */
	uint64_t	cs_cpu_drain;	/* idle CPU magazines given back */
	uint64_t	cs_slab_spare;	/* empty slabs kept now (in mem_total) */
	char		cs_percpu_mode[24]; /* umem_percpu_mode() */
} umem_cache_stat_t;

/* Fill *sp with cp's statistics; 0, or -1 with errno EINVAL. */
extern int umem_cache_getstat(umem_cache_t *cp, umem_cache_stat_t *sp);

/*
 * Find a cache by name (first match, in creation order); NULL if none.
 * Includes the library's own caches (umem_magazine_15, umem_slab_cache,
 * umem_bufctl_cache, umem_alloc_64, ...)
 * and vmem quantum caches (<arena>_<size>).
 */
extern umem_cache_t *umem_cache_lookup(const char *name);

/*
 * Write a kmastat-like table of every cache to fd with write(2): name,
 * buffer size, buffers in use and total, memory, allocations, magazine
 * hit rate, magazine size, depot contention.  Returns 0, or -1 if a write
 * failed.
 */
extern int umem_cache_stats_print(int fd);

/*
 * How the magazine layer finds "its CPU", fixed at initialisation:
 *   "rseq-mmcid"   restartable sequences indexed by the mm concurrency id
 *   "rseq-cpu"     restartable sequences indexed by the CPU number
 *   "thread-lock"  the paper's per-"CPU" slots chosen by thread, each with
 *                  a lock (no rseq: GLIBC_TUNABLES=glibc.pthread.rseq=0
 *                  with our own registration impossible, valgrind, old
 *                  kernels, non-x86-64, TSan builds)
 * A suffix "+own" means the library registered rseq itself because glibc
 * had not.  The environment can force a mode (see UMEM_OPTIONS below).
 */
extern const char *umem_percpu_mode(void);

/*
 * Environment, read once at initialisation:
 *
 * UMEM_OPTIONS=opt[,opt...]
 *   nomagazines          process-wide UMC_NOMAGAZINE
 *   stats                print the heap and the cache table at exit
 *   hugepages[=auto|always|never]
 *                        back slabs with transparent huge pages (fewer TLB
 *                        misses, memory in 2 MiB steps) once the heap is
 *                        past 64 MiB (auto), from the start, or never
 *                        (the default)
 *   percpu=auto|mmcid|cpu|thread
 *                        choose the CPU-identity mode ("auto": mm_cid if
 *                        the kernel provides it, else cpu_id, else thread)
 *   update_interval=MS   update thread period (default 250 ms; 0 = no
 *                        update thread)
 *   reap_interval=MS     minimum time between reaps (default 1000 ms)
 *   max_contention=N     depot trylock failures per interval that grow the
 *                        magazine size (default 2)
 *   drain_idle=0|1       give back the magazines of CPUs idle for a whole
 *                        interval (default 1)
 *   limit=SIZE[k|m|g]    hard limit on the memory the heap hands out (slabs,
 *                        large blocks, freed pages not yet given back);
 *                        past it, allocations fail with ENOMEM after the
 *                        caches gave back what they held (default: none)
 *
 * With the defaults, memory freed by the program goes back to the source
 * arenas (and from there to the OS) within about a second of idleness
 * (two to three update intervals), without any call to umem_reap().
 *
 * UMEM_DEBUG=opt[,opt...] and UMEM_LOGGING=log[=size][,...]: debugging
 * without a rebuild, see umem_debug(3).  A program linked with the
 * library may instead define _umem_debug_init(), _umem_logging_init() and
 * _umem_options_init() returning the strings (the environment wins).
 */

/*
 * Debugging (umem_debug(3)).
 *
 * umem_setmtbf(n): from now on, roughly one allocation in n from a cache
 * with debugging fails (never a UMEM_NOFAIL one); 0 turns it off.  (illumos)
 */
extern void umem_setmtbf(unsigned int mtbf);

/*
 * Extension: copy the newest error reports (up to 8 KiB of text, the same
 * text written to stderr) into buf, NUL-terminated; returns the number of
 * bytes kept (0: no error was reported).  buf may be NULL.
 */
extern size_t umem_error_log(char *buf, size_t len);

/*
 * Extension: set the heap's limit (UMEM_OPTIONS=limit, above) to bytes, 0
 * for none, at any time; returns the previous limit.  Past the limit,
 * allocations fail with ENOMEM once the caches gave back what they held.
 */
extern size_t umem_set_limit(size_t bytes);

/*
 * Extension: print UMEM_LOGGING's "transaction", "contents" or "fail" log
 * to fd, oldest record first; returns the number of records, or -1 with
 * errno ENOENT (log not enabled) or EINVAL (unknown name).
 */
extern int umem_log_print(int fd, const char *log);

/*
 * Extension: find leaked buffers now (a conservative mark-and-sweep from
 * data, bss, thread stacks and registers, like illumos' ::findleaks; other
 * threads are stopped meanwhile).  Writes a report to fd (none if fd < 0),
 * grouped by cache and, with UMEM_DEBUG=audit, by allocation stack; returns
 * the number of leaked buffers, or -1 with errno.  UMEM_DEBUG=findleaks
 * runs it at exit, to stderr.
 */
extern int umem_findleaks(int fd);

#ifdef __cplusplus
}
#endif

#endif /* _UMEM_H */
