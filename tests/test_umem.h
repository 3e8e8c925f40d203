/*
 * test_umem.h - helpers shared by the object-cache tests (test_umem_*.c):
 * statistics snapshots, pinning, arenas to use as slab sources, and
 * re-running the test binary in a child with a chosen UMEM_OPTIONS (the
 * library reads its environment once, at initialisation, so a different
 * mode needs a fresh process; tu_run_self() and the other libumem-free
 * helpers for that are in test.h).
 *
 * A binary that uses tu_run_self() starts main() with
 *	if (argc >= 3 && strcmp(argv[1], "--child") == 0)
 *		return (child_main(argv[0], argv[2]));
 * and child_main() ends with tu_child_summary(what), which exits non-zero
 * when a CHECK failed.
 */
#ifndef _UMEM_TEST_UMEM_H
#define	_UMEM_TEST_UMEM_H

#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include <umem.h>
#include <vmem.h>


/* Scale an iteration count down in sanitizer builds (2-10x slower). */
#ifdef TU_SAN
#define	TU_SCALE(n, div)	((n) / (div) > 0 ? (n) / (div) : 1)
#else
#define	TU_SCALE(n, div)	(n)
#endif

static TU_UNUSED uint64_t
tu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

static TU_UNUSED void
tu_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static TU_UNUSED int
tu_ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof (set), &set) != 0)
		return (1);
	return (CPU_COUNT(&set));
}

/* The n-th CPU (mod the count) this process may run on. */
static TU_UNUSED int
tu_nth_cpu(int n)
{
	static cpu_set_t all;
	static int have;
	int i, k = 0, cnt;

	if (!have) {
		if (sched_getaffinity(0, sizeof (all), &all) != 0)
			return (0);
		have = 1;
	}
	cnt = CPU_COUNT(&all);
	if (cnt <= 0)
		return (0);
	n %= cnt;
	for (i = 0; i < CPU_SETSIZE; i++) {
		if (CPU_ISSET(i, &all) && k++ == n)
			return (i);
	}
	return (0);
}

/* Pin the calling thread to cpu; 0 or -1. */
static TU_UNUSED int
tu_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return (sched_setaffinity(0, sizeof (set), &set));
}

/* Pin the calling thread to the CPU it is on; returns the CPU. */
static TU_UNUSED int
tu_pin_here(void)
{
	int cpu = sched_getcpu();

	if (cpu < 0)
		cpu = tu_nth_cpu(0);
	(void) tu_pin(cpu);
	return (cpu);
}

/* Allocate n objects of cp into v, then free them all, in order. */
static TU_UNUSED void
tu_alloc_free(umem_cache_t *cp, void **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 0; i < n; i++)
		umem_cache_free(cp, v[i]);
}

static TU_UNUSED umem_cache_stat_t
tu_stat(umem_cache_t *cp)
{
	umem_cache_stat_t st;

	memset(&st, 0, sizeof (st));
	if (cp == NULL || umem_cache_getstat(cp, &st) != 0) {
		fprintf(stderr, "  FAIL %s: umem_cache_getstat(%p) failed\n",
		    test_cur_name, (void *)cp);
		test_cur_failed++;
	}
	return (st);
}

static TU_UNUSED vmem_stat_t
tu_vstat(vmem_t *vmp)
{
	vmem_stat_t st;

	memset(&st, 0, sizeof (st));
	if (vmp == NULL || vmem_getstat(vmp, &st) != 0) {
		fprintf(stderr, "  FAIL %s: vmem_getstat failed\n",
		    test_cur_name);
		test_cur_failed++;
	}
	return (st);
}

/*
 * A page-quantum memory arena importing from the heap arena: a slab
 * source whose vk_mem_inuse shows exactly what the caches over it hold.
 */
static TU_UNUSED vmem_t *
tu_mem_arena(const char *name)
{
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	vmem_t *vmp;

	vmp = vmem_create(name, NULL, 0, (size_t)sysconf(_SC_PAGESIZE), af,
	    ff, heap, 0, VM_SLEEP);
	if (vmp == NULL) {
		fprintf(stderr, "  FAIL %s: vmem_create(%s): errno %d\n",
		    test_cur_name, name, errno);
		test_cur_failed++;
	}
	return (vmp);
}

static TU_UNUSED uint64_t
tu_inuse(vmem_t *vmp)
{
	return (tu_vstat(vmp).vk_mem_inuse);
}

/*
 * Run a whole group in a child with the given environment and CHECK that
 * every test in it passed; the child's output is shown on failure.
 */
static TU_UNUSED void
tu_check_child(const char *what, const char *const *envset,
    unsigned timeout_s)
{
	static char out[1 << 16];
	char sbuf[96];
	int st = tu_run_self(what, envset, timeout_s, out, sizeof (out));

	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child '%s' (%s%s%s): %s; its output:\n%s", what,
	    envset[0] ? envset[0] : "", envset[0] && envset[1] ? " " : "",
	    envset[0] && envset[1] ? envset[1] : "",
	    tu_status_str(st, sbuf, sizeof (sbuf)), out);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s", out);
}

static void
tu_watchdog_fire(int sig)
{
	static const char m1[] = "  FAIL watchdog: still running after the "
	    "time limit, in test ";
	const char *n = test_cur_name != NULL ? test_cur_name : "?";

	(void) sig;
	(void) write(STDERR_FILENO, m1, sizeof (m1) - 1);
	(void) write(STDERR_FILENO, n, strlen(n));
	(void) write(STDERR_FILENO, " (hung?)\n", 10);
	_exit(2);
}

/*
 * A hang (a deadlock in the allocator) must fail the binary, not the
 * whole suite: after seconds, report the current test and exit.
 */
static TU_UNUSED void
tu_watchdog(unsigned seconds)
{
	signal(SIGALRM, tu_watchdog_fire);
	alarm(seconds);
}

/* End of a child: one line for the parent, exit status = failures. */
static TU_UNUSED int
tu_child_summary(const char *what)
{
	printf("child %s [%s]: %d passed, %d failed\n", what,
	    umem_percpu_mode(), test_passed, test_failed);
	fflush(stdout);
	return (test_failed == 0 ? 0 : 1);
}

#endif /* _UMEM_TEST_UMEM_H */
