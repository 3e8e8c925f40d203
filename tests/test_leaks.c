/*
 * test_leaks.c - umem_findleaks(): exact counts on a heap whose leaks are
 * known.  Leaked: buffers of a user cache, umem_alloc blocks of two
 * classes, large blocks, a cycle, and a buffer referenced only from a
 * freed buffer.  Reachable: from a global array, a chain of buffers, an
 * interior pointer, the program's own malloc heap, a large block, memory
 * of an arena of the program's own over the heap arena, and the stack of
 * a thread blocked on a condition variable.  Then: no false positives
 * (everything reachable, also under threads allocating and freeing
 * meanwhile), a bad fd, UMEM_DEBUG=audit grouping by allocation stack,
 * and UMEM_DEBUG=findleaks at exit (both in children: the library reads
 * UMEM_DEBUG once).
 */
#include "test_umem.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#ifdef TU_TSAN
/* Holds every cache's slot, depot and slab locks at once (> 64). */
const char *__tsan_default_options(void);

const char *
__tsan_default_options(void)
{
	return ("detect_deadlocks=0");
}
#endif

/*
 * Sanitizer runtimes keep stale copies of pointers (stack redzones, their
 * own heaps), which a conservative scan must take for references: there a
 * count of leaks is checked as an upper bound (still no false positive).
 */
#ifdef TU_SAN
#define	EXACT		0
#else
#define	EXACT		1
#endif
#define	LEAKS_OK(n, want)	((n) == (want) || (!EXACT && (n) >= 0 && \
				    (n) < (want)))

#define	N_CACHE		10	/* leaked from leak_test */
#define	N_112		4	/* umem_alloc(100): 3 + one behind a free */
#define	N_LARGE		2	/* umem_alloc(200000) */
#define	N_CYCLE		2	/* two umem_alloc(64) pointing at each other */
#define	N_LEAKED	(N_CACHE + N_112 + N_LARGE + N_CYCLE)

/* Leaked pointers, hidden (~p is no address) so that we can free them. */
typedef struct hidden {
	uintptr_t	h_ptr;
	size_t		h_size;		/* 0: from g_cache */
} hidden_t;
static hidden_t g_hidden[64];
static int g_nhidden;

static umem_cache_t *g_cache;		/* "leak_test", 64 bytes */
static void *g_keep[8];			/* reachable from data */
struct node {
	uint64_t	n_pad;
	struct node	*n_next;
	char		n_data[48];
};
static struct node *g_chain;		/* -> n1 -> n2 -> n3 */
static char *g_interior;		/* into a 256-byte block */
static void **g_mheap;			/* glibc malloc: [0] = a block */
static void **g_big;			/* large block: [1000] = a buffer */
static vmem_t *g_uarena;		/* over the heap arena */
static void **g_ua;			/* one of its pages: [3] = a block */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_ready, g_go;

static char g_report[1 << 17];

static void
hide(void *p, size_t size)
{
	g_hidden[g_nhidden].h_ptr = ~(uintptr_t)p;
	g_hidden[g_nhidden].h_size = size;
	g_nhidden++;
}

/* Run umem_findleaks into a memory file; the report goes to g_report. */
static int
findleaks(void)
{
	return (tu_write_read(umem_findleaks, "findleaks", g_report,
	    sizeof (g_report)));
}


static __attribute__((noinline)) void
make_leaks(void)
{
	void *a, *b, *carrier, *victim;
	int i;

	for (i = 0; i < N_CACHE; i++) {
		void *p = umem_cache_alloc(g_cache, UMEM_NOFAIL);

		memset(p, 0x5a, 64);
		hide(p, 0);
	}
	for (i = 0; i < N_112 - 1; i++)
		hide(umem_zalloc(100, UMEM_NOFAIL), 100);
	for (i = 0; i < N_LARGE; i++)
		hide(umem_zalloc(200000, UMEM_NOFAIL), 200000);
	a = umem_zalloc(64, UMEM_NOFAIL);
	b = umem_zalloc(64, UMEM_NOFAIL);
	((void **)a)[1] = b;
	((void **)b)[1] = a;
	hide(a, 64);
	hide(b, 64);
	/* A free buffer's stale contents do not count as a reference. */
	victim = umem_zalloc(100, UMEM_NOFAIL);
	hide(victim, 100);
	carrier = umem_cache_alloc(g_cache, UMEM_NOFAIL);
	((void **)carrier)[1] = victim;
	umem_cache_free(g_cache, carrier);
}

static void
free_leaks(void)
{
	for (int i = 0; i < g_nhidden; i++) {
		void *p = (void *)~g_hidden[i].h_ptr;

		if (g_hidden[i].h_size == 0)
			umem_cache_free(g_cache, p);
		else
			umem_free(p, g_hidden[i].h_size);
	}
	g_nhidden = 0;
}

static void *
holder(void *arg)
{
	/* The only reference: in this thread's stack while it waits. */
	void *volatile mine = umem_zalloc(160, UMEM_NOFAIL);

	(void) arg;
	pthread_mutex_lock(&g_lock);
	g_ready = 1;
	pthread_cond_broadcast(&g_cv);
	while (!g_go)
		pthread_cond_wait(&g_cv, &g_lock);
	pthread_mutex_unlock(&g_lock);
	umem_free(mine, 160);
	return (NULL);
}

static __attribute__((noinline)) void
make_reachable(void)
{
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	void *churn[40];
	int i;

	for (i = 0; i < 8; i++)
		g_keep[i] = umem_cache_alloc(g_cache, UMEM_NOFAIL);
	g_chain = umem_zalloc(sizeof (struct node), UMEM_NOFAIL);
	g_chain->n_next = umem_zalloc(sizeof (struct node), UMEM_NOFAIL);
	g_chain->n_next->n_next = umem_zalloc(sizeof (struct node),
	    UMEM_NOFAIL);
	g_interior = (char *)umem_zalloc(256, UMEM_NOFAIL) + 40;
	g_mheap = malloc(64);
	g_mheap[0] = umem_zalloc(48, UMEM_NOFAIL);
	g_big = umem_zalloc(300000, UMEM_NOFAIL);
	g_big[1000] = umem_cache_alloc(g_cache, UMEM_NOFAIL);
	g_uarena = vmem_create("leak_user", NULL, 0,
	    (size_t)sysconf(_SC_PAGESIZE), af, ff, heap, 0, VM_SLEEP);
	g_ua = vmem_alloc(g_uarena, (size_t)sysconf(_SC_PAGESIZE), VM_SLEEP);
	g_ua[3] = umem_zalloc(512, UMEM_NOFAIL);
	/* Free buffers (magazines, slabs) are not leaks either. */
	for (i = 0; i < 40; i++)
		churn[i] = umem_cache_alloc(g_cache, UMEM_NOFAIL);
	for (i = 0; i < 40; i++)
		umem_cache_free(g_cache, churn[i]);
	for (i = 0; i < 40; i++)
		churn[i] = umem_zalloc(100, UMEM_NOFAIL);
	for (i = 0; i < 40; i++)
		umem_free(churn[i], 100);
}

static void
free_reachable(void)
{
	for (int i = 0; i < 8; i++)
		umem_cache_free(g_cache, g_keep[i]);
	umem_free(g_chain->n_next->n_next, sizeof (struct node));
	umem_free(g_chain->n_next, sizeof (struct node));
	umem_free(g_chain, sizeof (struct node));
	umem_free(g_interior - 40, 256);
	umem_free(g_mheap[0], 48);
	free(g_mheap);
	umem_cache_free(g_cache, g_big[1000]);
	umem_free(g_big, 300000);
	umem_free(g_ua[3], 512);
	vmem_free(g_uarena, g_ua, (size_t)sysconf(_SC_PAGESIZE));
	vmem_destroy(g_uarena);
	/* Stale copies would hold whatever is allocated there next. */
	memset(g_keep, 0, sizeof (g_keep));
	g_chain = NULL;
	g_interior = NULL;
	g_mheap = NULL;
	g_big = NULL;
	g_ua = NULL;
}

/* "what: N leaked" appears in the report. */
static int
reported(const char *what, int n)
{
	char want[160];

	snprintf(want, sizeof (want), "%s: %d leaked,", what, n);
	return (strstr(g_report, want) != NULL);
}

static void
test_nothing_yet(void)
{
	/* Before any allocation: the library is not even initialised. */
	CHECK(findleaks() == 0);
	CHECK(strstr(g_report, "umem_findleaks: no leaks\n") != NULL);
}

static void
test_known_leaks(void)
{
	pthread_t t;
	int n;

	g_cache = umem_cache_create("leak_test", 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	CHECK(g_cache != NULL);
	if (g_cache == NULL)
		return;
	n = findleaks();
	CHECKF(n == 0, "%d leaks before any, report:\n%s", n, g_report);

	make_reachable();
	pthread_create(&t, NULL, holder, NULL);
	pthread_mutex_lock(&g_lock);
	while (!g_ready)
		pthread_cond_wait(&g_cv, &g_lock);
	pthread_mutex_unlock(&g_lock);
	make_leaks();
	tu_clobber_stack();

	n = findleaks();
	CHECKF(LEAKS_OK(n, N_LEAKED), "%d leaks, want %d; report:\n%s", n,
	    N_LEAKED, g_report);
	CHECKF(!EXACT || (reported("cache 'leak_test' (bufsize 64)",
	    N_CACHE) &&
	    reported("cache 'umem_alloc_112' (bufsize 112)", N_112) &&
	    reported("cache 'umem_alloc_64' (bufsize 64)", N_CYCLE) &&
	    reported("large blocks", N_LARGE) &&
	    strstr(g_report, "umem_findleaks: 18 leaked buffers, ") != NULL),
	    "report:\n%s", g_report);
	/* The holder thread was stopped (the update thread blocks it). */
	CHECKF(strstr(g_report, ", 1 threads stopped\n") != NULL ||
	    strstr(g_report, ", 2 threads stopped\n") != NULL,
	    "report:\n%s", g_report);
	/* Idempotent: a second run finds the same. */
	CHECK(LEAKS_OK(findleaks(), N_LEAKED));

	/* No false positives: with the leaks gone, nothing is reported. */
	free_leaks();
	tu_clobber_stack();
	n = findleaks();
	CHECKF(n == 0, "%d leaks after freeing them; report:\n%s", n,
	    g_report);
	CHECK(strstr(g_report, "umem_findleaks: no leaks\n") != NULL);

	pthread_mutex_lock(&g_lock);
	g_go = 1;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_lock);
	pthread_join(t, NULL);
	free_reachable();
	tu_clobber_stack();
	n = findleaks();
	CHECKF(n == 0, "%d leaks at the end; report:\n%s", n, g_report);
	umem_cache_destroy(g_cache);
}

/*
 * Buffers allocated in a row from a new slab keep their free-list links
 * (last word) until written: each points into the next.  Those stale links
 * must not make one reachable buffer hold the leaked ones after it.
 */
static void *g_first;

static __attribute__((noinline)) void
make_linked(umem_cache_t *cp)
{
	g_first = umem_cache_alloc(cp, UMEM_NOFAIL);
	for (int i = 0; i < 3; i++)
		hide(umem_cache_alloc(cp, UMEM_NOFAIL), 0);
}

static void
test_stale_links(void)
{
	umem_cache_t *cp = umem_cache_create("leak_links", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, UMC_NOMAGAZINE);
	int n;

	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	g_cache = cp;
	make_linked(cp);
	tu_clobber_stack();
	n = findleaks();
	CHECKF(LEAKS_OK(n, 3) && (!EXACT ||
	    reported("cache 'leak_links' (bufsize 64)", 3)),
	    "%d leaks, want 3; report:\n%s", n, g_report);
	free_leaks();
	umem_cache_free(cp, g_first);
	umem_cache_destroy(cp);
}

/*
 * A cache holding many spare (empty) slabs: each is excluded from the
 * scan, so the table of excluded ranges must have room for all of them
 * (it was sized for one spare a cache: the scanner's own memory then fell
 * off the end, was scanned as a root, and hid every leak).
 */
static __attribute__((noinline)) void
make_spares(umem_cache_t *cp, size_t n)
{
	void **v = calloc(n, sizeof (void *));

	tu_alloc_free(cp, v, n);
	explicit_bzero(v, n * sizeof (void *));	/* no root in libc's heap */
	free(v);
	for (int i = 0; i < 3; i++)
		hide(umem_cache_alloc(cp, UMEM_NOFAIL), 0);
}

static void
test_spares(void)
{
	umem_cache_t *cp = umem_cache_create("leak_spares", 1000, 0, NULL,
	    NULL, NULL, NULL, NULL, UMC_NOMAGAZINE);
	umem_cache_stat_t st;
	int n;

	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	g_cache = cp;
	(void) umem_cache_getstat(cp, &st);
	make_spares(cp, 64 * (size_t)st.cs_chunks);
	(void) umem_cache_getstat(cp, &st);
	CHECKF(st.cs_slab_spare >= 16, "%llu spare slabs",
	    (unsigned long long)st.cs_slab_spare);
	tu_clobber_stack();
	n = findleaks();
	CHECKF(LEAKS_OK(n, 3) && (!EXACT ||
	    reported("cache 'leak_spares' (bufsize 1000)", 3)),
	    "%d leaks, want 3; report:\n%s", n, g_report);
	free_leaks();
	umem_cache_destroy(cp);
}

/*
 * A big mapping of the program's, nearly all untouched: the scan reads
 * only its touched pages (/proc/self/pagemap), and still finds the one
 * reference there.  Reading every page took a page fault each (the zero
 * page mapped in): 65k for these 256 MiB, and 50 s for a TSan runtime
 * mapping of 29 GB on a PVM guest.
 */
static void
test_sparse_root(void)
{
	enum { BIG = 256 << 20 };
	char *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t held_c;
	struct rusage r0, r1;
	long faults;
	int n;

	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED)
		return;
	held_c = ~(uintptr_t)umem_alloc(100, UMEM_NOFAIL);
	((void **)(m + BIG - 7 * 4096))[3] = (void *)~held_c;
	hide(umem_alloc(100, UMEM_NOFAIL), 100);
	tu_clobber_stack();
	(void) getrusage(RUSAGE_SELF, &r0);
	n = findleaks();
	(void) getrusage(RUSAGE_SELF, &r1);
	faults = r1.ru_minflt - r0.ru_minflt;
	CHECKF(LEAKS_OK(n, 1) && (!EXACT ||
	    reported("cache 'umem_alloc_112' (bufsize 112)", 1)),
	    "%d leaks, want 1; report:\n%s", n, g_report);
	CHECKF(faults < BIG / 4096 / 8, "%ld page faults while scanning %d "
	    "MiB, all but a page untouched", faults, BIG >> 20);
	umem_free((void *)~held_c, 100);
	free_leaks();
	(void) munmap(m, BIG);
}

/* Threads allocating and freeing meanwhile: every live buffer is held. */
#define	NCHURN	3
#define	NSLOT	64
static void *g_slots[NCHURN][NSLOT];
static int g_churn_stop;

static void *
churner(void *arg)
{
	void **slot = g_slots[(uintptr_t)arg];
	unsigned long long seed = 99 + (uintptr_t)arg;

	while (!__atomic_load_n(&g_churn_stop, __ATOMIC_RELAXED)) {
		int i = (int)(test_rand(&seed) % NSLOT);
		size_t size = 16 + (size_t)(test_rand(&seed) % 2000);
		void *p = umem_alloc(size, UMEM_NOFAIL);

		*(size_t *)p = size;
		if (slot[i] != NULL)
			umem_free(slot[i], *(size_t *)slot[i]);
		slot[i] = p;
	}
	return (NULL);
}

static void
test_no_false_positives_under_load(void)
{
	pthread_t t[NCHURN];
	int i, n, bad = 0;

	for (i = 0; i < NCHURN; i++)
		pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)i);
	for (i = 0; i < TU_SCALE(20, 4); i++) {
		n = findleaks();
		if (n != 0 && bad++ == 0)
			fprintf(stderr, "  run %d: %d leaks; report:\n%s", i, n,
			    g_report);
	}
	CHECK(bad == 0);
	__atomic_store_n(&g_churn_stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < NCHURN; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NCHURN; i++)
		for (int k = 0; k < NSLOT; k++)
			if (g_slots[i][k] != NULL)
				umem_free(g_slots[i][k], *(size_t *)g_slots[i][k]);
	CHECK(findleaks() == 0);
}

static void
test_bad_fd(void)
{
	void *p = umem_alloc(64, UMEM_NOFAIL);

	errno = 0;
	CHECK(umem_findleaks(1000000) == -1 && errno == EBADF);
	CHECK(umem_findleaks(-1) == 0);		/* no report, a count */
	umem_free(p, 64);
}

/*
 * ---- UMEM_DEBUG=audit (child): leaks grouped by allocation stack ----
 */
/* Loop bounds the compiler cannot unroll into several call sites. */
static volatile int g_three = 3, g_two = 2;

static __attribute__((noinline)) void
leak_site_a(umem_cache_t *cp)
{
	for (int i = 0; i < g_three; i++)
		hide(umem_cache_alloc(cp, UMEM_NOFAIL), 0);
	__asm__ __volatile__("" : : : "memory");	/* not a tail call */
}

static __attribute__((noinline)) void
leak_site_b(umem_cache_t *cp)
{
	for (int i = 0; i < g_two; i++)
		hide(umem_cache_alloc(cp, UMEM_NOFAIL), 0);
	__asm__ __volatile__("" : : : "memory");
}

static __attribute__((noinline)) void
leak_site_c(void)
{
	hide(umem_alloc(100, UMEM_NOFAIL), 100);
	__asm__ __volatile__("" : : : "memory");
}

static void
audit_child(void)
{
	umem_cache_t *cp = umem_cache_create("leak_audit", 40, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	void *kept;
	int n;

	CHECK(cp != NULL);
	if (cp == NULL)
		return;
	g_cache = cp;
	kept = umem_cache_alloc(cp, UMEM_NOFAIL);
	g_keep[0] = kept;
	leak_site_a(cp);
	leak_site_b(cp);
	leak_site_c();
	leak_site_a(cp);	/* the same stack again: one group of 6 */
	tu_clobber_stack();
	n = findleaks();
	CHECKF(LEAKS_OK(n, 9), "%d leaks, want 9; report:\n%s", n, g_report);
	CHECKF(!EXACT || (reported("cache 'leak_audit' (bufsize 40)", 6) &&
	    reported("cache 'leak_audit' (bufsize 40)", 2)),
	    "no separate groups per stack; report:\n%s", g_report);
	/* Most bytes first: 240 (site a), 100 (umem_alloc), 80 (site b). */
	CHECKF(!EXACT || (strstr(g_report, "(bufsize 40): 6 leaked") <
	    strstr(g_report, "(bufsize 112): 1 leaked") &&
	    strstr(g_report, "(bufsize 112): 1 leaked") <
	    strstr(g_report, "(bufsize 40): 2 leaked")),
	    "groups out of order; report:\n%s", g_report);
	CHECKF(!EXACT || reported("cache 'umem_alloc_112' (bufsize 112)", 1),
	    "report:\n%s", g_report);
	CHECKF(n == 0 || (strstr(g_report, "oldest T-") != NULL &&
	    strstr(g_report, "allocated at:\n\t#0 0x") != NULL),
	    "no stack; report:\n%s", g_report);
	CHECK(!EXACT || strstr(g_report, "umem_findleaks: 9 leaked buffers, "
	    "420 bytes\n") != NULL);
	g_keep[0] = NULL;
	umem_cache_free(cp, kept);
	free_leaks();
}

static void
test_audit_groups(void)
{
	const char *env[] = { "UMEM_DEBUG=audit", NULL };

	tu_check_child("audit", env, 60);
}

/* UMEM_DEBUG=findleaks: a report on stderr at exit. */
static __attribute__((noinline)) void
leak_one(void)
{
	hide(umem_alloc(700, UMEM_NOFAIL), 700);
}

static void
atexit_leaks(const char *options)
{
	static char out[1 << 16];
	const char *env[] = { "UMEM_DEBUG=findleaks", options, NULL };
	char sbuf[96];
	int st = tu_run_self("atexit", env, 60, out, sizeof (out));

	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    (!EXACT || (strstr(out, "cache 'umem_alloc_768' (bufsize 768): 1 "
	    "leaked,") != NULL && strstr(out, "umem_findleaks: 1 leaked "
	    "buffers, ") != NULL)) && strstr(out, "umem_findleaks: ") != NULL,
	    "%s: child: %s; output:\n%s", options,
	    tu_status_str(st, sbuf, sizeof (sbuf)), out);
}

static void
test_atexit(void)
{
	atexit_leaks("UMEM_OPTIONS=");
}

/*
 * The same with slabs in huge pages from the start: the leak is the first
 * buffer of heap_huge's first chunk, whose start the chunk table must not
 * hold as an address (it did: "no leaks").
 */
static void
test_atexit_hugepages(void)
{
	atexit_leaks("UMEM_OPTIONS=hugepages=always");
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		tu_watchdog(50);
		if (strcmp(argv[2], "audit") == 0) {
			RUN(audit_child);
			return (tu_child_summary(argv[2]));
		}
		if (strcmp(argv[2], "atexit") == 0) {
			leak_one();
			tu_clobber_stack();
			exit(0);
		}
		return (2);
	}
	tu_watchdog(120);
	if (!EXACT)
		printf("test_leaks: sanitizer build: leaks may hide in the "
		    "runtime's memory, counts are checked as upper bounds\n");
	RUN(test_nothing_yet);
	RUN(test_known_leaks);
	RUN(test_stale_links);
	RUN(test_spares);
	RUN(test_sparse_root);
	RUN(test_no_false_positives_under_load);
	RUN(test_bad_fd);
	RUN(test_audit_groups);
	RUN(test_atexit);
	RUN(test_atexit_hugepages);
	return (test_summary(argv[0]));
}
