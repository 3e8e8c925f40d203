/*
 * test_vmem_policy.c - allocation policies (paper claims D13, D14):
 * instant fit, best fit, first fit, next fit (the PID test) and
 * VM_ENDALLOC, on freelists built deterministically; and the next-fit
 * rotor, which must never keep free space apart.
 */
#include "test.h"
#include <stdint.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))
#define	X(p)	((uintptr_t)(p))
#define	BASE	0x10000

static int nfree_segs;

static void
count_cb(void *arg, void *start, size_t size)
{
	nfree_segs++;
}

static int
free_segments(vmem_t *vmp)
{
	nfree_segs = 0;
	vmem_walk(vmp, VMEM_FREE, count_cb, NULL);
	return (nfree_segs);
}

/*
 * A quantum-1 arena whose only free segments have the given sizes, in
 * address order, each followed by an allocated 1-byte separator.  The
 * segments are placed by exact [minaddr, maxaddr) windows, so this does not
 * depend on any policy.  addrs[i] gets the start of free segment i.
 */
static vmem_t *
build(const size_t *sizes, int n, uintptr_t *addrs)
{
	uintptr_t cur = BASE;
	size_t total = 0;
	vmem_t *vmp;
	int i;

	for (i = 0; i < n; i++)
		total += sizes[i] + 1;
	vmp = vmem_create("policy", A(BASE), total, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	CHECK(vmp != NULL);
	if (vmp == NULL)
		return (NULL);
	for (i = 0; i < n; i++) {
		addrs[i] = X(vmem_xalloc(vmp, sizes[i], 0, 0, 0, A(cur),
		    A(cur + sizes[i]), VM_NOSLEEP));
		CHECK(addrs[i] == cur);
		cur += sizes[i];
		CHECK(vmem_xalloc(vmp, 1, 0, 0, 0, A(cur), A(cur + 1),
		    VM_NOSLEEP) == A(cur));
		cur++;
	}
	for (i = 0; i < n; i++)
		vmem_xfree(vmp, A(addrs[i]), sizes[i]);
	CHECK(free_segments(vmp) == n);
	CHECK(vmem_size(vmp, VMEM_FREE) == total - (size_t)n);
	return (vmp);
}

/* Free the separators and whatever else is allocated, then destroy. */
static void
teardown(vmem_t *vmp)
{
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT,
	    (void (*)(void *, void *, size_t))vmem_xfree, vmp);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(free_segments(vmp) == 1);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/*
 * D13: with free segments of 512, 1000 and 2048, a 1000-byte request is
 * served from the 2048 segment (the first list whose every member fits),
 * not from the 1000-byte one.
 */
static void
test_instantfit_paper(void)
{
	static const size_t sizes[] = { 512, 1000, 2048 };
	uintptr_t a[3];
	vmem_t *vmp = build(sizes, 3, a);
	void *p;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 1000, VM_NOSLEEP);
	CHECKF(p == A(a[2]), "got %p, the 2048 segment is at %#lx", p,
	    (unsigned long)a[2]);
	vmem_free(vmp, p, 1000);
	/* Exactly 2^n may come from list n (512..1023): not from 2048. */
	p = vmem_alloc(vmp, 512, VM_NOSLEEP);
	CHECKF(p == A(a[0]) || p == A(a[1]), "512 came from %p", p);
	vmem_free(vmp, p, 512);
	/* Sizes above 1024 go to the 2048 list; 2049 cannot be had. */
	p = vmem_alloc(vmp, 1025, VM_NOSLEEP);
	CHECK(p == A(a[2]));
	vmem_free(vmp, p, 1025);
	errno = 0;
	CHECK(vmem_alloc(vmp, 2049, VM_NOSLEEP) == NULL && errno == ENOMEM);
	CHECK(vmem_verify(vmp) == 0);
	teardown(vmp);
}

/*
 * Instant fit falls back to the list the size is in when no larger list
 * has anything: 600 from {512, 1000} must come from the 1000 segment.
 */
static void
test_instantfit_fallback(void)
{
	static const size_t sizes[] = { 512, 1000 };
	uintptr_t a[2];
	vmem_t *vmp = build(sizes, 2, a);
	void *p, *q;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 600, VM_NOSLEEP);
	CHECK(p == A(a[1]));
	/* 400 left of it, 512 elsewhere: 513 cannot fit anywhere now. */
	errno = 0;
	q = vmem_alloc(vmp, 513, VM_NOSLEEP);
	CHECK(q == NULL && errno == ENOMEM);
	q = vmem_alloc(vmp, 512, VM_NOSLEEP);
	CHECK(q == A(a[0]));
	vmem_free(vmp, p, 600);
	vmem_free(vmp, q, 512);
	teardown(vmp);
}

/* Instant fit takes the low end of the segment and leaves the rest. */
static void
test_instantfit_carves_low(void)
{
	static const size_t sizes[] = { 4096 };
	uintptr_t a[1];
	vmem_t *vmp = build(sizes, 1, a);
	void *p, *q;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 100, VM_NOSLEEP);
	q = vmem_alloc(vmp, 100, VM_NOSLEEP);
	CHECK(p == A(a[0]) && q == A(a[0] + 100));
	CHECK(free_segments(vmp) == 1);
	vmem_free(vmp, p, 100);
	vmem_free(vmp, q, 100);
	teardown(vmp);
}

/* D14: best fit picks the smallest adequate segment. */
static void
test_bestfit(void)
{
	static const size_t sizes[] = { 2048, 512, 1000, 700, 650, 4096 };
	uintptr_t a[6];
	vmem_t *vmp = build(sizes, 6, a);
	void *p;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 600, VM_NOSLEEP | VM_BESTFIT);
	CHECKF(p == A(a[4]), "600: got %p, want the 650 segment", p);
	vmem_free(vmp, p, 600);
	p = vmem_alloc(vmp, 651, VM_NOSLEEP | VM_BESTFIT);
	CHECKF(p == A(a[3]), "651: got %p, want the 700 segment", p);
	vmem_free(vmp, p, 651);
	p = vmem_alloc(vmp, 1000, VM_NOSLEEP | VM_BESTFIT);
	CHECKF(p == A(a[2]), "1000: got %p, want the exact 1000", p);
	vmem_free(vmp, p, 1000);
	p = vmem_alloc(vmp, 1001, VM_NOSLEEP | VM_BESTFIT);
	CHECKF(p == A(a[0]), "1001: got %p, want the 2048 segment", p);
	vmem_free(vmp, p, 1001);
	p = vmem_alloc(vmp, 100, VM_NOSLEEP | VM_BESTFIT);
	CHECKF(p == A(a[1]), "100: got %p, want the 512 segment", p);
	vmem_free(vmp, p, 100);
	/* Best fit with vmem_xalloc and an alignment. */
	p = vmem_xalloc(vmp, 600, 2, 0, 0, NULL, NULL,
	    VM_NOSLEEP | VM_BESTFIT);
	CHECK(p != NULL && X(p) % 2 == 0 && X(p) >= a[4] &&
	    X(p) + 600 <= a[4] + 650);
	vmem_xfree(vmp, p, 600);
	teardown(vmp);
}

/*
 * First fit takes a fitting segment from the lowest list that has one:
 * 600 from {512, 1000, 2048} is the 1000 segment (instant fit: 2048).
 */
static void
test_firstfit(void)
{
	static const size_t sizes[] = { 2048, 512, 1000 };
	uintptr_t a[3];
	vmem_t *vmp = build(sizes, 3, a);
	void *p;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 600, VM_NOSLEEP | VM_FIRSTFIT);
	CHECKF(p == A(a[2]), "first fit 600: got %p", p);
	vmem_free(vmp, p, 600);
	p = vmem_alloc(vmp, 600, VM_NOSLEEP);
	CHECKF(p == A(a[0]), "instant fit 600: got %p", p);
	vmem_free(vmp, p, 600);
	teardown(vmp);
}

/*
 * D14, the PID test: an arena [1, 30000) of quantum 1; alloc(1, NEXTFIT)
 * followed by a free returns 1, 2, 3, ... and wraps only at the end.
 */
static void
test_nextfit_pids(void)
{
	vmem_t *vmp = vmem_create("pid", A(1), 29999, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	long i, bad = -1;
	void *p = NULL;

	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	for (i = 0; i < 3 * 29999L + 17; i++) {
		p = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
		if (X(p) != (uintptr_t)(i % 29999 + 1)) {
			bad = i;
			break;
		}
		vmem_free(vmp, p, 1);
	}
	CHECKF(bad < 0, "allocation %ld returned %p, want %ld", bad, p,
	    bad % 29999 + 1);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* Next fit skips freed IDs until it comes round again. */
static void
test_nextfit_no_reuse(void)
{
	vmem_t *vmp = vmem_create("ids", A(1), 100, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	void *p[100];
	int i, ok = 1;

	if (vmp == NULL)
		return;
	for (i = 0; i < 10; i++)
		p[i] = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
	vmem_free(vmp, p[4], 1);		/* ID 5 */
	vmem_free(vmp, p[0], 1);		/* ID 1 */
	for (i = 10; i < 100; i++) {
		p[i] = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
		if (p[i] != A(i + 1))
			ok = 0;
	}
	CHECK(ok);
	/* Now only 1 and 5 are free: it wraps and finds them in order. */
	p[0] = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
	p[4] = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
	CHECK(p[0] == A(1) && p[4] == A(5));
	errno = 0;
	CHECK(vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT) == NULL &&
	    errno == ENOMEM);
	/* Multi-ID next fit skips holes that are too small. */
	vmem_free(vmp, p[20], 1);
	vmem_free(vmp, p[30], 1);
	vmem_free(vmp, p[31], 1);
	CHECK(vmem_alloc(vmp, 2, VM_NOSLEEP | VM_NEXTFIT) == A(31));
	CHECK(vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT) == A(21));
	CHECK(vmem_verify(vmp) == 0);
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT,
	    (void (*)(void *, void *, size_t))vmem_free, vmp);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	vmem_destroy(vmp);
}

/*
 * The rotor is bookkeeping, not a resource: after next-fit allocations
 * are freed the free space must be one segment again, usable whole by
 * any policy.
 */
static void
test_nextfit_rotor_coalesces(void)
{
	vmem_t *vmp = vmem_create("rotor", A(1), 100, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	void *p, *q;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 50, VM_NOSLEEP | VM_NEXTFIT);
	CHECK(p == A(1));
	vmem_free(vmp, p, 50);
	CHECKF(free_segments(vmp) == 1, "%d free segments in an empty "
	    "arena of one span", free_segments(vmp));
	CHECK(vmem_size(vmp, VMEM_FREE) == 100);
	{
		vmem_stat_t st;

		CHECK(vmem_getstat(vmp, &st) == 0 && st.vk_nsegs_free == 1);
	}
	errno = 0;
	q = vmem_alloc(vmp, 100, VM_NOSLEEP);
	CHECKF(q == A(1), "alloc(100) in an empty 100-byte arena: %p errno "
	    "%d", q, errno);
	if (q != NULL)
		vmem_free(vmp, q, 100);
	q = vmem_xalloc(vmp, 100, 0, 0, 0, NULL, NULL, VM_NOSLEEP);
	CHECKF(q == A(1), "xalloc(100) in an empty 100-byte arena: %p", q);
	if (q != NULL)
		vmem_xfree(vmp, q, 100);
	/* Next fit still continues after the last ID it gave. */
	q = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
	CHECKF(q == A(51), "next fit after [1, 51) freed gave %p", q);
	if (q != NULL)
		vmem_free(vmp, q, 1);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/*
 * Next fit continues at the rotor even when other allocations have since
 * carved up the free segment it was in.
 */
static void
test_nextfit_rotor_after_carve(void)
{
	vmem_t *vmp = vmem_create("carved", A(1), 1000, 1, NULL, NULL, NULL,
	    0, VM_SLEEP);
	void *p, *q, *r;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 10, VM_NOSLEEP | VM_NEXTFIT);	/* [1, 11) */
	CHECK(p == A(1));
	vmem_free(vmp, p, 10);			/* all free; rotor at 11 */
	q = vmem_alloc(vmp, 100, VM_NOSLEEP | VM_ENDALLOC);	/* [901, 1001) */
	CHECK(q == A(901));
	r = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_NEXTFIT);
	CHECKF(r == A(11), "next fit after the rotor at 11 gave %p", r);
	if (r != NULL)
		vmem_free(vmp, r, 1);
	vmem_free(vmp, q, 100);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0 && free_segments(vmp) == 1);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* VM_ENDALLOC takes the high end of the chosen segment. */
static void
test_endalloc(void)
{
	vmem_t *vmp = vmem_create("end", A(0x1000), 0x1000, 16, NULL, NULL,
	    NULL, 0, VM_SLEEP);
	void *p, *q, *r, *s;

	if (vmp == NULL)
		return;
	p = vmem_alloc(vmp, 0x100, VM_NOSLEEP | VM_ENDALLOC);
	q = vmem_alloc(vmp, 0x100, VM_NOSLEEP | VM_ENDALLOC);
	r = vmem_alloc(vmp, 0x100, VM_NOSLEEP);
	CHECK(p == A(0x1f00) && q == A(0x1e00) && r == A(0x1000));
	/* With an alignment: the highest aligned start that fits. */
	s = vmem_xalloc(vmp, 0x100, 0x400, 0, 0, NULL, NULL,
	    VM_NOSLEEP | VM_ENDALLOC);
	CHECKF(s == A(0x1c00), "aligned ENDALLOC gave %p", s);
	vmem_xfree(vmp, s, 0x100);
	/* And with a window, phase and boundary. */
	s = vmem_xalloc(vmp, 0x30, 0x40, 0x10, 0x100, A(0x1100), A(0x1580),
	    VM_NOSLEEP | VM_ENDALLOC);
	CHECKF(s == A(0x1550), "constrained ENDALLOC gave %p", s);
	vmem_xfree(vmp, s, 0x30);
	s = vmem_xalloc(vmp, 0x40, 0x40, 0x10, 0x100, A(0x1100), A(0x1540),
	    VM_NOSLEEP | VM_ENDALLOC);
	CHECKF(s == A(0x1490), "constrained ENDALLOC gave %p", s);
	vmem_xfree(vmp, s, 0x40);
	s = vmem_xalloc(vmp, 0xf0, 0x10, 0, 0x100, A(0x1100), A(0x1580),
	    VM_NOSLEEP | VM_ENDALLOC);
	CHECKF(s == A(0x1410), "ENDALLOC below a boundary gave %p", s);
	vmem_xfree(vmp, s, 0xf0);
	/* Best fit with ENDALLOC: the smallest segment, at its top. */
	vmem_free(vmp, q, 0x100);	/* free: [0x1100,0x1f00) */
	s = vmem_xalloc(vmp, 0x10, 0, 0, 0, A(0x1200), A(0x1210),
	    VM_NOSLEEP);		/* split: 0x100 and 0xcf0 */
	CHECK(s == A(0x1200));
	q = vmem_alloc(vmp, 0x80, VM_NOSLEEP | VM_BESTFIT | VM_ENDALLOC);
	CHECKF(q == A(0x1180), "best fit + ENDALLOC gave %p", q);
	vmem_free(vmp, q, 0x80);
	vmem_xfree(vmp, s, 0x10);
	vmem_free(vmp, p, 0x100);
	vmem_free(vmp, r, 0x100);
	CHECK(free_segments(vmp) == 1 && vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

static int
lst(size_t size)
{
	return (63 - __builtin_clzll(size));
}

/*
 * Instant fit on many random segments: every request comes from the start
 * of a segment on the first non-empty list that is sure to fit (a power
 * of two may use its own list), else from a fitting one on its own list.
 */
static void
test_instantfit_lists(void)
{
	static size_t sizes[200];
	uintptr_t a[200];
	unsigned long long seed = 7;
	vmem_t *vmp;
	int i, j, bad = 0;

	for (i = 0; i < 200; i++)
		sizes[i] = 1 + test_rand(&seed) % 5000;
	if ((vmp = build(sizes, 200, a)) == NULL)
		return;
	for (i = 0; i < 3000; i++) {
		size_t want = 1 + test_rand(&seed) % 6000, got = 0;
		int n = lst(want), from = (want & (want - 1)) ? n + 1 : n;
		int expect = 64, fits_n = 0;
		void *p = vmem_alloc(vmp, want, VM_NOSLEEP);

		for (j = 0; j < 200; j++) {
			if (lst(sizes[j]) >= from && lst(sizes[j]) < expect)
				expect = lst(sizes[j]);
			if (lst(sizes[j]) == n && sizes[j] >= want)
				fits_n = 1;
			if (X(p) == a[j])
				got = sizes[j];
		}
		if (expect == 64 && fits_n)
			expect = n;
		if (expect == 64 ? p != NULL : got == 0 || lst(got) != expect) {
			if (bad++ < 3)
				CHECKF(0, "alloc(%zu) gave %p, a %zu segment; "
				    "expected list %d", want, p, got, expect);
		}
		if (p != NULL)
			vmem_free(vmp, p, want);
	}
	CHECK(bad == 0);
	teardown(vmp);
}

int
main(int argc, char **argv)
{
	RUN(test_instantfit_paper);
	RUN(test_instantfit_fallback);
	RUN(test_instantfit_carves_low);
	RUN(test_instantfit_lists);
	RUN(test_bestfit);
	RUN(test_firstfit);
	RUN(test_nextfit_pids);
	RUN(test_nextfit_no_reuse);
	RUN(test_nextfit_rotor_coalesces);
	RUN(test_nextfit_rotor_after_carve);
	RUN(test_endalloc);
	return (test_summary(argv[0]));
}
