/*
 * platform.h - the operating-system layer under everything else.
 *
 * Pages, locks, time, error reports and a tiny fixed-size record pool.
 * Nothing here calls malloc or stdio: the library is the malloc, so the
 * bottom layer may use only system calls and async-signal-safe libc.
 */
#ifndef _UMEM_PLATFORM_H
#define	_UMEM_PLATFORM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#define	UMEM_EXPORT	__attribute__((visibility("default")))
#define	UMEM_LIKELY(x)	__builtin_expect(!!(x), 1)
#define	UMEM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define	UMEM_CACHE_LINE	64
/*
 * For the few functions of the debugging layer that every process runs
 * (option parsing, cache flags): they go to the front of .text, with the
 * hot layers, and the rest of debug.c and leaks.c stays in pages that a
 * program without UMEM_DEBUG never touches (the Makefile links those two
 * files last).
 */
#define	UMEM_TEXT_EARLY	__attribute__((section(".text.startup.umem")))
/* Reports, statistics and checks: linked with the debugging layers. */
#define	UMEM_TEXT_COLD	__attribute__((cold, section(".text.umem_cold")))
/*
 * Large zeroed arrays of which a process touches a page or none (the page
 * map's root, the debugging layers' tables): src/libumem.ld puts them
 * after all other .bss, so that they do not spread the small variables
 * every process uses over more pages.
 */
#define	UMEM_BSS_LARGE	__attribute__((section(".bss.umem_large")))

/* Power-of-two arithmetic (illumos sysmacros names). */
#define	IS_P2(x)		(((x) & ((x) - 1)) == 0)
#define	P2ALIGN(x, a)		((x) & -(a))
#define	P2PHASE(x, a)		((x) & ((a) - 1))
#define	P2NPHASE(x, a)		(-(x) & ((a) - 1))
#define	P2ROUNDUP(x, a)		(-(-(x) & -(a)))
#define	P2END(x, a)		(-(~(x) & -(a)))
#define	P2PHASEUP(x, a, p)	((p) - (((p) - (x)) & -(a)))
/* True if [x, x + len) crosses an align boundary. */
#define	P2BOUNDARY(x, len, a)	(((x) ^ ((x) + (len) - 1)) > (a) - 1)
#define	IS_P2ALIGNED(x, a)	(((uintptr_t)(x) & ((uintptr_t)(a) - 1)) == 0)

/* 1-based index of the highest / lowest set bit; 0 for 0. */
static inline int
highbit(uint64_t x)
{
	return (x == 0 ? 0 : 64 - __builtin_clzll(x));
}

static inline int
lowbit(uint64_t x)
{
	return (x == 0 ? 0 : __builtin_ctzll(x) + 1);
}

/* Pages. */
extern size_t umem_pagesize;		/* set by umem_platform_init() */
extern void umem_platform_init(void);
void *umem_pages_map(size_t size);		/* RW, zeroed; NULL on failure */
void umem_pages_unmap(void *addr, size_t size);
void *umem_pages_reserve(size_t size, size_t align); /* RW, NORESERVE */
void umem_pages_release(void *addr, size_t size); /* give pages to the OS */
extern uint64_t umem_pages_release_calls;	/* (tests) */
void umem_pages_populate(void *addr, size_t size); /* fault in at once */

/*
 * Fork handlers.  Each layer adds its handlers with umem_atfork_add(), in
 * the order pthread_atfork() would have had them; they are registered
 * with pthread_atfork() only when the process first has a second thread
 * (umem_atfork_arm()).  Before that no fork can find a umem lock held:
 * the only thread forks between calls, and every lock is taken through
 * umem_lock(), which arms first once glibc's __libc_single_threaded is
 * false - so a lock held when a second thread could fork was taken after
 * arming, or by the only thread before it created one, which our code
 * never does while holding a lock (the update thread is started after
 * arming).  A program that never starts a thread never touches
 * pthread_atfork's part of libc (about 120 KiB of its pages).
 */
extern int umem_atfork_armed;
void umem_atfork_add(void (*prepare)(void), void (*parent)(void),
    void (*child)(void));
void umem_atfork_arm(void);

static inline void
umem_atfork_check(void)
{
	extern char __libc_single_threaded;

	if (UMEM_UNLIKELY(!__atomic_load_n(&umem_atfork_armed,
	    __ATOMIC_ACQUIRE)) && !__libc_single_threaded)
		umem_atfork_arm();
}

/* Locks: plain pthread mutexes (they never allocate). */
typedef pthread_mutex_t umem_lock_t;
#define	UMEM_LOCK_INITIALIZER	PTHREAD_MUTEX_INITIALIZER
#define	umem_lock_init(l)	((void) pthread_mutex_init((l), NULL))
#define	umem_lock_destroy(l)	((void) pthread_mutex_destroy(l))
#define	umem_unlock(l)		((void) pthread_mutex_unlock(l))

static inline void
umem_lock(umem_lock_t *l)
{
	umem_atfork_check();
	(void) pthread_mutex_lock(l);
}

static inline int
umem_trylock(umem_lock_t *l)
{
	umem_atfork_check();
	return (pthread_mutex_trylock(l) == 0);
}
void umem_cond_init(pthread_cond_t *cv);	/* CLOCK_MONOTONIC */
void umem_cond_timedwait_ns(pthread_cond_t *cv, umem_lock_t *l, uint64_t ns);

/* Monotonic nanoseconds. */
uint64_t umem_gethrtime(void);

/*
 * Coarse monotonic nanoseconds (the scheduler tick's resolution, a few
 * nanoseconds a read): through the vDSO directly once
 * umem_coarse_clock_init() has found it there, else libc's clock_gettime.
 */
typedef int (*umem_clock_fn_t)(clockid_t, struct timespec *);
extern umem_clock_fn_t umem_coarse_clock;
void umem_coarse_clock_init(void);

static inline uint64_t
umem_gethrtime_coarse(void)
{
	umem_clock_fn_t fn = __atomic_load_n(&umem_coarse_clock,
	    __ATOMIC_RELAXED);
	struct timespec ts;

	if (UMEM_UNLIKELY(fn(CLOCK_MONOTONIC_COARSE, &ts) != 0))
		(void) clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

/* Start-up string helpers that keep libc's pages out (platform.c). */
size_t umem_strnlen(const char *s, size_t max);
void umem_strlcpy(char *dst, const char *src, size_t len);
void umem_name(char *dst, size_t len, const char *prefix, size_t num);
const char *umem_getenv(const char *name);

/*
 * Error reports.  umem_vformat() is a small vsnprintf (%s %c %d %i %u %x
 * %p %% with l, ll, z modifiers, width, '0' flag and a precision for %s,
 * including %.*s) that never allocates.
 * umem_report() writes a line to stderr and keeps it as the last error;
 * umem_error() reports and then aborts unless aborting was turned off;
 * umem_panic() always aborts (internal invariants, unusable arguments).
 */
size_t umem_vformat(char *buf, size_t len, const char *fmt, va_list ap);
size_t umem_format(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void umem_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void umem_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void umem_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
extern int umem_abort_on_error;

#ifdef UMEM_DEBUG_ASSERT
#define	ASSERT(e)	((e) ? (void)0 : umem_panic("assertion failed: %s, " \
			    "file %s, line %d", #e, __FILE__, __LINE__))
#else
#define	ASSERT(e)	((void)0)
#endif

/*
 * A pool of fixed-size records (boundary tags, arena structures) carved from
 * pages mapped here.  It is what lets vmem start without any heap.  Records
 * are recycled, never unmapped.
 */
typedef struct umem_pool {
	umem_lock_t	pool_lock;
	size_t		pool_size;	/* record size */
	size_t		pool_chunk;	/* bytes mapped at a time */
	void		*pool_free;	/* free records, linked through word 0 */
	char		*pool_next;	/* unused part of the current chunk */
	char		*pool_limit;
	uint64_t	pool_inuse;
	uint64_t	pool_mapped;	/* bytes mapped */
} umem_pool_t;

#define	UMEM_POOL_INIT(size, chunk) \
	{ UMEM_LOCK_INITIALIZER, (size), (chunk), NULL, NULL, NULL, 0, 0 }

void *umem_pool_alloc(umem_pool_t *pp);	/* NULL when mapping fails */
void umem_pool_free(umem_pool_t *pp, void *rec);
/* Take up to n records as a list linked through word 0; returns the count. */
size_t umem_pool_alloc_list(umem_pool_t *pp, void **listp, size_t n);
void umem_pool_free_list(umem_pool_t *pp, void *head, void *tail, size_t n);

#endif /* _UMEM_PLATFORM_H */
