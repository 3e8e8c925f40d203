/*
 * update.c - background work (the update thread), reaping, and fork.
 *
 * Big theory statement
 * --------------------
 * The update thread is started lazily, once there is work for it: when the
 * caches have taken UMEM_UPDATE_LAZY_BYTES from the heap (slabs and large
 * blocks), the program has created a cache, or a depot lock was contended
 * (magazine resizing), by the next slow path (again lazily in a fork child
 * whose parent had it).  A small program never pays for the thread (its
 * stack, TLS, and the libc pages that pthread_create touches); what it
 * leaves cached is bounded by that threshold.  Audit or logging asks
 * for it from the start (it ticks the records' clock word, debug.c).
 * Every update interval (UMEM_OPTIONS=update_interval=MS, default
 * 250 ms) it makes one pass over
 * the caches, in illumos order (each step makes the next cheaper):
 *
 *   1. hash rescale, when a hashed cache's buffer count is more than 2x
 *      off its hash size;
 *   2. depot working-set update, and magazine resize when the depot lock
 *      was contended more than max_contention times in the interval;
 *   3. depot reap of the magazines that stayed unused for a whole
 *      interval (objects destructed into the slab layer, empty slabs to
 *      the source arena, spans to the OS through the heap arena);
 *   4. idle drain: CPU slots whose cc_word did not change for a whole
 *      interval give their loaded and previous magazines back;
 *   5. the cache's spare empty slab, if unused since the last pass, or
 *      at once if the cache took nothing from its slabs since then;
 *
 * then the heap's dirty pages that stayed unused over a whole pass go to
 * the OS (vmem_heap_flush), then vmem_update().  Step 3 also runs clocked
 * by the heap's growth rather than time: every UMEM_GROWTH_SCAN_BYTES the
 * caches import, the next slow path runs the growth scan (growth_scan),
 * which gives back the depot magazines untouched since the previous scan;
 * the pages that frees stay resident (dirty) for the growth.
 * With audit or logging on, the thread also keeps
 * the records' clock word (debug.c): before each wait it refreshes the
 * word if records used it, and waits at most a clock tick while they do.
 * Reaped magazines, their rounds, and the slab and bufctl records of
 * destroyed slabs go straight to their slabs (not
 * through the magazine layer of the internal caches, where they would
 * wait for more passes).  So memory freed by the program is back in the
 * arenas (and the OS) between one and two intervals after it goes idle,
 * with no call to umem_reap(); what stays cached is the working set of
 * busy caches.  The
 * thread blocks all signals; the next pass is timed from the end of the
 * previous one, so a slow pass throttles itself.
 *
 * umem_reap(): reclaim callbacks, then the same depot reap; throttled to
 * once per reap_interval.  vmem calls qc_reap (umem_reap_short) when an
 * arena cannot satisfy a request, with its own lock dropped: then every
 * cache's reclaim callback runs, every depot is emptied (working set or
 * not), spare slabs go back, and quantum caches also give back their CPU
 * magazines - memory is short, and a VM_SLEEP caller may otherwise wait
 * for ever on resources parked in caches (also with no update thread).
 * It only trylocks the cache list, since vmem may be called from within a
 * pass of the update thread.
 *
 * Fork (pthread_atfork, registered when the process gets a second thread:
 * platform.h), one lock order (see umem_impl.h):
 *   prepare: umem_init_lock, umem_update_lock, umem_cache_lock, then for
 *	every cache in list order its *used* CPU slots' cc_lock (slots that
 *	were never used hold nothing), cache_depot_lock, cache_lock; then
 *	vmem's own atfork handlers take the arena and pool locks (they were
 *	registered first, at vmem's initialisation, so glibc runs their
 *	prepare after ours and their parent/child before ours).  Fork cost is
 *	caches x slots in use, not caches x possible CPUs.
 *   parent: release in reverse.
 *   child: reinitialise the locks; a slot that another thread owned in
 *	the middle of a slow path (detached) is reset empty, its magazines
 *	lost (bounded, like illumos's accepted in-flight leaks); the update
 *	thread no longer exists, so it is restarted lazily by the child's
 *	first slow path.  rseq fast paths in other threads at the moment of
 *	fork commit with one store, so the child sees each slot before or
 *	after them, never in between.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "umem_impl.h"
#include "debug.h"
#include "percpu.h"

static umem_lock_t umem_update_lock = UMEM_LOCK_INITIALIZER;
static pthread_cond_t umem_update_cv;
static int umem_update_running;		/* the thread exists (lock; atomic) */
static int umem_update_reap;		/* reap requested */
int umem_update_pending;		/* relaxed atomics */
/* Heap bytes taken by the caches before the update thread is wanted. */
#define	UMEM_UPDATE_LAZY_BYTES	(1ul << 20)
static size_t umem_update_heap_bytes;
/* Heap growth between two growth scans (growth_scan). */
#define	UMEM_GROWTH_SCAN_BYTES	(4ul << 20)
static size_t umem_growth_bytes;
uint64_t umem_update_passes;
uintptr_t umem_update_frame;	/* the update thread's (leaks.c) */
static uint64_t umem_reap_last;

#if defined(__SANITIZE_THREAD__)
#define	UMEM_TSAN	1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define	UMEM_TSAN	1
#endif
#endif

#ifdef UMEM_TSAN
/*
 * TSan cannot start threads in the child of a multithreaded fork (and
 * TSan's own helper thread makes every process multithreaded), so TSan
 * builds run fork children without the update thread.
 */
static int umem_tsan_forked;

static void
tsan_child(void)
{
	umem_tsan_forked = 1;
}

static void __attribute__((constructor))
tsan_atfork(void)
{
	(void) pthread_atfork(NULL, NULL, tsan_child);
}
#endif

static void
cache_update(umem_cache_t *cp)
{
	if (umem_hash_rescale_needed(cp))
		umem_hash_rescale(cp);
	if (cp->cache_magtype != NULL) {
		umem_depot_ws_update(cp);
		if (umem_mag_resize_check(cp))
			umem_mag_resize(cp);
		umem_depot_ws_reap(cp);
		if (umem_drain_idle)
			umem_mag_drain_idle(cp);
	}
	(void) umem_slab_release_spare(cp, 0);	/* 0: update pass */
}

void
umem_update_all(void)
{
	umem_cache_t *cp;

	umem_lock(&umem_cache_lock);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next)
		cache_update(cp);
	umem_unlock(&umem_cache_lock);
	umem_large_cache_reap(0);
	vmem_heap_flush(0);
	UMEM_STAT_ADD(umem_update_passes, 1);
	vmem_update();
}

/* Throttle: 1 if a reap may run now. */
static int
reap_due(void)
{
	uint64_t now = umem_gethrtime();
	uint64_t last = __atomic_load_n(&umem_reap_last, __ATOMIC_RELAXED);

	if (last != 0 && now - last < umem_reap_interval_ns)
		return (0);
	return (__atomic_compare_exchange_n(&umem_reap_last, &last, now, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static void
reap_all(int try)
{
	umem_cache_t *cp;
	int was;

	if (!umem_ready)
		return;
	if (try) {
		/* From a failing allocation: maybe inside a reap already. */
		if (!umem_trylock(&umem_cache_lock))
			return;
	} else {
		umem_lock(&umem_cache_lock);
	}
	was = vmem_heap_defer(1);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		if (cp->cache_reclaim != NULL) {
			cp->cache_reclaim(cp->cache_private);
			UMEM_STAT_ADD(cp->cache_reclaim_count, 1);
		}
		umem_depot_ws_reap(cp);
		(void) umem_slab_release_spare(cp, 1);
		UMEM_STAT_ADD(cp->cache_reap_count, 1);
	}
	(void) vmem_heap_defer(was);
	umem_unlock(&umem_cache_lock);
	vmem_heap_flush(1);
}

void
umem_reap_now(void)
{
	reap_all(0);
}

UMEM_TEXT_COLD void
umem_reap_failing(void)
{
	if (umem_ready && reap_due())
		reap_all(1);
}

UMEM_EXPORT void
umem_reap(void)
{
	if (!umem_ready || !reap_due())
		return;
	umem_reap_now();
}

void
umem_reap_short(void)
{
	umem_cache_t *cp;
	int was;

	if (!umem_ready || !umem_trylock(&umem_cache_lock))
		return;
	was = vmem_heap_defer(1);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		if (cp->cache_reclaim != NULL) {
			cp->cache_reclaim(cp->cache_private);
			UMEM_STAT_ADD(cp->cache_reclaim_count, 1);
		}
		if (cp->cache_cflags & UMC_QCACHE)
			umem_mag_purge(cp);
		else
			umem_depot_purge(cp);
		(void) umem_slab_release_spare(cp, 1);
		UMEM_STAT_ADD(cp->cache_reap_count, 1);
	}
	(void) vmem_heap_defer(was);
	umem_unlock(&umem_cache_lock);
	umem_large_cache_reap(1);
	vmem_heap_flush(1);
}

/*
 * malloc_trim(): give every cached object back to its slabs and every free
 * slab back to its arena, now.  Two passes, because purging a cache frees
 * its magazines into the magazine caches, which the first pass may have
 * purged already.
 */
UMEM_TEXT_COLD static void
trim_all(int try)
{
	umem_cache_t *cp;
	int was;

	if (!umem_ready)
		return;
	if (try) {
		/* From a failing allocation: maybe inside a reap already. */
		if (!umem_trylock(&umem_cache_lock))
			return;
	} else {
		umem_lock(&umem_cache_lock);
	}
	was = vmem_heap_defer(1);
	for (int pass = 0; pass < 2; pass++) {
		for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
		    cp = cp->cache_next) {
			if (cp->cache_reclaim != NULL && pass == 0) {
				cp->cache_reclaim(cp->cache_private);
				UMEM_STAT_ADD(cp->cache_reclaim_count, 1);
			}
			if (cp->cache_magtype != NULL)
				umem_mag_purge(cp);
			(void) umem_slab_release_spare(cp, 1);
		}
	}
	(void) vmem_heap_defer(was);
	umem_unlock(&umem_cache_lock);
	umem_large_cache_reap(1);
	vmem_heap_flush(1);
	vmem_update();
}

UMEM_TEXT_COLD void
umem_trim(void)
{
	trim_all(0);
}

/*
 * An allocation failed.  Under a heap limit (UMEM_OPTIONS=limit), give back
 * everything cached, as malloc_trim() does, and return 1: the caller tries
 * once more.  If that try fails too (*trimmedp set), reap (throttled) and
 * return 0; the flag is cleared, so that a UMEM_NOFAIL retry trims again.
 */
UMEM_TEXT_COLD int
umem_alloc_failed(int *trimmedp)
{
	if (!*trimmedp && vmem_heap_limit() != 0) {
		*trimmedp = 1;
		trim_all(1);
		return (1);
	}
	*trimmedp = 0;
	umem_reap_failing();
	return (0);
}

void
umem_reap_async(void)
{
	if (!umem_ready || !reap_due())
		return;
	umem_lock(&umem_update_lock);
	if (umem_update_running) {
		umem_update_reap = 1;
		(void) pthread_cond_signal(&umem_update_cv);
		umem_unlock(&umem_update_lock);
		return;
	}
	umem_unlock(&umem_update_lock);
	/* No thread: allow the next call through rather than reap in vmem. */
	__atomic_store_n(&umem_reap_last, 0, __ATOMIC_RELAXED);
}

/*
 * Is the update thread the last thread of the process?  When a program's
 * other threads have all ended through pthread_exit (main included, or a
 * fork child's only thread), glibc would have ended the process with
 * exit(0); our thread must not keep it alive (a parent waiting for such a
 * child would hang, and this thread blocks the signals that could end it).
 * /proc/self/stat: field 3 is the leader's state, field 20 the thread
 * count, which still counts a leader that ended with pthread_exit (a
 * zombie until the last thread is gone).
 */
static int
update_alone(void)
{
	char buf[1024], *p, state;
	ssize_t n;
	int fd, field;

	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) < 0)
		return (0);
	n = read(fd, buf, sizeof (buf) - 1);
	(void) close(fd);
	if (n <= 0)
		return (0);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return (0);
	state = p[2];
	/* after "pid (comm)" comes field 3; skip to field 20 */
	for (field = 2; *p != '\0' && field < 20; p++)
		if (*p == ' ')
			field++;
	if (field != 20 || p[1] != ' ')
		return (0);
	return (p[0] == '1' || (p[0] == '2' && state == 'Z'));
}

static void *
update_thread(void *arg)
{
	(void) arg;
	__atomic_store_n(&umem_update_frame,
	    (uintptr_t)__builtin_frame_address(0), __ATOMIC_RELAXED);
	umem_lock(&umem_update_lock);
	for (;;) {
		uint64_t deadline = umem_gethrtime() + umem_update_interval_ns;
		int reap;

		uint64_t now;

		while (!umem_update_reap && (now = umem_gethrtime()) <
		    deadline) {
			uint64_t wait = deadline - now;
			uint64_t tick = umem_debug_clock_tick();

			umem_cond_timedwait_ns(&umem_update_cv,
			    &umem_update_lock, tick != 0 && tick < wait ?
			    tick : wait);
		}
		reap = umem_update_reap;
		umem_update_reap = 0;
		umem_unlock(&umem_update_lock);
		if (reap)
			umem_reap_now();
		else
			umem_update_all();
		if (update_alone())
			exit(0);	/* what the last thread's exit would do */
		umem_lock(&umem_update_lock);
	}
	return (NULL);
}

static void
pending_set(int bit)
{
	(void) __atomic_or_fetch(&umem_update_pending, bit, __ATOMIC_RELAXED);
}

static void
pending_clear(int bit)
{
	(void) __atomic_and_fetch(&umem_update_pending, ~bit,
	    __ATOMIC_RELAXED);
}

/* Start the update thread (UMEM_PENDING_START); idempotent. */
static void
update_start(void)
{
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int err;

#ifdef UMEM_TSAN
	if (umem_tsan_forked) {
		pending_clear(UMEM_PENDING_START);
		return;
	}
#endif
	if (umem_update_interval_ns == 0) {
		pending_clear(UMEM_PENDING_START);
		return;
	}
	if (!umem_ready)
		return;		/* still initialising: stays pending */
	umem_lock(&umem_update_lock);
	if (umem_update_running) {
		pending_clear(UMEM_PENDING_START);
		umem_unlock(&umem_update_lock);
		return;
	}
	__atomic_store_n(&umem_update_running, 1, __ATOMIC_RELAXED);
	vmem_heap_keep_dirty(1);
	pending_clear(UMEM_PENDING_START);
	umem_unlock(&umem_update_lock);

	umem_atfork_arm();	/* before the process has a second thread */
	(void) sigfillset(&all);
	(void) pthread_sigmask(SIG_SETMASK, &all, &old);
	(void) pthread_attr_init(&attr);
	(void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&tid, &attr, update_thread, NULL);
	(void) pthread_attr_destroy(&attr);
	(void) pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		umem_lock(&umem_update_lock);
		__atomic_store_n(&umem_update_running, 0, __ATOMIC_RELAXED);
		vmem_heap_keep_dirty(0);
		umem_unlock(&umem_update_lock);
	}
}

/*
 * Called by the caches' heap imports (any lock may be held: only a flag
 * is set; the next slow path starts the thread).
 */
void
umem_update_heap_grew(size_t bytes)
{
	if (__atomic_add_fetch(&umem_growth_bytes, bytes, __ATOMIC_RELAXED) >=
	    UMEM_GROWTH_SCAN_BYTES) {
		__atomic_store_n(&umem_growth_bytes, 0, __ATOMIC_RELAXED);
		pending_set(UMEM_PENDING_SCAN);
	}
	if (__atomic_load_n(&umem_update_heap_bytes, __ATOMIC_RELAXED) >=
	    UMEM_UPDATE_LAZY_BYTES)
		return;
	if (__atomic_add_fetch(&umem_update_heap_bytes, bytes,
	    __ATOMIC_RELAXED) >= UMEM_UPDATE_LAZY_BYTES)
		pending_set(UMEM_PENDING_START);
}

/*
 * Whether memory freed now may keep its pages (vmem_heap_defer): only
 * while the thread runs, whose passes give back what nothing took.
 */
int
umem_update_flushes(void)
{
	return (__atomic_load_n(&umem_update_running, __ATOMIC_RELAXED));
}

/* Depot contention (magazine resizing), or a cache of the program's own. */
void
umem_update_wanted(void)
{
	if (!__atomic_load_n(&umem_update_running, __ATOMIC_RELAXED))
		pending_set(UMEM_PENDING_START);
}

/*
 * The growth scan, run by the first slow path after the heap grew by
 * UMEM_GROWTH_SCAN_BYTES (umem_update_poll; no lock held there): depot
 * magazines that sat unused across that growth go back to their slabs
 * (umem_depot_purge_idle), whose emptied pages the growing classes then
 * reuse, and the spare slabs a burst left beyond UMEM_SPARE_BYTES go too
 * (umem_slab_trim_spares).  A program that frees a burst of one size and
 * then allocates another would otherwise take fresh pages for all of the
 * second while the first waited in the depot for the timed reap.  Caches with a
 * constructor keep their objects: those cost more to make again.  The
 * pages the scan frees keep their contents (vmem_heap_defer): the growth
 * takes them back at once, and giving them to the OS first cost a
 * madvise now and a page fault each then.  Only with the update thread,
 * whose passes give back what the growth did not take.
 */
static void
growth_scan(void)
{
	umem_cache_t *cp;

	if (!umem_ready || !umem_trylock(&umem_cache_lock))
		return;
	(void) vmem_heap_defer(umem_update_flushes());
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		if (cp->cache_constructor == NULL &&
		    umem_depot_purge_idle(cp))
			UMEM_STAT_ADD(cp->cache_reap_count, 1);
		(void) umem_slab_trim_spares(cp);
	}
	(void) vmem_heap_defer(0);
	umem_unlock(&umem_cache_lock);
}

void
umem_update_run_pending(void)
{
	int p = __atomic_load_n(&umem_update_pending, __ATOMIC_RELAXED);

	if (p & UMEM_PENDING_START)
		update_start();
	if ((p & UMEM_PENDING_SCAN) && (__atomic_fetch_and(
	    &umem_update_pending, ~UMEM_PENDING_SCAN, __ATOMIC_RELAXED) &
	    UMEM_PENDING_SCAN))
		growth_scan();
}

/*
 * ---- fork ----
 */
static int
slot_used(const uint64_t *map, uint32_t i)
{
	return (i >= UMEM_USED_WORDS * 64 ||
	    (map[i / 64] & (1ULL << (i % 64))) != 0);
}

UMEM_TEXT_COLD static void
umem_fork_prepare(void)
{
	umem_cache_t *cp;
	uint32_t i, w;

	umem_lock(&umem_init_lock);
	umem_lock(&umem_update_lock);
	umem_lock(&umem_cache_lock);
	for (cp = umem_null_cache.cache_next; cp != &umem_null_cache;
	    cp = cp->cache_next) {
		for (w = 0; w < UMEM_USED_WORDS; w++)
			cp->cache_fork_map[w] = __atomic_load_n(
			    &cp->cache_used_map[w], __ATOMIC_RELAXED);
		for (i = 0; i < cp->cache_ncpu; i++)
			if (slot_used(cp->cache_fork_map, i))
				umem_lock(&cp->cache_cpu[i].cc_lock);
		umem_lock(&cp->cache_depot_lock);
		umem_lock(&cp->cache_lock);
	}
	/*
	 * The page map's lock is a leaf (its holders take no other lock): a
	 * child forked while a thread was recording a slab or a large block
	 * would otherwise inherit it locked.
	 */
	umem_lock(&umem_pagemap_lock);
	/*
	 * vmem's own handlers (registered at vmem's init, which precedes
	 * ours) run after this prepare and before our parent/child handlers,
	 * so the vmem locks come last in the order, as documented.
	 */
}

UMEM_TEXT_COLD static void
umem_fork_parent(void)
{
	umem_cache_t *cp;
	uint32_t i;

	umem_unlock(&umem_pagemap_lock);
	for (cp = umem_null_cache.cache_prev; cp != &umem_null_cache;
	    cp = cp->cache_prev) {
		umem_unlock(&cp->cache_lock);
		umem_unlock(&cp->cache_depot_lock);
		for (i = cp->cache_ncpu; i-- > 0; )
			if (slot_used(cp->cache_fork_map, i))
				umem_unlock(&cp->cache_cpu[i].cc_lock);
	}
	umem_unlock(&umem_cache_lock);
	umem_unlock(&umem_update_lock);
	umem_unlock(&umem_init_lock);
}

UMEM_TEXT_COLD static void
umem_fork_child(void)
{
	umem_cache_t *cp;
	uint32_t i;

	umem_lock_init(&umem_pagemap_lock);
	for (cp = umem_null_cache.cache_prev; cp != &umem_null_cache;
	    cp = cp->cache_prev) {
		umem_lock_init(&cp->cache_lock);
		umem_lock_init(&cp->cache_depot_lock);
		cp->cache_depot_busy = 0;	/* waiters that are gone */
		for (i = 0; i < cp->cache_ncpu; i++) {
			umem_cpu_cache_t *cc = &cp->cache_cpu[i];

			/* Used slots, and any first used during prepare. */
			if (!slot_used(cp->cache_fork_map, i) &&
			    !__atomic_load_n(&cc->cc_used, __ATOMIC_RELAXED))
				continue;
			umem_lock_init(&cc->cc_lock);
			if (cc->cc_word == UMEM_CC_NONE &&
			    cc->cc_loaded != NULL) {
				/* Owned mid-slow-path by a thread now gone. */
				cc->cc_loaded = cc->cc_ploaded = NULL;
				cc->cc_prounds = -1;
				cc->cc_base = (uint32_t)UMEM_CC_NONE;
			}
		}
	}
	umem_lock_init(&umem_cache_lock);
	umem_lock_init(&umem_update_lock);
	umem_cond_init(&umem_update_cv);
	/* Restart the thread only if the parent had it (or wanted it). */
	__atomic_store_n(&umem_update_pending, umem_ready &&
	    (umem_update_running || (umem_update_pending &
	    UMEM_PENDING_START)) ? UMEM_PENDING_START : 0, __ATOMIC_RELAXED);
	umem_update_running = 0;
	vmem_heap_keep_dirty(0);
	umem_update_reap = 0;
	umem_percpu_fork_child();
	umem_lock_init(&umem_init_lock);
}

void
umem_fork_init(void)
{
	static int done;

	umem_cond_init(&umem_update_cv);
	if (!done) {
		done = 1;
		umem_atfork_add(umem_fork_prepare, umem_fork_parent,
		    umem_fork_child);
	}
}
