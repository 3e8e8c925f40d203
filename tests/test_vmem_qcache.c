/*
 * test_vmem_qcache.c - quantum caching (paper claim D18, section 4.4.4
 * and appendix B): with qcache_max = 8 quanta, small vmem_alloc()s are
 * served by object caches whose slabs are all one size (the next power of
 * two above 3 x qcache_max), so millions of small requests reach the
 * segment list only a handful of times.  The arena here is of integer IDs
 * (nothing mapped), so the caches must never touch their "buffers".
 */
#include "test.h"
#include <stdint.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))
#define	X(p)	((uintptr_t)(p))

#ifdef TU_SAN
#define	SANITIZED	1
#else
#define	SANITIZED	0
#endif

#define	Q		4096
#define	BASE		((uintptr_t)1 << 40)	/* not mapped: IDs only */
#define	NPAGES		(1 << 18)
#define	LIVE		1000

static unsigned char owner[NPAGES];
static size_t slabsize;
static long odd_segments;

static void
seg_cb(void *arg, void *start, size_t size)
{
	if (size != slabsize)
		odd_segments++;
}

static void
test_qcache_traffic(void)
{
	long n = SANITIZED ? 200000 : 2000000, i, bad = 0;
	vmem_t *vmp = vmem_create("qcids", A(BASE), (size_t)NPAGES * Q, Q,
	    NULL, NULL, NULL, 8 * Q, VM_SLEEP);
	static uintptr_t live[LIVE];
	static size_t sz[LIVE];
	unsigned long long seed = 2001;
	vmem_stat_t s0, st;
	size_t j;
	void *big, *x;

	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	slabsize = vmem_qcache_slabsize(8 * Q);
	CHECK(slabsize == 32 * Q);
	CHECK(vmem_getstat(vmp, &s0) == 0 && s0.vk_qcache_max == 8 * Q);
	memset(live, 0, sizeof (live));
	memset(owner, 0, sizeof (owner));
	for (i = 0; i < n; i++) {
		int k = (int)(test_rand(&seed) % LIVE);

		if (live[k] != 0) {
			for (j = 0; j < sz[k] / Q; j++)
				owner[(live[k] - BASE) / Q + j] = 0;
			vmem_free(vmp, A(live[k]), sz[k]);
			live[k] = 0;
			continue;
		}
		sz[k] = Q * (1 + test_rand(&seed) % 2);
		live[k] = X(vmem_alloc(vmp, sz[k], VM_NOSLEEP));
		if (live[k] == 0 || live[k] % Q != 0 || live[k] < BASE ||
		    live[k] + sz[k] > BASE + (uintptr_t)NPAGES * Q) {
			if (bad++ < 3)
				CHECKF(0, "allocation %ld: %#lx", i,
				    (unsigned long)live[k]);
			live[k] = 0;
			continue;
		}
		for (j = 0; j < sz[k] / Q; j++)
			if (owner[(live[k] - BASE) / Q + j]++ != 0 && bad++ < 3)
				CHECKF(0, "ID %#lx handed out twice",
				    (unsigned long)(live[k] + j * Q));
	}
	CHECK(vmem_getstat(vmp, &st) == 0);
	/* Appendix B: millions of requests, a handful of segment allocs. */
	CHECKF(st.vk_seg_alloc - s0.vk_seg_alloc <= (uint64_t)n / 1000,
	    "%llu segment-list allocations for %ld requests",
	    (unsigned long long)(st.vk_seg_alloc - s0.vk_seg_alloc), n);
	CHECK(st.vk_alloc - s0.vk_alloc >= (uint64_t)n / 3);
	/* Every segment-list allocation so far is one slab size. */
	odd_segments = 0;
	vmem_walk(vmp, VMEM_ALLOC, seg_cb, NULL);
	CHECKF(odd_segments == 0, "%ld allocated segments are not %zu bytes",
	    odd_segments, slabsize);
	CHECK(vmem_size(vmp, VMEM_ALLOC) % slabsize == 0);

	/* Above qcache_max, and vmem_xalloc: straight to the segments. */
	big = vmem_alloc(vmp, 9 * Q, VM_NOSLEEP);
	x = vmem_xalloc(vmp, Q, 0, 0, 0, NULL, NULL, VM_NOSLEEP);
	CHECK(big != NULL && x != NULL);
	CHECK(vmem_getstat(vmp, &s0) == 0 &&
	    s0.vk_seg_alloc == st.vk_seg_alloc + 2);
	vmem_free(vmp, big, 9 * Q);
	vmem_xfree(vmp, x, Q);

	for (i = 0; i < LIVE; i++)
		if (live[i] != 0)
			vmem_free(vmp, A(live[i]), sz[i]);
	CHECK(vmem_getstat(vmp, &st) == 0 && st.vk_bad_free == 0 &&
	    st.vk_wrong_size == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Freeing everything and destroying the arena reports no leak. */
static void
destroy_child(void *arg)
{
	vmem_t *vmp = vmem_create("qcquiet", A(BASE), (size_t)NPAGES * Q, Q,
	    NULL, NULL, NULL, 5 * Q, VM_SLEEP);
	static void *p[5000];
	int i;

	for (i = 0; i < 5000; i++)
		p[i] = vmem_alloc(vmp, Q * (size_t)(1 + i % 5), VM_NOSLEEP);
	for (i = 0; i < 5000; i++)
		vmem_free(vmp, p[i], Q * (size_t)(1 + i % 5));
	vmem_destroy(vmp);
	_exit(5);
}

static void
test_qcache_destroy(void)
{
	char out[2048];
	int st = test_in_child(destroy_child, NULL, out, sizeof (out));

	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 5, "status %#x", st);
	CHECKF(out[0] == '\0', "stderr: %s", out);
}

int
main(int argc, char **argv)
{
	RUN(test_qcache_traffic);
	RUN(test_qcache_destroy);
	return (test_summary(argv[0]));
}
