/*
 * test_vmem_neg.c - misuse (paper claim D16): frees of unallocated
 * addresses, double frees, frees inside a segment, frees to the wrong
 * arena and with the wrong size are reported (naming the arena) and abort
 * by default; with vmem_set_abort(0) they are counted and ignored, and
 * vmem_last_error() returns the report.  Also VM_PANIC.
 */
#include "test.h"
#include <stdint.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	A(x)	((void *)(uintptr_t)(x))

static vmem_t *
mk(const char *name)
{
	return (vmem_create(name, A(0x10000), 0x10000, 16, NULL, NULL, NULL,
	    0, VM_SLEEP));
}

/* An arena of 4 KiB quanta importing from *srcp, a 1 MiB arena. */
static vmem_t *
mk_importer(const char *name, const char *srcname, vmem_t **srcp)
{
	*srcp = vmem_create(srcname, A(0x100000), 0x100000, 4096, NULL, NULL,
	    NULL, 0, VM_SLEEP);
	if (*srcp == NULL)
		return (NULL);
	return (vmem_create(name, NULL, 0, 4096, vmem_alloc, vmem_free, *srcp,
	    0, VM_SLEEP));
}

static vmem_stat_t
stat_of(vmem_t *vmp)
{
	vmem_stat_t st;

	memset(&st, 0xa5, sizeof (st));
	CHECK(vmem_getstat(vmp, &st) == 0);
	return (st);
}

/* Before anything has gone wrong there is no last error. */
static void
test_no_error_yet(void)
{
	char buf[64] = "untouched";

	CHECK(vmem_last_error(buf, sizeof (buf)) == 0);
}

static void
bad_unallocated(void *arg)
{
	vmem_t *vmp = mk("neg_arena_a");

	vmem_free(vmp, A(0x10100), 16);
}

static void
bad_double(void *arg)
{
	vmem_t *vmp = mk("neg_arena_b");
	void *p = vmem_alloc(vmp, 64, VM_NOSLEEP);
	void *q = vmem_alloc(vmp, 64, VM_NOSLEEP);

	vmem_free(vmp, p, 64);
	vmem_free(vmp, p, 64);
	(void) q;
}

static void
bad_double_xfree(void *arg)
{
	vmem_t *vmp = mk("neg_arena_c");
	void *p = vmem_xalloc(vmp, 64, 64, 0, 0, NULL, NULL, VM_NOSLEEP);

	vmem_xfree(vmp, p, 64);
	vmem_xfree(vmp, p, 64);
}

static void
bad_interior(void *arg)
{
	vmem_t *vmp = mk("neg_arena_d");
	char *p = vmem_alloc(vmp, 256, VM_NOSLEEP);

	vmem_free(vmp, p + 16, 16);
}

static void
bad_wrong_size(void *arg)
{
	vmem_t *vmp = mk("neg_arena_e");
	void *p = vmem_alloc(vmp, 64, VM_NOSLEEP);

	vmem_free(vmp, p, 128);
}

static void
bad_wrong_size_smaller(void *arg)
{
	vmem_t *vmp = mk("neg_arena_f");
	void *p = vmem_alloc(vmp, 64, VM_NOSLEEP);

	vmem_free(vmp, p, 48);
}

static void
bad_wrong_arena(void *arg)
{
	vmem_t *a = mk("neg_arena_g");
	vmem_t *b = vmem_create("neg_other", A(0x40000), 0x10000, 16, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	void *p = vmem_alloc(a, 64, VM_NOSLEEP);

	vmem_free(b, p, 64);
	(void) b;
}

static void
bad_tag_untagged_free(void *arg)
{
	vmem_t *vmp = mk("neg_arena_i");
	void *tag = NULL;
	void *p = vmem_xalloc_tag(vmp, 64, 64, VM_NOSLEEP, &tag);

	vmem_xfree(vmp, p, 64);		/* not in the hash */
}

static void
bad_tag_wrong_size(void *arg)
{
	vmem_t *vmp = mk("neg_arena_j");
	void *tag = NULL;
	void *p = vmem_xalloc_tag(vmp, 64, 64, VM_NOSLEEP, &tag);

	vmem_xfree_tag(vmp, p, 128, tag);
}

static void
bad_panic(void *arg)
{
	vmem_t *vmp = mk("neg_arena_h");

	(void) vmem_alloc(vmp, 0x20000, VM_NOSLEEP | VM_PANIC);
	_exit(0);
}

typedef struct abort_case {
	const char	*name;
	void		(*fn)(void *);
	const char	*what;		/* text the report must contain */
	const char	*arena;
} abort_case_t;

/* Each misuse aborts by default, after a report naming the arena. */
static void
test_aborts(void)
{
	static const abort_case_t cases[] = {
		{ "unallocated", bad_unallocated, "bad free", "neg_arena_a" },
		{ "double free", bad_double, "bad free", "neg_arena_b" },
		{ "double xfree", bad_double_xfree, "bad free", "neg_arena_c" },
		{ "interior", bad_interior, "bad free", "neg_arena_d" },
		{ "wrong size", bad_wrong_size, "wrong size", "neg_arena_e" },
		{ "smaller size", bad_wrong_size_smaller, "wrong size",
		    "neg_arena_f" },
		{ "wrong arena", bad_wrong_arena, "bad free", "neg_other" },
		{ "VM_PANIC", bad_panic, "neg_arena_h", "neg_arena_h" },
		{ "tagged, freed untagged", bad_tag_untagged_free, "bad free",
		    "neg_arena_i" },
		{ "tagged, wrong size", bad_tag_wrong_size, "bad free",
		    "neg_arena_j" },
	};
	char out[4096];
	size_t i;

	for (i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
		int st = test_in_child(cases[i].fn, NULL, out, sizeof (out));

		CHECKF(CHILD_ABORTED(st), "%s: status %#x, stderr: %s",
		    cases[i].name, st, out);
		CHECKF(strstr(out, cases[i].what) != NULL &&
		    strstr(out, cases[i].arena) != NULL, "%s: stderr \"%s\" "
		    "lacks \"%s\" or \"%s\"", cases[i].name, out,
		    cases[i].what, cases[i].arena);
	}
}

/* Non-fatal mode: reported, counted, ignored; nothing is corrupted. */
static void
test_nonfatal(void)
{
	vmem_t *vmp = mk("neg_soft");
	char buf[512], small[8];
	void *p, *q;
	vmem_stat_t st;
	size_t len;
	int prev;

	if (vmp == NULL)
		return;
	prev = vmem_set_abort(0);
	CHECK(prev == 1);
	CHECK(vmem_set_abort(0) == 0);

	p = vmem_alloc(vmp, 64, VM_NOSLEEP);
	q = vmem_alloc(vmp, 64, VM_NOSLEEP);
	vmem_free(vmp, A(0x18000), 16);		/* never allocated */
	st = stat_of(vmp);
	CHECK(st.vk_bad_free == 1 && st.vk_wrong_size == 0);
	len = vmem_last_error(buf, sizeof (buf));
	CHECKF(len > 0 && len == strlen(buf) && strstr(buf, "bad free") &&
	    strstr(buf, "neg_soft"), "last error (%zu) \"%s\"", len, buf);
	/* Truncated copy, full length returned. */
	CHECK(vmem_last_error(small, sizeof (small)) == len);
	CHECK(strlen(small) == sizeof (small) - 1 &&
	    strncmp(small, buf, sizeof (small) - 1) == 0);

	vmem_free(vmp, p, 128);			/* wrong size: ignored */
	st = stat_of(vmp);
	CHECK(st.vk_wrong_size == 1 && st.vk_nsegs_alloc == 2 &&
	    st.vk_mem_inuse == 128 && st.vk_free == 0);
	CHECK(vmem_last_error(buf, sizeof (buf)) > 0 &&
	    strstr(buf, "wrong size") && strstr(buf, "neg_soft"));
	vmem_free(vmp, (char *)q + 16, 16);	/* interior */
	vmem_free(vmp, p, 64);			/* right: works */
	vmem_free(vmp, p, 64);			/* double */
	st = stat_of(vmp);
	CHECK(st.vk_bad_free == 3 && st.vk_wrong_size == 1 && st.vk_free == 1 &&
	    st.vk_nsegs_alloc == 1 && st.vk_mem_inuse == 64);
	CHECK(vmem_verify(vmp) == 0);
	vmem_free(vmp, q, 64);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	st = stat_of(vmp);
	CHECK(st.vk_nsegs_free == 1);
	CHECK(vmem_verify(vmp) == 0);
	vmem_destroy(vmp);
	CHECK(vmem_set_abort(prev) == 0);
}

/* Bad frees in non-fatal mode leave an importing arena intact too. */
static void
test_nonfatal_import(void)
{
	vmem_t *src, *vmp = mk_importer("neg_imp", "neg_src", &src);
	int prev;
	void *p;

	if (src == NULL || vmp == NULL)
		return;
	prev = vmem_set_abort(0);
	p = vmem_alloc(vmp, 4096, VM_NOSLEEP);
	vmem_free(vmp, p, 4096);
	vmem_free(vmp, p, 4096);		/* span is gone: bad free */
	CHECK(stat_of(vmp).vk_bad_free == 1);
	CHECK(vmem_size(src, VMEM_ALLOC) == 0);
	CHECK(vmem_verify(vmp) == 0 && vmem_verify(src) == 0);
	vmem_set_abort(prev);
	vmem_destroy(vmp);
	vmem_destroy(src);
}

/*
 * Tagged segments (the slab layer's): aligned, counted and walked like any
 * allocation, in no hash; freed only with their tag, and every mismatch
 * (address, size, a stale tag, a plain vmem_xfree) is a bad free that
 * changes nothing.  An imported span goes back when its last tagged
 * segment does.
 */
static void
test_tagged(void)
{
	vmem_t *src, *vmp = mk_importer("tag_imp", "tag_src", &src);
	void *t1 = NULL, *t2 = NULL, *t3 = NULL, *h;
	char *p1, *p2;
	vmem_stat_t st;
	int prev;

	if (src == NULL || vmp == NULL)
		return;
	prev = vmem_set_abort(0);
	p1 = vmem_xalloc_tag(vmp, 3 * 4096, 4 * 4096, VM_NOSLEEP, &t1);
	p2 = vmem_xalloc_tag(vmp, 4096, 0, VM_NOSLEEP, &t2);
	h = vmem_alloc(vmp, 4096, VM_NOSLEEP);		/* hashed, beside */
	CHECK(p1 != NULL && p2 != NULL && h != NULL && t1 != NULL &&
	    t2 != NULL && t1 != t2);
	CHECK(((uintptr_t)p1 & (4 * 4096 - 1)) == 0);
	CHECK(vmem_xalloc_tag(vmp, 4096, 3 * 4096, VM_NOSLEEP, &t3) == NULL &&
	    errno == EINVAL);			/* align not a power of two */
	st = stat_of(vmp);
	CHECK(st.vk_nsegs_alloc == 3 && st.vk_mem_inuse == 5 * 4096);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 5 * 4096);
	CHECK(vmem_verify(vmp) == 0);

	vmem_xfree(vmp, p1, 3 * 4096);			/* no tag: bad */
	vmem_xfree_tag(vmp, p1, 2 * 4096, t1);		/* wrong size */
	vmem_xfree_tag(vmp, p1 + 4096, 3 * 4096, t1);	/* wrong address */
	vmem_xfree_tag(vmp, p1, 3 * 4096, t2);		/* another's tag */
	st = stat_of(vmp);
	CHECK(st.vk_bad_free == 4 && st.vk_free == 0 &&
	    st.vk_nsegs_alloc == 3 && st.vk_mem_inuse == 5 * 4096);
	CHECK(vmem_verify(vmp) == 0);

	vmem_xfree_tag(vmp, p1, 3 * 4096, t1);
	vmem_xfree_tag(vmp, p1, 3 * 4096, t1);		/* double: stale tag */
	st = stat_of(vmp);
	CHECK(st.vk_bad_free == 5 && st.vk_free == 1 &&
	    st.vk_nsegs_alloc == 2 && st.vk_mem_inuse == 2 * 4096);
	CHECK(vmem_verify(vmp) == 0);
	vmem_free(vmp, h, 4096);
	vmem_xfree_tag(vmp, p2, 4096, t2);
	CHECK(vmem_size(vmp, VMEM_ALLOC) == 0);
	CHECK(vmem_size(src, VMEM_ALLOC) == 0);	/* spans went back */
	CHECK(vmem_verify(vmp) == 0 && vmem_verify(src) == 0);
	vmem_set_abort(prev);
	vmem_destroy(vmp);
	vmem_destroy(src);
}

int
main(int argc, char **argv)
{
	RUN(test_no_error_yet);
	RUN(test_aborts);
	RUN(test_nonfatal);
	RUN(test_nonfatal_import);
	RUN(test_tagged);
	return (test_summary(argv[0]));
}
