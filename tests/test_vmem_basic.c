/*
 * test_vmem_basic.c - vmem arenas: creation and its argument rules,
 * spans and vmem_add, address 0, size rounding, coalescing, vmem_walk
 * (including VMEM_REENTRANT), vmem_size, vmem_contains, statistics, the
 * self-resizing hash, constant-time search, quantum-cache slab sizes and
 * vmem_destroy.
 */
#include "test.h"
#include <stdint.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))
#define	X(p)	((uintptr_t)(p))

typedef struct seglist {
	int		n;
	uintptr_t	start[4096];
	size_t		size[4096];
} seglist_t;

static void
collect_cb(void *arg, void *start, size_t size)
{
	seglist_t *sl = arg;

	if (sl->n < 4096) {
		sl->start[sl->n] = X(start);
		sl->size[sl->n] = size;
	}
	sl->n++;
}

static seglist_t sl;

static int
walk(vmem_t *vmp, int type)
{
	sl.n = 0;
	vmem_walk(vmp, type, collect_cb, &sl);
	return (sl.n);
}

static vmem_stat_t
stat_of(vmem_t *vmp)
{
	vmem_stat_t st;

	memset(&st, 0xa5, sizeof (st));
	CHECK(vmem_getstat(vmp, &st) == 0);
	return (st);
}

static vmem_t *
mk(const char *name, uintptr_t base, size_t size, size_t q)
{
	vmem_t *vmp = vmem_create(name, A(base), size, q, NULL, NULL, NULL, 0,
	    VM_SLEEP);

	CHECKF(vmp != NULL, "vmem_create(%s) errno %d", name, errno);
	return (vmp);
}

/* The paper's arena "foo": [100, 500), then vmem_add of [600, 800). */
static void
test_create_and_add(void)
{
	vmem_t *vmp = mk("foo", 100, 400, 1);
	vmem_stat_t st;

	if (vmp == NULL)
		return;
	CHECK(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE) == 400);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_size(vmp, VMEM_FREE) == 400);
	CHECK(vmem_contains(vmp, A(100), 400) == 1);
	CHECK(vmem_contains(vmp, A(100), 1) == 1);
	CHECK(vmem_contains(vmp, A(499), 1) == 1);
	CHECK(vmem_contains(vmp, A(99), 1) == 0);
	CHECK(vmem_contains(vmp, A(99), 2) == 0);
	CHECK(vmem_contains(vmp, A(500), 1) == 0);
	CHECK(vmem_contains(vmp, A(100), 401) == 0);
	st = stat_of(vmp);
	CHECK(strcmp(st.vk_name, "foo") == 0);
	CHECK(st.vk_quantum == 1 && st.vk_mem_total == 400 &&
	    st.vk_mem_inuse == 0 && st.vk_nspans == 1 &&
	    st.vk_nsegs_free == 1 && st.vk_nsegs_alloc == 0 &&
	    st.vk_alloc == 0 && st.vk_free == 0 && st.vk_mem_import == 0);

	CHECK(vmem_add(vmp, A(600), 200, VM_SLEEP) == A(600));
	CHECK(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE) == 600);
	CHECK(vmem_contains(vmp, A(600), 200) == 1);
	CHECK(vmem_contains(vmp, A(450), 200) == 0);	/* spans the hole */
	CHECK(vmem_contains(vmp, A(550), 10) == 0);
	CHECK(walk(vmp, VMEM_SPAN) == 2);
	CHECK((sl.start[0] == 100 && sl.size[0] == 400 && sl.start[1] == 600 &&
	    sl.size[1] == 200) || (sl.start[1] == 100 && sl.size[1] == 400 &&
	    sl.start[0] == 600 && sl.size[0] == 200));
	CHECK(walk(vmp, VMEM_FREE) == 2);
	CHECK(walk(vmp, VMEM_ALLOC) == 0);
	st = stat_of(vmp);
	CHECK(st.vk_nspans == 2 && st.vk_nsegs_free == 2);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

static void
expect_einval(const char *what, uintptr_t base, size_t size, size_t q)
{
	vmem_t *vmp;

	errno = 0;
	vmp = vmem_create("bad", A(base), size, q, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	CHECKF(vmp == NULL && errno == EINVAL, "%s: got %p errno %d", what,
	    (void *)vmp, errno);
	if (vmp != NULL)
		vmem_destroy(vmp);
}

static void
test_create_einval(void)
{
	expect_einval("quantum 0", 4096, 4096, 0);
	expect_einval("quantum 3", 3000, 3000, 3);
	expect_einval("quantum 24", 2400, 2400, 24);
	expect_einval("base not a multiple", 100, 4096, 64);
	expect_einval("size not a multiple", 4096, 100, 64);
	expect_einval("base+size wraps", UINTPTR_MAX & ~(uintptr_t)4095,
	    8192, 4096);
	expect_einval("base+size wraps far", UINTPTR_MAX / 2 + 1,
	    UINTPTR_MAX / 2 + 1 + 4096, 1);
}

/* vmem_add: the same argument rules; overlapping spans are refused. */
static void
test_add_einval(void)
{
	vmem_t *vmp = mk("addbad", 0x10000, 0x1000, 64);
	vmem_stat_t st;

	if (vmp == NULL)
		return;
	errno = 0;
	CHECK(vmem_add(vmp, A(0x20010), 0x1000, VM_NOSLEEP) == NULL &&
	    errno == EINVAL);
	errno = 0;
	CHECK(vmem_add(vmp, A(0x20000), 0x1010, VM_NOSLEEP) == NULL &&
	    errno == EINVAL);
	errno = 0;
	CHECK(vmem_add(vmp, A(0x20000), 0, VM_NOSLEEP) == NULL &&
	    errno == EINVAL);
	errno = 0;
	CHECK(vmem_add(vmp, A(0x10800), 0x1000, VM_NOSLEEP) == NULL &&
	    errno == EINVAL);
	errno = 0;
	CHECK(vmem_add(vmp, A(0xf000), 0x1040, VM_NOSLEEP) == NULL &&
	    errno == EINVAL);
	errno = 0;
	CHECK(vmem_add(vmp, A(UINTPTR_MAX & ~(uintptr_t)63), 128,
	    VM_NOSLEEP) == NULL && errno == EINVAL);
	st = stat_of(vmp);
	CHECK(st.vk_nspans == 1 && st.vk_mem_total == 0x1000);
	/* Touching is fine: [0xf000, 0x10000) ends where the span starts. */
	CHECK(vmem_add(vmp, A(0xf000), 0x1000, VM_NOSLEEP) == A(0xf000));
	CHECK(stat_of(vmp).vk_nspans == 2);
	errno = 0;
	CHECK(vmem_getstat(NULL, &st) == -1 && errno == EINVAL);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Names are kept up to VMEM_NAMELEN, NUL-terminated. */
static void
test_long_name(void)
{
	const char *name = "a_very_long_arena_name_that_does_not_fit_at_all";
	vmem_t *vmp = mk(name, 4096, 4096, 4096);
	vmem_stat_t st;

	if (vmp == NULL)
		return;
	st = stat_of(vmp);
	CHECK(memchr(st.vk_name, '\0', sizeof (st.vk_name)) != NULL);
	CHECK(strlen(st.vk_name) >= 16 && strlen(st.vk_name) <= VMEM_NAMELEN);
	CHECK(strncmp(st.vk_name, name, strlen(st.vk_name)) == 0);
	vmem_destroy(vmp);
}

/* size 0: no initial span; allocations fail until a span is added. */
static void
test_empty_arena(void)
{
	vmem_t *vmp = mk("empty", 0, 0, 16);
	void *p;

	if (vmp == NULL)
		return;
	CHECK(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE) == 0);
	CHECK(walk(vmp, VMEM_SPAN | VMEM_FREE | VMEM_ALLOC) == 0);
	errno = 0;
	CHECK(vmem_alloc(vmp, 16, VM_NOSLEEP) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(vmem_xalloc(vmp, 16, 0, 0, 0, NULL, NULL, VM_NOSLEEP) == NULL &&
	    errno == ENOMEM);
	CHECK(stat_of(vmp).vk_nspans == 0);
	CHECK(vmem_add(vmp, A(0x10000), 0x100, VM_NOSLEEP) == A(0x10000));
	p = vmem_alloc(vmp, 0x100, VM_NOSLEEP);
	CHECK(p == A(0x10000));
	CHECK(vmem_alloc(vmp, 16, VM_NOSLEEP) == NULL);
	vmem_free(vmp, p, 0x100);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Address 0 is the failure value: a span starting at 0 loses a quantum. */
static void
test_address_zero(void)
{
	vmem_t *vmp = mk("zero1", 0, 100, 1);
	char seen[100] = { 0 };
	int i, ok = 1;
	void *p;

	if (vmp == NULL)
		return;
	CHECK(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE) == 99);
	CHECK(vmem_contains(vmp, A(0), 1) == 0);
	CHECK(vmem_contains(vmp, A(1), 99) == 1);
	for (i = 0; i < 99; i++) {
		p = vmem_alloc(vmp, 1, VM_NOSLEEP);
		if (p == NULL || X(p) >= 100 || seen[X(p)]) {
			ok = 0;
			break;
		}
		seen[X(p)] = 1;
	}
	CHECKF(ok && !seen[0], "allocation %d of 99 gave %p", i, p);
	CHECK(vmem_alloc(vmp, 1, VM_NOSLEEP) == NULL);
	CHECK(vmem_verify(vmp) == 0);
	for (i = 1; i < 100; i++)
		if (seen[i])
			vmem_free(vmp, A(i), 1);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	vmem_destroy(vmp);

	vmp = mk("zero16", 0, 160, 16);
	if (vmp == NULL)
		return;
	CHECK(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE) == 144);
	CHECK(walk(vmp, VMEM_SPAN) == 1 && sl.start[0] == 16 &&
	    sl.size[0] == 144);
	p = vmem_alloc(vmp, 144, VM_NOSLEEP);
	CHECK(p == A(16));
	vmem_free(vmp, p, 144);
	/* The same for a span added at 0. */
	vmem_destroy(vmp);
	vmp = mk("zeroadd", 0, 0, 16);
	if (vmp == NULL)
		return;
	p = vmem_add(vmp, A(0), 64, VM_NOSLEEP);
	CHECK(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE) == 48);
	CHECK(vmem_contains(vmp, A(0), 16) == 0);
	CHECK(vmem_xalloc(vmp, 48, 0, 0, 0, NULL, NULL, VM_NOSLEEP) == A(16));
	CHECK(vmem_verify(vmp) == 0);
	vmem_xfree(vmp, A(16), 48);
	vmem_destroy(vmp);
}

/* Sizes round up to the quantum; size 0 is invalid. */
static void
test_rounding(void)
{
	vmem_t *vmp = mk("round", 0x1000, 0x1000, 8);
	void *p, *q;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 1, VM_NOSLEEP);
	CHECK(p != NULL && X(p) % 8 == 0);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 8);
	q = vmem_alloc(vmp, 9, VM_NOSLEEP);
	CHECK(q != NULL && X(q) % 8 == 0);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 24);
	CHECK(walk(vmp, VMEM_ALLOC) == 2);
	CHECK((sl.size[0] == 8 && sl.size[1] == 16) ||
	    (sl.size[0] == 16 && sl.size[1] == 8));
	/* Any size that rounds to the allocated one frees it. */
	vmem_free(vmp, p, 5);
	vmem_free(vmp, q, 16);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(stat_of(vmp).vk_bad_free == 0 && stat_of(vmp).vk_wrong_size == 0);

	errno = 0;
	CHECK(vmem_alloc(vmp, 0, VM_NOSLEEP) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(vmem_xalloc(vmp, 0, 0, 0, 0, NULL, NULL, VM_NOSLEEP) == NULL &&
	    errno == EINVAL);
	/* The whole arena, and not one quantum more. */
	p = vmem_alloc(vmp, 0x1000, VM_NOSLEEP);
	CHECK(p == A(0x1000));
	vmem_free(vmp, p, 0x1000);
	errno = 0;
	CHECK(vmem_alloc(vmp, 0x1001, VM_NOSLEEP) == NULL && errno == ENOMEM);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Free neighbours coalesce, in either order. */
static void
test_coalesce(void)
{
	vmem_t *vmp = mk("coalesce", 1000, 1000, 1);
	void *a, *b, *c;
	vmem_stat_t st;

	if (vmp == NULL)
		return;
	a = vmem_alloc(vmp, 100, VM_NOSLEEP);
	b = vmem_alloc(vmp, 100, VM_NOSLEEP);
	c = vmem_alloc(vmp, 100, VM_NOSLEEP);
	CHECK(a == A(1000) && b == A(1100) && c == A(1200));
	CHECK(walk(vmp, VMEM_FREE) == 1 && sl.start[0] == 1300 &&
	    sl.size[0] == 700);
	vmem_free(vmp, b, 100);
	CHECK(walk(vmp, VMEM_FREE) == 2);
	vmem_free(vmp, a, 100);		/* merges with b's space */
	CHECK(walk(vmp, VMEM_FREE) == 2);
	CHECK((sl.start[0] == 1000 && sl.size[0] == 200) ||
	    (sl.start[1] == 1000 && sl.size[1] == 200));
	st = stat_of(vmp);
	CHECK(st.vk_nsegs_free == 2 && st.vk_nsegs_alloc == 1);
	vmem_free(vmp, c, 100);		/* merges on both sides */
	CHECK(walk(vmp, VMEM_FREE) == 1 && sl.start[0] == 1000 &&
	    sl.size[0] == 1000);
	st = stat_of(vmp);
	CHECK(st.vk_nsegs_free == 1 && st.vk_nsegs_alloc == 0 &&
	    st.vk_alloc == 3 && st.vk_free == 3 && st.vk_mem_inuse == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Segments never cross spans, and adjacent spans never merge. */
static void
test_adjacent_spans(void)
{
	vmem_t *vmp = mk("adjacent", 1000, 100, 1);
	void *p, *q;

	if (vmp == NULL)
		return;
	CHECK(vmem_add(vmp, A(1100), 100, VM_NOSLEEP) == A(1100));
	CHECK(vmem_contains(vmp, A(1050), 100) == 0);
	errno = 0;
	CHECK(vmem_alloc(vmp, 150, VM_NOSLEEP) == NULL && errno == ENOMEM);
	p = vmem_alloc(vmp, 100, VM_NOSLEEP);
	q = vmem_alloc(vmp, 100, VM_NOSLEEP);
	CHECK(p != NULL && q != NULL && p != q);
	vmem_free(vmp, p, 100);
	vmem_free(vmp, q, 100);
	CHECK(walk(vmp, VMEM_FREE) == 2);
	CHECK(stat_of(vmp).vk_nsegs_free == 2);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Addresses near the top of the address space do not overflow. */
static void
test_high_addresses(void)
{
	uintptr_t base = UINTPTR_MAX - 0x3fffff;	/* 4 MiB below 2^64 */
	vmem_t *vmp = mk("high", base & ~(uintptr_t)0xfff, 0x200000, 0x1000);
	void *p, *q;

	if (vmp == NULL)
		return;
	base &= ~(uintptr_t)0xfff;
	p = vmem_alloc(vmp, 0x100000, VM_NOSLEEP | VM_ENDALLOC);
	CHECK(X(p) == base + 0x100000);
	q = vmem_xalloc(vmp, 0x1000, 0x80000, 0x1000, 0x80000, NULL, NULL,
	    VM_NOSLEEP);
	CHECK(q != NULL && X(q) % 0x80000 == 0x1000 && X(q) >= base &&
	    X(q) < base + 0x100000);
	CHECK(vmem_contains(vmp, A(base), 0x200000) == 1);
	CHECK(vmem_contains(vmp, A(base + 0x1ff000), 0x2000) == 0);
	CHECK(vmem_xalloc(vmp, 0x1000, 0, 0, 0, A(base + 0x1ff000), NULL,
	    VM_NOSLEEP) == NULL);
	vmem_xfree(vmp, q, 0x1000);
	vmem_free(vmp, p, 0x100000);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

static void
walk_free_cb(void *arg, void *start, size_t size)
{
	vmem_t *vmp = arg;

	vmem_free(vmp, start, size);
}

typedef struct realloc_arg {
	vmem_t	*vmp;
	int	calls, allocs;
} realloc_arg_t;

static void
walk_alloc_cb(void *arg, void *start, size_t size)
{
	realloc_arg_t *ra = arg;

	ra->calls++;
	if (vmem_alloc(ra->vmp, 1, VM_NOSLEEP) != NULL)
		ra->allocs++;
}

/* vmem_walk: types, order, and reentrant callbacks. */
static void
test_walk(void)
{
	vmem_t *vmp = mk("walk", 1, 999, 1);
	void *p[10];
	realloc_arg_t ra;
	int i, n, sorted = 1;
	size_t tot = 0;

	if (vmp == NULL)
		return;
	CHECK(vmem_add(vmp, A(5000), 1000, VM_NOSLEEP) == A(5000));
	for (i = 0; i < 10; i++)
		p[i] = vmem_alloc(vmp, 10 + (size_t)i, VM_NOSLEEP);
	for (i = 0; i < 10; i += 3)
		vmem_free(vmp, p[i], 10 + (size_t)i);
	CHECK(walk(vmp, VMEM_ALLOC) == 6);
	CHECK(walk(vmp, VMEM_SPAN) == 2);
	n = walk(vmp, VMEM_ALLOC | VMEM_FREE);
	for (i = 0; i < n; i++) {
		tot += sl.size[i];
		/* within a span the walk goes in address order */
		if (i > 0 && sl.start[i] < 5000 && sl.start[i - 1] < 5000 &&
		    sl.start[i] != sl.start[i - 1] + sl.size[i - 1])
			sorted = 0;
	}
	CHECK(tot == 1999);		/* everything, each byte once */
	CHECK(sorted);
	CHECK(n == walk(vmp, VMEM_ALLOC) + walk(vmp, VMEM_FREE));

	/* A reentrant walk may free the very segment it is given. */
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT, walk_free_cb, vmp);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(walk(vmp, VMEM_FREE) == 2);
	CHECK(vmem_verify(vmp) == 0);

	/* ... or allocate from the arena it walks. */
	for (i = 0; i < 10; i++)
		p[i] = vmem_alloc(vmp, 10, VM_NOSLEEP);
	ra.vmp = vmp;
	ra.calls = ra.allocs = 0;
	vmem_walk(vmp, VMEM_FREE | VMEM_REENTRANT, walk_alloc_cb, &ra);
	CHECK(ra.calls >= 1 && ra.allocs == ra.calls);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 100 + (size_t)ra.allocs);
	CHECK(vmem_verify(vmp) == 0);
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT, walk_free_cb, vmp);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(stat_of(vmp).vk_bad_free == 0);
	vmem_destroy(vmp);
}

/* vmem_size and the counters follow allocations. */
static void
test_sizes_and_counters(void)
{
	vmem_t *vmp = mk("counters", 0x10000, 0x10000, 0x100);
	void *p[16];
	vmem_stat_t st;
	int i;

	if (vmp == NULL)
		return;
	for (i = 0; i < 16; i++) {
		p[i] = vmem_alloc(vmp, 0x100 * (size_t)(i + 1), VM_NOSLEEP);
		CHECK(p[i] != NULL);
	}
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0x100 * 136);
	CHECK(vmem_size(vmp, VMEM_FREE) == 0x10000 - 0x100 * 136);
	st = stat_of(vmp);
	CHECK(st.vk_alloc == 16 && st.vk_free == 0 && st.vk_nsegs_alloc == 16 &&
	    st.vk_mem_inuse == 0x100 * 136 && st.vk_mem_total == 0x10000);
	errno = 0;
	CHECK(vmem_alloc(vmp, 0x10000, VM_NOSLEEP) == NULL && errno == ENOMEM);
	st = stat_of(vmp);
	CHECK(st.vk_fail == 1 && st.vk_alloc == 16);
	for (i = 0; i < 16; i++)
		vmem_free(vmp, p[i], 0x100 * (size_t)(i + 1));
	st = stat_of(vmp);
	CHECK(st.vk_free == 16 && st.vk_nsegs_alloc == 0 &&
	    st.vk_mem_inuse == 0 && st.vk_nsegs_free == 1);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/*
 * The allocated-segment hash resizes itself: with 10^5 live segments the
 * table is about as large as the segment count and chains stay short.
 */
static void
test_hash_scaling(void)
{
	enum { N = 100000 };
	vmem_t *vmp = mk("hash", 1, 4 * N, 1);
	static void *p[N];
	vmem_stat_t st, st2;
	int i, got = 0;

	if (vmp == NULL)
		return;
	st = stat_of(vmp);
	CHECK(st.vk_hash_size >= 1 && st.vk_hash_size <= 64);
	for (i = 0; i < N; i++) {
		p[i] = vmem_alloc(vmp, 1 + (size_t)(i % 3), VM_NOSLEEP);
		got += p[i] != NULL;
	}
	CHECK(got == N);
	st = stat_of(vmp);
	CHECKF(st.vk_hash_size >= N / 4 && st.vk_hash_size <= 4 * N,
	    "hash size %llu for %d segments",
	    (unsigned long long)st.vk_hash_size, N);
	CHECKF(st.vk_hash_maxchain <= 8, "longest chain %llu",
	    (unsigned long long)st.vk_hash_maxchain);
	CHECK(st.vk_hash_rescale >= 1);
	CHECK(vmem_verify(vmp) == 0);
	for (i = 0; i < N; i++)
		vmem_free(vmp, p[i], 1 + (size_t)(i % 3));
	st2 = stat_of(vmp);
	/* Average lookup depth near 1 (chain links followed per free). */
	CHECKF(st2.vk_lookup - st.vk_lookup <= 2 * (uint64_t)N,
	    "%llu links followed for %d frees",
	    (unsigned long long)(st2.vk_lookup - st.vk_lookup), N);
	CHECK(st2.vk_nsegs_alloc == 0 && st2.vk_nsegs_free == 1);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/*
 * D12, by the statistics: the free segments examined per instant-fit
 * allocation do not grow with the number of free fragments.
 */
static double
search_per_alloc(int frags, int flag, size_t size, int *okp)
{
	vmem_t *vmp = vmem_create("frag", A(1 << 20), (size_t)1 << 30, 1,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	static void *p[2 * 20000], *r[1000];
	vmem_stat_t s0, s1;
	int i;

	*okp = 0;
	if (vmp == NULL)
		return (0);
	for (i = 0; i < 2 * frags; i++)
		p[i] = vmem_alloc(vmp, 64, VM_NOSLEEP);
	for (i = 0; i < 2 * frags; i += 2)
		vmem_free(vmp, p[i], 64);
	CHECK(stat_of(vmp).vk_nsegs_free == (uint64_t)frags + 1);
	vmem_getstat(vmp, &s0);
	for (i = 0; i < 1000; i++)
		r[i] = vmem_alloc(vmp, size, VM_NOSLEEP | flag);
	vmem_getstat(vmp, &s1);
	for (i = 0; i < 1000; i++)
		if (r[i] != NULL)
			vmem_free(vmp, r[i], size);
	for (i = 1; i < 2 * frags; i += 2)
		vmem_free(vmp, p[i], 64);
	*okp = s1.vk_alloc - s0.vk_alloc == 1000;
	vmem_destroy(vmp);
	return ((double)(s1.vk_search - s0.vk_search) / 1000);
}

static void
test_search_constant(void)
{
	int ok1, ok2;
	double few = search_per_alloc(10, 0, 100, &ok1);
	double many = search_per_alloc(20000, 0, 100, &ok2);

	CHECK(ok1 && ok2);
	CHECKF(few >= 1 && few <= 2 && many >= 1 && many <= 2,
	    "instant fit examined %.2f (10 fragments) and %.2f (20000 "
	    "fragments) segments per allocation", few, many);
	/* An exact power of two is as cheap. */
	many = search_per_alloc(20000, 0, 64, &ok2);
	CHECKF(ok2 && many <= 2, "%.2f per 64-byte allocation", many);
	/* The counter does count: best fit must look at the fragments. */
	many = search_per_alloc(20000, VM_BESTFIT, 65, &ok2);
	CHECKF(ok2 && many > 100, "best fit examined %.2f per allocation "
	    "past 20000 too-small fragments on its list", many);
}

/* D18: quantum-cache slabs are the next power of two above 3x. */
static void
test_qcache_slabsize(void)
{
	size_t q, s;

	CHECK(vmem_qcache_slabsize(5 * 4096) == 16 * 4096);
	CHECK(vmem_qcache_slabsize(8 * 4096) == 32 * 4096);
	CHECK(vmem_qcache_slabsize(8 * 8192) == 32 * 8192);
	for (q = 64; q <= ((size_t)1 << 30); q += q / 3 + 1) {
		s = vmem_qcache_slabsize(q);
		CHECKF(s != 0 && (s & (s - 1)) == 0 && s > 3 * q &&
		    s / 2 <= 3 * q, "slab size %zu for qcache_max %zu", s, q);
	}
}

/* An arena with quantum caches asked for still hands out valid space. */
static void
test_qcache_arena(void)
{
	enum { N = 3000 };
	vmem_t *vmp = vmem_create("qc", A(0x100000), 0x1000000, 16, NULL,
	    NULL, NULL, 8 * 16, VM_SLEEP);
	static uintptr_t p[N];
	static size_t sz[N];
	static unsigned char owner[0x1000000 / 16];
	unsigned long long seed = 42;
	int i, ok = 1;
	size_t j;

	if (vmp == NULL)
		return;
	CHECK(stat_of(vmp).vk_qcache_max <= 8 * 16);
	memset(owner, 0, sizeof (owner));
	for (i = 0; i < N; i++) {
		sz[i] = 16 * (1 + test_rand(&seed) % 12);
		p[i] = X(vmem_alloc(vmp, sz[i], VM_NOSLEEP));
		if (p[i] == 0 || p[i] % 16 != 0 ||
		    !vmem_contains(vmp, A(p[i]), sz[i])) {
			ok = 0;
			break;
		}
		for (j = 0; j < sz[i] / 16; j++) {
			if (owner[(p[i] - 0x100000) / 16 + j]++ != 0)
				ok = 0;
		}
		if (i % 3 == 0) {
			for (j = 0; j < sz[i] / 16; j++)
				owner[(p[i] - 0x100000) / 16 + j] = 0;
			vmem_free(vmp, A(p[i]), sz[i]);
			p[i] = 0;
		}
	}
	CHECKF(ok, "bad or overlapping allocation %d", i);
	for (i = 0; i < N; i++)
		if (p[i] != 0)
			vmem_free(vmp, A(p[i]), sz[i]);
	CHECK(stat_of(vmp).vk_bad_free == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

static void
leak_child(void *arg)
{
	vmem_t *vmp = vmem_create("leaky_arena", A(0x1000), 0x1000, 1, NULL,
	    NULL, NULL, 0, VM_SLEEP);

	(void) vmem_alloc(vmp, 100, VM_NOSLEEP);
	vmem_destroy(vmp);
	_exit(7);		/* got here: the report was not fatal */
}

static void
quiet_child(void *arg)
{
	vmem_t *vmp = vmem_create("tidy_arena", A(0x1000), 0x1000, 1, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	void *p = vmem_alloc(vmp, 100, VM_NOSLEEP);

	vmem_free(vmp, p, 100);
	vmem_destroy(vmp);
	_exit(7);
}

/* vmem_destroy reports leaks (non-fatal) and is silent otherwise. */
static void
test_destroy_leak(void)
{
	char out[2048];
	int st;

	st = test_in_child(leak_child, NULL, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status %#x", st);
	CHECKF(strstr(out, "leaked") != NULL &&
	    strstr(out, "leaky_arena") != NULL, "stderr: %s", out);
	st = test_in_child(quiet_child, NULL, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status %#x", st);
	CHECKF(out[0] == '\0', "unexpected stderr: %s", out);
}

/* Arena structures are recycled: create and destroy many. */
static void
test_many_arenas(void)
{
	enum { N = 300 };
	static vmem_t *v[N];
	char name[32];
	int i, ok = 1;

	for (i = 0; i < N; i++) {
		snprintf(name, sizeof (name), "many_%d", i);
		v[i] = vmem_create(name, A(0x1000 * (uintptr_t)(i + 1)),
		    0x1000, 16, NULL, NULL, NULL, 0, VM_SLEEP);
		if (v[i] == NULL || vmem_alloc(v[i], 16, VM_NOSLEEP) !=
		    A(0x1000 * (uintptr_t)(i + 1)))
			ok = 0;
	}
	CHECK(ok);
	for (i = 0; i < N; i++) {
		if (v[i] == NULL)
			continue;
		snprintf(name, sizeof (name), "many_%d", i);
		CHECK(strcmp(stat_of(v[i]).vk_name, name) == 0);
		vmem_free(v[i], A(0x1000 * (uintptr_t)(i + 1)), 16);
		vmem_destroy(v[i]);
	}
	for (i = 0; i < 5 * N; i++) {
		vmem_t *vmp = vmem_create("churn", A(0x1000), 0x1000, 16,
		    NULL, NULL, NULL, 0, VM_SLEEP);

		if (vmp == NULL) {
			ok = 0;
			break;
		}
		vmem_destroy(vmp);
	}
	CHECK(ok);
}

int
main(int argc, char **argv)
{
	RUN(test_create_and_add);
	RUN(test_create_einval);
	RUN(test_add_einval);
	RUN(test_long_name);
	RUN(test_empty_arena);
	RUN(test_address_zero);
	RUN(test_rounding);
	RUN(test_coalesce);
	RUN(test_adjacent_spans);
	RUN(test_high_addresses);
	RUN(test_walk);
	RUN(test_sizes_and_counters);
	RUN(test_hash_scaling);
	RUN(test_search_constant);
	RUN(test_qcache_slabsize);
	RUN(test_qcache_arena);
	RUN(test_destroy_leak);
	RUN(test_many_arenas);
	return (test_summary(argv[0]));
}
