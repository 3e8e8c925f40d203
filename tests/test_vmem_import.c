/*
 * test_vmem_import.c - importing from a source arena (paper claim D17 and
 * section 4.3.3): spans imported only when needed, coalescing back into
 * whole spans that return to the source, vmem_xcreate importers that
 * enlarge the import, failing importers, aligned requests, chains of
 * arenas, and vmem_destroy giving imported spans back.
 */
#include "test.h"
#include <stdint.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))
#define	X(p)	((uintptr_t)(p))

static vmem_stat_t
stat_of(vmem_t *vmp)
{
	vmem_stat_t st;

	memset(&st, 0xa5, sizeof (st));
	CHECK(vmem_getstat(vmp, &st) == 0);
	return (st);
}

static vmem_t *
mk_parent(const char *name, size_t size, size_t q)
{
	vmem_t *vmp = vmem_create(name, A(0x10000000), size, q, NULL, NULL,
	    NULL, 0, VM_SLEEP);

	CHECKF(vmp != NULL, "vmem_create(%s) errno %d", name, errno);
	return (vmp);
}

/* Counting wrappers around vmem_alloc/vmem_free as the import pair. */
static int n_af, n_ff, af_fail, af_last_flag;
static size_t af_last_size, ff_bytes;

static void *
count_af(vmem_t *src, size_t size, int flag)
{
	n_af++;
	af_last_size = size;
	af_last_flag = flag;
	if (af_fail)
		return (NULL);
	return (vmem_alloc(src, size, flag));
}

static void
count_ff(vmem_t *src, void *addr, size_t size)
{
	n_ff++;
	ff_bytes += size;
	vmem_free(src, addr, size);
}

/* The tagged import pair, counted (vmem_set_tagged_import). */
static void *
count_taf(vmem_t *src, size_t size, size_t align, int flag, void **tagp)
{
	n_af++;
	af_last_size = size;
	return (vmem_xalloc_tag(src, size, align, flag, tagp));
}

static void
count_tff(vmem_t *src, void *addr, size_t size, void *tag)
{
	n_ff++;
	ff_bytes += size;
	vmem_xfree_tag(src, addr, size, tag);
}

static void
reset_counts(void)
{
	n_af = n_ff = af_fail = af_last_flag = 0;
	af_last_size = ff_bytes = 0;
}

/*
 * D17: a child importing from a parent with vmem_alloc/vmem_free; after
 * everything is freed the parent has nothing in use and the child no span.
 */
static void
test_d17_span_return(void)
{
	enum { N = 500 };
	vmem_t *parent = mk_parent("d17_parent", 64 << 20, 4096);
	vmem_t *child;
	static void *p[N];
	static size_t sz[N];
	unsigned long long seed = 17;
	vmem_stat_t st;
	int i, ok = 1;

	if (parent == NULL)
		return;
	child = vmem_create("d17_child", NULL, 0, 4096, vmem_alloc, vmem_free,
	    parent, 0, VM_SLEEP);
	CHECK(child != NULL);
	if (child == NULL)
		return;
	for (i = 0; i < N; i++) {
		sz[i] = 4096 * (1 + test_rand(&seed) % 16);
		p[i] = vmem_alloc(child, sz[i], VM_NOSLEEP);
		if (p[i] == NULL || !vmem_contains(parent, p[i], sz[i]))
			ok = 0;
	}
	CHECK(ok);
	st = stat_of(child);
	CHECK(st.vk_import >= 1 && st.vk_nspans >= 1 && st.vk_mem_import ==
	    st.vk_mem_total);
	CHECK(vmem_size(parent, VMEM_ALLOC) == st.vk_mem_total);
	/* Free in a random order. */
	for (i = N - 1; i > 0; i--) {
		int j = (int)(test_rand(&seed) % (unsigned)(i + 1));
		void *tp = p[i];
		size_t ts = sz[i];

		p[i] = p[j];
		sz[i] = sz[j];
		p[j] = tp;
		sz[j] = ts;
	}
	for (i = 0; i < N; i++)
		vmem_free(child, p[i], sz[i]);
	st = stat_of(child);
	CHECKF(st.vk_nspans == 0 && st.vk_mem_total == 0 &&
	    st.vk_mem_import == 0, "child keeps %llu spans, %llu bytes",
	    (unsigned long long)st.vk_nspans,
	    (unsigned long long)st.vk_mem_total);
	CHECK(st.vk_span_release == st.vk_import);
	CHECK(stat_of(parent).vk_mem_inuse == 0);
	CHECK(vmem_verify(child) == 0 && vmem_verify(parent) == 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* Import happens only when existing free space cannot serve. */
static size_t enlarge_to;

static void *
enlarging_import(vmem_t *src, size_t *sizep, int flag)
{
	n_af++;
	af_last_size = *sizep;
	if (*sizep < enlarge_to)
		*sizep = enlarge_to;
	return (vmem_alloc(src, *sizep, flag));
}

static void
test_import_only_when_needed(void)
{
	vmem_t *parent = mk_parent("need_parent", 64 << 20, 4096);
	vmem_t *child;
	void *p[300];
	vmem_stat_t st;
	int i, ok = 1;
	int spans_seen;

	if (parent == NULL)
		return;
	reset_counts();
	enlarge_to = 1 << 20;
	child = vmem_xcreate("need_child", NULL, 0, 4096, enlarging_import,
	    count_ff, parent, 0, VM_SLEEP);
	CHECK(child != NULL);
	if (child == NULL)
		return;
	/* The first import is enlarged to 1 MiB: 256 pages serve 256. */
	for (i = 0; i < 256; i++) {
		p[i] = vmem_alloc(child, 4096, VM_NOSLEEP);
		if (p[i] == NULL)
			ok = 0;
	}
	CHECK(ok);
	CHECKF(n_af == 1, "%d imports for 256 pages of a 1 MiB import",
	    n_af);
	CHECK(af_last_size >= 4096 && af_last_size < (1 << 20));
	st = stat_of(child);
	CHECK(st.vk_import == 1 && st.vk_mem_total == (1 << 20) &&
	    st.vk_mem_import == (1 << 20) && st.vk_nspans == 1);
	/* The 257th needs a new span. */
	p[256] = vmem_alloc(child, 4096, VM_NOSLEEP);
	CHECK(p[256] != NULL && n_af == 2);
	/* Free one page of the first span: the next page comes from it. */
	vmem_free(child, p[10], 4096);
	p[10] = vmem_alloc(child, 4096, VM_NOSLEEP);
	CHECK(p[10] != NULL && n_af == 2);
	spans_seen = (int)stat_of(child).vk_nspans;
	CHECK(spans_seen == 2);
	for (i = 0; i <= 256; i++)
		vmem_free(child, p[i], 4096);
	CHECK(n_ff == 2 && ff_bytes == 2 << 20);
	CHECK(stat_of(child).vk_nspans == 0);
	CHECK(vmem_size(parent, VMEM_ALLOC) == 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* An importer that fails: NULL with ENOMEM, counted. */
static void
test_import_failure(void)
{
	vmem_t *parent = mk_parent("fail_parent", 1 << 20, 4096);
	vmem_t *child;
	vmem_stat_t st;
	void *p;

	if (parent == NULL)
		return;
	reset_counts();
	child = vmem_create("fail_child", NULL, 0, 4096, count_af, count_ff,
	    parent, 0, VM_SLEEP);
	CHECK(child != NULL);
	if (child == NULL)
		return;
	af_fail = 1;
	errno = 0;
	p = vmem_alloc(child, 8192, VM_NOSLEEP);
	CHECK(p == NULL && errno == ENOMEM && n_af >= 1);
	CHECK(af_last_flag & VM_NOSLEEP);	/* the importer may not sleep */
	st = stat_of(child);
	CHECK(st.vk_import_fail >= 1 && st.vk_import == 0 && st.vk_fail == 1 &&
	    st.vk_nspans == 0);
	/* The source itself runs out: the same. */
	af_fail = 0;
	errno = 0;
	p = vmem_alloc(child, 2 << 20, VM_NOSLEEP);
	CHECK(p == NULL && errno == ENOMEM);
	p = vmem_alloc(child, 1 << 20, VM_NOSLEEP);
	CHECK(p != NULL && stat_of(child).vk_import == 1);
	errno = 0;
	CHECK(vmem_alloc(child, 4096, VM_NOSLEEP) == NULL && errno == ENOMEM);
	vmem_free(child, p, 1 << 20);
	CHECK(vmem_size(parent, VMEM_ALLOC) == 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* A large alignment is met inside an import (it is unconstrained). */
static void
test_import_aligned(void)
{
	vmem_t *parent = mk_parent("align_parent", 64 << 20, 4096);
	vmem_t *child;
	void *p[8];
	int i, ok = 1;

	if (parent == NULL)
		return;
	child = vmem_create("align_child", NULL, 0, 4096, vmem_alloc,
	    vmem_free, parent, 0, VM_SLEEP);
	if (child == NULL)
		return;
	/* Misalign the parent first. */
	(void) vmem_alloc(parent, 4096, VM_NOSLEEP);
	for (i = 0; i < 8; i++) {
		p[i] = vmem_xalloc(child, 8192, 1 << 20, (size_t)i * 4096, 0,
		    NULL, NULL, VM_NOSLEEP);
		if (p[i] == NULL || X(p[i]) % (1 << 20) != (size_t)i * 4096)
			ok = 0;
	}
	CHECK(ok);
	for (i = 0; i < 8; i++)
		if (p[i] != NULL)
			vmem_xfree(child, p[i], 8192);
	CHECK(stat_of(child).vk_nspans == 0);
	CHECK(vmem_size(parent, VMEM_ALLOC) == 4096);
	vmem_free(parent, A(0x10000000), 4096);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* A child with its own span uses it before importing. */
static void
test_own_span_first(void)
{
	vmem_t *parent = mk_parent("own_parent", 1 << 20, 4096);
	vmem_t *child;
	void *p, *q;

	if (parent == NULL)
		return;
	reset_counts();
	child = vmem_create("own_child", A(0x1000), 0x4000, 4096, count_af,
	    count_ff, parent, 0, VM_SLEEP);
	if (child == NULL)
		return;
	p = vmem_alloc(child, 0x4000, VM_NOSLEEP);
	CHECK(p == A(0x1000) && n_af == 0);
	q = vmem_alloc(child, 0x1000, VM_NOSLEEP);
	CHECK(q != NULL && n_af == 1 && vmem_contains(parent, q, 0x1000));
	vmem_free(child, q, 0x1000);
	CHECK(n_ff == 1);
	vmem_free(child, p, 0x4000);
	CHECK(n_ff == 1);		/* the own span stays */
	CHECK(stat_of(child).vk_nspans == 1);
	CHECK(vmem_size(child, VMEM_FREE) == 0x4000);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* A source with a bigger quantum; a child of quantum 1 (IDs). */
static void
test_quantum_mismatch(void)
{
	vmem_t *parent = mk_parent("qm_parent", 1 << 20, 4096);
	vmem_t *child;
	void *p[100];
	int i, ok = 1;

	if (parent == NULL)
		return;
	child = vmem_create("qm_child", NULL, 0, 1, vmem_alloc, vmem_free,
	    parent, 0, VM_SLEEP);
	if (child == NULL)
		return;
	for (i = 0; i < 100; i++) {
		p[i] = vmem_alloc(child, 10, VM_NOSLEEP);
		if (p[i] == NULL)
			ok = 0;
	}
	CHECK(ok);
	CHECKF(stat_of(child).vk_import == 1, "%llu imports for 1000 IDs",
	    (unsigned long long)stat_of(child).vk_import);
	CHECK(vmem_size(parent, VMEM_ALLOC) == 4096);
	for (i = 0; i < 100; i++)
		vmem_free(child, p[i], 10);
	CHECK(vmem_size(parent, VMEM_ALLOC) == 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* Three levels: every level returns its spans when the leaf empties. */
static void
test_three_levels(void)
{
	vmem_t *top = mk_parent("top", 256 << 20, 4096);
	vmem_t *mid, *leaf;
	void *p[200];
	int i, ok = 1;

	if (top == NULL)
		return;
	mid = vmem_create("mid", NULL, 0, 4096, vmem_alloc, vmem_free, top, 0,
	    VM_SLEEP);
	leaf = vmem_create("leaf", NULL, 0, 64, vmem_alloc, vmem_free, mid, 0,
	    VM_SLEEP);
	CHECK(mid != NULL && leaf != NULL);
	if (mid == NULL || leaf == NULL)
		return;
	for (i = 0; i < 200; i++) {
		p[i] = vmem_alloc(leaf, 64 * (size_t)(1 + i % 100), VM_NOSLEEP);
		if (p[i] == NULL || !vmem_contains(top, p[i], 64))
			ok = 0;
	}
	CHECK(ok);
	CHECK(vmem_size(top, VMEM_ALLOC) > 0 && vmem_size(mid, VMEM_ALLOC) > 0);
	for (i = 0; i < 200; i++)
		vmem_free(leaf, p[i], 64 * (size_t)(1 + i % 100));
	CHECK(vmem_size(leaf, VMEM_ALLOC | VMEM_FREE) == 0);
	CHECK(vmem_size(mid, VMEM_ALLOC | VMEM_FREE) == 0);
	CHECK(vmem_size(top, VMEM_ALLOC) == 0);
	vmem_destroy(leaf);
	vmem_destroy(mid);
	vmem_destroy(top);
}

/* vmem_destroy with live allocations reports and gives spans back. */
static void
destroy_child(void *arg)
{
	vmem_t *parent = vmem_create("dparent", A(0x10000000), 1 << 20, 4096,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = vmem_create("dchild", NULL, 0, 4096, count_af,
	    count_ff, parent, 0, VM_SLEEP);
	int i;

	reset_counts();
	for (i = 0; i < 10; i++)
		(void) vmem_alloc(child, 8192, VM_NOSLEEP);
	vmem_destroy(child);
	if (n_ff != n_af)
		_exit(10);
	if (vmem_size(parent, VMEM_ALLOC) != 0)
		_exit(11);
	_exit(0);
}

static void
test_destroy_returns_spans(void)
{
	char out[2048];
	int st = test_in_child(destroy_child, NULL, out, sizeof (out));

	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x (10: "
	    "spans kept, 11: parent not empty)", st);
	CHECKF(strstr(out, "leaked") != NULL && strstr(out, "dchild") != NULL,
	    "stderr: %s", out);
}

/*
 * An importing arena used with VM_NEXTFIT must still give a span back
 * once everything in it is free.
 */
static void
test_nextfit_span_release(void)
{
	vmem_t *parent = mk_parent("nf_parent", 1 << 20, 4096);
	vmem_t *child;
	void *p, *q;

	if (parent == NULL)
		return;
	reset_counts();
	enlarge_to = 0x10000;
	child = vmem_xcreate("nf_child", NULL, 0, 4096, enlarging_import,
	    count_ff, parent, 0, VM_SLEEP);
	if (child == NULL)
		return;
	p = vmem_alloc(child, 4096, VM_NOSLEEP | VM_NEXTFIT);
	q = vmem_alloc(child, 4096, VM_NOSLEEP | VM_NEXTFIT);
	CHECK(p != NULL && q != NULL && n_af == 1);
	vmem_free(child, p, 4096);
	vmem_free(child, q, 4096);
	CHECKF(n_ff == 1 && vmem_size(parent, VMEM_ALLOC) == 0,
	    "fully free imported span kept: %d releases, parent has %zu in use",
	    n_ff, vmem_size(parent, VMEM_ALLOC));
	CHECK(stat_of(child).vk_nspans == 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/*
 * A next-fit request that had to import leaves the rotor after what it
 * allocated, like any other next-fit allocation.
 */
static void
test_nextfit_rotor_after_import(void)
{
	vmem_t *parent = mk_parent("nfr_parent", 1 << 20, 4096);
	vmem_t *child;
	void *n1, *x, *n2, *n3;

	if (parent == NULL)
		return;
	reset_counts();
	enlarge_to = 0x10000;
	child = vmem_xcreate("nfr_child", A(0x1000), 0x4000, 4096,
	    enlarging_import, count_ff, parent, 0, VM_SLEEP);
	if (child == NULL)
		return;
	n1 = vmem_alloc(child, 0x1000, VM_NOSLEEP | VM_NEXTFIT);
	x = vmem_xalloc(child, 0x3000, 0, 0, 0, A(0x2000), A(0x5000),
	    VM_NOSLEEP);
	CHECK(n1 == A(0x1000) && x == A(0x2000) && n_af == 0);
	n2 = vmem_alloc(child, 0x1000, VM_NOSLEEP | VM_NEXTFIT);
	CHECK(n2 != NULL && n_af == 1 && vmem_contains(parent, n2, 0x1000));
	vmem_xfree(child, x, 0x3000);
	/* The rotor is just past n2, with room: continue there. */
	n3 = vmem_alloc(child, 0x1000, VM_NOSLEEP | VM_NEXTFIT);
	CHECKF(n3 == (char *)n2 + 0x1000, "next fit after an import at %p "
	    "gave %p", n2, n3);
	vmem_free(child, n1, 0x1000);
	vmem_free(child, n2, 0x1000);
	if (n3 != NULL)
		vmem_free(child, n3, 0x1000);
	CHECK(vmem_size(parent, VMEM_ALLOC) == 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

static void
free_walked(void *arg, void *addr, size_t size)
{
	vmem_free(arg, addr, size);
}

/*
 * Tagged imports (umem_default's from the heap): spans come from the
 * source with vmem_xalloc_tag and go back with their tags, whichever way
 * a span empties (a free, a reentrant walk's free, vmem_destroy of an
 * arena still holding some); the source's hash is never used, and every
 * tag given back matches (a wrong one aborts: bad free).  An aligned
 * request's import is aligned by the source: no room to align in (the
 * slack pieces piled up as free segments that no aligned slab fitted,
 * and every slab's creation walked them all).  The child's own tagged
 * allocations pass straight through to the source (exit 16, 17).
 */
static void
tagged_child(void *arg)
{
	vmem_t *par = mk_parent("tparent", 0x100000, 4096);
	/* No plain pair: the tagged one alone imports and gives back. */
	vmem_t *vmp = vmem_create("tchild", NULL, 0, 4096, NULL, NULL, par, 0,
	    VM_SLEEP);
	void *p, *q, *r;

	if (par == NULL || vmp == NULL)
		_exit(10);
	reset_counts();
	vmem_set_tagged_import(vmp, count_taf, count_tff);
	p = vmem_alloc(vmp, 3 * 4096, VM_SLEEP);
	q = vmem_xalloc(vmp, 4096, 8 * 4096, 0, 0, NULL, NULL, VM_SLEEP);
	if (q == NULL || ((uintptr_t)q & (8 * 4096 - 1)) != 0 ||
	    af_last_size != 4096)
		_exit(15);
	r = vmem_alloc(vmp, 2 * 4096, VM_SLEEP);
	if (p == NULL || r == NULL || n_af != 3 ||
	    vmem_size(par, VMEM_ALLOC) != vmem_size(vmp, VMEM_ALLOC |
	    VMEM_FREE) || stat_of(par).vk_nsegs_alloc != (uint64_t)n_af ||
	    vmem_verify(par) != 0)
		_exit(11);
	vmem_free(vmp, p, 3 * 4096);		/* its span goes back */
	if (n_ff != 1 || ff_bytes != 3 * 4096 || vmem_verify(par) != 0)
		_exit(12);
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT, free_walked, vmp);
	if (n_ff != n_af || vmem_size(par, VMEM_ALLOC) != 0)
		_exit(13);
	/*
	 * The child's own tagged allocations go straight to the source: its
	 * range and tag, aligned there, no span or segment in the child; the
	 * child counts them, and the free goes straight back.
	 */
	reset_counts();
	{
		void *t1 = NULL, *t2 = NULL;
		void *a = vmem_xalloc_tag(vmp, 4096, 16 * 4096, VM_SLEEP, &t1);
		void *b = vmem_xalloc_tag(vmp, 2 * 4096, 0, VM_SLEEP, &t2);
		vmem_stat_t cs = stat_of(vmp);

		if (a == NULL || b == NULL || n_af != 2 ||
		    ((uintptr_t)a & (16 * 4096 - 1)) != 0 ||
		    cs.vk_nspans != 0 || cs.vk_nsegs_alloc != 0 ||
		    vmem_size(vmp, VMEM_ALLOC) != 3 * 4096 ||
		    vmem_size(vmp, VMEM_FREE) != 0 ||
		    stat_of(par).vk_nsegs_alloc != 2 ||
		    vmem_size(par, VMEM_ALLOC) != 3 * 4096 ||
		    vmem_verify(vmp) != 0 || vmem_verify(par) != 0)
			_exit(16);
		vmem_xfree_tag(vmp, a, 4096, t1);
		vmem_xfree_tag(vmp, b, 2 * 4096, t2);
		if (n_ff != 2 || ff_bytes != 3 * 4096 ||
		    vmem_size(vmp, VMEM_ALLOC) != 0 ||
		    vmem_size(par, VMEM_ALLOC) != 0 ||
		    vmem_verify(vmp) != 0 || vmem_verify(par) != 0)
			_exit(17);
	}
	(void) vmem_alloc(vmp, 4096, VM_SLEEP);	/* leaked into destroy */
	vmem_destroy(vmp);
	if (n_ff != n_af || vmem_size(par, VMEM_ALLOC) != 0 ||
	    vmem_verify(par) != 0)
		_exit(14);
	_exit(0);
}

static void
test_tagged_import(void)
{
	char out[2048];
	int st = test_in_child(tagged_child, NULL, out, sizeof (out));

	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x (exit "
	    "codes: see tagged_child), stderr: %s", st, out);
}

int
main(int argc, char **argv)
{
	RUN(test_d17_span_return);
	RUN(test_import_only_when_needed);
	RUN(test_import_failure);
	RUN(test_import_aligned);
	RUN(test_own_span_first);
	RUN(test_quantum_mismatch);
	RUN(test_three_levels);
	RUN(test_destroy_returns_spans);
	RUN(test_nextfit_span_release);
	RUN(test_nextfit_rotor_after_import);
	RUN(test_tagged_import);
	return (test_summary(argv[0]));
}
