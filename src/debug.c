/*
 * debug.c - built-in debugging: UMEM_DEBUG and UMEM_LOGGING, buffer tags,
 * audit records, error reports, transaction / contents / failure logs,
 * firewall slabs and failure injection.
 *
 * Big theory statement
 * --------------------
 * Debugging is chosen per cache when the cache is created (from the
 * UMEM_DEBUG settings read once by umem_init).  The inline fast paths
 * never serve a debug cache (its cache_fast_slots is 0, so the rseq pop
 * and push miss), and umem_cache_alloc_slow/free_slow send every
 * operation here.  The release fast path pays nothing for the existence
 * of this file (Bonwick 1994 got the same by sharing one flag word; we get
 * it from the slot limit the fast path compares anyway).  After its checks
 * a debug cache uses its magazine layer as any cache does (umem_mag_get /
 * umem_mag_put: the same rseq sequences on all slots), so magazines hold
 * freed, patterned, destructed buffers, and the slab layer's lock is taken
 * only once a magazine's worth of operations, as in release mode.  A
 * firewall cache has no magazines: a freed buffer's slab must go at once.
 *
 * Every debug cache tags each buffer (debug.h): the tag's bxstat word says
 * whether the buffer is allocated or free (address XOR one of two
 * constants, so a stray write is told apart from a state), which is what
 * catches duplicate frees in every debug mode.  On top of that:
 *
 *   guards (UMF_DEADBEEF | UMF_REDZONE)  a free buffer holds 0xdeadbeef,
 *	checked when it is allocated again (modified after free: offset,
 *	expected and found word); a new buffer holds 0xbaddcafe; the slack
 *	after the buffer holds 0xbb bytes and the tag a redzone word, both
 *	checked at free.  umem_alloc and malloc buffers also keep their
 *	requested size in the redzone word, so the slack starts right after
 *	the requested bytes and umem_free can check its size argument.
 *   audit (UMF_AUDIT)  the last allocation and the last free of each
 *	buffer: thread, time and stack, printed with every report.
 *   contents, logs  UMEM_LOGGING's circular logs of transactions, freed
 *	contents and failed allocations.
 *   firewall (UMF_FIREWALL)  each buffer ends at a page that is never
 *	mapped, so an overrun faults at once; the fault is reported with the
 *	buffer's audit record.
 *
 * Stacks are taken by walking frame pointers (bounded by the thread's
 * stack; frames inside libumem are skipped).  That costs a few
 * nanoseconds a frame, against microseconds for a DWARF unwinder, which is
 * what keeps UMEM_DEBUG=default within 10x of release speed; the price is
 * that code built without frame pointers truncates the stack.
 *
 * Errors: umem_debug_error() writes one report to stderr and to an 8 KiB
 * error log (read back with umem_error_log()), then aborts unless
 * UMEM_DEBUG=noabort.  Nothing here allocates: records live in the
 * buffers' chunks and logs in pages mapped at start-up.
 */
#define	_GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "debug.h"
#include "percpu.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define	UMEM_HAVE_VALGRIND	1
#endif
#endif
#ifndef UMEM_HAVE_VALGRIND
#define	RUNNING_ON_VALGRIND			0
#define	VALGRIND_MALLOCLIKE_BLOCK(a, s, r, z)	((void)0)
#define	VALGRIND_FREELIKE_BLOCK(a, r)		((void)0)
#define	VALGRIND_DISABLE_ERROR_REPORTING	((void)0)
#define	VALGRIND_ENABLE_ERROR_REPORTING		((void)0)
#define	VALGRIND_MAKE_MEM_UNDEFINED(a, s)	((void)0)
#define	VALGRIND_RESIZEINPLACE_BLOCK(a, o, n, r)	((void)0)
#endif

uint32_t umem_debug_flags;
size_t umem_debug_maxverify = SIZE_MAX;
size_t umem_debug_minfirewall = SIZE_MAX;
uint32_t umem_audit_frames = 15;
size_t umem_content_bytes = 256;
int umem_unwind_dwarf;		/* UMEM_DEBUG=unwind=dwarf */
int umem_debug_findleaks_atexit;
volatile uint32_t umem_mtbf;
static int umem_debug_verbose;

/*
 * Thread id and time for audit records, cheaply: gettid() is a system
 * call (it was half the cost of UMEM_DEBUG=audit), so each thread keeps
 * its own, reset in a fork child; the time comes from a word the update
 * thread refreshes once a tick while records are being made (below).
 */
enum { CLK_OFF, CLK_IDLE, CLK_IDLE_USED, CLK_FRESH, CLK_USED };
static int umem_debug_clock_state;		/* CLK_*; atomic */
static __thread uint32_t umem_debug_tid
    __attribute__((tls_model("initial-exec")));
static __thread uint64_t umem_debug_rand
    __attribute__((tls_model("initial-exec")));

static inline uint32_t
debug_tid(void)
{
	if (UMEM_UNLIKELY(umem_debug_tid == 0))
		umem_debug_tid = (uint32_t)gettid();
	return (umem_debug_tid);
}

static void
debug_atfork_child(void)
{
	umem_debug_tid = 0;
	/* no update thread here yet: read the clock until it ticks again */
	if (__atomic_load_n(&umem_debug_clock_state, __ATOMIC_RELAXED) !=
	    CLK_OFF)
		__atomic_store_n(&umem_debug_clock_state, CLK_IDLE_USED,
		    __ATOMIC_RELAXED);
}

/*
 * Time stamps of audit and log records: the kernel's coarse monotonic
 * clock, in nanoseconds, with the resolution of the scheduler tick (1-4
 * ms).  Read in the vDSO (umem_gethrtime_coarse) it costs 3 ns, and a
 * malloc+free pair reads it twice: 14% of UMEM_DEBUG=default's pair.  So
 * while records are being made, the update thread reads it once a tick
 * into umem_debug_clock_ns, and records take that word instead:
 *
 *   IDLE -> IDLE_USED	a record found no fresh value: it read the clock
 *			itself, and asks for ticks
 *   IDLE_USED, USED -> FRESH	the update thread, at a tick (or at its
 *			next wake-up, at most an update interval later):
 *			umem_debug_clock_ns = now
 *   FRESH -> USED	the first record after that tick takes the word
 *   FRESH -> IDLE	the update thread: no record during a whole tick,
 *			so it stops ticking and sleeps to its next pass
 *
 * Records never wait or call the kernel; a process makes 1/tick wake-ups
 * only while it is allocating.  A stamp may be one tick older than the
 * clock read at once, and older still while the update thread is inside
 * a pass or not scheduled: ages in reports are to the tick, and records
 * keep their order only to the tick.  With no update thread (interval 0,
 * a child before its thread restarts) the state stays IDLE_USED: every
 * record reads the clock itself.
 */
static uint64_t umem_debug_clock_ns;		/* atomic */
static uint64_t umem_debug_clock_tick_ns;	/* the clock's resolution */

static __attribute__((noinline)) uint64_t
debug_now_slow(int st)
{
	if (st == CLK_FRESH && __atomic_compare_exchange_n(
	    &umem_debug_clock_state, &st, CLK_USED, 0, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED))
		return (__atomic_load_n(&umem_debug_clock_ns,
		    __ATOMIC_RELAXED));
	if (st == CLK_IDLE)
		(void) __atomic_compare_exchange_n(&umem_debug_clock_state,
		    &st, CLK_IDLE_USED, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return (umem_gethrtime_coarse());
}

static inline uint64_t
debug_now(void)
{
	int st = __atomic_load_n(&umem_debug_clock_state, __ATOMIC_RELAXED);

	if (UMEM_LIKELY(st == CLK_USED))
		return (__atomic_load_n(&umem_debug_clock_ns,
		    __ATOMIC_RELAXED));
	return (debug_now_slow(st));
}

/*
 * The update thread, before each wait: refresh the clock word if records
 * used it, and say how long it may sleep (0: until its next pass).
 */
UMEM_TEXT_EARLY uint64_t
umem_debug_clock_tick(void)
{
	int st = __atomic_load_n(&umem_debug_clock_state, __ATOMIC_RELAXED);

	switch (st) {
	case CLK_USED:
	case CLK_IDLE_USED:
		__atomic_store_n(&umem_debug_clock_ns, umem_gethrtime_coarse(),
		    __ATOMIC_RELAXED);
		(void) __atomic_compare_exchange_n(&umem_debug_clock_state,
		    &st, CLK_FRESH, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
		return (umem_debug_clock_tick_ns);
	case CLK_FRESH:
		(void) __atomic_compare_exchange_n(&umem_debug_clock_state,
		    &st, CLK_IDLE, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		return (0);
	default:
		return (0);
	}
}

/* Records will be stamped: start the clock word's state machine. */
static void
debug_clock_init(void)
{
	struct timespec res;
	uint64_t tick = 4000000;	/* HZ=250 */

	umem_coarse_clock_init();
	if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0)
		tick = (uint64_t)res.tv_sec * 1000000000ULL +
		    (uint64_t)res.tv_nsec;
	umem_debug_clock_tick_ns = tick < 1000000 ? 1000000 :
	    tick > 10000000 ? 10000000 : tick;
	__atomic_store_n(&umem_debug_clock_state, CLK_IDLE, __ATOMIC_RELAXED);
	umem_update_wanted();		/* the thread that ticks */
}

/* Nanoseconds between two stamps. */
static uint64_t
stamp_ns(uint64_t from, uint64_t to)
{
	return (to > from ? to - from : 0);
}
static int umem_valgrind;		/* running under valgrind */

/*
 * memcheck must not report our own reads of free buffers and tags.  A
 * client request costs a few nanoseconds even natively, so only under
 * valgrind.
 */
#define	VG_QUIET()	do { if (umem_valgrind) \
	VALGRIND_DISABLE_ERROR_REPORTING; } while (0)
#define	VG_LOUD()	do { if (umem_valgrind) \
	VALGRIND_ENABLE_ERROR_REPORTING; } while (0)

#define	UMEM_MAX_FRAMES		64
#define	UMEM_LOG_DEFAULT	(64 * 1024)

/*
 * ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------
 */
/* Weak: a program linked with us may define these (illumos hooks). */
extern const char *_umem_debug_init(void) __attribute__((weak));
extern const char *_umem_options_init(void) __attribute__((weak));
extern const char *_umem_logging_init(void) __attribute__((weak));

static size_t umem_log_size[3];		/* transaction, contents, fail */
static int umem_log_asked[3];

/* "name" or "name=value" at [s, s + n); *valp = value or NULL. */
static int
item_is(const char *s, size_t n, const char *name, const char **valp,
    size_t *vlenp)
{
	size_t l = strlen(name);

	if (n < l || strncmp(s, name, l) != 0 || (n > l && s[l] != '='))
		return (0);
	*valp = n > l ? s + l + 1 : NULL;
	*vlenp = n > l ? n - l - 1 : 0;
	return (1);
}

/* A size with an optional k/m/g/t suffix (binary); 0 and a report if bad. */
static int
item_size(const char *var, const char *name, const char *v, size_t vl,
    uint64_t *np)
{
	uint64_t n = 0, mult = 1;
	size_t i;

	for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++) {
		if (n > (UINT64_MAX - 9) / 10)
			goto bad;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (i == 0)
		goto bad;
	if (i + 1 == vl) {
		switch (v[i] | 0x20) {
		case 'k': mult = 1ULL << 10; break;
		case 'm': mult = 1ULL << 20; break;
		case 'g': mult = 1ULL << 30; break;
		case 't': mult = 1ULL << 40; break;
		default: goto bad;
		}
	} else if (i != vl) {
		goto bad;
	}
	if (n > UINT64_MAX / mult)
		goto bad;
	*np = n * mult;
	return (1);
bad:
	umem_report("%s: %s needs a number (with an optional k, m, g or t "
	    "suffix), got '%.*s'; option ignored", var, name, (int)vl,
	    v == NULL ? "" : v);
	return (0);
}

static void
parse_debug_item(const char *s, size_t n)
{
	const char *v;
	size_t vl;
	uint64_t x;

	if (item_is(s, n, "default", &v, &vl) && v == NULL) {
		umem_debug_flags |= UMF_AUDIT | UMF_CONTENTS | UMF_DEADBEEF |
		    UMF_REDZONE;
	} else if (item_is(s, n, "audit", &v, &vl)) {
		if (v != NULL && item_size("UMEM_DEBUG", "audit", v, vl, &x)) {
			if (x > UMEM_MAX_FRAMES) {
				umem_report("UMEM_DEBUG: audit keeps at most "
				    "%d frames; using %d", UMEM_MAX_FRAMES,
				    UMEM_MAX_FRAMES);
				x = UMEM_MAX_FRAMES;
			}
			umem_audit_frames = (uint32_t)x;
		}
		umem_debug_flags |= UMF_AUDIT | UMF_REDZONE;
	} else if (item_is(s, n, "contents", &v, &vl)) {
		if (v != NULL && item_size("UMEM_DEBUG", "contents", v, vl, &x))
			umem_content_bytes = x > 65536 ? 65536 : (size_t)x;
		umem_debug_flags |= UMF_CONTENTS | UMF_AUDIT | UMF_REDZONE;
	} else if (item_is(s, n, "guards", &v, &vl) && v == NULL) {
		umem_debug_flags |= UMF_DEADBEEF | UMF_REDZONE;
	} else if (item_is(s, n, "verbose", &v, &vl) && v == NULL) {
		umem_debug_verbose = 1;
	} else if (item_is(s, n, "allverbose", &v, &vl) && v == NULL) {
		umem_debug_verbose = 2;
	} else if (item_is(s, n, "nosignal", &v, &vl) && v == NULL) {
		umem_debug_flags |= UMF_AUDIT | UMF_REDZONE | UMF_CHECKSIGNAL;
	} else if (item_is(s, n, "firewall", &v, &vl) && v != NULL) {
		if (item_size("UMEM_DEBUG", "firewall", v, vl, &x)) {
			umem_debug_minfirewall = (size_t)x;
			umem_debug_flags |= UMF_FIREWALL;
		}
	} else if (item_is(s, n, "lite", &v, &vl) && v == NULL) {
		umem_debug_flags |= UMF_LITE | UMF_DEADBEEF | UMF_REDZONE;
	} else if (item_is(s, n, "maxverify", &v, &vl) && v != NULL) {
		if (item_size("UMEM_DEBUG", "maxverify", v, vl, &x))
			umem_debug_maxverify = (size_t)x;
	} else if (item_is(s, n, "noabort", &v, &vl) && v == NULL) {
		umem_abort_on_error = 0;
	} else if (item_is(s, n, "mtbf", &v, &vl) && v != NULL) {
		if (item_size("UMEM_DEBUG", "mtbf", v, vl, &x)) {
			umem_mtbf = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
			umem_debug_flags |= UMF_REDZONE;
		}
	} else if (item_is(s, n, "unwind", &v, &vl) && v != NULL) {
		if (vl == 5 && strncmp(v, "dwarf", 5) == 0)
			umem_unwind_dwarf = 1;
		else if (vl == 2 && strncmp(v, "fp", 2) == 0)
			umem_unwind_dwarf = 0;
		else
			umem_report("UMEM_DEBUG: unwind is fp or dwarf, not "
			    "'%.*s'", (int)vl, v);
	} else if (item_is(s, n, "findleaks", &v, &vl) && v == NULL) {
		umem_debug_findleaks_atexit = 1;
		umem_debug_flags |= UMF_AUDIT | UMF_REDZONE;
	} else {
		umem_report("UMEM_DEBUG: '%.*s' not recognized; known: default, "
		    "audit[=frames], contents[=bytes], guards, verbose, "
		    "nosignal, firewall=bytes, lite, maxverify=bytes, noabort, "
		    "mtbf=n, findleaks, unwind=fp|dwarf", (int)n, s);
	}
}

static void
parse_logging_item(const char *s, size_t n)
{
	static const char *const names[3] = {
		"transaction", "contents", "fail"
	};
	const char *v;
	size_t vl;
	uint64_t x;

	for (int i = 0; i < 3; i++) {
		if (!item_is(s, n, names[i], &v, &vl))
			continue;
		x = UMEM_LOG_DEFAULT;
		if (v != NULL && !item_size("UMEM_LOGGING", names[i], v, vl,
		    &x))
			return;
		if (x > (1ULL << 32)) {
			umem_report("UMEM_LOGGING: %s log limited to 4g",
			    names[i]);
			x = 1ULL << 32;
		}
		umem_log_size[i] = (size_t)x;
		umem_log_asked[i] = 1;
		if (i == 0 && x != 0)
			umem_debug_flags |= UMF_AUDIT | UMF_REDZONE;
		if (i == 1 && x != 0)
			umem_debug_flags |= UMF_CONTENTS | UMF_AUDIT |
			    UMF_REDZONE;
		return;
	}
	umem_report("UMEM_LOGGING: '%.*s' not recognized; known: "
	    "transaction[=size], contents[=size], fail[=size]", (int)n, s);
}

/* Split a comma-separated list; blanks around items are ignored. */
static void
parse_list(const char *s, void (*item)(const char *, size_t))
{
	while (s != NULL && *s != '\0') {
		const char *e;
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		for (e = s; *e != '\0' && *e != ','; e++)
			;
		len = (size_t)(e - s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len > 512)
			umem_report("umem: option item of %zu bytes ignored",
			    len);
		else if (len > 0)
			item(s, len);
		s = (*e == ',') ? e + 1 : e;
	}
}

static void umem_logs_init(void);
static void umem_firewall_init(void);

/* Debugging asked for (or valgrind): parse and set it up. */
static void __attribute__((noinline))
debug_options_apply(const char *d, const char *l)
{
	parse_list(d, parse_debug_item);
	parse_list(l, parse_logging_item);
	/* At once, not umem_atfork_add(): a single-threaded fork's child */
	/* must not keep the parent's thread ID in its records. */
	if (umem_debug_flags != 0 || umem_valgrind)
		(void) pthread_atfork(NULL, NULL, debug_atfork_child);
	umem_logs_init();
	if ((umem_debug_flags & UMF_AUDIT) || l != NULL)
		debug_clock_init();
	if (umem_debug_flags & UMF_FIREWALL)
		umem_firewall_init();
	if (umem_debug_verbose)
		umem_report("umem: debug flags 0x%x, audit %u frames "
		    "(unwind=%s), firewall >= %zu bytes, mtbf %u%s",
		    umem_debug_flags, umem_audit_frames,
		    umem_unwind_dwarf ? "dwarf" : "fp", umem_debug_minfirewall,
		    (unsigned)umem_mtbf, umem_valgrind ? ", valgrind" : "");
}

/*
 * The environment wins over the program's hooks.  Called by umem_init()
 * before any cache exists.  getenv() does not allocate.  Every process
 * runs this part; the parsing is with the debugging layers' code.
 */
UMEM_TEXT_EARLY void
umem_debug_options(void)
{
	const char *d = umem_getenv("UMEM_DEBUG");
	const char *l = umem_getenv("UMEM_LOGGING");

	if (d == NULL && _umem_debug_init != NULL)
		d = _umem_debug_init();
	if (l == NULL && _umem_logging_init != NULL)
		l = _umem_logging_init();
	if (RUNNING_ON_VALGRIND)
		umem_valgrind = 1;
	if (d != NULL || l != NULL || umem_valgrind)
		debug_options_apply(d, l);
}

/* The hook for UMEM_OPTIONS, read by umem.c's option parser. */
UMEM_TEXT_EARLY const char *
umem_options_hook(void)
{
	return (_umem_options_init != NULL ? _umem_options_init() : NULL);
}

UMEM_EXPORT void
umem_setmtbf(unsigned int mtbf)
{
	umem_mtbf = mtbf;
}

/*
 * ------------------------------------------------------------------------
 * Geometry
 * ------------------------------------------------------------------------
 */
UMEM_TEXT_EARLY uint32_t
umem_debug_cache_flags(int cflags, size_t bufsize)
{
	uint32_t f = umem_debug_flags;

	if (cflags & (UMC_INTERNAL | UMC_NODEBUG | UMC_NOTOUCH | UMC_QCACHE))
		return (0);
	if (umem_valgrind)
		f |= UMF_REDZONE;	/* a tag: every call goes through here */
	if (f == 0)
		return (0);
	if (!(f & UMF_FIREWALL) || bufsize < umem_debug_minfirewall ||
	    (cflags & UMC_NOHASH))
		f &= ~UMF_FIREWALL;
	return (f);
}

static size_t
tag_area(umem_cache_t *cp)
{
	return (sizeof (umem_buftag_t) + 2 * cp->cache_audit);
}

int
umem_debug_geometry(umem_cache_t *cp)
{
	size_t align = cp->cache_align, off;

	cp->cache_audit = (cp->cache_flags & UMF_AUDIT) ?
	    sizeof (umem_audit_t) + umem_audit_frames * sizeof (uintptr_t) : 0;
	cp->cache_verify = (cp->cache_flags & UMF_LITE) ? 8 :
	    umem_debug_maxverify;
	if (cp->cache_flags & UMF_FIREWALL) {
		if (cp->cache_bufsize > SIZE_MAX / 8)
			return (ENOMEM);
		cp->cache_buftag = -1;
		cp->cache_chunksize = P2ROUNDUP(cp->cache_bufsize, align);
		return (0);
	}
	off = P2ROUNDUP(cp->cache_bufsize, UMEM_ALIGN);
	cp->cache_buftag = (ptrdiff_t)off;
	cp->cache_chunksize = P2ROUNDUP(off + tag_area(cp), align);
	return (0);
}

/*
 * After umem_slab_geometry(): free-list links go in the tag, and firewall
 * caches get one buffer per slab, at its end.  A firewall cache that
 * malloc frees by address gets a zero slab mask, so the block layer's
 * start check passes for any address in it and umem_debug_free, which
 * knows the one buffer of each slab, checks it instead.
 */
void
umem_debug_geometry_post(umem_cache_t *cp)
{
	if (cp->cache_flags & UMF_FIREWALL) {
		size_t s = umem_pagesize;

		while (s < cp->cache_chunksize + tag_area(cp))
			s <<= 1;
		cp->cache_slabsize = s;
		cp->cache_flags |= UMF_HASH;
		cp->cache_chunks = 1;
		cp->cache_maxcolor = 0;
		cp->cache_slab_mask = 0;
		cp->cache_chunk_inv = 0;
		cp->cache_chunk_tz = 0;
		return;
	}
	if (!(cp->cache_flags & UMF_HASH))
		cp->cache_bufctl = (size_t)cp->cache_buftag +
		    offsetof(umem_buftag_t, bt_link);
}

size_t
umem_debug_link_offset(umem_cache_t *cp)
{
	return ((size_t)cp->cache_buftag + offsetof(umem_buftag_t, bt_link));
}

umem_buftag_t *
umem_debug_tag(umem_cache_t *cp, void *buf)
{
	if (cp->cache_buftag < 0)
		return ((umem_buftag_t *)P2ALIGN((uintptr_t)buf,
		    cp->cache_slabsize));
	return ((umem_buftag_t *)((char *)buf + cp->cache_buftag));
}

umem_audit_t *
umem_debug_audit(umem_cache_t *cp, void *buf, int which)
{
	if (cp->cache_audit == 0)
		return (NULL);
	return ((umem_audit_t *)((char *)(umem_debug_tag(cp, buf) + 1) +
	    (size_t)which * cp->cache_audit));
}

int
umem_debug_state(umem_cache_t *cp, void *buf)
{
	uintptr_t x = umem_debug_tag(cp, buf)->bt_bxstat ^ (uintptr_t)buf;

	if (x == UMEM_BUFTAG_ALLOC)
		return (1);
	if (x == UMEM_BUFTAG_FREE)
		return (0);
	return (-1);
}

/* Bytes of the buffer proper checked and filled with patterns. */
static size_t
pattern_len(umem_cache_t *cp)
{
	size_t n = cp->cache_bufsize & ~(size_t)7;

	return (n < cp->cache_verify ? n : P2ALIGN(cp->cache_verify, 8));
}

/*
 * Patterns, 16 bytes a step (SSE2 on x86-64, generic vectors elsewhere):
 * these two loops are most of what guards cost.  n is a multiple of 8.
 */
typedef uint64_t umem_v2_t __attribute__((vector_size(16), aligned(8),
    may_alias));
typedef uint64_t umem_w_t __attribute__((may_alias));

static inline void
fill64(void *p, size_t n, uint64_t pat)
{
	const umem_v2_t v = { pat, pat };
	char *c = p;
	size_t i = 0;

	for (; i + 16 <= n; i += 16)
		*(umem_v2_t *)(c + i) = v;
	if (i < n)
		*(umem_w_t *)(c + i) = pat;
}

/* Offset of the first word that is not pat, or SIZE_MAX. */
static inline size_t
verify64(const void *p, size_t n, uint64_t pat)
{
	const umem_v2_t v = { pat, pat };
	umem_v2_t diff = { 0, 0 };
	const char *c = p;
	size_t i = 0;

	for (; i + 16 <= n; i += 16)
		diff |= *(const umem_v2_t *)(c + i) ^ v;
	if (i < n)
		diff[0] |= *(const umem_w_t *)(c + i) ^ pat;
	if (UMEM_LIKELY((diff[0] | diff[1]) == 0))
		return (SIZE_MAX);
	for (i = 0; i < n; i += 8)
		if (*(const umem_w_t *)(c + i) != pat)
			return (i);
	return (SIZE_MAX);
}

/* End of the user bytes: the requested size, else bufsize. */
static size_t
user_size(umem_cache_t *cp, const umem_buftag_t *btp)
{
	uint32_t hi = (uint32_t)(btp->bt_redzone >> 32);

	if (hi != (uint32_t)(UMEM_REDZONE_PATTERN >> 32) &&
	    UMEM_SIZE_VALID(hi) && UMEM_SIZE_DECODE(hi) <= cp->cache_bufsize)
		return ((size_t)UMEM_SIZE_DECODE(hi));
	return (cp->cache_bufsize);
}

/* Slack after the user bytes up to the tag (none for firewall). */
static size_t
slack_end(umem_cache_t *cp)
{
	return (cp->cache_buftag < 0 ? cp->cache_chunksize :
	    (size_t)cp->cache_buftag);
}

void
umem_debug_slab_init(umem_cache_t *cp, void *base, uint32_t chunks)
{
	char *buf = base;

	for (uint32_t i = 0; i < chunks; i++, buf += cp->cache_chunksize) {
		umem_buftag_t *btp = umem_debug_tag(cp, buf);

		if (cp->cache_flags & UMF_DEADBEEF)
			fill64(buf, pattern_len(cp), UMEM_FREE_PATTERN);
		btp->bt_redzone = UMEM_REDZONE_PATTERN;
		btp->bt_bxstat = (uintptr_t)buf ^ UMEM_BUFTAG_FREE;
		if (cp->cache_audit != 0)
			memset(btp + 1, 0, 2 * cp->cache_audit);
	}
}

/*
 * ------------------------------------------------------------------------
 * Stacks
 * ------------------------------------------------------------------------
 */
extern void *__libc_stack_end;
static uintptr_t umem_text_lo, umem_text_hi;
static uintptr_t umem_libc_lo, umem_libc_hi;	/* is_sigreturn() */
static pthread_once_t umem_text_once = PTHREAD_ONCE_INIT;
static int umem_text_ready;

/*
 * The executable segment holding an address: dl_iterate_phdr's callback,
 * arg a code_range whose cr_addr is set; fills cr_lo / cr_hi.
 */
typedef struct code_range {
	uintptr_t	cr_addr;
	uintptr_t	cr_lo;
	uintptr_t	cr_hi;
} code_range_t;

/*
 * The first program header of info of the given type whose segment holds
 * addr (0: any), or NULL: the dl_iterate_phdr callbacks' lookup (here,
 * unwind.c and symbols.c).
 */
const ElfW(Phdr) *
umem_phdr_find(const struct dl_phdr_info *info, uint32_t type, uintptr_t addr)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == type && (addr == 0 ||
		    (addr >= lo && addr - lo < ph->p_memsz)))
			return (ph);
	}
	return (NULL);
}

static int
code_range_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	code_range_t *cr = arg;
	const ElfW(Phdr) *ph = umem_phdr_find(info, PT_LOAD, cr->cr_addr);

	(void) size;
	if (ph == NULL || !(ph->p_flags & PF_X))
		return (0);
	cr->cr_lo = info->dlpi_addr + ph->p_vaddr;
	cr->cr_hi = cr->cr_lo + ph->p_memsz;
	return (1);
}

/*
 * libumem's own code: its executable segment when it is a shared object.
 * Linked into a program, the segment is the program's too, so instead
 * the span of a few of our functions, which the one-object static
 * library keeps together.
 */
static void
text_range_init(void)
{
	static const uintptr_t marks[] = {
		(uintptr_t)umem_debug_alloc, (uintptr_t)umem_debug_free,
		(uintptr_t)umem_cache_alloc, (uintptr_t)umem_cache_free,
		(uintptr_t)umem_slab_alloc, (uintptr_t)umem_alloc,
		(uintptr_t)umem_free, (uintptr_t)umem_init,
		(uintptr_t)umem_zalloc, (uintptr_t)umem_pages_map,
	};
	code_range_t ours = { marks[0], 0, 0 };
	code_range_t libc = { (uintptr_t)sigaction, 0, 0 };
	Dl_info di;
	void *self;

	(void) dl_iterate_phdr(code_range_cb, &ours);
	umem_text_lo = ours.cr_lo;
	umem_text_hi = ours.cr_hi;
	(void) dl_iterate_phdr(code_range_cb, &libc);
	umem_libc_lo = libc.cr_lo;
	/* the trampoline's 9 bytes are read at pc: keep them inside */
	umem_libc_hi = libc.cr_hi > 16 ? libc.cr_hi - 16 : 0;
	self = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
	if (dladdr((void *)marks[0], &di) != 0 && self != NULL) {
		struct link_map *lm = self;

		if (lm->l_addr == (ElfW(Addr))di.dli_fbase ||
		    lm->l_name == NULL || lm->l_name[0] == '\0') {
			/* maybe the main program: check it is */
			if ((uintptr_t)di.dli_fbase == (uintptr_t)lm->l_addr ||
			    di.dli_fname == NULL ||
			    strstr(di.dli_fname, "libumem") == NULL) {
				uintptr_t lo = UINTPTR_MAX, hi = 0;

				for (size_t i = 0; i < sizeof (marks) /
				    sizeof (marks[0]); i++) {
					lo = marks[i] < lo ? marks[i] : lo;
					hi = marks[i] > hi ? marks[i] : hi;
				}
				umem_text_lo = lo;
				umem_text_hi = hi + 4096;
			}
		}
	}
	if (self != NULL)
		(void) dlclose(self);
}

static int
in_umem(uintptr_t pc)
{
	return (pc >= umem_text_lo && pc < umem_text_hi);
}

/*
 * x86-64 glibc's signal return trampoline is "mov $15, %rax; syscall" in
 * libc's text; a pc is read only once it is known to lie there.
 */
static int
is_sigreturn(uintptr_t pc)
{
	static const unsigned char code[] = {
		0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05
	};

	return (pc >= umem_libc_lo && pc < umem_libc_hi &&
	    memcmp((const void *)pc, code, sizeof (code)) == 0);
}

/* The calling thread's stack top, found once per thread (see below). */
static __thread uintptr_t umem_stack_hi
    __attribute__((tls_model("initial-exec")));

static uintptr_t
stack_top_find(uintptr_t sp)
{
	uintptr_t self = (uintptr_t)pthread_self();

	if (self > sp && self - sp < (1UL << 30))
		return (self);
	if ((uintptr_t)__libc_stack_end > sp &&
	    (uintptr_t)__libc_stack_end - sp < (1UL << 30))
		return ((uintptr_t)__libc_stack_end);
	return (sp + 4096);	/* unknown stack (sigaltstack?): be brief */
}

static inline uintptr_t
stack_top(uintptr_t sp)
{
	uintptr_t hi = umem_stack_hi;

	if (UMEM_LIKELY(hi > sp && hi - sp < (1UL << 30)))
		return (hi);
	hi = stack_top_find(sp);
	if (hi != sp + 4096)
		umem_stack_hi = hi;
	return (hi);
}

/* Set per call by umem_getpcstack; per thread, so threads never share it. */
static __thread int umem_in_sighandler
    __attribute__((tls_model("initial-exec")));

/* One pc of a walk: the first frames, ours, are left out. */
static inline int
stack_add(uintptr_t pc, uintptr_t *pcs, int n, int *ours)
{
	if (*ours && !in_umem(pc))
		*ours = 0;
	if (!*ours) {
		pcs[n++] = pc;
		if ((umem_debug_flags & UMF_CHECKSIGNAL) && is_sigreturn(pc))
			umem_in_sighandler = 1;
	}
	return (n);
}

/*
 * unwind=dwarf: the walk by unwind tables (unwind.c), frame pointers in
 * the program or not.  It starts in the caller of fp's function (this
 * file keeps frame pointers: fp[1] is the return address, fp[0] the
 * caller's bp, and the caller's sp is just above them).
 */
static int
getpcstack_dwarf(uintptr_t *fp, uintptr_t hi, uintptr_t *pcs, int max)
{
	uintptr_t pc = fp[1], sp = (uintptr_t)(fp + 2), bp = fp[0];
	int n = 0, ours = 1, st = 0;

	if (pc < 4096)
		return (0);
	n = stack_add(pc, pcs, n, &ours);
	while (n < max && (st = umem_unwind_step(&pc, &sp, &bp, hi,
	    st == 1)) >= 0 && pc >= 4096) {
		if (st == 1)	/* the interrupted code's stack */
			hi = stack_top(sp);
		n = stack_add(pc, pcs, n, &ours);
	}
	return (n);
}

/*
 * The walk, from frame fp up: the debug layer's entry points pass their
 * own frame, which skips the frames between them and here (fewer
 * dependent loads: the walk is a pointer chase).
 */
static inline __attribute__((always_inline)) int
getpcstack_from(uintptr_t *fp, uintptr_t *pcs, int max)
{
	uintptr_t lo = (uintptr_t)fp, hi;
	int n = 0, ours = 1;

	if (UMEM_UNLIKELY(!__atomic_load_n(&umem_text_ready,
	    __ATOMIC_ACQUIRE))) {
		(void) pthread_once(&umem_text_once, text_range_init);
		__atomic_store_n(&umem_text_ready, 1, __ATOMIC_RELEASE);
	}
	umem_in_sighandler = 0;
	hi = stack_top(lo);
	/* fp: our own frame, so inside the stack */
	if (umem_unwind_dwarf && hi - lo >= 16 && (lo & 7) == 0)
		return (getpcstack_dwarf(fp, hi, pcs, max));
	/* (compared without overflow: fp may be any value) */
	while (n < max && (uintptr_t)fp >= lo && (uintptr_t)fp < hi &&
	    hi - (uintptr_t)fp >= 16 && ((uintptr_t)fp & 7) == 0) {
		uintptr_t pc = fp[1], *next = (uintptr_t *)fp[0];

		if (pc < 4096)
			break;
		n = stack_add(pc, pcs, n, &ours);
		if (next <= fp)
			break;
		lo = (uintptr_t)fp + 16;
		fp = next;
	}
	return (n);
}

__attribute__((noinline)) int
umem_getpcstack(uintptr_t *pcs, int max)
{
	return (getpcstack_from(__builtin_frame_address(0), pcs, max));
}

void
umem_debug_print_stack(int fd, const umem_audit_t *ap, const char *indent)
{
	char line[512];

	for (int i = 0; i < ap->au_depth; i++) {
		uintptr_t pc = ap->au_stack[i], off;
		const char *file;
		/* pc - 1: the call, which may be its function's last bytes */
		const char *sym = umem_symbol(pc - 1, &file, &off);
		size_t n;

		if (sym != NULL)
			n = umem_format(line, sizeof (line),
			    "%s#%d 0x%lx %s+0x%lx (%s)\n", indent, i,
			    (unsigned long)pc, sym, (unsigned long)(off + 1),
			    file);
		else if (file != NULL)
			n = umem_format(line, sizeof (line),
			    "%s#%d 0x%lx (%s+0x%lx)\n", indent, i,
			    (unsigned long)pc, file, (unsigned long)(off + 1));
		else
			n = umem_format(line, sizeof (line), "%s#%d 0x%lx\n",
			    indent, i, (unsigned long)pc);
		if (n >= sizeof (line))
			n = sizeof (line) - 1;
		if (write(fd, line, n) < 0)
			return;
	}
}

/*
 * ------------------------------------------------------------------------
 * Logs: fixed-size records in a ring of pages mapped at start-up.
 * ------------------------------------------------------------------------
 */
typedef struct umem_log {
	umem_lock_t	lg_lock;
	const char	*lg_name;
	char		*lg_base;
	size_t		lg_recsize;
	size_t		lg_nrec;
	uint64_t	lg_next;	/* records ever written */
} umem_log_t;

/* A log record: the transaction or failure, then stack or contents. */
typedef struct umem_logrec {
	uint64_t	lr_time;
	uint32_t	lr_tid;
	uint16_t	lr_kind;	/* UMEM_LR_* */
	uint16_t	lr_depth;	/* frames, or contents bytes / 8 */
	umem_cache_t	*lr_cache;
	void		*lr_buf;
	size_t		lr_size;	/* requested size (fail log) */
	uintptr_t	lr_data[];	/* stack, or saved contents */
} umem_logrec_t;

#define	UMEM_LR_ALLOC	1
#define	UMEM_LR_FREE	2
#define	UMEM_LR_FAIL	3
#define	UMEM_LR_CONTENTS 4

static umem_log_t umem_logs[3] = {
	{ UMEM_LOCK_INITIALIZER, "transaction", NULL, 0, 0, 0 },
	{ UMEM_LOCK_INITIALIZER, "contents", NULL, 0, 0, 0 },
	{ UMEM_LOCK_INITIALIZER, "fail", NULL, 0, 0, 0 },
};
static int umem_logging_off;	/* while a report is written */

static void
umem_logs_init(void)
{
	for (int i = 0; i < 3; i++) {
		umem_log_t *lp = &umem_logs[i];
		size_t data = i == 1 ? P2ROUNDUP(umem_content_bytes, 8) :
		    umem_audit_frames * sizeof (uintptr_t);
		size_t size = P2ROUNDUP(umem_log_size[i], umem_pagesize);

		if (!umem_log_asked[i] || size == 0)
			continue;
		lp->lg_recsize = sizeof (umem_logrec_t) + data;
		if ((lp->lg_base = umem_pages_map(size)) == NULL) {
			umem_report("UMEM_LOGGING: no memory for the %s log; "
			    "log disabled", lp->lg_name);
			continue;
		}
		lp->lg_nrec = size / lp->lg_recsize;
	}
}

/* The logs' pages (they hold buffer addresses: not leak-scan roots). */
int
umem_debug_log_ranges(uintptr_t *lo, size_t *size, int max)
{
	int n = 0;

	for (int i = 0; i < 3 && n < max; i++) {
		if (umem_logs[i].lg_base == NULL)
			continue;
		lo[n] = (uintptr_t)umem_logs[i].lg_base;
		size[n++] = P2ROUNDUP(umem_logs[i].lg_nrec *
		    umem_logs[i].lg_recsize, umem_pagesize);
	}
	return (n);
}

static umem_logrec_t *
log_claim(umem_log_t *lp)
{
	uint64_t i;

	if (lp->lg_base == NULL || lp->lg_nrec == 0 ||
	    __atomic_load_n(&umem_logging_off, __ATOMIC_RELAXED))
		return (NULL);
	i = __atomic_fetch_add(&lp->lg_next, 1, __ATOMIC_RELAXED);
	return ((umem_logrec_t *)(lp->lg_base +
	    (i % lp->lg_nrec) * lp->lg_recsize));
}

static void
log_transaction(umem_cache_t *cp, void *buf, int kind, const umem_audit_t *ap,
    const uintptr_t *pcs, int depth)
{
	umem_logrec_t *lr = log_claim(&umem_logs[0]);

	if (lr == NULL)
		return;
	lr->lr_time = ap != NULL ? ap->au_time : debug_now();
	lr->lr_tid = debug_tid();
	lr->lr_kind = (uint16_t)kind;
	lr->lr_cache = cp;
	lr->lr_buf = buf;
	lr->lr_size = 0;
	if ((uint32_t)depth > umem_audit_frames)
		depth = (int)umem_audit_frames;
	memcpy(lr->lr_data, pcs, (size_t)depth * sizeof (uintptr_t));
	lr->lr_depth = (uint16_t)depth;
}

static void
log_contents(umem_cache_t *cp, void *buf, size_t len)
{
	umem_logrec_t *lr;

	if (umem_logs[1].lg_base == NULL ||
	    (lr = log_claim(&umem_logs[1])) == NULL)
		return;
	if (len > umem_content_bytes)
		len = umem_content_bytes;
	lr->lr_time = debug_now();
	lr->lr_tid = debug_tid();
	lr->lr_kind = UMEM_LR_CONTENTS;
	lr->lr_cache = cp;
	lr->lr_buf = buf;
	lr->lr_size = len;
	memcpy(lr->lr_data, buf, len);
	lr->lr_depth = 0;
}

void
umem_debug_log_fail(umem_cache_t *cp, size_t size)
{
	uintptr_t pcs[UMEM_MAX_FRAMES];
	umem_logrec_t *lr;
	int depth;

	if (umem_logs[2].lg_base == NULL ||
	    (lr = log_claim(&umem_logs[2])) == NULL)
		return;
	depth = umem_getpcstack(pcs, (int)umem_audit_frames);
	lr->lr_time = debug_now();
	lr->lr_tid = debug_tid();
	lr->lr_kind = UMEM_LR_FAIL;
	lr->lr_cache = cp;
	lr->lr_buf = NULL;
	lr->lr_size = size;
	memcpy(lr->lr_data, pcs, (size_t)depth * sizeof (uintptr_t));
	lr->lr_depth = (uint16_t)depth;
}

static void
put(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = umem_vformat(line, sizeof (line), fmt, ap);
	va_end(ap);
	if (n >= sizeof (line))
		n = sizeof (line) - 1;
	if (write(fd, line, n) < 0)
		return;
}

static uint64_t umem_report_now;	/* one "now" per report */

static void
print_ago(int fd, const char *what, uint32_t tid, uint64_t t)
{
	uint64_t now = umem_report_now != 0 ? umem_report_now :
	    umem_gethrtime_coarse(), d = stamp_ns(t, now);

	put(fd, "%s by thread %u at T-%lu.%09lus\n", what, tid,
	    (unsigned long)(d / 1000000000ULL),
	    (unsigned long)(d % 1000000000ULL));
}

static int
log_print_rec(int fd, umem_log_t *lp, const umem_logrec_t *lr)
{
	static const char *const kinds[] = {
		"?", "alloc", "free", "FAILED alloc", "contents"
	};
	const char *c = lr->lr_cache != NULL ? lr->lr_cache->cache_name :
	    "(large)";

	(void) lp;
	if (lr->lr_kind == UMEM_LR_CONTENTS) {
		const unsigned char *b = (const unsigned char *)lr->lr_data;
		char hex[3 * 32 + 1];

		print_ago(fd, "  contents freed", lr->lr_tid, lr->lr_time);
		put(fd, "    cache %s buffer %p, %zu bytes:\n", c, lr->lr_buf,
		    lr->lr_size);
		for (size_t o = 0; o < lr->lr_size; o += 32) {
			size_t k = 0;

			for (size_t j = o; j < o + 32 && j < lr->lr_size; j++)
				k += umem_format(hex + k, sizeof (hex) - k,
				    " %02x", b[j]);
			put(fd, "    %04zx:%s\n", o, hex);
		}
		return (1);
	}
	put(fd, "  %s of %s", kinds[lr->lr_kind < 5 ? lr->lr_kind : 0], c);
	if (lr->lr_buf != NULL)
		put(fd, " buffer %p", lr->lr_buf);
	if (lr->lr_kind == UMEM_LR_FAIL)
		put(fd, " (%zu bytes)", lr->lr_size);
	print_ago(fd, "", lr->lr_tid, lr->lr_time);
	{
		umem_audit_t *ap = (umem_audit_t *)(lr->lr_data) - 0;
		uintptr_t tmp[UMEM_MAX_FRAMES + 2];
		umem_audit_t *a = (umem_audit_t *)tmp;

		(void) ap;
		a->au_depth = lr->lr_depth;
		memcpy(a->au_stack, lr->lr_data, lr->lr_depth *
		    sizeof (uintptr_t));
		umem_debug_print_stack(fd, a, "      ");
	}
	return (1);
}

/* Print a log (newest last), or only the records of buf; count printed. */
static int
log_print(int fd, umem_log_t *lp, const void *buf, int max)
{
	uint64_t end, start, i;
	int n = 0;

	if (lp->lg_base == NULL)
		return (0);
	end = __atomic_load_n(&lp->lg_next, __ATOMIC_ACQUIRE);
	start = end > lp->lg_nrec ? end - lp->lg_nrec : 0;
	for (i = start; i < end; i++) {
		const umem_logrec_t *lr = (const umem_logrec_t *)
		    (lp->lg_base + (i % lp->lg_nrec) * lp->lg_recsize);

		if (buf != NULL && lr->lr_buf != buf)
			continue;
		if (buf != NULL && max > 0 && end - i > (uint64_t)max * 64)
			continue;
		n += log_print_rec(fd, lp, lr);
	}
	return (n);
}

UMEM_EXPORT int
umem_log_print(int fd, const char *name)
{
	for (int i = 0; i < 3; i++) {
		if (name != NULL && strcmp(name, umem_logs[i].lg_name) == 0) {
			if (umem_logs[i].lg_base == NULL) {
				errno = ENOENT;
				return (-1);
			}
			put(fd, "umem %s log:\n", umem_logs[i].lg_name);
			return (log_print(fd, &umem_logs[i], NULL, 0));
		}
	}
	errno = EINVAL;
	return (-1);
}

/*
 * ------------------------------------------------------------------------
 * Error reports
 * ------------------------------------------------------------------------
 */
#define	UMEM_ERRLOG_SIZE	8192
static UMEM_BSS_LARGE char umem_errlog[UMEM_ERRLOG_SIZE];
static size_t umem_errlog_len;		/* bytes ever written */
static umem_lock_t umem_errlog_lock = UMEM_LOCK_INITIALIZER;
static int umem_errlog_pipe[2] = { -1, -1 };

static const char *const umem_errdesc[UMERR_NCLASSES] = {
	"buffer modified after being freed",
	"redzone violation: write past end of buffer",
	"duplicate free",
	"invalid free: buffer not allocated from this cache",
	"boundary tag corrupted",
	"bufctl corrupted",
	"buffer freed to wrong cache",
	"bad free: free size != alloc size",
	"bad free: free address is not the start of a buffer",
};

UMEM_EXPORT size_t
umem_error_log(char *dst, size_t len)
{
	size_t n, start, i;

	umem_lock(&umem_errlog_lock);
	n = umem_errlog_len < UMEM_ERRLOG_SIZE ? umem_errlog_len :
	    UMEM_ERRLOG_SIZE;
	start = umem_errlog_len - n;
	if (dst != NULL && len > 0) {
		size_t m = n < len - 1 ? n : len - 1;

		/* the newest m bytes */
		for (i = 0; i < m; i++)
			dst[i] = umem_errlog[(start + (n - m) + i) %
			    UMEM_ERRLOG_SIZE];
		dst[m] = '\0';
	}
	umem_unlock(&umem_errlog_lock);
	return (n);
}

/* The report is written to a pipe, then copied to stderr and the log. */
static void
errlog_flush(void)
{
	char chunk[1024];
	ssize_t r;

	while ((r = read(umem_errlog_pipe[0], chunk, sizeof (chunk))) > 0) {
		for (ssize_t i = 0; i < r; i++)
			umem_errlog[(umem_errlog_len + (size_t)i) %
			    UMEM_ERRLOG_SIZE] = chunk[i];
		umem_errlog_len += (size_t)r;
		if (write(STDERR_FILENO, chunk, (size_t)r) < 0)
			break;
	}
}

static void
print_audit(int fd, umem_cache_t *cp, void *buf)
{
	umem_audit_t *a = umem_debug_audit(cp, buf, 0);
	umem_audit_t *f = umem_debug_audit(cp, buf, 1);

	if (a == NULL)
		return;
	if (a->au_time != 0) {
		print_ago(fd, "last allocated", a->au_tid, a->au_time);
		umem_debug_print_stack(fd, a, "    ");
	}
	if (f->au_time != 0) {
		print_ago(fd, "last freed", f->au_tid, f->au_time);
		umem_debug_print_stack(fd, f, "    ");
	}
}

/* Which cache owns buf (a scan of every cache's slabs), or NULL. */
static umem_cache_t *
find_owner(void *buf, void **startp)
{
	umem_cache_t *cp, *found = NULL;

	if (umem_null_cache.cache_next == NULL ||
	    !umem_trylock(&umem_cache_lock))
		return (NULL);	/* no cache yet, or the list is busy */
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		if (umem_slab_find(cp, buf, startp) != 0) {
			found = cp;
			break;
		}
	}
	umem_unlock(&umem_cache_lock);
	return (found);
}

static void
umem_debug_verror(umem_errclass_t cls, umem_cache_t *cp, void *buf,
    const char *fmt, va_list ap)
{
	int fd, saved = errno;
	umem_cache_t *real;
	void *start = NULL;

	umem_lock(&umem_errlog_lock);
	umem_report_now = umem_gethrtime_coarse();
	__atomic_store_n(&umem_logging_off, 1, __ATOMIC_RELAXED);
	if (umem_errlog_pipe[0] < 0 &&
	    pipe2(umem_errlog_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		umem_errlog_pipe[0] = umem_errlog_pipe[1] = -1;
	fd = umem_errlog_pipe[1] >= 0 ? umem_errlog_pipe[1] : STDERR_FILENO;

	real = NULL;
	if (cls == UMERR_BADADDR || cls == UMERR_BADCACHE) {
		real = find_owner(buf, &start);
		if (real != NULL && real != cp && cp != NULL)
			cls = UMERR_BADCACHE;
	}
	put(fd, "umem allocator: %s\n", umem_errdesc[cls]);
	if (fmt != NULL) {
		char line[512];
		size_t n = umem_vformat(line, sizeof (line) - 1, fmt, ap);

		if (n > sizeof (line) - 2)
			n = sizeof (line) - 2;
		line[n++] = '\n';
		if (write(fd, line, n) < 0)
			goto out;
	}
	put(fd, "buffer=%p  cache: %s (%p)\n", buf,
	    cp != NULL ? cp->cache_name : "(none)", (void *)cp);
	if (cls == UMERR_BADADDR || cls == UMERR_BADCACHE) {
		if (real != NULL && real != cp)
			put(fd, "buffer was allocated from %s, caller "
			    "attempted to free it to %s\n", real->cache_name,
			    cp != NULL ? cp->cache_name : "(none)");
		if (real != NULL && (real->cache_flags & UMF_DEBUG) &&
		    start == buf)
			print_audit(fd, real, buf);
	} else if (cp != NULL && (cp->cache_flags & UMF_DEBUG) &&
	    cls != UMERR_BADBASE) {
		print_audit(fd, cp, buf);
	}
	if (umem_logs[0].lg_base != NULL && buf != NULL) {
		put(fd, "transaction log for %p:\n", buf);
		(void) log_print(fd, &umem_logs[0], buf, 16);
	}
	put(fd, "umem: heap corruption detected%s\n",
	    umem_abort_on_error ? "" : " (noabort: continuing)");
out:
	if (umem_errlog_pipe[0] >= 0)
		errlog_flush();
	__atomic_store_n(&umem_logging_off, 0, __ATOMIC_RELAXED);
	umem_report_now = 0;
	umem_unlock(&umem_errlog_lock);
	errno = saved;
	if (umem_abort_on_error)
		abort();
}

void
umem_debug_error(umem_errclass_t cls, umem_cache_t *cp, void *buf,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	umem_debug_verror(cls, cp, buf, fmt, ap);
	va_end(ap);
}

/*
 * ------------------------------------------------------------------------
 * Allocation and free
 * ------------------------------------------------------------------------
 */
/* Logging without audit: the stack goes to the log only. */
static __attribute__((noinline)) void
audit_log_only(umem_cache_t *cp, void *buf, int kind, uintptr_t *fp)
{
	uintptr_t pcs[UMEM_MAX_FRAMES];
	int depth = getpcstack_from(fp, pcs, (int)umem_audit_frames);

	log_transaction(cp, buf, kind, NULL, pcs, depth);
}

/* fp: the debug entry point's frame, where the stack walk starts. */
static inline __attribute__((always_inline)) void
audit_record(umem_cache_t *cp, void *buf, int which, int kind,
    uintptr_t *fp)
{
	umem_audit_t *ap = umem_debug_audit(cp, buf, which);
	int depth;

	if (ap != NULL) {
		/* straight into the record: no copy */
		depth = getpcstack_from(fp, ap->au_stack,
		    (int)umem_audit_frames);
		ap->au_time = debug_now();
		ap->au_tid = debug_tid();
		ap->au_depth = (uint16_t)depth;
		if (umem_logs[0].lg_base != NULL)
			log_transaction(cp, buf, kind, ap, ap->au_stack, depth);
	} else {
		audit_log_only(cp, buf, kind, fp);
	}
	if ((cp->cache_flags & UMF_CHECKSIGNAL) && umem_in_sighandler)
		umem_panic("umem: %s of a buffer of cache %s called from a "
		    "signal handler (UMEM_DEBUG=nosignal)",
		    kind == UMEM_LR_ALLOC ? "allocation" : "free",
		    cp->cache_name);
}

/* Most debug modes record nothing: decide that without a call. */
static inline __attribute__((always_inline)) void
audit(umem_cache_t *cp, void *buf, int which, int kind, uintptr_t *fp)
{
	if (cp->cache_audit != 0 || (cp->cache_flags & UMF_CHECKSIGNAL) ||
	    umem_logs[0].lg_base != NULL)
		audit_record(cp, buf, which, kind, fp);
}

/* Failure injection: roughly one allocation in umem_mtbf fails. */
static inline int
mtbf_fail(int flags)
{
	uint32_t m = umem_mtbf;
	uint64_t x;

	if (UMEM_LIKELY(m == 0) || (flags & UMEM_NOFAIL))
		return (0);
	x = umem_debug_rand;
	/* xorshift64 per thread: failures spread evenly, not in bursts */
	if (x == 0)
		x = (uint64_t)umem_gethrtime() | 1;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	umem_debug_rand = x;
	return (x % m == 0);
}

/* Check a buffer coming out of its slab; 0 if it is sound. */
static inline __attribute__((always_inline)) int
alloc_verify(umem_cache_t *cp, void *buf)
{
	umem_buftag_t *btp = umem_debug_tag(cp, buf);
	int st = umem_debug_state(cp, buf);
	size_t off;

	if (st != 0) {
		umem_debug_error(UMERR_BADBUFTAG, cp, buf, "tag %p: bxstat "
		    "0x%lx, expected 0x%lx (free)", (void *)btp,
		    (unsigned long)btp->bt_bxstat,
		    (unsigned long)((uintptr_t)buf ^ UMEM_BUFTAG_FREE));
		return (-1);
	}
	if ((cp->cache_flags & UMF_DEADBEEF) && (off = verify64(buf,
	    pattern_len(cp), UMEM_FREE_PATTERN)) != SIZE_MAX) {
		umem_debug_error(UMERR_MODIFIED, cp, buf, "modification "
		    "occurred at offset 0x%zx (0x%lx replaced by 0x%lx)", off,
		    (unsigned long)UMEM_FREE_PATTERN,
		    (unsigned long)*(uint64_t *)((char *)buf + off));
		return (-1);
	}
	return (0);
}

/*
 * Allocation from a debug cache: a buffer of cache_bufsize bytes, or
 * (sized: umem_alloc, malloc) of size bytes, the size kept in the tag's
 * redzone word and the slack starting right after it.
 */
static inline __attribute__((always_inline)) void *
debug_alloc(umem_cache_t *cp, int flags, size_t size, int sized)
{
	umem_buftag_t *btp;
	size_t usz = sized ? size : cp->cache_bufsize;
	void *buf;
	int direct, trimmed = 0;

	for (;;) {
		if (UMEM_UNLIKELY(mtbf_fail(flags))) {
			UMEM_STAT_ADD(cp->cache_alloc_fail, 1);
			umem_debug_log_fail(cp, usz);
			return (NULL);
		}
		direct = 0;
		if ((buf = umem_mag_get(cp)) == NULL &&
		    (direct = 1, buf = umem_slab_alloc(cp)) == NULL) {
			UMEM_STAT_ADD(cp->cache_alloc_fail, 1);
			if (umem_alloc_failed(&trimmed))
				continue;	/* a heap limit: room made */
			umem_debug_log_fail(cp, usz);
			if (!(flags & UMEM_NOFAIL))
				return (NULL);
			umem_nofail();
			continue;
		}
		VG_QUIET();
		if (alloc_verify(cp, buf) != 0) {
			/* noabort: leave the damaged buffer out of use */
			VG_LOUD();
			continue;
		}
		btp = umem_debug_tag(cp, buf);
		if (cp->cache_flags & UMF_DEADBEEF)
			fill64(buf, pattern_len(cp), UMEM_UNINIT_PATTERN);
		if ((cp->cache_flags & UMF_REDZONE) && slack_end(cp) > usz)
			memset((char *)buf + usz, UMEM_REDZONE_BYTE,
			    slack_end(cp) - usz);
		btp->bt_redzone = sized ? (UMEM_REDZONE_PATTERN &
		    0xffffffffULL) | (UMEM_SIZE_ENCODE(size) << 32) :
		    UMEM_REDZONE_PATTERN;
		btp->bt_bxstat = (uintptr_t)buf ^ UMEM_BUFTAG_ALLOC;
		VG_LOUD();
		audit(cp, buf, 0, UMEM_LR_ALLOC, __builtin_frame_address(0));
		if (cp->cache_constructor != NULL &&
		    cp->cache_constructor(buf, cp->cache_private, flags) != 0) {
			UMEM_STAT_ADD(cp->cache_ctor_fail, 1);
			if (cp->cache_flags & UMF_DEADBEEF)
				fill64(buf, pattern_len(cp), UMEM_FREE_PATTERN);
			btp->bt_redzone = UMEM_REDZONE_PATTERN;
			btp->bt_bxstat = (uintptr_t)buf ^ UMEM_BUFTAG_FREE;
			umem_slab_free(cp, buf);
			UMEM_STAT_ADD(cp->cache_alloc_fail, 1);
			if (!(flags & UMEM_NOFAIL))
				return (NULL);
			umem_nofail();
			continue;
		}
		if (cp->cache_constructor != NULL)
			UMEM_STAT_ADD(cp->cache_ctor, 1);
		if (direct)
			UMEM_STAT_ADD(cp->cache_direct_alloc, 1);
		if (umem_valgrind)
			VALGRIND_MALLOCLIKE_BLOCK(buf, usz, 0, 0);
		return (buf);
	}
}

void *
umem_debug_alloc(umem_cache_t *cp, int flags)
{
	return (debug_alloc(cp, flags, 0, 0));
}

/*
 * Is buf an allocated buffer of cp?  Reports and returns -1 if not.
 * Hashed caches ask their hash (and, for an error, their slabs); small
 * slabs find the slab header from the address.
 */
static __attribute__((noinline)) int
free_search(umem_cache_t *cp, void *buf)
{
	void *start = NULL;
	int where;

	if (cp->cache_flags & UMF_HASH)
		where = umem_slab_lookup(cp, buf) ? 2 :
		    umem_slab_find(cp, buf, &start);
	else
		where = umem_slab_small_find(cp, buf, &start);
	if (where == 2)
		return (0);		/* allocated (hash) */
	if (where == 1 && start == buf)
		return (cp->cache_flags & UMF_HASH ? 1 : 0);
	if (where == 1) {
		umem_debug_error(UMERR_BADBASE, cp, buf, "free address (%p) "
		    "is inside the buffer at %p (offset 0x%zx)", buf, start,
		    (size_t)((char *)buf - (char *)start));
		return (-1);
	}
	if (find_owner(buf, &start) != NULL)
		umem_debug_error(UMERR_BADCACHE, cp, buf, NULL);
	else
		umem_debug_error(UMERR_BADADDR, cp, buf, NULL);
	return (-1);
}

static inline int
free_locate(umem_cache_t *cp, void *buf)
{
	/* malloc's free found it from the page map, exactly */
	if ((cp->cache_flags & (UMF_PAGEMAP | UMF_FIREWALL)) == UMF_PAGEMAP)
		return (0);
	return (free_search(cp, buf));
}

void
umem_debug_free(umem_cache_t *cp, void *buf)
{
	umem_buftag_t *btp;
	uintptr_t want;
	size_t usz, off, end;
	int where;

	if ((where = free_locate(cp, buf)) < 0)
		return;
	btp = umem_debug_tag(cp, buf);
	VG_QUIET();
	want = (uintptr_t)buf ^ UMEM_BUFTAG_ALLOC;
	if (where == 1 || !__atomic_compare_exchange_n(&btp->bt_bxstat, &want,
	    (uintptr_t)buf ^ UMEM_BUFTAG_FREE, 0, __ATOMIC_ACQ_REL,
	    __ATOMIC_RELAXED)) {
		VG_LOUD();
		if (where == 1 || umem_debug_state(cp, buf) == 0) {
			umem_debug_error(UMERR_DUPFREE, cp, buf, NULL);
		} else {
			umem_debug_error(UMERR_BADBUFTAG, cp, buf, "tag %p: "
			    "bxstat 0x%lx, expected 0x%lx (allocated)",
			    (void *)btp, (unsigned long)btp->bt_bxstat,
			    (unsigned long)((uintptr_t)buf ^
			    UMEM_BUFTAG_ALLOC));
		}
		return;
	}
	/* Now FREE: a racing second free reports a duplicate. */
	usz = user_size(cp, btp);
	if ((cp->cache_flags & UMF_REDZONE) &&
	    (uint32_t)btp->bt_redzone != (uint32_t)UMEM_REDZONE_PATTERN) {
		VG_LOUD();
		umem_debug_error(UMERR_REDZONE, cp, buf, "redzone word at "
		    "offset 0x%zx is 0x%lx", (size_t)((char *)btp -
		    (char *)buf), (unsigned long)btp->bt_redzone);
		return;
	}
	end = slack_end(cp);
	if (cp->cache_flags & UMF_REDZONE) {
		for (off = usz; off < end; off++) {
			if (((unsigned char *)buf)[off] != UMEM_REDZONE_BYTE) {
				VG_LOUD();
				umem_debug_error(UMERR_REDZONE, cp, buf,
				    "byte at offset 0x%zx (buffer of %zu "
				    "bytes) is 0x%02x, expected 0x%02x", off,
				    usz, ((unsigned char *)buf)[off],
				    UMEM_REDZONE_BYTE);
				return;
			}
		}
	}
	VG_LOUD();
	if (umem_valgrind)
		VALGRIND_FREELIKE_BLOCK(buf, 0);
	audit(cp, buf, 1, UMEM_LR_FREE, __builtin_frame_address(0));
	if (cp->cache_destructor != NULL) {
		cp->cache_destructor(buf, cp->cache_private);
		UMEM_STAT_ADD(cp->cache_dtor, 1);
	}
	if (cp->cache_flags & UMF_CONTENTS)
		log_contents(cp, buf, usz);
	VG_QUIET();
	if (cp->cache_flags & UMF_DEADBEEF)
		fill64(buf, pattern_len(cp), UMEM_FREE_PATTERN);
	btp->bt_redzone = UMEM_REDZONE_PATTERN;
	VG_LOUD();
	if (umem_mag_put(cp, buf))
		return;
	umem_slab_free(cp, buf);
	UMEM_STAT_ADD(cp->cache_direct_free, 1);
}

/* umem_alloc / malloc of size bytes from debug class cp. */
void *
umem_debug_block_alloc(umem_cache_t *cp, size_t size, int umflags)
{
	void *buf = debug_alloc(cp, umflags, size, 1);

	if (buf == NULL)
		errno = ENOMEM;
	return (buf);
}

/*
 * Large blocks: the tag is the block's last 16 bytes, the requested size
 * (251 * size + 1, which a stray write is unlikely to leave valid) and the
 * state word; between them and the requested bytes, 0xbb slack.
 */
typedef struct umem_large_tag {
	uint64_t	lt_size;
	uintptr_t	lt_bxstat;
} umem_large_tag_t;

void
umem_debug_large_init(void *buf, size_t rsize, size_t size)
{
	umem_large_tag_t *lt = (umem_large_tag_t *)((char *)buf + rsize -
	    UMEM_LARGE_TAG);

	memset((char *)buf + size, UMEM_REDZONE_BYTE,
	    (size_t)((char *)lt - ((char *)buf + size)));
	lt->lt_size = UMEM_SIZE_ENCODE(size);
	lt->lt_bxstat = (uintptr_t)buf ^ UMEM_BUFTAG_ALLOC;
}

size_t
umem_debug_large_size(void *buf, size_t rsize, int check_slack)
{
	umem_large_tag_t *lt = (umem_large_tag_t *)((char *)buf + rsize -
	    UMEM_LARGE_TAG);
	size_t end = rsize - UMEM_LARGE_TAG, size, off;

	size = (size_t)UMEM_SIZE_DECODE(lt->lt_size);
	if (!UMEM_SIZE_VALID(lt->lt_size) || size > end ||
	    size + umem_pagesize <= end ||
	    lt->lt_bxstat != ((uintptr_t)buf ^ UMEM_BUFTAG_ALLOC)) {
		umem_debug_error(UMERR_REDZONE, NULL, buf, "large block of "
		    "%zu pages: its tag at offset 0x%zx is overwritten "
		    "(0x%llx 0x%lx; write past the end?)", rsize /
		    umem_pagesize, end, (unsigned long long)lt->lt_size,
		    (unsigned long)lt->lt_bxstat);
		return (SIZE_MAX);
	}
	for (off = size; check_slack && off < end; off++) {
		if (((unsigned char *)buf)[off] != UMEM_REDZONE_BYTE) {
			umem_debug_error(UMERR_REDZONE, NULL, buf, "byte at "
			    "offset 0x%zx (large block of %zu bytes) is 0x%02x, "
			    "expected 0x%02x", off, size,
			    ((unsigned char *)buf)[off], UMEM_REDZONE_BYTE);
			return (SIZE_MAX);
		}
	}
	return (size);
}

size_t
umem_debug_get_size(umem_cache_t *cp, void *buf)
{
	int where = free_locate(cp, buf);

	if (where < 0)
		return (SIZE_MAX);
	if (where == 1 || umem_debug_state(cp, buf) != 1) {
		umem_debug_error(where == 1 || umem_debug_state(cp, buf) == 0 ?
		    UMERR_DUPFREE : UMERR_BADBUFTAG, cp, buf,
		    "(the buffer is not allocated)");
		return (SIZE_MAX);
	}
	return (user_size(cp, umem_debug_tag(cp, buf)));
}

int
umem_debug_check_size(umem_cache_t *cp, void *buf, size_t size)
{
	umem_buftag_t *btp = umem_debug_tag(cp, buf);
	uint32_t hi = (uint32_t)(btp->bt_redzone >> 32);

	if (umem_debug_state(cp, buf) != 1)
		return (0);	/* umem_debug_free reports it */
	if (!UMEM_SIZE_VALID(hi) || hi == (uint32_t)(UMEM_REDZONE_PATTERN >>
	    32)) {
		umem_debug_error(UMERR_REDZONE, cp, buf, "size tag 0x%x "
		    "corrupted (write past end of buffer?)", hi);
		return (-1);
	}
	if (UMEM_SIZE_DECODE(hi) != size) {
		umem_debug_error(UMERR_BADSIZE, cp, buf, "free size (%zu) != "
		    "alloc size (%lu)", size, (unsigned long)UMEM_SIZE_DECODE(hi));
		return (-1);
	}
	return (0);
}

/*
 * ------------------------------------------------------------------------
 * Firewall slabs: slabsize-aligned, followed by an inaccessible page,
 * from a reservation of their own.  Freed slabs become inaccessible too,
 * so a stale reference faults until the address range is reused.
 * ------------------------------------------------------------------------
 */
#define	UMEM_FW_RESERVE	(64ULL << 30)
static vmem_t *umem_firewall_arena;
static char *umem_fw_base;
static struct sigaction umem_fw_oldsegv;

static void
fw_fault(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	umem_cache_t *cp;

	if (umem_fw_base != NULL && a >= (uintptr_t)umem_fw_base &&
	    a < (uintptr_t)umem_fw_base + UMEM_FW_RESERVE) {
		/*
		 * The slab whose guard page this is ends at the page: found
		 * on the slab lists (unlocked: the process is going down,
		 * and reading another cache's would-be tag could fault).
		 */
		uintptr_t page = P2ALIGN(a, umem_pagesize);

		for (cp = umem_null_cache.cache_next; cp != NULL &&
		    cp != &umem_null_cache; cp = cp->cache_next) {
			umem_slab_t *sp;
			char *buf;

			if (!(cp->cache_flags & UMF_FIREWALL))
				continue;
			for (sp = cp->cache_nullslab.slab_next; sp != NULL &&
			    sp != &cp->cache_nullslab; sp = sp->slab_next) {
				if ((uintptr_t)sp->slab_mem + cp->cache_slabsize
				    != page)
					continue;
				buf = sp->slab_base;
				umem_abort_on_error = 1;
				umem_debug_error(UMERR_REDZONE, cp, buf,
				    "firewall: fault at %p, %zu bytes past the "
				    "end of the %zu-byte buffer (%s)", (void *)a,
				    (size_t)(a - (uintptr_t)buf) -
				    user_size(cp, umem_debug_tag(cp, buf)),
				    user_size(cp, umem_debug_tag(cp, buf)),
				    umem_debug_state(cp, buf) == 1 ?
				    "allocated" : "free");
			}
		}
		umem_report("umem: fault at %p in the firewall area (a freed "
		    "buffer, or a guard page)", (void *)a);
	}
	/* Not ours, or reported: the old disposition handles it. */
	(void) sigaction(SIGSEGV, &umem_fw_oldsegv, NULL);
	if ((umem_fw_oldsegv.sa_flags & SA_SIGINFO) &&
	    umem_fw_oldsegv.sa_sigaction != NULL)
		umem_fw_oldsegv.sa_sigaction(sig, si, uc);
	else if (umem_fw_oldsegv.sa_handler != SIG_DFL &&
	    umem_fw_oldsegv.sa_handler != SIG_IGN)
		umem_fw_oldsegv.sa_handler(sig);
}

static void
umem_firewall_init(void)
{
	struct sigaction sa;

	umem_fw_base = mmap(NULL, UMEM_FW_RESERVE, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (umem_fw_base == MAP_FAILED) {
		umem_fw_base = NULL;
		umem_report("UMEM_DEBUG: no address space for firewall "
		    "slabs; firewall off");
		umem_debug_flags &= ~UMF_FIREWALL;
		return;
	}
	umem_firewall_arena = vmem_create("umem_firewall", umem_fw_base,
	    UMEM_FW_RESERVE, umem_pagesize, NULL, NULL, NULL, 0, VM_NOSLEEP);
	if (umem_firewall_arena == NULL) {
		(void) munmap(umem_fw_base, UMEM_FW_RESERVE);
		umem_fw_base = NULL;
		umem_debug_flags &= ~UMF_FIREWALL;
		return;
	}
	memset(&sa, 0, sizeof (sa));
	sa.sa_sigaction = fw_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	(void) sigemptyset(&sa.sa_mask);
	(void) sigaction(SIGSEGV, &sa, &umem_fw_oldsegv);
}

void *
umem_firewall_slab_alloc(size_t slabsize)
{
	char *p;

	if (umem_firewall_arena == NULL)
		return (NULL);
	p = vmem_xalloc(umem_firewall_arena, slabsize + umem_pagesize,
	    slabsize, 0, 0, NULL, NULL, VM_NOSLEEP);
	if (p == NULL)
		return (NULL);
	if (mprotect(p, slabsize, PROT_READ | PROT_WRITE) != 0) {
		vmem_xfree(umem_firewall_arena, p, slabsize + umem_pagesize);
		return (NULL);
	}
	return (p);
}

void
umem_firewall_slab_free(void *mem, size_t slabsize)
{
	(void) madvise(mem, slabsize, MADV_DONTNEED);
	(void) mprotect(mem, slabsize, PROT_NONE);
	vmem_xfree(umem_firewall_arena, mem, slabsize + umem_pagesize);
}
