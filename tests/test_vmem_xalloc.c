/*
 * test_vmem_xalloc.c - constrained allocation (paper claim D15): the
 * paper's worked example, alignment, phase, nocross, the [minaddr, maxaddr)
 * window with maxaddr exclusive (NetBSD's boundary scenarios), invalid
 * arguments (EINVAL), impossible requests (ENOMEM), no import for
 * constrained requests, and a randomized property test against a
 * brute-force search.
 */
#include "test.h"
#include <stdint.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))
#define	X(p)	((uintptr_t)(p))

static int
crosses(uintptr_t a, size_t size, size_t nocross)
{
	return (nocross != 0 && (a ^ (a + size - 1)) >= nocross);
}

static vmem_t *
mk(const char *name, uintptr_t base, size_t size, size_t q)
{
	vmem_t *vmp = vmem_create(name, A(base), size, q, NULL, NULL, NULL, 0,
	    VM_SLEEP);

	CHECKF(vmp != NULL, "vmem_create(%s) errno %d", name, errno);
	return (vmp);
}

/*
 * The paper's example: arena "foo" = [100, 500), quantum 1;
 * vmem_xalloc(foo, 20, 64, 8, 0, 200, 300) must return addr with
 * addr % 64 == 8 inside [200, 300).  The paper prints 262, but
 * 262 % 64 == 6: on a fresh arena the lowest such address is 200.
 */
static void
test_paper_example(void)
{
	vmem_t *foo = mk("foo", 100, 400, 1);
	void *p;

	if (foo == NULL)
		return;
	p = vmem_xalloc(foo, 20, 64, 8, 0, A(200), A(300), VM_NOSLEEP);
	CHECK(p != NULL);
	CHECK(X(p) % 64 == 8);
	CHECK(X(p) >= 200 && X(p) + 20 <= 300);
	CHECKF(p == A(200), "got %p", p);
	/* The next one: 264 is the only other candidate in the window. */
	p = vmem_xalloc(foo, 20, 64, 8, 0, A(200), A(300), VM_NOSLEEP);
	CHECKF(p == A(264), "second got %p", p);
	errno = 0;
	CHECK(vmem_xalloc(foo, 20, 64, 8, 0, A(200), A(300), VM_NOSLEEP) ==
	    NULL && errno == ENOMEM);
	vmem_xfree(foo, A(200), 20);
	vmem_xfree(foo, A(264), 20);
	CHECK(vmem_size(foo, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(foo) == 0);
	vmem_destroy(foo);
}

/*
 * NetBSD's boundary cases, with an exclusive maxaddr: in a 0x100 span,
 * 0x101 bytes fail; the exact window succeeds; windows shifted by one
 * fail.
 */
static void
test_window_boundaries(void)
{
	vmem_t *vmp = mk("window", 0x1000, 0x100, 1);
	void *p;

	if (vmp == NULL)
		return;
	errno = 0;
	CHECK(vmem_xalloc(vmp, 0x101, 0, 0, 0, NULL, NULL, VM_NOSLEEP) ==
	    NULL && errno == ENOMEM);
	errno = 0;
	CHECK(vmem_xalloc(vmp, 0x100, 0, 0, 0, A(0x1001), A(0x1101),
	    VM_NOSLEEP) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(vmem_xalloc(vmp, 0x100, 0, 0, 0, A(0xfff), A(0x10ff),
	    VM_NOSLEEP) == NULL && errno == ENOMEM);
	p = vmem_xalloc(vmp, 0x100, 0, 0, 0, A(0x1000), A(0x1100), VM_NOSLEEP);
	CHECK(p == A(0x1000));
	vmem_xfree(vmp, p, 0x100);
	p = vmem_xalloc(vmp, 0xff, 0, 0, 0, A(0x1000), A(0x10ff), VM_NOSLEEP);
	CHECK(p == A(0x1000));
	vmem_xfree(vmp, p, 0xff);
	/* maxaddr is exclusive: the last byte is maxaddr - 1. */
	p = vmem_xalloc(vmp, 1, 0, 0, 0, NULL, A(0x1100),
	    VM_NOSLEEP | VM_ENDALLOC);
	CHECK(p == A(0x10ff));
	vmem_xfree(vmp, p, 1);
	p = vmem_xalloc(vmp, 1, 0, 0, 0, A(0x10ff), NULL, VM_NOSLEEP);
	CHECK(p == A(0x10ff));
	vmem_xfree(vmp, p, 1);
	/* minaddr alone, beyond the span. */
	errno = 0;
	CHECK(vmem_xalloc(vmp, 1, 0, 0, 0, A(0x1100), NULL, VM_NOSLEEP) ==
	    NULL && errno == ENOMEM);
	/* maxaddr alone, below the span. */
	errno = 0;
	CHECK(vmem_xalloc(vmp, 1, 0, 0, 0, NULL, A(0x1000), VM_NOSLEEP) ==
	    NULL && errno == ENOMEM);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/*
 * A window that cannot hold the request in any state of the arena (after
 * minaddr is rounded up and maxaddr down to the quantum) is overconstrained:
 * EINVAL, like an overconstrained nocross.  ENOMEM is for requests that
 * could succeed if enough were free.
 */
static void
test_window_too_small(void)
{
	vmem_t *vmp = mk("narrow", 0x1000, 0x1000, 16);

	if (vmp == NULL)
		return;
	errno = 0;
	CHECKF(vmem_xalloc(vmp, 0x100, 0, 0, 0, A(0x1000), A(0x1080),
	    VM_NOSLEEP) == NULL && errno == EINVAL, "errno %d", errno);
	errno = 0;
	CHECKF(vmem_xalloc(vmp, 0x20, 0, 0, 0, A(0x1008), A(0x1028),
	    VM_NOSLEEP) == NULL && errno == EINVAL, "errno %d", errno);
	errno = 0;
	/* The same window with room: only a full arena gives ENOMEM. */
	CHECKF(vmem_xalloc(vmp, 0x10, 0, 0, 0, A(0x1008), A(0x1028),
	    VM_NOSLEEP) == A(0x1010), "errno %d", errno);
	vmem_destroy(vmp);
}

/* Alignment and phase, one after another, filling an arena. */
static void
test_align_phase(void)
{
	vmem_t *vmp = mk("align", 0x10000, 0x10000, 16);
	void *p[64];
	int i, n = 0, ok = 1;

	if (vmp == NULL)
		return;
	for (i = 0; i < 64; i++) {
		p[i] = vmem_xalloc(vmp, 0x100, 0x1000, 0x30, 0, NULL, NULL,
		    VM_NOSLEEP);
		if (p[i] == NULL)
			break;
		n++;
		if (X(p[i]) % 0x1000 != 0x30 || X(p[i]) < 0x10000 ||
		    X(p[i]) + 0x100 > 0x20000)
			ok = 0;
	}
	CHECK(ok);
	CHECKF(n == 16, "%d aligned allocations fit, expected 16", n);
	/* Between them, unaligned space is still there. */
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 16 * 0x100);
	for (i = 0; i < n; i++)
		vmem_xfree(vmp, p[i], 0x100);
	/* An alignment as large as the arena, and larger. */
	p[0] = vmem_xalloc(vmp, 0x10, 0x10000, 0, 0, NULL, NULL, VM_NOSLEEP);
	CHECK(p[0] == A(0x10000));
	vmem_xfree(vmp, p[0], 0x10);
	errno = 0;
	CHECK(vmem_xalloc(vmp, 0x10, 0x10000, 0x10, 0x10000, NULL, NULL,
	    VM_NOSLEEP) == A(0x10010));
	vmem_xfree(vmp, A(0x10010), 0x10);
	errno = 0;
	CHECK(vmem_xalloc(vmp, 0x10, 0x100000, 0, 0, NULL, NULL,
	    VM_NOSLEEP) == NULL && errno == ENOMEM);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

/* nocross: a segment never straddles a multiple of nocross. */
static void
test_nocross(void)
{
	vmem_t *vmp = mk("nocross", 0x1000, 0x3000, 16);
	void *p, *q;
	int i, n = 0, ok = 1;
	void *all[64];

	if (vmp == NULL)
		return;
	/* Occupy [0x1000, 0x1f80): free space [0x1f80, 0x4000). */
	q = vmem_xalloc(vmp, 0xf80, 0, 0, 0, A(0x1000), A(0x1f80), VM_NOSLEEP);
	CHECK(q == A(0x1000));
	p = vmem_xalloc(vmp, 0x100, 0, 0, 0x1000, NULL, NULL, VM_NOSLEEP);
	CHECKF(p == A(0x2000), "got %p, not the next boundary", p);
	vmem_xfree(vmp, p, 0x100);
	/* Exactly nocross bytes fit only at a boundary. */
	p = vmem_xalloc(vmp, 0x1000, 0, 0, 0x1000, NULL, NULL, VM_NOSLEEP);
	CHECK(p == A(0x2000));
	vmem_xfree(vmp, p, 0x1000);
	/* 0x80 fits below the boundary. */
	p = vmem_xalloc(vmp, 0x80, 0, 0, 0x1000, NULL, NULL, VM_NOSLEEP);
	CHECK(p == A(0x1f80));
	vmem_xfree(vmp, p, 0x80);
	vmem_xfree(vmp, q, 0xf80);
	/* Fill with 0x300-byte pieces that may not cross 0x800. */
	for (i = 0; i < 64; i++) {
		all[i] = vmem_xalloc(vmp, 0x300, 0, 0, 0x800, NULL, NULL,
		    VM_NOSLEEP);
		if (all[i] == NULL)
			break;
		n++;
		if (crosses(X(all[i]), 0x300, 0x800))
			ok = 0;
	}
	CHECK(ok);
	CHECKF(n == 12, "%d pieces fit, expected 2 per 0x800", n);
	for (i = 0; i < n; i++)
		vmem_xfree(vmp, all[i], 0x300);
	/* Phase and nocross together: roundup(phase+size, align) fits. */
	p = vmem_xalloc(vmp, 0x300, 0x100, 0x80, 0x800, A(0x1600), NULL,
	    VM_NOSLEEP);
	CHECKF(p == A(0x1880), "got %p", p);
	vmem_xfree(vmp, p, 0x300);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
}

static void
expect_einval(vmem_t *vmp, const char *what, size_t size, size_t align,
    size_t phase, size_t nocross, uintptr_t minaddr, uintptr_t maxaddr)
{
	vmem_stat_t s0, s1;
	void *p;

	vmem_getstat(vmp, &s0);
	errno = 0;
	p = vmem_xalloc(vmp, size, align, phase, nocross, A(minaddr),
	    A(maxaddr), VM_NOSLEEP);
	CHECKF(p == NULL && errno == EINVAL, "%s: got %p errno %d", what, p,
	    errno);
	vmem_getstat(vmp, &s1);
	CHECKF(s1.vk_alloc == s0.vk_alloc && s1.vk_mem_inuse ==
	    s0.vk_mem_inuse, "%s changed the arena", what);
	if (p != NULL)
		vmem_xfree(vmp, p, size);
}

/* Invalid arguments: NULL with EINVAL, and nothing changes. */
static void
test_einval(void)
{
	vmem_t *vmp = mk("einval", 0x10000, 0x10000, 16);

	if (vmp == NULL)
		return;
	expect_einval(vmp, "size 0", 0, 0, 0, 0, 0, 0);
	expect_einval(vmp, "align 48 (not a power of two)", 16, 48, 0, 0, 0,
	    0);
	expect_einval(vmp, "align 8 (below the quantum)", 16, 8, 0, 0, 0, 0);
	expect_einval(vmp, "phase 8 (not a multiple of the quantum)", 16, 64,
	    8, 0, 0, 0);
	expect_einval(vmp, "phase == align", 16, 64, 64, 0, 0, 0);
	expect_einval(vmp, "phase > align", 16, 64, 128, 0, 0, 0);
	expect_einval(vmp, "phase with the default alignment", 16, 0, 16, 0,
	    0, 0);
	expect_einval(vmp, "nocross 48 (not a power of two)", 16, 0, 0, 48,
	    0, 0);
	expect_einval(vmp, "nocross 8 (below the quantum)", 8, 0, 0, 8, 0, 0);
	expect_einval(vmp, "align > nocross", 16, 128, 0, 64, 0, 0);
	expect_einval(vmp, "overconstrained: size > nocross", 128, 0, 0, 64,
	    0, 0);
	expect_einval(vmp, "overconstrained: phase + size > nocross", 48, 64,
	    32, 64, 0, 0);
	expect_einval(vmp, "minaddr == maxaddr", 16, 0, 0, 0, 0x11000,
	    0x11000);
	expect_einval(vmp, "minaddr > maxaddr", 16, 0, 0, 0, 0x12000,
	    0x11000);
	/* Just valid: nocross == roundup(phase + size, align). */
	{
		void *p = vmem_xalloc(vmp, 32, 64, 32, 64, NULL, NULL,
		    VM_NOSLEEP);

		CHECK(p != NULL && X(p) % 64 == 32);
		vmem_xfree(vmp, p, 32);
	}
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);

	/* Quantum 1: any power of two is a valid alignment. */
	vmp = mk("einval1", 1, 1000, 1);
	if (vmp == NULL)
		return;
	expect_einval(vmp, "align 3", 1, 3, 0, 0, 0, 0);
	expect_einval(vmp, "nocross 3", 1, 0, 0, 3, 0, 0);
	expect_einval(vmp, "phase 2 align 2", 1, 2, 2, 0, 0, 0);
	CHECK(X(vmem_xalloc(vmp, 1, 2, 1, 0, NULL, NULL, VM_NOSLEEP)) == 1);
	vmem_xfree(vmp, A(1), 1);
	vmem_destroy(vmp);
}

/* Invalid arguments are not fatal even with aborting on (the default). */
static void
einval_child(void *arg)
{
	vmem_t *vmp = vmem_create("einval_child", A(0x1000), 0x1000, 16,
	    NULL, NULL, NULL, 0, VM_SLEEP);

	if (vmem_xalloc(vmp, 16, 48, 0, 0, NULL, NULL, VM_NOSLEEP) != NULL ||
	    errno != EINVAL)
		_exit(1);
	if (vmem_alloc(vmp, 0, VM_NOSLEEP) != NULL || errno != EINVAL)
		_exit(2);
	if (vmem_create("bad", A(1), 16, 3, NULL, NULL, NULL, 0,
	    VM_SLEEP) != NULL || errno != EINVAL)
		_exit(3);
	_exit(0);
}

static void
test_einval_not_fatal(void)
{
	char out[1024];
	int st = test_in_child(einval_child, NULL, out, sizeof (out));

	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x, "
	    "stderr: %s", st, out);
}

/*
 * Constrained requests never import; the same request unconstrained
 * does.
 */
static int nimports;

static void *
counting_import(vmem_t *src, size_t size, int flag)
{
	nimports++;
	return (vmem_alloc(src, size, flag));
}

static void
test_constrained_no_import(void)
{
	vmem_t *src = mk("xsrc", 0x100000, 0x100000, 4096);
	vmem_t *vmp;
	void *p;

	if (src == NULL)
		return;
	vmp = vmem_create("xchild", NULL, 0, 4096, counting_import, vmem_free,
	    src, 0, VM_SLEEP);
	CHECK(vmp != NULL);
	if (vmp == NULL)
		return;
	nimports = 0;
	errno = 0;
	CHECK(vmem_xalloc(vmp, 4096, 0, 0, 0x10000, NULL, NULL, VM_NOSLEEP) ==
	    NULL && errno == ENOMEM);
	CHECK(vmem_xalloc(vmp, 4096, 0, 0, 0, A(0x100000), NULL,
	    VM_NOSLEEP) == NULL);
	CHECK(vmem_xalloc(vmp, 4096, 0, 0, 0, NULL, A(0x200000),
	    VM_NOSLEEP) == NULL);
	CHECK(nimports == 0);
	CHECK(vmem_size(src, VMEM_ALLOC) == 0);
	/* Alignment and phase alone may import. */
	p = vmem_xalloc(vmp, 4096, 0x10000, 0x2000, 0, NULL, NULL, VM_NOSLEEP);
	CHECK(p != NULL && X(p) % 0x10000 == 0x2000 && nimports >= 1);
	vmem_xfree(vmp, p, 4096);
	CHECK(vmem_size(src, VMEM_ALLOC) == 0);
	vmem_destroy(vmp);
	vmem_destroy(src);
}

/* Brute force: is there a fitting address in free segment [s, e)? */
static int
brute_fits(uintptr_t s, uintptr_t e, size_t size, size_t align, size_t phase,
    size_t nocross, uintptr_t lo, uintptr_t hi)
{
	uintptr_t t;

	if (s < lo)
		s = lo;
	if (hi != 0 && e > hi)
		e = hi;
	for (t = s; t < e && t % align != phase; t++)
		;
	for (; t < e && e - t >= size; t += align)
		if (!crosses(t, size, nocross))
			return (1);
	return (0);
}

typedef struct fsegs {
	int		n;
	uintptr_t	s[4096], e[4096];
} fsegs_t;

static fsegs_t fs;

static void
fs_cb(void *arg, void *start, size_t size)
{
	if (fs.n < 4096) {
		fs.s[fs.n] = X(start);
		fs.e[fs.n] = X(start) + size;
		fs.n++;
	}
}

/*
 * Random constraints (including unaligned windows and big alignments) on
 * a randomly fragmented quantum-1 arena: a request succeeds iff a brute
 * force search over the free segments finds a place, and every result
 * meets every constraint.
 */
static void
test_random_constraints(void)
{
	enum { SPAN = 1 << 14, LIVE = 300 };
	vmem_t *vmp = mk("xrandom", 1 << 20, SPAN, 1);
	static uintptr_t live[LIVE];
	static size_t livesz[LIVE];
	unsigned long long seed = 12345;
	int i, j, bad = 0, got = 0, missed = 0;

	if (vmp == NULL)
		return;
	memset(live, 0, sizeof (live));
	for (i = 0; i < 8000 && bad < 3; i++) {
		size_t size = 1 + test_rand(&seed) % 300;
		size_t align = (size_t)1 << test_rand(&seed) % 12;
		size_t phase = test_rand(&seed) % 2 ? test_rand(&seed) % align
		    : 0;
		size_t nocross = 0, need;
		uintptr_t lo = 0, hi = 0;
		int slot = (int)(test_rand(&seed) % LIVE), want = 0;
		void *p;

		if (live[slot] != 0) {
			vmem_xfree(vmp, A(live[slot]), livesz[slot]);
			live[slot] = 0;
			continue;
		}
		need = (phase + size + align - 1) & ~(align - 1);
		if (test_rand(&seed) % 3 == 0) {
			nocross = align;
			while (nocross < need)
				nocross <<= 1;
			nocross <<= test_rand(&seed) % 3;
		}
		if (test_rand(&seed) % 2)
			lo = (1 << 20) + test_rand(&seed) % SPAN;
		if (test_rand(&seed) % 2)	/* never narrower than size */
			hi = lo + size + test_rand(&seed) % SPAN;
		if (hi == 0 && lo == 0 && test_rand(&seed) % 2)
			hi = (1 << 20) + 1 + test_rand(&seed) % SPAN;
		fs.n = 0;
		vmem_walk(vmp, VMEM_FREE, fs_cb, NULL);
		for (j = 0; j < fs.n && !want; j++)
			want = brute_fits(fs.s[j], fs.e[j], size, align, phase,
			    nocross, lo, hi);
		errno = 0;
		p = vmem_xalloc(vmp, size, align, phase, nocross, A(lo), A(hi),
		    VM_NOSLEEP | (test_rand(&seed) % 4 == 0 ? VM_ENDALLOC :
		    test_rand(&seed) % 3 == 0 ? VM_BESTFIT : 0));
		if (p == NULL) {
			missed++;
			if (want || errno != ENOMEM) {
				bad++;
				CHECKF(0, "xalloc(%zu, align %zu, phase %zu, "
				    "nocross %zu, [%#lx, %#lx)) failed (errno "
				    "%d) though a place exists", size, align,
				    phase, nocross, (unsigned long)lo,
				    (unsigned long)hi, errno);
			}
			continue;
		}
		got++;
		if (!want || X(p) % align != phase || X(p) < lo ||
		    (hi != 0 && X(p) + size > hi) ||
		    crosses(X(p), size, nocross) ||
		    !vmem_contains(vmp, p, size)) {
			bad++;
			CHECKF(0, "xalloc(%zu, align %zu, phase %zu, nocross "
			    "%zu, [%#lx, %#lx)) = %p violates a constraint "
			    "(brute force: %d)", size, align, phase, nocross,
			    (unsigned long)lo, (unsigned long)hi, p, want);
		}
		live[slot] = X(p);
		livesz[slot] = size;
	}
	CHECKF(got > 1000 && missed > 200, "%d successes, %d failures: the "
	    "test did not exercise both", got, missed);
	for (i = 0; i < LIVE; i++)
		if (live[i] != 0)
			vmem_xfree(vmp, A(live[i]), livesz[i]);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0);
	fs.n = 0;
	vmem_walk(vmp, VMEM_FREE, fs_cb, NULL);
	CHECK(fs.n == 1);
	vmem_destroy(vmp);
}

int
main(int argc, char **argv)
{
	RUN(test_paper_example);
	RUN(test_window_boundaries);
	RUN(test_window_too_small);
	RUN(test_align_phase);
	RUN(test_nocross);
	RUN(test_einval);
	RUN(test_einval_not_fatal);
	RUN(test_constrained_no_import);
	RUN(test_random_constraints);
	return (test_summary(argv[0]));
}
