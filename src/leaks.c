/*
 * leaks.c - umem_findleaks(): conservative leak detection inside the
 * running process (Bonwick 1994 §6; illumos mdb's ::findleaks, which has
 * no Linux counterpart).
 *
 * Big theory statement
 * --------------------
 * A buffer is leaked when no word reachable from the roots (data and bss,
 * thread stacks, registers) points to it or into it.  Every aligned word
 * is taken for a pointer, so an integer that looks like an address can
 * hide a leak, but a buffer that is still referenced is never reported.
 *
 * 1. Quiesce.  Empty the magazine layers (umem_mag_purge), take every
 *    allocator lock in the fork order (umem_impl.h: cache list, every CPU
 *    slot, depot, slab layer, page map, then vmem's), then stop every other
 *    thread with a real-time signal whose handler waits on a futex.  The
 *    kernel saved the interrupted registers in the signal frame on the
 *    thread's stack, so scanning stacks covers registers.  Fast paths take
 *    no lock, but a stopped thread is not in one (rseq restarts it), so the
 *    magazines can then be read as they are.  The calling thread's callee-
 *    saved registers go into umem_findleaks' own frame
 *    (__builtin_unwind_init).
 * 2. Table.  Every allocated buffer of every cache but internal and NOTOUCH
 *    ones, and every large block, sorted by address.  Debug caches: their
 *    buffer tags say allocated; hashed caches: the hash holds exactly the
 *    allocated bufctls; small slabs: the buffers not on the slab's free
 *    list; in all release caches, less the rounds in magazines.  Large
 *    blocks: the umem_oversize segments that the page map records.
 * 3. Mark.  Roots are the readable, writable, private mappings of
 *    /proc/self/maps, less the allocator's own memory: the heap arena's
 *    reservations (slabs, large blocks, metadata), every slab wherever it
 *    lives, vmem's boundary tags (they hold block addresses) and our own
 *    work memory.  Memory a program takes from the heap arena through an
 *    arena of its own is a root again.  A thread stack (a mapping above a
 *    guard page, or [stack]) is scanned from the lowest known stack
 *    pointer in it up: a stopped thread's handler frame, ours, or the
 *    update thread's body, which holds no program references; the dead
 *    part below would keep stale addresses.  A root word that points into
 *    a table buffer marks it and pushes it on an explicit stack; marked
 *    buffers are scanned in turn.  So only buffers reached from roots are
 *    scanned: free buffers, magazines and bufctls never hide a leak.  A
 *    range of 16 MiB or more (a root or a buffer) is read only where its
 *    pages were ever touched (/proc/self/pagemap): an untouched page reads
 *    as zero, and reading it costs a page fault.
 * 4. Report.  Unmarked buffers are grouped by cache and allocation stack
 *    (UMEM_DEBUG=audit) or by cache, the groups copied out, the threads
 *    released and the locks dropped before anything is printed
 *    (symbolising takes the loader's lock, which a stopped thread may hold).
 *
 * Nothing here allocates: work memory is umem_pages_map()ped, /proc is read
 * with read(2) and getdents64, text goes through umem_format and write(2).
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/futex.h>

#include "umem_alloc.h"
#include "debug.h"
#include "pagemap.h"

/* The scanner reads stacks and redzones that sanitizers would flag. */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define	LK_NOSAN	__attribute__((no_sanitize("address", "thread")))
#endif
#endif
#ifndef LK_NOSAN
#define	LK_NOSAN
#endif

#define	LK_WAIT_NS	1000000000ULL	/* threads get 1 s to stop */
#define	LK_MAXMAP	(64ULL << 30)	/* bigger (sanitizer shadow): skip */
#define	LK_SPARSE_MIN	(16ULL << 20)	/* bigger: untouched pages skipped */
#define	LK_PM_PAGES	512		/* pagemap entries read at a time */
#define	LK_PM_USED	(3ULL << 62)	/* pagemap: present, or swapped */
#define	LK_MAXTHREADS	16384		/* more are not stopped */
#define	LK_MAXFRAMES	64
#define	LK_MAPSBUF	65536
#define	LK_WIPE		8192		/* stack below us cleared, bytes */
#define	LK_NOTE_TIDS	8		/* tids named in a note */

/* A buffer of the table: [lb_addr, lb_end). */
typedef struct lk_buf {
	uintptr_t	lb_addr;
	uintptr_t	lb_end;
	umem_cache_t	*lb_cache;	/* NULL: a large block */
	uint64_t	lb_flags;
} lk_buf_t;

#define	LB_MARKED	1
#define	LB_FREE		2		/* in a magazine */

typedef struct lk_range {
	uintptr_t	r_lo;
	uintptr_t	r_hi;
} lk_range_t;

typedef struct lk_thr {
	pid_t		t_tid;
	uint32_t	t_state;
} lk_thr_t;

enum { LT_NEW, LT_SIGNALED, LT_ARRIVED, LT_BLOCKED, LT_GONE };

/* A group of leaks: same cache, same allocation stack. */
typedef struct lk_group {
	char		g_name[UMEM_NAMELEN + 1];
	size_t		g_bufsize;	/* 0: large blocks */
	uint64_t	g_count;
	uint64_t	g_bytes;
	uintptr_t	g_example;
	uint64_t	g_oldest;	/* au_time; 0: no audit */
	uint32_t	g_tid;
	uint32_t	g_audit;	/* bytes in the group's audit copy */
} lk_group_t;

#define	LK_AUSZ	(sizeof (umem_audit_t) + LK_MAXFRAMES * sizeof (uintptr_t))

typedef struct lk_state {
	/* work memory: one mapping, carved */
	char		*ls_mem;
	size_t		ls_memsize;
	lk_buf_t	*ls_tab;
	size_t		ls_n, ls_cap;
	uintptr_t	ls_tmax;	/* highest end (no buffer's address) */
	uint32_t	*ls_stack;	/* mark stack, then leaks, then groups */
	size_t		ls_sp;
	lk_range_t	*ls_excl;	/* slabs, vmem records, our memory */
	size_t		ls_nexcl, ls_exclcap;
	lk_range_t	*ls_heap;	/* heap arena spans */
	size_t		ls_nheap, ls_heapcap;
	lk_range_t	*ls_user;	/* heap segments of other arenas */
	size_t		ls_nuser, ls_usercap;
	uintptr_t	*ls_lib;	/* span starts of our heap arenas */
	size_t		ls_nlib, ls_libcap;
	uint8_t		*ls_bits;	/* one slab's free chunks */
	size_t		ls_bitcap;
	char		*ls_maps;
	uint64_t	*ls_pm;		/* pagemap entries (lk_scan) */
	int		ls_pmfd;	/* /proc/self/pagemap, or -1 */
	lk_thr_t	*ls_thr;
	size_t		ls_nthr;
	uintptr_t	*ls_sps;	/* stack pointers (a sorted copy) */
	size_t		ls_nsps;
	/* groups: a second mapping */
	char		*ls_gmem;
	size_t		ls_gmemsize;
	lk_group_t	*ls_groups;
	char		*ls_audits;
	size_t		ls_ngroups;
	/*
	 * The previous line of /proc/self/maps.  Addresses kept in ls are
	 * complemented: ls sits in a frame we scan, and a mapping's bounds
	 * may be a heap buffer's address.
	 */
	uintptr_t	ls_prev_end_c;
	int		ls_prev_guard;
	/* what the report says */
	uint64_t	ls_inuse;
	uint64_t	ls_leaks, ls_leakbytes;
	uint64_t	ls_rootbytes;
	uint32_t	ls_nmaps;
	uint32_t	ls_skipped;
	uintptr_t	ls_skipped_at_c;
	uint32_t	ls_influx;	/* CPU slots caught mid-update */
	uint64_t	ls_corrupt;	/* bad tags or free-list links */
	uint64_t	ls_overflow;	/* buffers beyond the table */
	uint32_t	ls_thr_overflow;
	uint32_t	ls_stopped, ls_blocked, ls_lost;
	int		ls_sig;
	int		ls_err;		/* first write error */
} lk_state_t;

/* Counting pass state for the vmem walkers. */
typedef struct lk_walk {
	lk_state_t	*w_ls;
	int		w_what;
	size_t		w_count;
} lk_walk_t;

enum { LW_LARGE, LW_HEAPSPAN, LW_HEAPSEG, LW_LIBSPAN, LW_RECORD };

static umem_lock_t lk_lock = UMEM_LOCK_INITIALIZER;

/*
 * ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------
 */
static void
lk_write(lk_state_t *ls, int fd, const char *s, size_t n)
{
	while (fd >= 0 && n > 0 && ls->ls_err == 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ls->ls_err = w < 0 ? errno : EIO;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

static void lk_printf(lk_state_t *ls, int fd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static __attribute__((noinline)) void
lk_printf(lk_state_t *ls, int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = umem_vformat(line, sizeof (line), fmt, ap);
	va_end(ap);
	if (n >= sizeof (line))
		n = sizeof (line) - 1;
	lk_write(ls, fd, line, n);
}

/*
 * ------------------------------------------------------------------------
 * Sorting (qsort may allocate): heapsort of 4-byte or 8n-byte elements
 * ------------------------------------------------------------------------
 */
typedef int lk_cmp_t(const void *, const void *, void *);

static void
lk_swap(void *a, void *b, size_t size)
{
	if (size == sizeof (uint32_t)) {
		uint32_t *x = a, *y = b, t = *x;

		*x = *y;
		*y = t;
		return;
	}
	for (uint64_t *x = a, *y = b, t; size >= 8; size -= 8, x++, y++) {
		t = *x;
		*x = *y;
		*y = t;
	}
}

static void
lk_sift(char *base, size_t root, size_t n, size_t size, lk_cmp_t *cmp,
    void *ctx)
{
	for (;;) {
		size_t child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && cmp(base + child * size,
		    base + (child + 1) * size, ctx) < 0)
			child++;
		if (cmp(base + root * size, base + child * size, ctx) >= 0)
			return;
		lk_swap(base + root * size, base + child * size, size);
		root = child;
	}
}

static void
lk_sort(void *vbase, size_t n, size_t size, lk_cmp_t *cmp, void *ctx)
{
	char *base = vbase;

	if (n < 2)
		return;
	for (size_t i = n / 2; i-- > 0; )
		lk_sift(base, i, n, size, cmp, ctx);
	for (size_t end = n - 1; end > 0; end--) {
		lk_swap(base, base + end * size, size);
		lk_sift(base, 0, end, size, cmp, ctx);
	}
}

/*
 * By the address a record starts with: lk_buf_t (lb_addr), lk_range_t
 * (r_lo) and bare words all begin with one.
 */
static int
lk_addr_cmp(const void *a, const void *b, void *ctx)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	(void) ctx;
	return (x < y ? -1 : x > y);
}
_Static_assert(offsetof(lk_buf_t, lb_addr) == 0 &&
    offsetof(lk_range_t, r_lo) == 0, "lk_addr_cmp: address first");

static int
lk_thr_cmp(const void *a, const void *b, void *ctx)
{
	pid_t x = ((const lk_thr_t *)a)->t_tid;
	pid_t y = ((const lk_thr_t *)b)->t_tid;

	(void) ctx;
	return (x < y ? -1 : x > y);
}

/* Sort ranges and merge the overlapping and adjacent ones; new count. */
static size_t
lk_ranges_merge(lk_range_t *r, size_t n)
{
	size_t out = 0;

	lk_sort(r, n, sizeof (*r), lk_addr_cmp, NULL);
	for (size_t i = 0; i < n; i++) {
		if (r[i].r_lo >= r[i].r_hi)
			continue;
		if (out > 0 && r[i].r_lo <= r[out - 1].r_hi) {
			if (r[i].r_hi > r[out - 1].r_hi)
				r[out - 1].r_hi = r[i].r_hi;
			continue;
		}
		r[out++] = r[i];
	}
	return (out);
}

/*
 * ------------------------------------------------------------------------
 * Locks: the fork handlers' order (update.c), every CPU slot rather than
 * the used ones, so that a slot first used meanwhile is covered too.
 * ------------------------------------------------------------------------
 */
static void
lk_lock_all(void)
{
	umem_cache_t *cp;

	umem_lock(&umem_init_lock);
	umem_lock(&umem_cache_lock);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		for (uint32_t i = 0; i < cp->cache_ncpu; i++)
			umem_lock(&cp->cache_cpu[i].cc_lock);
		umem_lock(&cp->cache_depot_lock);
		umem_lock(&cp->cache_lock);
	}
	umem_lock(&umem_pagemap_lock);
	vmem_fork_prepare();
}

static void
lk_unlock_all(void)
{
	umem_cache_t *cp;

	vmem_fork_parent();
	umem_unlock(&umem_pagemap_lock);
	for (cp = umem_null_cache.cache_prev; cp != &umem_null_cache;
	    cp = cp->cache_prev) {
		umem_unlock(&cp->cache_lock);
		umem_unlock(&cp->cache_depot_lock);
		for (uint32_t i = cp->cache_ncpu; i-- > 0; )
			umem_unlock(&cp->cache_cpu[i].cc_lock);
	}
	umem_unlock(&umem_cache_lock);
	umem_unlock(&umem_init_lock);
}

static int
lk_cache_included(const umem_cache_t *cp)
{
	return (!(cp->cache_cflags & UMC_INTERNAL) &&
	    !(cp->cache_flags & UMF_NOTOUCH));
}

/*
 * ------------------------------------------------------------------------
 * Stopping the other threads
 * ------------------------------------------------------------------------
 * The handler counts itself in and waits on a futex until the generation
 * it was stopped for is released.  The signal carries its generation
 * (rt_tgsigqueueinfo), so a late delivery of an old one is ignored.
 */
static uint32_t lk_gen_cur;		/* generation being stopped; 0 none */
static uint32_t lk_gen_release;		/* last generation released */
static uint32_t lk_gen_next;
static uint32_t lk_arrived;		/* futex: handlers counted in */
static uint32_t lk_departed;		/* futex: handlers on their way out */
static uint32_t lk_slot_next;
/* Static: a late handler may write after our work memory is gone. */
static UMEM_BSS_LARGE pid_t lk_arrivals[LK_MAXTHREADS];	/* their tids */
static UMEM_BSS_LARGE uintptr_t lk_sps[LK_MAXTHREADS];	/* and their stack pointers */
static pid_t lk_pid;
static int lk_sig;			/* our handler is on lk_sig */
static struct sigaction lk_sig_old;	/* what it replaced */

static long
lk_futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return (syscall(SYS_futex, uaddr, op, val, ts, NULL, 0));
}

static void
lk_handler(int sig, siginfo_t *si, void *uc)
{
	volatile char here;	/* below: dead; above: the signal frame */
	int saved = errno;
	uint32_t gen = __atomic_load_n(&lk_gen_cur, __ATOMIC_ACQUIRE);
	uint32_t slot, r;

	(void) sig;
	if (gen == 0 || si->si_code != SI_QUEUE || si->si_pid != lk_pid ||
	    (uint32_t)si->si_value.sival_int != gen) {
		errno = saved;
		return;		/* stray or stale: not ours to wait for */
	}
	slot = __atomic_fetch_add(&lk_slot_next, 1, __ATOMIC_RELAXED);
	if (slot < LK_MAXTHREADS) {
		__atomic_store_n(&lk_sps[slot], (uintptr_t)&here,
		    __ATOMIC_RELAXED);
		__atomic_store_n(&lk_arrivals[slot], (pid_t)syscall(SYS_gettid),
		    __ATOMIC_RELEASE);
	}
	(void) __atomic_fetch_add(&lk_arrived, 1, __ATOMIC_RELEASE);
	(void) lk_futex(&lk_arrived, FUTEX_WAKE_PRIVATE, 1, NULL);
	/* Released when the release count reaches gen (it may pass it). */
	while ((int32_t)((r = __atomic_load_n(&lk_gen_release,
	    __ATOMIC_ACQUIRE)) - gen) < 0)
		(void) lk_futex(&lk_gen_release, FUTEX_WAIT_PRIVATE, r, NULL);
	/*
	 * The thread's own mask back before we count out: a next call must
	 * not see this thread, on its way out, as one that blocks the signal.
	 */
	(void) pthread_sigmask(SIG_SETMASK, &((ucontext_t *)uc)->uc_sigmask,
	    NULL);
	(void) __atomic_fetch_add(&lk_departed, 1, __ATOMIC_RELEASE);
	(void) lk_futex(&lk_departed, FUTEX_WAKE_PRIVATE, 1, NULL);
	errno = saved;
}

/*
 * Our handler on a real-time signal the program leaves at SIG_DFL,
 * highest first (programs number theirs up from SIGRTMIN).  0 or -1.
 */
static int
lk_signal_setup(void)
{
	struct sigaction sa, old;

	if (lk_sig != 0)
		return (0);	/* left installed by an earlier call */
	memset(&sa, 0, sizeof (sa));
	sa.sa_sigaction = lk_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	(void) sigfillset(&sa.sa_mask);
	for (int sig = SIGRTMAX; sig > SIGRTMIN; sig--) {
		if (sigaction(sig, NULL, &old) != 0 ||
		    (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
			continue;
		if (sigaction(sig, &sa, &lk_sig_old) != 0)
			continue;
		lk_sig = sig;
		return (0);
	}
	errno = EAGAIN;
	return (-1);
}

/*
 * Put the old disposition back, unless a thread that never arrived may
 * still get the signal: SIG_DFL would then kill the process, our handler
 * ignores it.
 */
static void
lk_signal_restore(lk_state_t *ls)
{
	if (lk_sig == 0 || ls->ls_lost != 0)
		return;
	(void) sigaction(lk_sig, &lk_sig_old, NULL);
	lk_sig = 0;
}

/* 1 if the thread blocks sig (its SigBlk mask in /proc). */
static __attribute__((noinline)) int
lk_thread_blocks(pid_t tid, int sig)
{
	char path[64], buf[4096];
	const char *p;
	ssize_t n;
	size_t got = 0;
	uint64_t mask = 0;
	int fd;

	(void) umem_format(path, sizeof (path), "/proc/self/task/%d/status",
	    (int)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return (0);
	while (got < sizeof (buf) - 1 &&
	    ((n = read(fd, buf + got, sizeof (buf) - 1 - got)) > 0 ||
	    (n < 0 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	(void) close(fd);
	buf[got] = '\0';
	if ((p = strstr(buf, "\nSigBlk:")) == NULL)
		return (0);
	for (p += 8; *p == ' ' || *p == '\t'; p++)
		;
	for (; ; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			break;
		mask = mask << 4 | (uint64_t)d;
	}
	return ((mask >> (sig - 1)) & 1);
}

static lk_thr_t *
lk_thr_find(lk_state_t *ls, size_t n, pid_t tid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ls->ls_thr[mid].t_tid == tid)
			return (&ls->ls_thr[mid]);
		if (ls->ls_thr[mid].t_tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (NULL);
}

/* Add the threads not seen yet; returns how many were new. */
static __attribute__((noinline)) size_t
lk_list_threads(lk_state_t *ls, pid_t self)
{
	char buf[4096];
	size_t known = ls->ls_nthr, added = 0;
	long n;
	int fd;

	fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return (0);
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof (buf))) > 0) {
		for (long off = 0; off < n; ) {
			/* struct linux_dirent64: ino, off, reclen, type, name */
			const char *d = buf + off;
			unsigned short reclen;
			const char *name = d + 19;
			pid_t tid = 0;

			memcpy(&reclen, d + 16, sizeof (reclen));
			off += reclen;
			if (*name < '0' || *name > '9')
				continue;
			for (; *name >= '0' && *name <= '9'; name++)
				tid = tid * 10 + (*name - '0');
			if (tid == self || lk_thr_find(ls, known, tid) != NULL)
				continue;
			if (ls->ls_nthr == LK_MAXTHREADS) {
				ls->ls_thr_overflow++;
				continue;
			}
			ls->ls_thr[ls->ls_nthr].t_tid = tid;
			ls->ls_thr[ls->ls_nthr].t_state = LT_NEW;
			ls->ls_nthr++;
			added++;
		}
	}
	(void) close(fd);
	return (added);
}

/* Note arrivals; threads signalled but gone are no longer waited for. */
static void
lk_check_threads(lk_state_t *ls, int gone_too)
{
	uint32_t n = __atomic_load_n(&lk_slot_next, __ATOMIC_ACQUIRE);

	for (uint32_t i = 0; i < n && i < LK_MAXTHREADS; i++) {
		pid_t tid = __atomic_load_n(&lk_arrivals[i], __ATOMIC_ACQUIRE);
		lk_thr_t *tp;

		if (tid != 0 && (tp = lk_thr_find(ls, ls->ls_nthr, tid)) !=
		    NULL)
			tp->t_state = LT_ARRIVED;
	}
	for (size_t i = 0; gone_too && i < ls->ls_nthr; i++) {
		lk_thr_t *tp = &ls->ls_thr[i];

		if (tp->t_state == LT_SIGNALED && syscall(SYS_tgkill, lk_pid,
		    tp->t_tid, 0) != 0 && errno == ESRCH)
			tp->t_state = LT_GONE;
	}
}

static size_t
lk_count_state(lk_state_t *ls, uint32_t state)
{
	size_t n = 0;

	for (size_t i = 0; i < ls->ls_nthr; i++)
		n += (ls->ls_thr[i].t_state == state);
	return (n);
}

static __attribute__((noinline)) void
lk_stop_threads(lk_state_t *ls)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	uint64_t deadline = umem_gethrtime() + LK_WAIT_NS;
	uint32_t gen;

	if ((gen = ++lk_gen_next) == 0)
		gen = ++lk_gen_next;
	lk_pid = getpid();
	for (size_t i = 0; i < LK_MAXTHREADS; i++) {
		__atomic_store_n(&lk_arrivals[i], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&lk_sps[i], 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&lk_arrived, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&lk_departed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&lk_slot_next, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&lk_gen_cur, gen, __ATOMIC_RELEASE);

	/* Again until no new thread shows up (one may be starting one). */
	for (int pass = 0; pass < 64; pass++) {
		size_t signalled = 0, first = ls->ls_nthr, ticks = 0;

		if (lk_list_threads(ls, self) == 0)
			break;
		for (size_t i = first; i < ls->ls_nthr; i++) {
			lk_thr_t *tp = &ls->ls_thr[i];
			siginfo_t si;

			if (lk_thread_blocks(tp->t_tid, ls->ls_sig)) {
				tp->t_state = LT_BLOCKED;
				continue;
			}
			memset(&si, 0, sizeof (si));
			si.si_signo = ls->ls_sig;
			si.si_code = SI_QUEUE;
			si.si_pid = lk_pid;
			si.si_uid = getuid();
			si.si_value.sival_int = (int)gen;
			if (syscall(SYS_rt_tgsigqueueinfo, lk_pid, tp->t_tid,
			    ls->ls_sig, &si) == 0)
				tp->t_state = LT_SIGNALED;
			else
				tp->t_state = LT_GONE;
		}
		lk_sort(ls->ls_thr, ls->ls_nthr, sizeof (lk_thr_t), lk_thr_cmp,
		    NULL);
		for (size_t i = 0; i < ls->ls_nthr; i++)
			signalled += (ls->ls_thr[i].t_state == LT_SIGNALED ||
			    ls->ls_thr[i].t_state == LT_ARRIVED);
		for (;;) {
			uint32_t a = __atomic_load_n(&lk_arrived,
			    __ATOMIC_ACQUIRE);
			uint64_t now = umem_gethrtime();
			struct timespec ts = { 0, 10000000 };

			if (a >= signalled || now >= deadline)
				break;
			if (++ticks % 10 == 0) {
				lk_check_threads(ls, 1);
				if (lk_count_state(ls, LT_SIGNALED) == 0)
					break;
			}
			(void) lk_futex(&lk_arrived, FUTEX_WAIT_PRIVATE, a,
			    &ts);
		}
	}
	lk_check_threads(ls, 1);
	/* Late arrivals write beyond n: copy what the stopped ones wrote. */
	ls->ls_nsps = 0;
	for (uint32_t i = 0, n = __atomic_load_n(&lk_slot_next,
	    __ATOMIC_ACQUIRE); i < n && i < LK_MAXTHREADS; i++)
		if ((ls->ls_sps[ls->ls_nsps] = __atomic_load_n(&lk_sps[i],
		    __ATOMIC_RELAXED)) != 0)
			ls->ls_nsps++;
	ls->ls_stopped = (uint32_t)lk_count_state(ls, LT_ARRIVED);
	ls->ls_blocked = (uint32_t)lk_count_state(ls, LT_BLOCKED);
	ls->ls_lost = (uint32_t)lk_count_state(ls, LT_SIGNALED);
}

/*
 * Let them go, and wait (briefly) until they are out of the handler: a
 * thread still in it would look like one that blocks the signal to the
 * next call.
 */
static void
lk_release_threads(void)
{
	uint32_t gen = __atomic_load_n(&lk_gen_cur, __ATOMIC_RELAXED);
	uint64_t deadline = umem_gethrtime() + LK_WAIT_NS;
	uint32_t a, d;

	__atomic_store_n(&lk_gen_release, gen, __ATOMIC_RELEASE);
	(void) lk_futex(&lk_gen_release, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
	__atomic_store_n(&lk_gen_cur, 0, __ATOMIC_RELEASE);
	while ((d = __atomic_load_n(&lk_departed, __ATOMIC_ACQUIRE)) <
	    (a = __atomic_load_n(&lk_arrived, __ATOMIC_ACQUIRE)) &&
	    umem_gethrtime() < deadline) {
		struct timespec ts = { 0, 10000000 };

		(void) lk_futex(&lk_departed, FUTEX_WAIT_PRIVATE, d, &ts);
	}
}

/*
 * ------------------------------------------------------------------------
 * Sizing (locks held, threads running) and the buffer table (stopped)
 * ------------------------------------------------------------------------
 */
static void
lk_walk_cb(void *arg, void *start, size_t size)
{
	lk_walk_t *wp = arg;
	lk_state_t *ls = wp->w_ls;
	uintptr_t s = (uintptr_t)start;

	wp->w_count++;
	if (ls->ls_mem == NULL)
		return;		/* counting */
	switch (wp->w_what) {
	case LW_LARGE: {
		uintptr_t pm = umem_pagemap_get(start);
		size_t bsize = umem_block_large(start, pm);

		if (bsize == 0)
			return;	/* kept for reuse, or in transit */
		if (bsize > size)
			bsize = size;
		if (ls->ls_n == ls->ls_cap) {
			ls->ls_overflow++;
			return;
		}
		ls->ls_tab[ls->ls_n].lb_addr = s;
		ls->ls_tab[ls->ls_n].lb_end = s + bsize;
		ls->ls_tab[ls->ls_n].lb_cache = NULL;
		ls->ls_tab[ls->ls_n].lb_flags = 0;
		ls->ls_n++;
		return;
	}
	case LW_HEAPSPAN:
		if (ls->ls_nheap < ls->ls_heapcap) {
			ls->ls_heap[ls->ls_nheap].r_lo = s;
			ls->ls_heap[ls->ls_nheap++].r_hi = s + size;
		}
		return;
	case LW_HEAPSEG:
		if (ls->ls_nuser < ls->ls_usercap) {
			ls->ls_user[ls->ls_nuser].r_lo = s;
			ls->ls_user[ls->ls_nuser++].r_hi = s + size;
		}
		return;
	case LW_LIBSPAN:
		if (ls->ls_nlib < ls->ls_libcap)
			ls->ls_lib[ls->ls_nlib++] = s;
		return;
	case LW_RECORD:
		if (ls->ls_nexcl < ls->ls_exclcap) {
			ls->ls_excl[ls->ls_nexcl].r_lo = s;
			ls->ls_excl[ls->ls_nexcl++].r_hi = s + size;
		}
		return;
	}
}

/* The arenas whose heap segments are ours (the others' are roots). */
#define	LK_LIB_ARENAS	4
static vmem_t **
lk_lib_arenas(vmem_t **v)
{
	v[0] = umem_internal_arena;
	v[1] = umem_default_arena;
	v[2] = umem_oversize_arena;
	v[3] = vmem_heap_huge_made();	/* umem_default's big-heap source */
	return (v);
}

static size_t
lk_vmem_walk(lk_state_t *ls, vmem_t *heap, int what)
{
	lk_walk_t w = { ls, what, 0 };
	vmem_t *lib[LK_LIB_ARENAS];

	switch (what) {
	case LW_LARGE:
		if (umem_oversize_arena != NULL)
			vmem_walk_locked(umem_oversize_arena, VMEM_ALLOC,
			    lk_walk_cb, &w);
		break;
	case LW_HEAPSPAN:
		vmem_walk_locked(heap, VMEM_SPAN, lk_walk_cb, &w);
		break;
	case LW_HEAPSEG:
		/* (Tagged: the dense pair's slabs, umem_default's.) */
		vmem_walk_locked(heap, VMEM_ALLOC | VMEM_WALK_UNTAGGED,
		    lk_walk_cb, &w);
		break;
	case LW_LIBSPAN:
		(void) lk_lib_arenas(lib);
		for (int i = 0; i < LK_LIB_ARENAS; i++)
			if (lib[i] != NULL)
				vmem_walk_locked(lib[i], VMEM_SPAN,
				    lk_walk_cb, &w);
		break;
	case LW_RECORD:
		vmem_walk_records(lk_walk_cb, &w);
		break;
	}
	return (w.w_count);
}

static size_t
lk_carve(size_t *offp, size_t n, size_t size)
{
	size_t off = P2ROUNDUP(*offp, (size_t)64);

	*offp = off + n * size;
	return (off);
}

/* Size the work memory (locks held: the counts cannot grow) and map it. */
static __attribute__((noinline)) int
lk_setup(lk_state_t *ls, vmem_t *heap)
{
	umem_cache_t *cp;
	size_t nbuf = 0, nslab = 0, maxchunks = 0, nlarge, nrec;
	size_t o_tab, o_stack, o_excl, o_heap, o_user, o_lib, o_bits, o_maps;
	size_t o_pm, o_thr, o_sps, off = 0;

	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		umem_slab_t *sp;

		if (!lk_cache_included(cp))
			continue;
		nbuf += cp->cache_buftotal;
		for (sp = cp->cache_nullslab.slab_next;
		    sp != &cp->cache_nullslab; sp = sp->slab_next) {
			nslab++;
			if (sp->slab_chunks > maxchunks)
				maxchunks = sp->slab_chunks;
		}
		nslab += cp->cache_spare_count;
	}
	nlarge = lk_vmem_walk(ls, heap, LW_LARGE);
	nrec = lk_vmem_walk(ls, heap, LW_RECORD);
	ls->ls_cap = nbuf + nlarge;
	ls->ls_heapcap = lk_vmem_walk(ls, heap, LW_HEAPSPAN);
	ls->ls_usercap = lk_vmem_walk(ls, heap, LW_HEAPSEG);
	ls->ls_libcap = lk_vmem_walk(ls, heap, LW_LIBSPAN);
	ls->ls_exclcap = nslab + nrec + 4;
	ls->ls_bitcap = maxchunks;
	if (ls->ls_cap >= UINT32_MAX) {
		errno = ENOMEM;
		return (-1);
	}

	o_tab = lk_carve(&off, ls->ls_cap, sizeof (lk_buf_t));
	o_stack = lk_carve(&off, ls->ls_cap, sizeof (uint32_t));
	o_excl = lk_carve(&off, ls->ls_exclcap, sizeof (lk_range_t));
	o_heap = lk_carve(&off, ls->ls_heapcap, sizeof (lk_range_t));
	o_user = lk_carve(&off, ls->ls_usercap, sizeof (lk_range_t));
	o_lib = lk_carve(&off, ls->ls_libcap, sizeof (uintptr_t));
	o_bits = lk_carve(&off, ls->ls_bitcap / 8 + 1, 1);
	o_maps = lk_carve(&off, LK_MAPSBUF, 1);
	o_pm = lk_carve(&off, LK_PM_PAGES, sizeof (uint64_t));
	o_thr = lk_carve(&off, LK_MAXTHREADS, sizeof (lk_thr_t));
	o_sps = lk_carve(&off, LK_MAXTHREADS + 2, sizeof (uintptr_t));
	ls->ls_memsize = P2ROUNDUP(off, umem_pagesize);
	if ((ls->ls_mem = umem_pages_map(ls->ls_memsize)) == NULL) {
		errno = ENOMEM;
		return (-1);
	}
	ls->ls_tab = (lk_buf_t *)(ls->ls_mem + o_tab);
	ls->ls_stack = (uint32_t *)(ls->ls_mem + o_stack);
	ls->ls_excl = (lk_range_t *)(ls->ls_mem + o_excl);
	ls->ls_heap = (lk_range_t *)(ls->ls_mem + o_heap);
	ls->ls_user = (lk_range_t *)(ls->ls_mem + o_user);
	ls->ls_lib = (uintptr_t *)(ls->ls_mem + o_lib);
	ls->ls_bits = (uint8_t *)(ls->ls_mem + o_bits);
	ls->ls_maps = ls->ls_mem + o_maps;
	ls->ls_pm = (uint64_t *)(ls->ls_mem + o_pm);
	ls->ls_thr = (lk_thr_t *)(ls->ls_mem + o_thr);
	ls->ls_sps = (uintptr_t *)(ls->ls_mem + o_sps);
	return (0);
}

static void
lk_add(lk_state_t *ls, umem_cache_t *cp, uintptr_t buf)
{
	lk_buf_t *b;

	if (ls->ls_n == ls->ls_cap) {
		ls->ls_overflow++;
		return;
	}
	b = &ls->ls_tab[ls->ls_n++];
	b->lb_addr = buf;
	b->lb_end = buf + cp->cache_bufsize;
	b->lb_cache = cp;
	b->lb_flags = 0;
}

static void
lk_exclude(lk_state_t *ls, uintptr_t lo, size_t size)
{
	if (ls->ls_nexcl < ls->ls_exclcap) {
		ls->ls_excl[ls->ls_nexcl].r_lo = lo;
		ls->ls_excl[ls->ls_nexcl++].r_hi = lo + size;
	}
}

/* The allocated buffers of one slab. */
static void
lk_slab(lk_state_t *ls, umem_cache_t *cp, umem_slab_t *sp)
{
	uintptr_t base = (uintptr_t)sp->slab_base;
	size_t chunk = cp->cache_chunksize;
	uint32_t n = sp->slab_chunks;

	if (cp->cache_flags & UMF_DEBUG) {
		if (cp->cache_flags & UMF_FIREWALL)
			n = 1;	/* one buffer, ending at the guard page */
		for (uint32_t i = 0; i < n; i++) {
			int st = umem_debug_state(cp, (void *)(base + i * chunk));

			if (st == 1)
				lk_add(ls, cp, base + i * chunk);
			else if (st < 0)
				ls->ls_corrupt++;
		}
		return;
	}
	/* Small slab: the chunks not on the free list are allocated. */
	if (n > ls->ls_bitcap)
		n = (uint32_t)ls->ls_bitcap;
	memset(ls->ls_bits, 0, n / 8 + 1);
	for (umem_bufctl_t *bcp = sp->slab_head, *prev = NULL; bcp != NULL;
	    prev = bcp, bcp = bcp->bc_next) {
		uintptr_t buf = (uintptr_t)bcp - cp->cache_bufctl;
		size_t idx = (buf - base) / chunk;

		if (buf < base || (buf - base) % chunk != 0 || idx >= n ||
		    (ls->ls_bits[idx / 8] & (1 << idx % 8)) || bcp == prev) {
			ls->ls_corrupt++;	/* bad link: stop here */
			break;
		}
		ls->ls_bits[idx / 8] |= (uint8_t)(1 << idx % 8);
	}
	for (uint32_t i = 0; i < n; i++)
		if (!(ls->ls_bits[i / 8] & (1 << i % 8)))
			lk_add(ls, cp, base + i * chunk);
}

static void
lk_cache(lk_state_t *ls, umem_cache_t *cp)
{
	umem_slab_t *sp;

	for (sp = cp->cache_nullslab.slab_next; sp != &cp->cache_nullslab;
	    sp = sp->slab_next) {
		lk_exclude(ls, (uintptr_t)sp->slab_mem, cp->cache_slabsize);
		if ((cp->cache_flags & (UMF_HASH | UMF_DEBUG)) != UMF_HASH)
			lk_slab(ls, cp, sp);
	}
	for (sp = cp->cache_spare; sp != NULL; sp = sp->slab_next)
		lk_exclude(ls, (uintptr_t)sp->slab_mem, cp->cache_slabsize);
	if ((cp->cache_flags & (UMF_HASH | UMF_DEBUG)) == UMF_HASH) {
		/* The hash holds exactly the allocated buffers. */
		uint64_t left = cp->cache_buftotal;

		for (size_t i = 0; i <= cp->cache_hash_mask; i++)
			for (umem_bufctl_t *bcp = cp->cache_hash_table[i];
			    bcp != NULL && left > 0; bcp = bcp->bc_next, left--)
				lk_add(ls, cp, (uintptr_t)bcp->bc_addr);
	}
}

static size_t
lk_lookup(const lk_state_t *ls, uintptr_t w)
{
	size_t lo = 0, hi = ls->ls_n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ls->ls_tab[mid].lb_addr <= w)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || w >= ls->ls_tab[lo - 1].lb_end)
		return (SIZE_MAX);
	return (lo - 1);
}

/* A magazine round is free. */
static void
lk_round(lk_state_t *ls, umem_cache_t *cp, void *buf)
{
	size_t i = lk_lookup(ls, (uintptr_t)buf);

	if (i != SIZE_MAX && ls->ls_tab[i].lb_addr == (uintptr_t)buf &&
	    ls->ls_tab[i].lb_cache == cp)
		ls->ls_tab[i].lb_flags |= LB_FREE;
}

static void
lk_rounds(lk_state_t *ls, umem_cache_t *cp, umem_magazine_t *mp,
    uint64_t n, uint32_t magsize)
{
	if (n > magsize)
		n = magsize;
	for (uint64_t i = 0; i < n; i++)
		lk_round(ls, cp, mp->mag_round[i]);
}

/* Buffers in the magazine layer are free: CPU slots and full magazines. */
static void
lk_magazines(lk_state_t *ls, umem_cache_t *cp)
{
	umem_magtype_t *mtp = cp->cache_magtype;
	umem_magazine_t *mp;
	uint64_t left;

	if (mtp == NULL)
		return;
	for (uint32_t i = 0; i < cp->cache_ncpu; i++) {
		umem_cpu_cache_t *cc = &cp->cache_cpu[i];
		uint64_t w = __atomic_load_n(&cc->cc_word, __ATOMIC_ACQUIRE);

		if (cc->cc_loaded != NULL) {
			if (UMEM_CC_ROUNDS(w) == UMEM_CC_NONE)
				ls->ls_influx++;	/* owned mid-update */
			else
				lk_rounds(ls, cp, cc->cc_loaded,
				    UMEM_CC_ROUNDS(w), cc->cc_magsize);
		}
		if (cc->cc_ploaded != NULL && cc->cc_prounds > 0)
			lk_rounds(ls, cp, cc->cc_ploaded,
			    (uint64_t)cc->cc_prounds, cc->cc_magsize);
	}
	left = cp->cache_full.ml_total;
	for (mp = cp->cache_full.ml_list; mp != NULL && left > 0;
	    mp = mp->mag_next, left--)
		lk_rounds(ls, cp, mp, mtp->mt_magsize, mtp->mt_magsize);
}

static int
lk_lib_has(const lk_state_t *ls, uintptr_t s)
{
	size_t lo = 0, hi = ls->ls_nlib;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ls->ls_lib[mid] == s)
			return (1);
		if (ls->ls_lib[mid] < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (0);
}

/*
 * Everything is stopped: fill the table and the range lists.  Not inlined:
 * buffer addresses must not stay in registers of our callers (scanned).
 */
static __attribute__((noinline)) void
lk_build(lk_state_t *ls, vmem_t *heap)
{
	umem_cache_t *cp;
	size_t out;

	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next)
		if (lk_cache_included(cp))
			lk_cache(ls, cp);
	(void) lk_vmem_walk(ls, heap, LW_LARGE);
	lk_sort(ls->ls_tab, ls->ls_n, sizeof (lk_buf_t), lk_addr_cmp, NULL);

	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next)
		if (lk_cache_included(cp) && !(cp->cache_flags & UMF_DEBUG))
			lk_magazines(ls, cp);
	for (size_t i = out = 0; i < ls->ls_n; i++)
		if (!(ls->ls_tab[i].lb_flags & LB_FREE))
			ls->ls_tab[out++] = ls->ls_tab[i];
	ls->ls_n = out;
	ls->ls_inuse = out;
	for (size_t i = 0; i < out; i++)
		if (ls->ls_tab[i].lb_end > ls->ls_tmax)
			ls->ls_tmax = ls->ls_tab[i].lb_end;

	/* Roots leave out vmem's records, every slab and this memory. */
	(void) lk_vmem_walk(ls, heap, LW_RECORD);
	lk_exclude(ls, (uintptr_t)ls->ls_mem, ls->ls_memsize);
	{
		uintptr_t lo[3];
		size_t sz[3];
		int nlog = umem_debug_log_ranges(lo, sz, 3);

		for (int i = 0; i < nlog; i++)
			lk_exclude(ls, lo[i], sz[i]);
	}
	ls->ls_nexcl = lk_ranges_merge(ls->ls_excl, ls->ls_nexcl);

	/* The heap's reservations, but its segments other arenas took. */
	(void) lk_vmem_walk(ls, heap, LW_HEAPSPAN);
	ls->ls_nheap = lk_ranges_merge(ls->ls_heap, ls->ls_nheap);
	(void) lk_vmem_walk(ls, heap, LW_LIBSPAN);
	lk_sort(ls->ls_lib, ls->ls_nlib, sizeof (uintptr_t), lk_addr_cmp,
	    NULL);
	(void) lk_vmem_walk(ls, heap, LW_HEAPSEG);
	for (size_t i = out = 0; i < ls->ls_nuser; i++)
		if (!lk_lib_has(ls, ls->ls_user[i].r_lo))
			ls->ls_user[out++] = ls->ls_user[i];
	ls->ls_nuser = out;
}

/*
 * ------------------------------------------------------------------------
 * Marking
 * ------------------------------------------------------------------------
 */
/*
 * Scan [lo, hi).  link: the free-list link word of a small-slab buffer, or
 * 0.  An allocated buffer keeps its stale link until the program writes
 * there, and that link points at the link word of the buffer that was next
 * on the free list, so leaks allocated in a row would hold each other: a
 * link word that points exactly at the link word of a buffer of the same
 * cache is not taken for a reference.
 */
LK_NOSAN static void
lk_scan_words(lk_state_t *ls, uintptr_t lo, uintptr_t hi,
    const lk_buf_t *link)
{
	const uintptr_t *p = (const uintptr_t *)P2ROUNDUP(lo,
	    sizeof (uintptr_t));
	const uintptr_t *end = (const uintptr_t *)P2ALIGN(hi,
	    sizeof (uintptr_t));
	/* (Not kept in ls: that sits in a scanned frame.) */
	uintptr_t tmin = ls->ls_n > 0 ? ls->ls_tab[0].lb_addr : UINTPTR_MAX;
	uintptr_t tmax = ls->ls_tmax;

	for (; p < end; p++) {
		uintptr_t w = *p;
		size_t i;

		if (w < tmin || w >= tmax)
			continue;
		if ((i = lk_lookup(ls, w)) == SIZE_MAX ||
		    (ls->ls_tab[i].lb_flags & LB_MARKED))
			continue;
		if (link != NULL && (uintptr_t)p == link->lb_addr +
		    link->lb_cache->cache_bufctl &&
		    ls->ls_tab[i].lb_cache == link->lb_cache &&
		    w == ls->ls_tab[i].lb_addr + link->lb_cache->cache_bufctl)
			continue;
		ls->ls_tab[i].lb_flags |= LB_MARKED;
		ls->ls_stack[ls->ls_sp++] = (uint32_t)i;
	}
}

/*
 * lk_scan_words, but a big range (a sanitizer's shadow, a large block used
 * in part) only where its pages were ever touched: a page neither present
 * nor swapped reads as zero, and reading it costs a page fault (the zero
 * page mapped in).  29 GB of a TSan runtime mapping took 50 s to read on
 * a PVM guest; /proc/self/pagemap tells, 8 bytes a page.  Without it (no
 * /proc), everything is read.
 */
static void
lk_scan(lk_state_t *ls, uintptr_t lo, uintptr_t hi, const lk_buf_t *link)
{
	size_t pg = umem_pagesize, n, i;
	uintptr_t a, run = UINTPTR_MAX;

	if (hi - lo < LK_SPARSE_MIN || ls->ls_pmfd < 0) {
		lk_scan_words(ls, lo, hi, link);
		return;
	}
	for (a = P2ALIGN(lo, pg); a < hi; ) {
		n = (P2ROUNDUP(hi, pg) - a) / pg;
		if (n > LK_PM_PAGES)
			n = LK_PM_PAGES;
		if (pread(ls->ls_pmfd, ls->ls_pm, n * sizeof (uint64_t),
		    (off_t)(a / pg * sizeof (uint64_t))) !=
		    (ssize_t)(n * sizeof (uint64_t))) {
			lk_scan_words(ls, run != UINTPTR_MAX ? run :
			    (a > lo ? a : lo), hi, link);
			return;
		}
		for (i = 0; i < n; i++, a += pg) {
			if ((ls->ls_pm[i] & LK_PM_USED) == 0) {
				if (run != UINTPTR_MAX)
					lk_scan_words(ls, run, a, link);
				run = UINTPTR_MAX;
			} else if (run == UINTPTR_MAX) {
				run = a > lo ? a : lo;
			}
		}
	}
	if (run != UINTPTR_MAX)
		lk_scan_words(ls, run, hi, link);
}

/* Scan what the marked buffers on the stack reach (no recursion). */
static void
lk_drain(lk_state_t *ls)
{
	while (ls->ls_sp > 0) {
		lk_buf_t *b = &ls->ls_tab[ls->ls_stack[--ls->ls_sp]];
		umem_cache_t *cp = b->lb_cache;

		lk_scan(ls, b->lb_addr, b->lb_end, cp != NULL &&
		    !(cp->cache_flags & (UMF_HASH | UMF_DEBUG)) ? b : NULL);
	}
}

/* First range of the sorted list r[0..n) that ends after lo. */
static size_t
lk_first_after(const lk_range_t *r, size_t n, uintptr_t lo)
{
	size_t a = 0, b = n;

	while (a < b) {
		size_t mid = (a + b) / 2;

		if (r[mid].r_hi <= lo)
			a = mid + 1;
		else
			b = mid;
	}
	return (a);
}

/* Scan [lo, hi) less the exclusions. */
static void
lk_scan_excl(lk_state_t *ls, uintptr_t lo, uintptr_t hi)
{
	const lk_range_t *r = ls->ls_excl;
	size_t i = lk_first_after(r, ls->ls_nexcl, lo);

	for (; lo < hi; i++) {
		if (i == ls->ls_nexcl || r[i].r_lo >= hi) {
			lk_scan(ls, lo, hi, NULL);
			ls->ls_rootbytes += hi - lo;
			break;
		}
		if (r[i].r_lo > lo) {
			lk_scan(ls, lo, r[i].r_lo, NULL);
			ls->ls_rootbytes += r[i].r_lo - lo;
		}
		if (r[i].r_hi > lo)
			lo = r[i].r_hi;
	}
	lk_drain(ls);
}

/* A mapping: [lo, hi) less the heap's reservations and the exclusions. */
static void
lk_scan_root(lk_state_t *ls, uintptr_t lo, uintptr_t hi)
{
	const lk_range_t *r = ls->ls_heap;
	size_t i = lk_first_after(r, ls->ls_nheap, lo);

	for (; lo < hi; i++) {
		if (i == ls->ls_nheap || r[i].r_lo >= hi) {
			lk_scan_excl(ls, lo, hi);
			break;
		}
		if (r[i].r_lo > lo)
			lk_scan_excl(ls, lo, r[i].r_lo);
		if (r[i].r_hi > lo)
			lo = r[i].r_hi;
	}
}

static const char *
lk_hex(const char *p, uintptr_t *vp)
{
	uintptr_t v = 0;

	for (;; p++) {
		if (*p >= '0' && *p <= '9')
			v = v << 4 | (uintptr_t)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			v = v << 4 | (uintptr_t)(*p - 'a' + 10);
		else
			break;
	}
	*vp = v;
	return (p);
}

static const char *
lk_skip_field(const char *p)
{
	while (*p == ' ')
		p++;
	while (*p != ' ' && *p != '\0')
		p++;
	return (p);
}

/* Bytes of [lo, hi) outside the heap arena's reservations. */
static uint64_t
lk_nonheap(const lk_state_t *ls, uintptr_t lo, uintptr_t hi)
{
	const lk_range_t *r = ls->ls_heap;
	uint64_t n = hi - lo;

	for (size_t i = lk_first_after(r, ls->ls_nheap, lo);
	    i < ls->ls_nheap && r[i].r_lo < hi; i++)
		n -= (r[i].r_hi < hi ? r[i].r_hi : hi) -
		    (r[i].r_lo > lo ? r[i].r_lo : lo);
	return (n);
}

/* The lowest stack pointer in [lo, hi), or 0. */
static uintptr_t
lk_sp_in(const lk_state_t *ls, uintptr_t lo, uintptr_t hi)
{
	size_t a = 0, b = ls->ls_nsps;

	while (a < b) {
		size_t mid = (a + b) / 2;

		if (ls->ls_sps[mid] < lo)
			a = mid + 1;
		else
			b = mid;
	}
	return (a < ls->ls_nsps && ls->ls_sps[a] < hi ? ls->ls_sps[a] : 0);
}

/* One line of /proc/self/maps: "lo-hi perms offset dev inode path". */
static void
lk_map_line(lk_state_t *ls, const char *p)
{
	uintptr_t lo, hi, sp;
	const char *perms, *path;
	int after_guard;

	p = lk_hex(p, &lo);
	if (*p++ != '-')
		return;
	p = lk_hex(p, &hi);
	if (*p++ != ' ' || strlen(p) < 4)
		return;
	perms = p;
	after_guard = ls->ls_prev_guard && ~ls->ls_prev_end_c == lo;
	ls->ls_prev_end_c = ~hi;
	ls->ls_prev_guard = strncmp(perms, "---p", 4) == 0;
	if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p')
		return;
	p = lk_skip_field(p);		/* perms */
	p = lk_skip_field(p);		/* offset */
	p = lk_skip_field(p);		/* device */
	p = lk_skip_field(p);		/* inode */
	for (path = p; *path == ' '; path++)
		;
	/* vdso data, vsyscall: not program memory; devices: not memory */
	if (strncmp(path, "[v", 2) == 0 || strcmp(path, "[uprobes]") == 0 ||
	    (strncmp(path, "/dev/", 5) == 0 &&
	    strncmp(path, "/dev/zero", 9) != 0))
		return;
	if (lk_nonheap(ls, lo, hi) > LK_MAXMAP) {
		if (ls->ls_skipped++ == 0)
			ls->ls_skipped_at_c = ~lo;
		return;
	}
	/*
	 * A thread stack (the main one, or a mapping right above its guard
	 * page): below the lowest stack pointer of a stopped thread (its
	 * handler's frame, under the signal frame), ours, or the update
	 * thread's body, is dead.  Elsewhere (a stack in a heap, a stack
	 * without guard, sigaltstack) the whole mapping is scanned.
	 */
	if ((strcmp(path, "[stack]") == 0 || (*path == '\0' && after_guard)) &&
	    (sp = lk_sp_in(ls, lo, hi)) != 0)
		lo = P2ALIGN(sp, sizeof (uintptr_t));
	ls->ls_nmaps++;
	lk_scan_root(ls, lo, hi);
}

static void
lk_scan_maps(lk_state_t *ls)
{
	char *buf = ls->ls_maps;
	size_t have = 0;
	ssize_t r;
	int fd;

	if ((fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)) < 0)
		return;
	for (;;) {
		char *p, *nl;

		r = read(fd, buf + have, LK_MAPSBUF - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		for (p = buf; (nl = memchr(p, '\n', have - (size_t)(p - buf)))
		    != NULL; p = nl + 1) {
			*nl = '\0';
			lk_map_line(ls, p);
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == LK_MAPSBUF - 1)
			have = 0;	/* no line is that long */
	}
	if (have > 0) {
		buf[have] = '\0';
		lk_map_line(ls, buf);
	}
	(void) close(fd);
}

/*
 * Clear the stack below our frame, where lk_build() left buffer addresses
 * in dead locals that the scan of our own stack would otherwise find.
 */
static __attribute__((noinline)) LK_NOSAN void
lk_wipe(void)
{
	char pad[LK_WIPE];

	explicit_bzero(pad, sizeof (pad));
	__asm__ __volatile__("" : : "r" (pad) : "memory");
}

static __attribute__((noinline)) LK_NOSAN void
lk_mark(lk_state_t *ls)
{
	volatile char here;
	uintptr_t frame;

	/* Stack pointers: the stopped threads', ours, the update thread's. */
	ls->ls_sps[ls->ls_nsps++] = (uintptr_t)&here;
	if ((frame = __atomic_load_n(&umem_update_frame,
	    __ATOMIC_RELAXED)) != 0)
		ls->ls_sps[ls->ls_nsps++] = frame;
	lk_sort(ls->ls_sps, ls->ls_nsps, sizeof (uintptr_t), lk_addr_cmp,
	    NULL);
	ls->ls_pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	lk_scan_maps(ls);
	for (size_t i = 0; i < ls->ls_nuser; i++)
		lk_scan_excl(ls, ls->ls_user[i].r_lo, ls->ls_user[i].r_hi);
	if (ls->ls_pmfd >= 0)
		(void) close(ls->ls_pmfd);
	ls->ls_pmfd = -1;
}

/*
 * ------------------------------------------------------------------------
 * Leaks and their groups
 * ------------------------------------------------------------------------
 */
/* The allocation record of a table buffer, or NULL. */
static const umem_audit_t *
lk_audit(const lk_buf_t *b, uint32_t *depthp)
{
	umem_cache_t *cp = b->lb_cache;
	const umem_audit_t *ap;
	size_t max;

	if (cp == NULL || !(cp->cache_flags & UMF_DEBUG) ||
	    cp->cache_audit <= sizeof (umem_audit_t) ||
	    (ap = umem_debug_audit(cp, (void *)b->lb_addr, 0)) == NULL ||
	    ap->au_time == 0)
		return (NULL);
	max = (cp->cache_audit - sizeof (umem_audit_t)) / sizeof (uintptr_t);
	if (max > LK_MAXFRAMES)
		max = LK_MAXFRAMES;
	*depthp = ap->au_depth < max ? ap->au_depth : (uint32_t)max;
	return (ap);
}

/* Group order: cache, then stack (none first). */
static int
lk_key_cmp(const lk_buf_t *x, const lk_buf_t *y)
{
	const umem_audit_t *ax, *ay;
	uint32_t dx = 0, dy = 0;

	if (x->lb_cache != y->lb_cache)
		return ((uintptr_t)x->lb_cache < (uintptr_t)y->lb_cache ?
		    -1 : 1);
	ax = lk_audit(x, &dx);
	ay = lk_audit(y, &dy);
	if (ax == NULL || ay == NULL)
		return (ax == ay ? 0 : ax == NULL ? -1 : 1);
	if (dx != dy)
		return (dx < dy ? -1 : 1);
	for (uint32_t i = 0; i < dx; i++)
		if (ax->au_stack[i] != ay->au_stack[i])
			return (ax->au_stack[i] < ay->au_stack[i] ? -1 : 1);
	return (0);
}

static int
lk_leak_cmp(const void *a, const void *b, void *ctx)
{
	const lk_state_t *ls = ctx;
	const lk_buf_t *x = &ls->ls_tab[*(const uint32_t *)a];
	const lk_buf_t *y = &ls->ls_tab[*(const uint32_t *)b];
	int c = lk_key_cmp(x, y);

	if (c != 0)
		return (c);
	return (x->lb_addr < y->lb_addr ? -1 : x->lb_addr > y->lb_addr);
}

/*
 * Bytes of a leak: the requested size of a sized debug buffer (umem_alloc,
 * malloc), decoded from its tag here because umem_debug_get_size() checks
 * the buffer under the slab lock, which we hold.
 */
static uint64_t
lk_bytes(const lk_buf_t *b)
{
	umem_cache_t *cp = b->lb_cache;
	uint64_t rz, x;

	if (cp == NULL)
		return (b->lb_end - b->lb_addr);
	if (!(cp->cache_flags & UMF_DEBUG))
		return (cp->cache_bufsize);
	rz = umem_debug_tag(cp, (void *)b->lb_addr)->bt_redzone;
	x = rz >> 32;
	if (rz != UMEM_REDZONE_PATTERN && (uint32_t)rz ==
	    (uint32_t)UMEM_REDZONE_PATTERN && UMEM_SIZE_VALID(x) &&
	    UMEM_SIZE_DECODE(x) <= cp->cache_bufsize)
		return (UMEM_SIZE_DECODE(x));
	return (cp->cache_bufsize);
}

static int
lk_group_cmp(const void *a, const void *b, void *ctx)
{
	const lk_state_t *ls = ctx;
	const lk_group_t *x = &ls->ls_groups[*(const uint32_t *)a];
	const lk_group_t *y = &ls->ls_groups[*(const uint32_t *)b];

	/* Most bytes first: reversed. */
	if (x->g_bytes != y->g_bytes)
		return (x->g_bytes < y->g_bytes ? 1 : -1);
	return (x->g_count < y->g_count ? 1 : x->g_count > y->g_count ?
	    -1 : 0);
}

/* Still stopped: copy out what the report needs.  0 or -1 (ENOMEM). */
static int
lk_collect(lk_state_t *ls)
{
	uint32_t *leak = ls->ls_stack;
	size_t n = 0, ng = 0;

	for (size_t i = 0; i < ls->ls_n; i++)
		if (!(ls->ls_tab[i].lb_flags & LB_MARKED))
			leak[n++] = (uint32_t)i;
	ls->ls_leaks = n;
	if (n == 0)
		return (0);
	lk_sort(leak, n, sizeof (uint32_t), lk_leak_cmp, ls);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || lk_key_cmp(&ls->ls_tab[leak[i - 1]],
		    &ls->ls_tab[leak[i]]) != 0)
			ng++;
	ls->ls_gmemsize = P2ROUNDUP(ng * (sizeof (lk_group_t) + LK_AUSZ),
	    umem_pagesize);
	if ((ls->ls_gmem = umem_pages_map(ls->ls_gmemsize)) == NULL) {
		errno = ENOMEM;
		return (-1);
	}
	ls->ls_groups = (lk_group_t *)ls->ls_gmem;
	ls->ls_audits = ls->ls_gmem + ng * sizeof (lk_group_t);
	ls->ls_ngroups = 0;
	for (size_t i = 0; i < n; i++) {
		const lk_buf_t *b = &ls->ls_tab[leak[i]];
		const umem_audit_t *ap;
		lk_group_t *gp;
		uint32_t depth = 0;

		if (i == 0 || lk_key_cmp(&ls->ls_tab[leak[i - 1]], b) != 0) {
			gp = &ls->ls_groups[ls->ls_ngroups++];
			if (b->lb_cache != NULL) {
				memcpy(gp->g_name, b->lb_cache->cache_name,
				    sizeof (gp->g_name));
				gp->g_bufsize = b->lb_cache->cache_bufsize;
			}
			gp->g_example = b->lb_addr;
		}
		gp = &ls->ls_groups[ls->ls_ngroups - 1];
		gp->g_count++;
		gp->g_bytes += lk_bytes(b);
		ls->ls_leakbytes += lk_bytes(b);
		if ((ap = lk_audit(b, &depth)) != NULL &&
		    (gp->g_oldest == 0 || ap->au_time < gp->g_oldest)) {
			umem_audit_t *copy = (umem_audit_t *)(ls->ls_audits +
			    (size_t)(gp - ls->ls_groups) * LK_AUSZ);

			gp->g_oldest = ap->au_time;
			gp->g_tid = ap->au_tid;
			gp->g_example = b->lb_addr;
			gp->g_audit = (uint32_t)(sizeof (umem_audit_t) +
			    depth * sizeof (uintptr_t));
			memcpy(copy, ap, gp->g_audit);
			copy->au_depth = (uint16_t)depth;
		}
	}
	/* The report's order, in the leak array's place. */
	for (size_t g = 0; g < ls->ls_ngroups; g++)
		leak[g] = (uint32_t)g;
	lk_sort(leak, ls->ls_ngroups, sizeof (uint32_t), lk_group_cmp, ls);
	return (0);
}

static __attribute__((noinline)) void
lk_note_tids(lk_state_t *ls, int fd, uint32_t state)
{
	char line[LK_NOTE_TIDS * 12 + 8];
	size_t len = 0, shown = 0;

	for (size_t i = 0; i < ls->ls_nthr && shown < LK_NOTE_TIDS; i++) {
		if (ls->ls_thr[i].t_state != state)
			continue;
		len += umem_format(line + len, sizeof (line) - len, " %d",
		    (int)ls->ls_thr[i].t_tid);
		shown++;
	}
	lk_printf(ls, fd, "%.*s%s\n", (int)len, line,
	    shown == LK_NOTE_TIDS ? " ..." : "");
}

static __attribute__((noinline)) void
lk_report(lk_state_t *ls, int fd)
{
	uint64_t now = umem_gethrtime();

	lk_printf(ls, fd, "umem_findleaks: %llu buffers in use, %llu bytes of "
	    "roots in %u mappings, %u threads stopped\n",
	    (unsigned long long)ls->ls_inuse,
	    (unsigned long long)ls->ls_rootbytes, ls->ls_nmaps,
	    ls->ls_stopped);
	/* The update thread blocks every signal; it holds no references. */
	if (ls->ls_blocked > (__atomic_load_n(&umem_update_frame,
	    __ATOMIC_RELAXED) != 0)) {
		lk_printf(ls, fd, "umem_findleaks: note: %u threads block "
		    "signal %d (one may be libumem's update thread): their "
		    "stacks were scanned, their registers not; tids",
		    ls->ls_blocked, ls->ls_sig);
		lk_note_tids(ls, fd, LT_BLOCKED);
	}
	if (ls->ls_lost != 0) {
		lk_printf(ls, fd, "umem_findleaks: note: %u threads did not "
		    "stop within 1 s: their registers were not scanned and "
		    "they may have changed the heap meanwhile; tids",
		    ls->ls_lost);
		lk_note_tids(ls, fd, LT_SIGNALED);
	}
	if (ls->ls_thr_overflow != 0)
		lk_printf(ls, fd, "umem_findleaks: note: %u threads beyond "
		    "%d not stopped\n", ls->ls_thr_overflow, LK_MAXTHREADS);
	if (ls->ls_skipped != 0)
		lk_printf(ls, fd, "umem_findleaks: note: %u mappings over "
		    "64 GiB not scanned (the first at %p)\n", ls->ls_skipped,
		    (void *)~ls->ls_skipped_at_c);
	if (ls->ls_influx != 0)
		lk_printf(ls, fd, "umem_findleaks: note: %u CPU caches were "
		    "mid-update: their buffers may show as leaks\n",
		    ls->ls_influx);
	if (ls->ls_corrupt != 0)
		lk_printf(ls, fd, "umem_findleaks: note: %llu corrupt buffer "
		    "tags or free-list links (see umem_debug(3))\n",
		    (unsigned long long)ls->ls_corrupt);
	if (ls->ls_overflow != 0)
		lk_printf(ls, fd, "umem_findleaks: note: %llu buffers not "
		    "examined (more than the caches counted)\n",
		    (unsigned long long)ls->ls_overflow);

	for (size_t k = 0; k < ls->ls_ngroups; k++) {
		const lk_group_t *gp = &ls->ls_groups[ls->ls_stack[k]];
		char what[96];

		if (gp->g_bufsize == 0)
			(void) umem_format(what, sizeof (what),
			    "large blocks");
		else
			(void) umem_format(what, sizeof (what),
			    "cache '%s' (bufsize %zu)", gp->g_name,
			    gp->g_bufsize);
		if (gp->g_oldest == 0) {
			lk_printf(ls, fd, "umem_findleaks: %s: %llu leaked, "
			    "%llu bytes, e.g. %p\n", what,
			    (unsigned long long)gp->g_count,
			    (unsigned long long)gp->g_bytes,
			    (void *)gp->g_example);
			continue;
		}
		{
			uint64_t ago = now > gp->g_oldest ?
			    now - gp->g_oldest : 0;
			const umem_audit_t *ap = (const umem_audit_t *)
			    (ls->ls_audits + (size_t)(gp - ls->ls_groups) *
			    LK_AUSZ);

			lk_printf(ls, fd, "umem_findleaks: %s: %llu leaked, "
			    "%llu bytes, e.g. %p, oldest T-%llu.%03llus "
			    "(thread %u), allocated at:\n", what,
			    (unsigned long long)gp->g_count,
			    (unsigned long long)gp->g_bytes,
			    (void *)gp->g_example,
			    (unsigned long long)(ago / 1000000000ULL),
			    (unsigned long long)(ago / 1000000ULL % 1000),
			    gp->g_tid);
			if (fd >= 0 && ls->ls_err == 0)
				umem_debug_print_stack(fd, ap, "\t");
		}
	}
	if (ls->ls_leaks == 0)
		lk_printf(ls, fd, "umem_findleaks: no leaks\n");
	else
		lk_printf(ls, fd, "umem_findleaks: %llu leaked buffers, "
		    "%llu bytes\n", (unsigned long long)ls->ls_leaks,
		    (unsigned long long)ls->ls_leakbytes);
}

/*
 * ------------------------------------------------------------------------
 * umem_findleaks
 * ------------------------------------------------------------------------
 */
static void
lk_purge(void)
{
	umem_cache_t *cp;

	umem_lock(&umem_cache_lock);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next)
		if (lk_cache_included(cp) && cp->cache_magtype != NULL)
			umem_mag_purge(cp);
	umem_unlock(&umem_cache_lock);
}

static __attribute__((noinline)) int
lk_findleaks(int fd)
{
	lk_state_t ls;
	vmem_t *heap;
	int err = 0;

	memset(&ls, 0, sizeof (ls));
	ls.ls_pmfd = -1;
	if (!__atomic_load_n(&umem_ready, __ATOMIC_ACQUIRE)) {
		lk_report(&ls, fd);	/* nothing was ever allocated */
		return (ls.ls_err != 0 ? (errno = ls.ls_err, -1) : 0);
	}
	heap = vmem_heap_arena(NULL, NULL);
	umem_lock(&lk_lock);
	if (lk_signal_setup() != 0) {
		err = errno;
		umem_unlock(&lk_lock);
		errno = err;
		return (-1);
	}
	ls.ls_sig = lk_sig;
	lk_purge();
	lk_lock_all();
	if (lk_setup(&ls, heap) != 0) {
		err = errno;
		lk_unlock_all();
		lk_signal_restore(&ls);
		umem_unlock(&lk_lock);
		errno = err;
		return (-1);
	}
	lk_stop_threads(&ls);
	lk_build(&ls, heap);
	lk_wipe();
	lk_mark(&ls);
	if (lk_collect(&ls) != 0)
		err = errno;
	lk_release_threads();
	lk_unlock_all();
	lk_signal_restore(&ls);

	if (err == 0)
		lk_report(&ls, fd);
	if (ls.ls_gmem != NULL)
		umem_pages_unmap(ls.ls_gmem, ls.ls_gmemsize);
	umem_pages_unmap(ls.ls_mem, ls.ls_memsize);
	umem_unlock(&lk_lock);
	if (err == 0 && ls.ls_err != 0)
		err = ls.ls_err;
	if (err != 0) {
		errno = err;
		return (-1);
	}
	return ((int)(ls.ls_leaks > INT_MAX ? INT_MAX : ls.ls_leaks));
}

/*
 * The caller's callee-saved registers are spilled into this frame, which
 * is scanned.  The stack below is wiped before lk_findleaks' frame takes
 * it: slots that frame never writes (padding, sanitizer redzones) would
 * otherwise keep whatever the caller's callees left there.
 */
UMEM_EXPORT __attribute__((noinline)) int
umem_findleaks(int fd)
{
	int rv;

	__builtin_unwind_init();
	lk_wipe();
	rv = lk_findleaks(fd);
	__asm__ __volatile__("" : : : "memory");	/* not a tail call */
	return (rv);
}

/* UMEM_DEBUG=findleaks: report at exit (and at dlclose, were it allowed). */
static void __attribute__((destructor))
lk_atexit(void)
{
	if (umem_debug_findleaks_atexit &&
	    __atomic_load_n(&umem_ready, __ATOMIC_ACQUIRE))
		(void) umem_findleaks(STDERR_FILENO);
}
