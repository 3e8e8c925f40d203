/*
 * test_vmem_heap.c - the page-backed heap arena (vmem_heap_arena): its
 * shape, memory that is usable and reads as zero, pages that go back to
 * the OS when freed (RSS drops), and mapping frugality: a 64 GiB heap made
 * of 128 KiB slabs, even when freed every other slab, must stay far below
 * vm.max_map_count (65530) mappings; a process short of address
 * space (RLIMIT_AS) still gets big reservations, not one per import; and
 * pages freed while deferring stay for the next slabs (deferred release).
 */
#include "test.h"
#include <stdint.h>
#include <sys/resource.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	X(p)	((uintptr_t)(p))

/* TSan's shadow makes 2 GiB of touched slabs cost 5 GiB and 20 s. */
#ifdef TU_TSAN
#define	TSAN	1
#else
#define	TSAN	0
#endif
#ifdef TU_SAN
#define	SAN	1
#else
#define	SAN	0
#endif

static size_t pagesize;

static long
rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, rss = -1;

	if (f == NULL)
		return (-1);
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return (rss * (long)pagesize);
}

static vmem_stat_t
stat_of(vmem_t *vmp)
{
	vmem_stat_t st;

	memset(&st, 0xa5, sizeof (st));
	CHECK(vmem_getstat(vmp, &st) == 0);
	return (st);
}

/* The heap: one arena, page quantum, the same answer every time. */
static void
test_heap_arena(void)
{
	vmem_alloc_t *af = NULL, *af2 = NULL;
	vmem_free_t *ff = NULL, *ff2 = NULL;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	vmem_stat_t st;

	CHECK(heap != NULL && af != NULL && ff != NULL);
	if (heap == NULL)
		return;
	CHECK(vmem_heap_arena(&af2, &ff2) == heap && af2 == af && ff2 == ff);
	CHECK(vmem_heap_arena(NULL, NULL) == heap);
	st = stat_of(heap);
	CHECK(st.vk_quantum == pagesize);
	CHECK(strcmp(st.vk_name, "heap") == 0);
	CHECK(vmem_verify(heap) == 0);
}

/* Pages from the heap are aligned, zeroed, writable, and go back. */
static void
test_heap_alloc_free(void)
{
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	uint64_t inuse0 = stat_of(heap).vk_mem_inuse;
	size_t size = 5 * pagesize, i;
	unsigned char *p;
	int zero = 1;

	p = af(heap, size, VM_NOSLEEP);
	CHECK(p != NULL && X(p) % pagesize == 0);
	if (p == NULL)
		return;
	CHECK(vmem_contains(heap, p, size));
	for (i = 0; i < size; i++)
		zero &= p[i] == 0;
	CHECK(zero);
	memset(p, 0x5a, size);
	CHECK(stat_of(heap).vk_mem_inuse == inuse0 + size);
	ff(heap, p, size);
	CHECK(stat_of(heap).vk_mem_inuse == inuse0);
	/* Whatever comes next reads as zero, even the same pages. */
	p = af(heap, size, VM_NOSLEEP);
	CHECK(p != NULL);
	if (p == NULL)
		return;
	zero = 1;
	for (i = 0; i < size; i++)
		zero &= p[i] == 0;
	CHECK(zero);
	ff(heap, p, size);
	CHECK(vmem_verify(heap) == 0);
}

/*
 * An arena of "mapped pages" importing from the heap: touched pages are
 * resident, and freeing gives them back to the OS (RSS drops), and pages
 * handed out again read as zero.
 */
static void
test_heap_release(void)
{
	enum { N = 64 };
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	vmem_t *vmp = vmem_create("pages", NULL, 0, 4096, af, ff, heap, 0,
	    VM_SLEEP);
	unsigned char *p[N];
	size_t mib = 1 << 20, j;
	long rss0, rss1, rss2;
	int i, ok = 1, zero = 1;

	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	rss0 = rss_bytes();
	for (i = 0; i < N; i++) {
		p[i] = vmem_alloc(vmp, mib, VM_NOSLEEP);
		if (p[i] == NULL) {
			ok = 0;
			break;
		}
		memset(p[i], 0xa5, mib);
	}
	CHECK(ok);
	if (!ok)
		return;
	rss1 = rss_bytes();
	CHECKF(rss1 - rss0 >= (long)(N - 8) * (long)mib, "RSS grew by %ld "
	    "KiB for %d MiB touched", (rss1 - rss0) >> 10, N);
	for (i = 0; i < N; i++)
		vmem_free(vmp, p[i], mib);
	rss2 = rss_bytes();
	CHECKF(rss1 - rss2 >= (long)(N - 8) * (long)mib, "RSS fell by only "
	    "%ld KiB after freeing %d MiB", (rss1 - rss2) >> 10, N);
	CHECK(stat_of(vmp).vk_nspans == 0);
	for (i = 0; i < N; i++) {
		p[i] = vmem_alloc(vmp, mib, VM_NOSLEEP);
		CHECK(p[i] != NULL);
		if (p[i] == NULL)
			break;
		for (j = 0; j < mib; j += 512)
			zero &= p[i][j] == 0;
	}
	CHECK(zero);
	while (--i >= 0)
		vmem_free(vmp, p[i], mib);
	CHECK(vmem_verify(vmp) == 0 && vmem_verify(heap) == 0);
	vmem_destroy(vmp);
}

/*
 * Mapping frugality: 64 GiB of 128 KiB slabs (one byte of each touched)
 * must not cost a mapping per slab; neither may freeing every other one.
 * TSan builds use an eighth of it (8 GiB) to keep time and memory down;
 * VMEM_HEAP_SLABS=n sets the number of slabs.
 */
static void
test_heap_map_count(void)
{
	size_t slab = 128 << 10;
	long nslabs = 65536;	/* 8 GiB: a mapping each would pass 65530 */
	const char *env = getenv("VMEM_HEAP_SLABS");	/* override */

	if (env != NULL && atol(env) > 0 && atol(env) <= 524288)
		nslabs = atol(env);
	static char *p[524288];
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	uint64_t heap0 = stat_of(heap).vk_mem_inuse;
	vmem_t *vmp = vmem_create("slabs", NULL, 0, 4096, af, ff, heap, 0,
	    VM_SLEEP);
	long m0, m1, m2, m3, i, got = 0;

	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	m0 = tu_count_maps();
	for (i = 0; i < nslabs; i++) {
		p[i] = vmem_alloc(vmp, slab, VM_NOSLEEP);
		if (p[i] == NULL)
			break;
		p[i][i % slab] = 1;
		got++;
	}
	CHECKF(got == nslabs, "only %ld of %ld slabs (%ld GiB)", got, nslabs,
	    (long)(nslabs * (long)slab >> 30));
	m1 = tu_count_maps();
	CHECK(stat_of(heap).vk_mem_inuse >= heap0 + (uint64_t)got * slab);
	CHECKF(m1 - m0 < 1000, "%ld GiB in 128 KiB slabs took %ld more "
	    "mappings (%ld -> %ld)", (long)(got * (long)slab >> 30), m1 - m0,
	    m0, m1);
	for (i = 0; i < got; i += 2)
		vmem_free(vmp, p[i], slab);
	m2 = tu_count_maps();
	CHECKF(m2 - m0 < 1000, "freeing every other slab: %ld more mappings "
	    "(%ld -> %ld)", m2 - m0, m0, m2);
	for (i = 1; i < got; i += 2)
		if (p[i][i % slab] != 1)
			break;
	CHECKF(i >= got, "slab %ld lost its byte", i);
	for (i = 1; i < got; i += 2)
		vmem_free(vmp, p[i], slab);
	m3 = tu_count_maps();
	CHECKF(m3 - m0 < 1000, "after freeing all: %ld more mappings",
	    m3 - m0);
	CHECK(stat_of(vmp).vk_nspans == 0);
	CHECK(stat_of(heap).vk_mem_inuse == heap0);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  %ld slabs of 128 KiB: mappings %ld, %ld "
		    "allocated, %ld half freed, %ld all freed\n", got, m0, m1,
		    m2, m3);
	vmem_destroy(vmp);
	CHECK(vmem_verify(heap) == 0);
}

/*
 * Huge pages for slabs (the dense pair, umem_default's): a 2 MiB block of
 * heap_huge that gives memory back is advised MADV_NOHUGEPAGE, which can
 * split heap_huge's mapping, but only 256 times: past that a whole chunk
 * gives up huge pages (one mapping again).  2 GiB of untouched 64 KiB
 * spans, then the first span of every other 2 MiB block freed: 512
 * blocks, which would cost about 1000 mappings unbounded.
 */
static void
test_heap_thp_mappings(void)
{
	enum { N = 32768 };
	size_t span = 64 << 10, blk = 2 << 20;
	static void *p[N];
	vmem_t *heap = vmem_heap_arena(NULL, NULL);
	vmem_t *vmp = vmem_create("dense", NULL, 0, pagesize, NULL, NULL,
	    heap, 0, VM_SLEEP);
	long m0, m1, m2, i, n = 0, freed = 0;

	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	vmem_set_tagged_import(vmp, vmem_heap_dense_talloc,
	    vmem_heap_dense_tfree);
	vmem_heap_hugepages(VMEM_THP_ALWAYS);
	m0 = tu_count_maps();
	for (i = 0; i < N; i++, n++)
		if ((p[i] = vmem_alloc(vmp, span, VM_NOSLEEP)) == NULL)
			break;
	CHECKF(n == N, "only %ld spans", n);
	m1 = tu_count_maps();
	for (i = 0; i < n; i++) {
		if (X(p[i]) % blk == 0 && X(p[i]) / blk % 2 == 1) {
			vmem_free(vmp, p[i], span);
			p[i] = NULL;
			freed++;
		}
	}
	m2 = tu_count_maps();
	CHECKF(freed >= 400, "only %ld blocks freed in", freed);
	CHECKF(m2 - m0 < 600, "%ld blocks given back: %ld more mappings "
	    "(%ld -> %ld -> %ld)", freed, m2 - m0, m0, m1, m2);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  %ld blocks given back: mappings %ld, %ld, "
		    "%ld\n", freed, m0, m1, m2);
	for (i = 0; i < n; i++)
		if (p[i] != NULL)
			vmem_free(vmp, p[i], span);
	vmem_heap_hugepages(VMEM_THP_AUTO);
	vmem_destroy(vmp);
	CHECK(vmem_verify(heap) == 0);
}

/*
 * Short of address space: with RLIMIT_AS 128 MiB above what the process
 * maps, 96 MiB taken a page at a time must all succeed, from a handful
 * of reservations (the first, of 64 MiB, leaves no room for a second of
 * that size).  A heap that, once its big reservation is refused, reserves
 * each import exactly (and asks for the big one again every time) makes
 * 8193.  And with room for 64 MiB only, 63 MiB and a page must still
 * come, from a reservation without the 2 MiB alignment's slack.  In a
 * fresh process (this binary run again), whose heap has reserved nothing
 * yet.  Not under the sanitizers, whose shadow memory
 * needs all of the address space.
 */
static int
limit_child(const char *what)
{
	enum { NPAGES = (96 << 20) / 4096 };
	static char *p[NPAGES];
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap, *vmp;
	struct rlimit rl;
	long size = 0, rss, i;
	uint64_t imports;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL || fscanf(f, "%ld %ld", &size, &rss) != 2)
		_exit(10);
	fclose(f);
	rl.rlim_cur = rl.rlim_max = (rlim_t)size * pagesize +
	    (strcmp(what, "exact") == 0 ? (64 << 20) + (1 << 20) : 128 << 20);
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		_exit(11);
	heap = vmem_heap_arena(&af, &ff);
	vmp = vmem_create("limited", NULL, 0, 4096, af, ff, heap, 0,
	    VM_SLEEP);
	if (vmp == NULL)
		_exit(12);
	if (strcmp(what, "exact") == 0) {
		/*
		 * 63 MiB and a page fit only without the 2 MiB alignment's
		 * slack: the last try must be the import alone.
		 */
		size_t big = (63 << 20) + 4096;
		char *b = vmem_alloc(vmp, big, VM_NOSLEEP);

		if (b == NULL) {
			tu_say("63 MiB + 4 KiB refused\n");
			_exit(16);
		}
		b[0] = b[big - 1] = 1;
		vmem_free(vmp, b, big);
		vmem_destroy(vmp);
		return (vmem_verify(heap) == 0 ? 0 : 15);
	}
	imports = stat_of(heap).vk_import;
	for (i = 0; i < NPAGES; i++) {
		if ((p[i] = vmem_alloc(vmp, 4096, VM_NOSLEEP)) == NULL) {
			tu_say("page %ld of %d refused\n", i, (int)NPAGES);
			_exit(13);
		}
		p[i][0] = 1;
	}
	imports = stat_of(heap).vk_import - imports;
	if (imports > 16 || getenv("TEST_VERBOSE") != NULL)
		tu_say("  %llu reservations for 96 MiB\n",
		    (unsigned long long)imports);
	if (imports > 16)
		_exit(14);
	for (i = 0; i < NPAGES; i++)
		vmem_free(vmp, p[i], 4096);
	vmem_destroy(vmp);
	if (vmem_verify(heap) != 0)
		_exit(15);
	return (0);
}

static void
test_heap_address_limit(void)
{
	static const char *const env[] = { NULL };
	char out[1024];
	int st;

	if (SAN)
		return;
	st = tu_run_self("address_limit", env, 60, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x (exit "
	    "codes: see limit_child), stderr: %s", st, out);
	st = tu_run_self("address_limit_exact", env, 60, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exact: status %#x "
	    "(exit codes: see limit_child), stderr: %s", st, out);
}

/* How many of [p, p + n pages) are resident; -1 if mincore fails. */
static long
resident_pages(const void *p, size_t n)
{
	unsigned char vec[64];
	long c = 0;

	if (n > sizeof (vec) || mincore((void *)p, n * pagesize, vec) != 0)
		return (-1);
	for (size_t i = 0; i < n; i++)
		c += vec[i] & 1;
	return (c);
}

/* All of [p, p + size) reads as byte c. */
static int
all_bytes(const unsigned char *p, size_t size, unsigned char c)
{
	for (size_t i = 0; i < size; i++)
		if (p[i] != c)
			return (0);
	return (1);
}

/*
 * Deferred release (the growth scan's frees): a range freed while the
 * thread defers keeps its pages, dirty, until a flush finds them a whole
 * call old (or flushes all); the dense pair (slabs) takes dirty pages
 * first and as they are; every other allocation gets them zeroed; the
 * dirty bytes are bounded (128 MiB).
 */
static void
test_heap_deferred_release(void)
{
	enum { N = 32 };
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff);
	size_t size = N * pagesize, mib = 1 << 20;
	unsigned char *a, *b, *c, *p;
	void *tag, *big[2];

	vmem_heap_hugepages(VMEM_THP_NEVER);	/* slabs from the heap */
	vmem_heap_flush(1);
	CHECK(vmem_heap_dirty() == 0);

	/* Kept over one flush, given back by the next. */
	a = af(heap, size, VM_SLEEP);
	memset(a, 0xab, size);
	vmem_heap_defer(1);
	ff(heap, a, size);
	vmem_heap_defer(0);
	CHECK(vmem_heap_dirty() == size);
	CHECK(resident_pages(a, N) == N);
	vmem_heap_flush(0);
	CHECK(vmem_heap_dirty() == size);
	CHECK(resident_pages(a, N) == N);
	vmem_heap_flush(0);
	CHECK(vmem_heap_dirty() == 0);
	CHECK(resident_pages(a, N) == 0);

	/* Not deferring: the pages go at once. */
	a = af(heap, size, VM_SLEEP);
	memset(a, 0xab, size);
	ff(heap, a, size);
	CHECK(vmem_heap_dirty() == 0);
	CHECK(resident_pages(a, N) == 0);

	/*
	 * A hole of N dirty pages between two live ranges: the dense pair
	 * takes a page of it as it is; an allocation of the rest that counts
	 * on zero pages (the plain pair: the hole is the only free segment of
	 * that size class it has, the newest) reads zero.
	 */
	a = af(heap, size, VM_SLEEP);
	b = af(heap, size, VM_SLEEP);
	c = af(heap, size, VM_SLEEP);
	memset(b, 0xab, size);
	vmem_heap_defer(1);
	ff(heap, b, size);
	vmem_heap_defer(0);
	CHECK(vmem_heap_dirty() == size);
	p = vmem_heap_dense_talloc(heap, pagesize, 0, VM_SLEEP, &tag);
	CHECKF(p >= b && p < b + size, "%p outside the dirty hole %p", p, b);
	if (p >= b && p < b + size)
		CHECK(all_bytes(p, pagesize, 0xab));
	CHECK(vmem_heap_dirty() == size - pagesize);
	vmem_heap_dense_tfree(heap, p, pagesize, tag);
	CHECK(vmem_heap_dirty() == size - pagesize);
	p = af(heap, size, VM_SLEEP);
	CHECKF(p == b, "%p, not the hole %p", p, b);
	CHECK(all_bytes(p, size, 0));
	CHECK(vmem_heap_dirty() == 0);
	ff(heap, p, size);
	ff(heap, a, size);
	ff(heap, c, size);

	/* Bounded: past 128 MiB a release gives its pages back. */
	big[0] = af(heap, 100 * mib, VM_SLEEP);
	big[1] = af(heap, 100 * mib, VM_SLEEP);
	vmem_heap_defer(1);
	ff(heap, big[0], 100 * mib);
	ff(heap, big[1], 100 * mib);
	vmem_heap_defer(0);
	CHECK(vmem_heap_dirty() == 100 * mib);
	vmem_heap_flush(1);
	CHECK(vmem_heap_dirty() == 0);
	CHECK(vmem_verify(heap) == 0);

	/*
	 * heap_huge (UMEM_OPTIONS=hugepages) defers and claims alike: a
	 * slab's range freed while deferring keeps its pages, the next slab
	 * takes them as they are, and the flush gives back the rest.  It
	 * gave them to the OS at once before: t_growth_reuse under
	 * hugepages=always faulted 8631 of its 12288 pages.
	 */
	vmem_heap_hugepages(VMEM_THP_ALWAYS);
	a = vmem_heap_dense_talloc(heap, size, 0, VM_SLEEP, &tag);
	CHECK(a != NULL && vmem_heap_huge_made() != NULL);
	if (a == NULL)
		return;
	memset(a, 0xab, size);
	vmem_heap_defer(1);
	vmem_heap_dense_tfree(heap, a, size, tag);
	vmem_heap_defer(0);
	CHECK(vmem_heap_dirty() == size);
	CHECK(resident_pages(a, N) == N);
	p = vmem_heap_dense_talloc(heap, pagesize, 0, VM_SLEEP, &tag);
	CHECKF(p >= a && p < a + size, "%p outside the dirty range %p", p, a);
	if (p >= a && p < a + size)
		CHECK(all_bytes(p, pagesize, 0xab));
	CHECK(vmem_heap_dirty() == size - pagesize);
	vmem_heap_flush(1);
	CHECK(vmem_heap_dirty() == 0);
	CHECK(resident_pages(a, N) == (p >= a && p < a + size));
	vmem_heap_dense_tfree(heap, p, pagesize, tag);	/* not deferring */
	CHECK(resident_pages(a, N) == 0);
	vmem_heap_hugepages(VMEM_THP_AUTO);
	CHECK(vmem_verify(heap) == 0);
}

/*
 * An arena that keeps the pages of what it takes back (vmem_heap_keep, as
 * umem_oversize does) finds them again with vmem_heap_alloc_kept, where
 * its instant fit would not: for a size that is not a power of two it
 * looks first in the lists that surely fit, here the fresh rest of its
 * span, and passes over the dirty hole of exactly that size.
 */
static void
test_heap_alloc_kept(void)
{
	vmem_alloc_t *af;
	vmem_free_t *ff;
	vmem_t *heap = vmem_heap_arena(&af, &ff), *vmp;
	size_t span = 16 << 20, size = 1536 << 10;
	unsigned char *base, *l, *a, *r, *p;

	vmem_heap_hugepages(VMEM_THP_NEVER);
	vmem_heap_flush(1);
	base = af(heap, span, VM_SLEEP);
	CHECK(base != NULL);
	if (base == NULL)
		return;
	vmp = vmem_create("kept", base, span, pagesize, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	vmem_heap_keep_dirty(1);
	l = vmem_alloc(vmp, size, VM_SLEEP);
	a = vmem_alloc(vmp, size, VM_SLEEP);
	r = vmem_alloc(vmp, size, VM_SLEEP);
	memset(a, 0xab, size);
	vmem_heap_keep(a, size);
	vmem_free(vmp, a, size);
	CHECK(vmem_heap_dirty() == size);
	/* The instant fit takes fresh space... */
	p = vmem_alloc(vmp, size, VM_SLEEP);
	CHECKF(p != a, "the instant fit took the hole %p", p);
	vmem_free(vmp, p, size);
	/* ...the probe, the hole and its pages. */
	p = vmem_heap_alloc_kept(vmp, size);
	CHECKF(p == a, "%p, not the hole %p", p, a);
	if (p == a) {
		CHECK(vmem_heap_claim(p, size, 0) == size / pagesize);
		CHECK(all_bytes(p, size, 0xab));
		CHECK(vmem_heap_dirty() == 0);
		vmem_free(vmp, p, size);
	}
	vmem_heap_keep_dirty(0);
	vmem_free(vmp, l, size);
	vmem_free(vmp, r, size);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
	ff(heap, base, span);
	vmem_heap_flush(1);
	CHECK(vmem_verify(heap) == 0);
}

int
main(int argc, char **argv)
{
	pagesize = (size_t)sysconf(_SC_PAGESIZE);
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "address_limit") == 0)
		return (limit_child("pages"));
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "address_limit_exact") == 0)
		return (limit_child("exact"));
	RUN(test_heap_arena);
	RUN(test_heap_alloc_free);
	RUN(test_heap_release);
	RUN(test_heap_map_count);
	RUN(test_heap_thp_mappings);
	RUN(test_heap_address_limit);
	RUN(test_heap_deferred_release);
	RUN(test_heap_alloc_kept);
	return (test_summary(argv[0]));
}
