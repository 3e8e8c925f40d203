/*
 * leaks_malloc.c - umem_findleaks() on malloc'd blocks, under
 * LD_PRELOAD=libumem.so: a standalone program (not linked with libumem),
 * which finds the function with dlsym.  Leaked: small, calloc'd,
 * realloc'd, aligned and large blocks; reachable: from a global array,
 * a chain, a thread's stack and thread-local storage.  The counts are
 * exact, relative to what the C library and the runtime hold before
 * (which must be no leak either).  Without libumem it has nothing to test
 * and says so.
 *
 *	cc -std=gnu11 -O2 -fno-builtin -pthread -o leaks_malloc \
 *	    tests/leaks_malloc.c -ldl
 */
#include "test.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

typedef int findleaks_t(int);
static findleaks_t *findleaks_fn;

#define	N_SMALL		7	/* malloc(48) */
#define	N_CALLOC	3	/* calloc(10, 30) */
#define	N_REALLOC	2	/* realloc'd from 20 to 3000 bytes */
#define	N_ALIGNED	2	/* aligned_alloc(256, 256) */
#define	N_LARGE		2	/* malloc(1 MiB) */
#define	N_LEAKED	(N_SMALL + N_CALLOC + N_REALLOC + N_ALIGNED + N_LARGE)

static uintptr_t g_hidden[64];		/* ~p: not an address */
static int g_nhidden;
static void *g_keep[5];
struct node {
	struct node	*next;
	char		pad[100];
};
static struct node *g_chain;
static __thread void *t_tls;		/* the main thread's TLS */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_ready, g_go;
static char g_report[1 << 17];

/* Run umem_findleaks into a memory file; the report goes to g_report. */
static int
findleaks(void)
{
	return (tu_write_read(findleaks_fn, "findleaks", g_report,
	    sizeof (g_report)));
}


static void
hide(void *p)
{
	g_hidden[g_nhidden++] = ~(uintptr_t)p;
}

static __attribute__((noinline)) void
make_leaks(void)
{
	int i;

	for (i = 0; i < N_SMALL; i++)
		hide(memset(malloc(48), 1, 48));
	for (i = 0; i < N_CALLOC; i++)
		hide(calloc(10, 30));
	for (i = 0; i < N_REALLOC; i++) {
		void *p = malloc(20);

		hide(realloc(p, 3000));
	}
	for (i = 0; i < N_ALIGNED; i++)
		hide(aligned_alloc(256, 256));
	for (i = 0; i < N_LARGE; i++)
		hide(memset(malloc(1 << 20), 2, 1 << 20));
}

static void *
holder(void *arg)
{
	void *volatile mine = malloc(200);	/* held on this stack only */

	(void) arg;
	pthread_mutex_lock(&g_lock);
	g_ready = 1;
	pthread_cond_broadcast(&g_cv);
	while (!g_go)
		pthread_cond_wait(&g_cv, &g_lock);
	pthread_mutex_unlock(&g_lock);
	free(mine);
	return (NULL);
}

static void
t_counts(void)
{
	pthread_t t;
	int base, n, i;

	base = findleaks();
	/* What libc and the loader hold is reachable too. */
	CHECKF(base == 0, "%d leaks at start; report:\n%s", base, g_report);

	for (i = 0; i < 5; i++)
		g_keep[i] = malloc(64 + (size_t)i * 1000);
	g_chain = calloc(1, sizeof (struct node));
	g_chain->next = calloc(1, sizeof (struct node));
	g_chain->next->next = malloc(2 << 20);
	t_tls = malloc(77);
	pthread_create(&t, NULL, holder, NULL);
	pthread_mutex_lock(&g_lock);
	while (!g_ready)
		pthread_cond_wait(&g_cv, &g_lock);
	pthread_mutex_unlock(&g_lock);
	make_leaks();
	tu_clobber_stack();

	n = findleaks();
	CHECKF(n == base + N_LEAKED, "%d leaks, want %d + %d; report:\n%s", n,
	    base, N_LEAKED, g_report);
	CHECKF(strstr(g_report, "cache 'umem_alloc_48' (bufsize 48): 7 "
	    "leaked,") != NULL, "report:\n%s", g_report);
	/* a class with slab records in the page map (UMF_SLABMAP) */
	CHECKF(strstr(g_report, "cache 'umem_alloc_3072' (bufsize 3072): 2 "
	    "leaked,") != NULL, "report:\n%s", g_report);
	CHECKF(strstr(g_report, "large blocks: 2 leaked, 2097152 bytes") !=
	    NULL, "report:\n%s", g_report);

	for (i = 0; i < g_nhidden; i++)
		free((void *)~g_hidden[i]);
	g_nhidden = 0;
	tu_clobber_stack();
	n = findleaks();
	CHECKF(n == base, "%d leaks after freeing them, want %d; report:\n%s",
	    n, base, g_report);

	pthread_mutex_lock(&g_lock);
	g_go = 1;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_lock);
	pthread_join(t, NULL);
	for (i = 0; i < 5; i++)
		free(g_keep[i]);
	free(g_chain->next->next);
	free(g_chain->next);
	free(g_chain);
	free(t_tls);
	tu_clobber_stack();
	n = findleaks();
	CHECKF(n == base, "%d leaks at the end, want %d; report:\n%s", n,
	    base, g_report);
}

int
main(int argc, char **argv)
{
	const char *pre = getenv("LD_PRELOAD");

	(void) argc;
	findleaks_fn = (findleaks_t *)dlsym(RTLD_DEFAULT, "umem_findleaks");
	if (findleaks_fn == NULL) {
		/* Only an error when we were meant to run on libumem. */
		if (pre != NULL && strstr(pre, "libumem") != NULL) {
			test_cur_name = "dlsym";
			CHECK(findleaks_fn != NULL);
			test_failed++;
		} else {
			printf("leaks_malloc: umem_findleaks not found (not "
			    "under libumem): nothing to test\n");
		}
		return (test_summary(argv[0]));
	}
	alarm(120);
	RUN(t_counts);
	return (test_summary(argv[0]));
}
