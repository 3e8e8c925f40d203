/*
 * vmem_bench - vmem allocation latency against fragmentation, the analog
 * of Bonwick & Adams 2001, Fig. 4.5.1 (see paper-digest C2.3, C3 item 5).
 *
 * An arena over a large integer range is fragmented into k free segments
 * (allocate 2k segments, free every other one); then alloc+free pairs are
 * timed for instant-fit and best-fit, and for a first-fit address-ordered
 * free list (bench/rmalloc.c) fragmented the same way.  Also: next-fit
 * identifier allocation rate, and vmem's "free segments searched per
 * allocation" statistic, which is what makes the time O(1) or not.
 *
 *	vmem_bench [--quick] [--svg FILE] [--reps N] [--ms N] [--maxk N]
 *
 * --quick is a smoke run (well under a second) for the test suite: it checks
 * that everything runs and that the set-up made the fragments it meant to,
 * and judges no timing.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vmem.h>
#include "vmem_impl.h"
#include "plot.h"
#include "rmalloc.h"
/*
 * The Makefile builds each bench from its one .c file, so the baseline
 * comes in as part of this translation unit.
 */
#include "rmalloc.c"

#define	Q		4096UL		/* page-like quantum */
#define	ARENA_BASE	((uintptr_t)1 << 32)
#define	ARENA_SIZE	((size_t)1 << 46)
#define	FRAG_Q		4	/* equal fragments: 4 quanta, list [2^14, 2^15) */
#define	MISS_SAME_Q	6	/* same freelist as the fragments, too big */
#define	MISS_UP_Q	8	/* the next freelist up */
#define	FIT_Q		FRAG_Q	/* a request that any fragment satisfies */
#define	MIXED_MAX_Q	8	/* mixed: fragments, separators 1..8 quanta */
#define	MIXED_REQ_Q	12	/* bigger than every mixed fragment */
#define	QC_MAX_Q	8	/* quantum-cache arena: qcache_max 8 quanta */

#define	GOAL_FLAT	1.3	/* instant-fit max/min over k = 10..10^6 */
#define	GOAL_SPEEDUP	20.0	/* first-fit / instant-fit at k = 10^5 */
#define	GOAL_NEXTFIT	20.0	/* M next-fit alloc+free pairs per second */

enum {
	C_IF_MISS, C_BF_UP, C_BF_SAME, C_RM_MISS, C_QC,
	C_IF_FIT, C_BF_FIT, C_RM_FIT,
	C_IF_MIX, C_BF_MIX, C_RM_MIX,
	NCOL
};

static const size_t all_k[] = { 0, 10, 100, 1000, 10000, 100000, 1000000 };
#define	NK	(sizeof (all_k) / sizeof (all_k[0]))

static double res_ns[NK][NCOL];		/* median ns per pair; NAN: not run */
static double res_search[NK][NCOL];	/* segments searched per alloc */
static double res_lookup[NK];		/* hash links per free, C_IF_MISS */

static int opt_quick;
static int opt_reps = 9;
static double opt_ms = 25;
static size_t opt_maxk = 1000000;
static const char *opt_svg;

/*
 * The benchmark is one thread, so it is timed by the CPU time of that
 * thread: on a shared machine, time spent preempted is not ours.
 */
static uint64_t
now_ns(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmem_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (*s = x);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

/*
 * Time fn(arg, n) over at least target_ns, growing the batch so that the
 * clock is read rarely; returns ns per pair.
 */
typedef void (*pairs_fn_t)(void *, uint64_t);

static double
time_pairs(pairs_fn_t fn, void *arg, double target_ns)
{
	uint64_t n = 0, batch = 1, t0 = now_ns(), el;

	do {
		fn(arg, batch);
		n += batch;
		el = now_ns() - t0;
		if (el < target_ns / 16 && batch < (1U << 20))
			batch *= 2;
	} while (el < target_ns);
	return ((double)el / (double)n);
}

/* The timed loops. */
typedef struct vcase {
	vmem_t	*vc_vmp;
	size_t	vc_size;
	int	vc_flag;
} vcase_t;

static void
vmem_pairs(void *arg, uint64_t n)
{
	vcase_t *vc = arg;
	uint64_t i;

	for (i = 0; i < n; i++) {
		void *a = vmem_alloc(vc->vc_vmp, vc->vc_size, vc->vc_flag);

		if (a == NULL)
			die("vmem_alloc(%zu) failed", vc->vc_size);
		vmem_free(vc->vc_vmp, a, vc->vc_size);
	}
}

typedef struct rcase {
	rmap_t		*rc_map;
	size_t		rc_size;
	uint64_t	rc_pairs;
} rcase_t;

static void
rm_pairs(void *arg, uint64_t n)
{
	rcase_t *rc = arg;
	uint64_t i;

	for (i = 0; i < n; i++) {
		uintptr_t a = rmalloc(rc->rc_map, rc->rc_size);

		if (a == 0)
			die("rmalloc(%zu) failed", rc->rc_size);
		rmfree(rc->rc_map, a, rc->rc_size);
	}
	rc->rc_pairs += n;
}

static vmem_stat_t
getstat(vmem_t *vmp)
{
	vmem_stat_t st;

	if (vmem_getstat(vmp, &st) != 0)
		die("vmem_getstat failed");
	return (st);
}

/*
 * A measured point: one allocator and request size on one fragmented
 * layout.  Every point is set up first and the repetitions go round all
 * of them, so that a slow spell of the machine (this is a shared VM) costs
 * one repetition of many points rather than every repetition of one.
 */
#define	MAXREPS		63
#define	P_NEXTFIT	(-1)	/* pt_col of the identifier points */
#define	P_IDINSTANT	(-2)

typedef struct point {
	size_t		pt_ki;
	int		pt_col;
	vcase_t		pt_vc;		/* pt_vc.vc_vmp == NULL: rmalloc */
	rcase_t		pt_rc;
	double		pt_t[MAXREPS];
	uint64_t	pt_search, pt_alloc, pt_lookup, pt_free, pt_visits;
} point_t;

static point_t points[NK * NCOL + 2];
static size_t npoints;

static point_t *
point_add(size_t ki, int col)
{
	point_t *pt = &points[npoints++];

	memset(pt, 0, sizeof (*pt));
	pt->pt_ki = ki;
	pt->pt_col = col;
	return (pt);
}

/*
 * A vmem point.  First check that it is the case meant: a request bigger
 * than the equal fragments must come from the tail, one that fits from a
 * fragment (tail == 0: no check).
 */
static void
vmem_point(size_t ki, int col, vmem_t *vmp, size_t size, int flag,
    uintptr_t tail)
{
	point_t *pt = point_add(ki, col);
	uintptr_t a;

	a = (uintptr_t)vmem_alloc(vmp, size, flag | VM_NOSLEEP);
	if (a == 0)
		die("vmem_alloc(%zu) failed", size);
	if (tail != 0 && (size > FIT_Q * Q) != (a >= tail))
		die("set-up: a %zu-byte request came from %s", size,
		    a >= tail ? "the tail" : "a fragment");
	vmem_free(vmp, (void *)a, size);
	pt->pt_vc.vc_vmp = vmp;
	pt->pt_vc.vc_size = size;
	pt->pt_vc.vc_flag = flag | VM_NOSLEEP;
}

static void
rm_point(size_t ki, int col, rmap_t *rm, size_t size, uintptr_t tail)
{
	point_t *pt = point_add(ki, col);
	uintptr_t a;

	if ((a = rmalloc(rm, size)) == 0)
		die("rmalloc(%zu) failed", size);
	if (tail != 0 && (size > FIT_Q * Q) != (a >= tail))
		die("baseline: a %zu-byte request came from %s", size,
		    a >= tail ? "the tail" : "a fragment");
	rmfree(rm, a, size);
	pt->pt_rc.rc_map = rm;
	pt->pt_rc.rc_size = size;
}

/* One repetition of a point, after a short warm-up of its own. */
static void
point_rep(point_t *pt, int rep)
{
	double target = opt_ms * 1e6;

	if (pt->pt_vc.vc_vmp != NULL) {
		vmem_stat_t s0 = getstat(pt->pt_vc.vc_vmp), s1;

		(void) time_pairs(vmem_pairs, &pt->pt_vc, target / 8);
		pt->pt_t[rep] = time_pairs(vmem_pairs, &pt->pt_vc, target);
		s1 = getstat(pt->pt_vc.vc_vmp);
		pt->pt_search += s1.vk_search - s0.vk_search;
		pt->pt_alloc += s1.vk_alloc - s0.vk_alloc;
		pt->pt_lookup += s1.vk_lookup - s0.vk_lookup;
		pt->pt_free += s1.vk_free - s0.vk_free;
	} else {
		uint64_t v0 = rmap_visits(pt->pt_rc.rc_map);

		(void) time_pairs(rm_pairs, &pt->pt_rc, target / 8);
		pt->pt_t[rep] = time_pairs(rm_pairs, &pt->pt_rc, target);
		pt->pt_visits += rmap_visits(pt->pt_rc.rc_map) - v0;
	}
}

static double
point_median(point_t *pt, int reps)
{
	qsort(pt->pt_t, (size_t)reps, sizeof (double), cmp_double);
	return (reps % 2 ? pt->pt_t[reps / 2] :
	    (pt->pt_t[reps / 2 - 1] + pt->pt_t[reps / 2]) / 2);
}

/* Work per pair: vmem segments examined per alloc; rmalloc list nodes. */
static double
point_search(const point_t *pt)
{
	if (pt->pt_vc.vc_vmp != NULL)
		return ((double)pt->pt_search / (double)pt->pt_alloc);
	return ((double)pt->pt_visits / (double)pt->pt_rc.rc_pairs);
}

/*
 * The fragmented layout: 2k segments from the bottom of the range, sizes
 * in quanta in sz[] (equal, or 1..MIXED_MAX_Q at random); even-numbered
 * ones are freed, so k free fragments lie below one big free tail.
 */
typedef struct layout {
	size_t		ly_k;
	uint32_t	*ly_sz;		/* 2k sizes, quanta */
	uintptr_t	ly_tail;	/* start of the free tail */
} layout_t;

static void
layout_make(layout_t *ly, size_t k, int mixed)
{
	uint64_t seed = 0x9E3779B97F4A7C15ULL ^ k;
	uintptr_t a = ARENA_BASE;
	size_t i;

	ly->ly_k = k;
	ly->ly_sz = malloc((2 * k + 1) * sizeof (uint32_t));
	if (ly->ly_sz == NULL)
		die("out of memory for %zu fragments", k);
	for (i = 0; i < 2 * k; i++) {
		ly->ly_sz[i] = mixed ?
		    (uint32_t)(1 + xorshift(&seed) % MIXED_MAX_Q) : FRAG_Q;
		a += ly->ly_sz[i] * Q;
	}
	ly->ly_tail = a;
}

static vmem_t *
vmem_build(const layout_t *ly, size_t qcache_max)
{
	size_t i, k = ly->ly_k;
	uintptr_t a, want = ARENA_BASE;
	vmem_stat_t st;
	vmem_t *vmp;

	vmp = vmem_create("vmem_bench", (void *)ARENA_BASE, ARENA_SIZE, Q,
	    NULL, NULL, NULL, qcache_max, VM_NOSLEEP);
	if (vmp == NULL)
		die("vmem_create(vmem_bench) failed");
	/* vmem_xalloc: the set-up stays out of any quantum cache. */
	for (i = 0; i < 2 * k; i++) {
		a = (uintptr_t)vmem_xalloc(vmp, ly->ly_sz[i] * Q, 0, 0, 0,
		    NULL, NULL, VM_NOSLEEP);
		if (a != want)
			die("set-up: segment %zu not allocated in address "
			    "order", i);
		want += ly->ly_sz[i] * Q;
	}
	for (i = 2 * k, a = want; i > 0; i--) {
		a -= ly->ly_sz[i - 1] * Q;
		if ((i - 1) % 2 == 0)
			vmem_xfree(vmp, (void *)a, ly->ly_sz[i - 1] * Q);
	}
	st = getstat(vmp);
	if (st.vk_nsegs_free != k + 1)
		die("set-up: vmem has %llu free segments, not k + 1 = %zu",
		    (unsigned long long)st.vk_nsegs_free, k + 1);
	/* As the periodic update thread would: size the hash table. */
	vmem_update();
	return (vmp);
}

/* Free the separators; without quantum caches that leaves one segment. */
static void
vmem_teardown(vmem_t *vmp, const layout_t *ly, int qcache)
{
	uintptr_t a = ARENA_BASE;
	size_t i;

	for (i = 0; i < 2 * ly->ly_k; i++) {
		if (i % 2 == 1)
			vmem_xfree(vmp, (void *)a, ly->ly_sz[i] * Q);
		a += ly->ly_sz[i] * Q;
	}
	if (!qcache && getstat(vmp).vk_nsegs_free != 1)
		die("teardown: arena did not coalesce back to one segment");
	vmem_destroy(vmp);
}

static rmap_t *
rm_build(const layout_t *ly)
{
	size_t i, k = ly->ly_k;
	uintptr_t a, want = ARENA_BASE;
	rmap_t *rm = rmap_create(ARENA_BASE, ARENA_SIZE);

	if (rm == NULL)
		die("rmap_create failed");
	for (i = 0; i < 2 * k; i++) {
		if ((a = rmalloc(rm, ly->ly_sz[i] * Q)) != want)
			die("baseline: segment %zu not allocated in address "
			    "order", i);
		want += ly->ly_sz[i] * Q;
	}
	/* Top down, so that each insertion is at the head: O(k) set-up. */
	for (i = 2 * k, a = want; i > 0; i--) {
		a -= ly->ly_sz[i - 1] * Q;
		if ((i - 1) % 2 == 0)
			rmfree(rm, a, ly->ly_sz[i - 1] * Q);
	}
	if (rmap_nfree(rm) != k + 1)
		die("baseline: %zu free ranges, not k + 1 = %zu",
		    rmap_nfree(rm), k + 1);
	return (rm);
}

/* Everything set up for one k, kept until the end. */
typedef struct kset {
	layout_t	ks_eq, ks_mx;		/* equal, mixed sizes */
	vmem_t		*ks_vm_eq, *ks_vm_mx, *ks_vm_qc;
	rmap_t		*ks_rm_eq, *ks_rm_mx;
} kset_t;

static kset_t ksets[NK];

static void
kset_build(size_t ki)
{
	kset_t *ks = &ksets[ki];
	size_t k = all_k[ki];
	uintptr_t tail, fit_tail;

	/* Equal fragments: requests that fit none, and one that fits. */
	layout_make(&ks->ks_eq, k, 0);
	tail = ks->ks_eq.ly_tail;
	fit_tail = k > 0 ? tail : 0;
	ks->ks_vm_eq = vmem_build(&ks->ks_eq, 0);
	vmem_point(ki, C_IF_MISS, ks->ks_vm_eq, MISS_SAME_Q * Q, 0, tail);
	vmem_point(ki, C_BF_UP, ks->ks_vm_eq, MISS_UP_Q * Q, VM_BESTFIT, tail);
	vmem_point(ki, C_BF_SAME, ks->ks_vm_eq, MISS_SAME_Q * Q, VM_BESTFIT,
	    tail);
	vmem_point(ki, C_IF_FIT, ks->ks_vm_eq, FIT_Q * Q, 0, fit_tail);
	vmem_point(ki, C_BF_FIT, ks->ks_vm_eq, FIT_Q * Q, VM_BESTFIT, fit_tail);
	ks->ks_rm_eq = rm_build(&ks->ks_eq);
	rm_point(ki, C_RM_MISS, ks->ks_rm_eq, MISS_SAME_Q * Q, tail);
	rm_point(ki, C_RM_FIT, ks->ks_rm_eq, FIT_Q * Q, fit_tail);

	/* Quantum caching, if the object-cache layer is linked in. */
	if (vmem_qcache_ops.qc_create != NULL) {
		ks->ks_vm_qc = vmem_build(&ks->ks_eq, QC_MAX_Q * Q);
		vmem_point(ki, C_QC, ks->ks_vm_qc, MISS_SAME_Q * Q, 0, 0);
	}

	/* Mixed fragment sizes, so the freelists are mixed. */
	layout_make(&ks->ks_mx, k, 1);
	tail = ks->ks_mx.ly_tail;
	ks->ks_vm_mx = vmem_build(&ks->ks_mx, 0);
	vmem_point(ki, C_IF_MIX, ks->ks_vm_mx, MIXED_REQ_Q * Q, 0, tail);
	vmem_point(ki, C_BF_MIX, ks->ks_vm_mx, MIXED_REQ_Q * Q, VM_BESTFIT,
	    tail);
	ks->ks_rm_mx = rm_build(&ks->ks_mx);
	rm_point(ki, C_RM_MIX, ks->ks_rm_mx, MIXED_REQ_Q * Q, tail);
}

static void
kset_teardown(size_t ki)
{
	kset_t *ks = &ksets[ki];

	vmem_teardown(ks->ks_vm_eq, &ks->ks_eq, 0);
	if (ks->ks_vm_qc != NULL)
		vmem_teardown(ks->ks_vm_qc, &ks->ks_eq, 1);
	vmem_teardown(ks->ks_vm_mx, &ks->ks_mx, 0);
	rmap_destroy(ks->ks_rm_eq);
	rmap_destroy(ks->ks_rm_mx);
	free(ks->ks_eq.ly_sz);
	free(ks->ks_mx.ly_sz);
}

/* Identifiers: arena [1, 2^31), quantum 1, next fit and instant fit. */
static vmem_t *
ids_build(void)
{
	vmem_t *vmp = vmem_create("vmem_bench_ids", (void *)1,
	    ((size_t)1 << 31) - 1, 1, NULL, NULL, NULL, 0,
	    VMC_IDENTIFIER | VM_NOSLEEP);
	uintptr_t a, b;
	point_t *pt;

	if (vmp == NULL)
		die("vmem_create(vmem_bench_ids) failed");
	/* Next-fit must hand out fresh IDs, not the one just freed. */
	a = (uintptr_t)vmem_alloc(vmp, 1, VM_NEXTFIT | VM_NOSLEEP);
	vmem_free(vmp, (void *)a, 1);
	b = (uintptr_t)vmem_alloc(vmp, 1, VM_NEXTFIT | VM_NOSLEEP);
	vmem_free(vmp, (void *)b, 1);
	if (a == 0 || b != a + 1)
		die("ids: next-fit gave %lu, then %lu, not the next ID",
		    (unsigned long)a, (unsigned long)b);
	pt = point_add(0, P_NEXTFIT);
	pt->pt_vc.vc_vmp = vmp;
	pt->pt_vc.vc_size = 1;
	pt->pt_vc.vc_flag = VM_NEXTFIT | VM_NOSLEEP;
	pt = point_add(0, P_IDINSTANT);
	pt->pt_vc.vc_vmp = vmp;
	pt->pt_vc.vc_size = 1;
	pt->pt_vc.vc_flag = VM_NOSLEEP;
	return (vmp);
}

/*
 * Run the instant-fit loop on a scratch arena for ms milliseconds before
 * anything is timed: the first few hundred milliseconds of a process run
 * measurably slower here (clock ramp-up, first-touch of the tag pool).
 */
static void
warmup(double ms)
{
	vmem_t *vmp = vmem_create("vmem_bench_warmup", (void *)ARENA_BASE,
	    ARENA_SIZE, Q, NULL, NULL, NULL, 0, VM_NOSLEEP);
	vcase_t vc = { vmp, MISS_SAME_Q * Q, VM_NOSLEEP };

	if (vmp == NULL)
		die("vmem_create(vmem_bench_warmup) failed");
	if (ms > 0)
		(void) time_pairs(vmem_pairs, &vc, ms * 1e6);
	vmem_destroy(vmp);
}

static void
fmt_ns(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "n/a");
	else if (v < 100)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.0f", v);
}

static void
fmt_search(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "n/a");
	else if (v < 100)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.0f", v);
}

static void
print_row(size_t ki, const int *cols, int ncols, int search)
{
	char b[32];
	int c;

	printf("%8zu", all_k[ki]);
	for (c = 0; c < ncols; c++) {
		if (search)
			fmt_search(b, sizeof (b), res_search[ki][cols[c]]);
		else
			fmt_ns(b, sizeof (b), res_ns[ki][cols[c]]);
		printf(" %11s", b);
	}
}

/* max/min of a column over k >= 10 (the goal's range). */
static double
flatness(int col, size_t *kmin, size_t *kmax)
{
	double lo = INFINITY, hi = 0;
	size_t ki;

	for (ki = 0; ki < NK; ki++) {
		double v = res_ns[ki][col];

		if (all_k[ki] < 10 || isnan(v))
			continue;
		if (v < lo) {
			lo = v;
			*kmin = all_k[ki];
		}
		if (v > hi) {
			hi = v;
			*kmax = all_k[ki];
		}
	}
	return (hi / lo);
}

static size_t
k_index(size_t k)
{
	size_t ki;

	for (ki = 0; ki < NK; ki++)
		if (all_k[ki] == k && !isnan(res_ns[ki][C_IF_MISS]))
			return (ki);
	return (NK);
}

/*
 * The figure: all allocators on log-log axes (first-fit is linear in k),
 * and below it the constant-time vmem cases on a linear y axis, where
 * they would otherwise lie on top of each other.
 */
typedef struct line {
	int		ln_col;
	const char	*ln_label;
	const char	*ln_color;
	int		ln_dashed;
} line_t;

static size_t
make_series(const line_t *ln, size_t nln, double *x, double (*y)[NK],
    plot_series_t *ps)
{
	size_t ki, n = 0, s, ns = 0;

	for (ki = 0; ki < NK; ki++) {
		if (all_k[ki] == 0 || isnan(res_ns[ki][C_IF_MISS]))
			continue;
		x[n] = (double)all_k[ki];
		for (s = 0; s < nln; s++)
			y[s][n] = res_ns[ki][ln[s].ln_col];
		n++;
	}
	for (s = 0; s < nln; s++) {
		if (n == 0 || isnan(y[s][0]))
			continue;	/* not measured (no quantum caches) */
		ps[ns].ps_label = ln[s].ln_label;
		ps[ns].ps_color = ln[s].ln_color;
		ps[ns].ps_dashed = ln[s].ln_dashed;
		ps[ns].ps_n = n;
		ps[ns].ps_x = x;
		ps[ns].ps_y = y[s];
		ns++;
	}
	return (ns);
}

static void
write_svg(const char *path)
{
	/* Top line first; instant-fit drawn last, over best-fit. */
	static const line_t all[] = {
		{ C_RM_MISS, "first-fit address-ordered list (rmalloc)",
		    "#D55E00", 0 },
		{ C_BF_SAME, "vmem best-fit, request in the fragments' list "
		    "(6 quanta)", "#009E73", 0 },
		{ C_BF_UP, "vmem best-fit, request in a larger list "
		    "(8 quanta)", "#E69F00", 0 },
		{ C_QC, "vmem instant-fit + quantum caches", "#CC79A7", 1 },
		{ C_IF_MISS, "vmem instant-fit", "#0072B2", 0 },
	};
	static const line_t flat[] = {
		{ C_IF_MISS, "instant-fit, request fits no fragment",
		    "#0072B2", 0 },
		{ C_IF_FIT, "instant-fit, request fits every fragment",
		    "#56B4E9", 1 },
		{ C_IF_MIX, "instant-fit, mixed fragment sizes", "#000000", 1 },
		{ C_BF_UP, "best-fit, request in a larger list", "#E69F00", 0 },
		{ C_QC, "instant-fit + quantum caches", "#CC79A7", 1 },
	};
	double x1[NK], y1[5][NK], x2[NK], y2[5][NK];
	plot_series_t ps1[5], ps2[5];
	plot_t p[2];

	memset(p, 0, sizeof (p));
	p[0].pl_title = "vmem alloc+free latency vs. free fragments";
	p[0].pl_subtitle = "median ns per alloc+free pair; quantum 4 KiB, "
	    "k fragments of 16 KiB, request 24 KiB (fits none)";
	p[0].pl_xlabel = "free fragments in the arena (k)";
	p[0].pl_ylabel = "ns per alloc+free pair";
	p[0].pl_logx = p[0].pl_logy = 1;
	p[0].pl_series = ps1;
	p[0].pl_nseries = make_series(all, 5, x1, y1, ps1);
	p[1] = p[0];
	p[1].pl_title = "The constant-time cases, linear scale";
	p[1].pl_subtitle = "fit: 16 KiB request; mixed: fragments 4-32 "
	    "KiB, request 48 KiB";
	p[1].pl_logy = 0;
	p[1].pl_yzero = 1;
	p[1].pl_legend_below = 1;
	p[1].pl_height = 540;
	p[1].pl_series = ps2;
	p[1].pl_nseries = make_series(flat, 5, x2, y2, ps2);
	if (plot_svg_file(p, 2, path) != 0) {
		fprintf(stderr, "vmem_bench: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* The CPU model and count, for the record. */
static void
print_machine(void)
{
	char line[256], *model = NULL;
	FILE *fp = fopen("/proc/cpuinfo", "r");

	while (fp != NULL && fgets(line, sizeof (line), fp) != NULL) {
		if (strncmp(line, "model name", 10) == 0 &&
		    (model = strchr(line, ':')) != NULL) {
			model += 2;
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	printf("  machine: %ld CPUs online, %s\n", sysconf(_SC_NPROCESSORS_ONLN),
	    model != NULL ? model : "unknown CPU");
	if (fp != NULL)
		(void) fclose(fp);
}

static void
usage(void)
{
	fprintf(stderr, "usage: vmem_bench [--quick] [--svg FILE] "
	    "[--reps N] [--ms N] [--maxk N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const int t1[] = { C_IF_MISS, C_BF_UP, C_BF_SAME, C_RM_MISS,
	    C_QC };
	static const int t1s[] = { C_IF_MISS, C_BF_UP, C_BF_SAME, C_RM_MISS };
	static const int t2[] = { C_IF_FIT, C_BF_FIT, C_RM_FIT, C_IF_MIX,
	    C_BF_MIX, C_RM_MIX };
	double nf_ns = NAN, idif_ns = NAN, flat, flat_fit, flat_mix;
	double speed = NAN, ratio;
	size_t ki, i, k0, k1, k2, k3, k4, k5, kq;
	int cpu, r, met_flat, met_speed, met_nf;
	vmem_t *ids;
	uint64_t t0 = now_ns();
	cpu_set_t set;
	char b1[32], b2[32];

	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			opt_quick = 1;
		else if (strcmp(argv[i], "--svg") == 0 && i + 1 < (size_t)argc)
			opt_svg = argv[++i];
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < (size_t)argc)
			opt_reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--ms") == 0 && i + 1 < (size_t)argc)
			opt_ms = atof(argv[++i]);
		else if (strcmp(argv[i], "--maxk") == 0 && i + 1 < (size_t)argc)
			opt_maxk = strtoul(argv[++i], NULL, 0);
		else
			usage();
	}
	if (opt_quick) {
		opt_reps = 1;
		opt_ms = 1;
		opt_maxk = 1000;
	}
	if (opt_reps < 1 || opt_reps > MAXREPS || !(opt_ms > 0))
		usage();

	/* One CPU, so that migrations do not add noise. */
	if ((cpu = sched_getcpu()) >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof (set), &set) != 0)
			cpu = -1;
	}

	for (ki = 0; ki < NK; ki++) {
		for (i = 0; i < NCOL; i++)
			res_ns[ki][i] = res_search[ki][i] = NAN;
		res_lookup[ki] = NAN;
	}
	for (ki = 0; ki < NK; ki++)
		if (all_k[ki] <= opt_maxk)
			kset_build(ki);
	ids = ids_build();

	warmup(opt_quick ? 0 : 300);
	for (r = 0; r < opt_reps; r++)
		for (i = 0; i < npoints; i++)
			point_rep(&points[i], r);

	for (i = 0; i < npoints; i++) {
		point_t *pt = &points[i];
		double med = point_median(pt, opt_reps);

		if (pt->pt_col == P_NEXTFIT) {
			nf_ns = med;
		} else if (pt->pt_col == P_IDINSTANT) {
			idif_ns = med;
		} else {
			res_ns[pt->pt_ki][pt->pt_col] = med;
			res_search[pt->pt_ki][pt->pt_col] = point_search(pt);
			if (pt->pt_col == C_IF_MISS)
				res_lookup[pt->pt_ki] = (double)pt->pt_lookup /
				    (double)pt->pt_free;
		}
	}
	for (ki = 0; ki < NK; ki++)
		if (all_k[ki] <= opt_maxk)
			kset_teardown(ki);
	vmem_destroy(ids);

	printf("vmem_bench: vmem alloc+free latency against free fragments "
	    "(analog of Bonwick & Adams 2001, Fig. 4.5.1)\n");
	printf("  arena: [2^32, 2^32 + 2^46), quantum %lu, no source, no "
	    "quantum caches (except the qcache column)\n", Q);
	printf("  k fragments: 2k segments allocated in address order, every "
	    "other one freed (k free segments + the free tail);\n"
	    "  equal: every segment %d quanta; mixed: segments 1..%d quanta "
	    "at random.  vmem_update() is run once after\n"
	    "  set-up, as the update thread would.  Each cell: median of %d "
	    "runs of >= %.0f ms, ns per alloc+free pair;\n"
	    "  the runs go round all cells in turn, so a slow spell of the "
	    "machine hits one run of many cells.\n",
	    FRAG_Q, MIXED_MAX_Q, opt_reps, opt_ms);
	printf("  first-fit: bench/rmalloc.c (address-ordered free list, "
	    "first fit, insertion-sorted free with coalescing).\n");
	print_machine();
	printf("  pinned to CPU %d; %s\n\n", cpu, opt_quick ?
	    "QUICK smoke run: timings are not meaningful" :
	    "timed by the thread's CPU time (CLOCK_THREAD_CPUTIME_ID)");

	printf("Table 1. Request of %lu quanta (%lu KiB): fits no fragment, "
	    "so first-fit walks past all k.  ns per pair.\n", MISS_SAME_Q *
	    1UL, MISS_SAME_Q * Q / 1024);
	printf("%8s %11s %11s %11s %11s %11s\n", "", "instant-fit",
	    "best-fit", "best-fit", "first-fit", "qcache");
	snprintf(b1, sizeof (b1), "(%d quanta)", MISS_UP_Q);
	snprintf(b2, sizeof (b2), "(%d quanta)", MISS_SAME_Q);
	printf("%8s %11s %11s %11s %11s %11s\n", "k", "", b1, b2,
	    "baseline", "(inst-fit)");
	for (ki = 0; ki < NK; ki++) {
		if (isnan(res_ns[ki][C_IF_MISS]))
			continue;
		print_row(ki, t1, 5, 0);
		printf("\n");
	}
	printf("  best-fit %s: the request's freelist is empty, the "
	    "next one up holds the tail.\n"
	    "  best-fit %s: the request's freelist holds all k "
	    "fragments, each too small.\n", b1, b2);
	if (vmem_qcache_ops.qc_create == NULL)
		printf("  qcache: n/a (no object-cache layer linked: "
		    "vmem_qcache_ops has no functions)\n");
	else
		printf("  qcache: arena with qcache_max %d quanta; the "
		    "fragments are made with vmem_xalloc\n", QC_MAX_Q);

	printf("\nTable 2. Work per pair: vmem free segments examined per "
	    "alloc (vk_search / vk_alloc); first-fit: list\n"
	    "nodes visited per alloc+free pair; and vmem hash links followed "
	    "per free (vk_lookup / vk_free).\n");
	printf("%8s %11s %11s %11s %11s %11s\n", "k", "instant-fit",
	    "best-fit 8q", "best-fit 6q", "first-fit", "hash/free");
	for (ki = 0; ki < NK; ki++) {
		if (isnan(res_ns[ki][C_IF_MISS]))
			continue;
		print_row(ki, t1s, 4, 1);
		fmt_search(b1, sizeof (b1), res_lookup[ki]);
		printf(" %11s\n", b1);
	}

	printf("\nTable 3. Other cases, ns per pair.  fit: %d quanta, which "
	    "every equal fragment satisfies.\n"
	    "mixed: fragments 1..%d quanta at random, request %d quanta "
	    "(fits none).\n", FIT_Q, MIXED_MAX_Q, MIXED_REQ_Q);
	printf("%8s %11s %11s %11s %11s %11s %11s\n", "", "fit", "fit", "fit",
	    "mixed", "mixed", "mixed");
	printf("%8s %11s %11s %11s %11s %11s %11s\n", "k", "instant-fit",
	    "best-fit", "first-fit", "instant-fit", "best-fit", "first-fit");
	for (ki = 0; ki < NK; ki++) {
		if (isnan(res_ns[ki][C_IF_MISS]))
			continue;
		print_row(ki, t2, 6, 0);
		printf("\n");
	}
	printf("  vmem segments examined per alloc, mixed: instant-fit");
	for (ki = 0; ki < NK; ki++)
		if (!isnan(res_search[ki][C_IF_MIX]))
			printf(" %.2f", res_search[ki][C_IF_MIX]);
	printf("; best-fit");
	for (ki = 0; ki < NK; ki++)
		if (!isnan(res_search[ki][C_BF_MIX]))
			printf(" %.0f", res_search[ki][C_BF_MIX]);
	printf(" (k = 0, 10, ...)\n");

	printf("\nIdentifiers: arena [1, 2^31), quantum 1: alloc(1)+free "
	    "pairs\n");
	printf("  next-fit:    %7.1f ns/pair = %6.2f M pairs/s\n", nf_ns,
	    1e3 / nf_ns);
	printf("  instant-fit: %7.1f ns/pair = %6.2f M pairs/s\n", idif_ns,
	    1e3 / idif_ns);

	/* Ratios and goals, from the numbers above. */
	k0 = k1 = k2 = k3 = k4 = k5 = 0;
	flat = flatness(C_IF_MISS, &k0, &k1);
	flat_fit = flatness(C_IF_FIT, &k2, &k3);
	flat_mix = flatness(C_IF_MIX, &k4, &k5);
	printf("\nSummary\n");
	if (k_index(100) < NK)
		printf("  instant-fit max/min over k = 10..%zu: %.2f (min at "
		    "k=%zu, max at k=%zu); fit %.2f, mixed %.2f\n",
		    opt_maxk < 1000000 ? opt_maxk : (size_t)1000000, flat, k0,
		    k1, flat_fit, flat_mix);
	kq = k_index(100000);
	if (kq < NK) {
		speed = res_ns[kq][C_RM_MISS] / res_ns[kq][C_IF_MISS];
		printf("  first-fit / instant-fit at k = 10^5: %.1fx "
		    "(mixed: %.1fx)\n", speed,
		    res_ns[kq][C_RM_MIX] / res_ns[kq][C_IF_MIX]);
	}
	if ((ki = k_index(10)) < NK && kq < NK)
		printf("  instant-fit k = 10^5 vs k = 10: %+.1f%%\n",
		    100 * (res_ns[kq][C_IF_MISS] / res_ns[ki][C_IF_MISS] - 1));
	ratio = res_ns[0][C_RM_MISS] / res_ns[0][C_IF_MISS];
	printf("  no fragmentation (k = 0): instant-fit %.1f ns, first-fit "
	    "%.1f ns (first-fit/instant-fit %.2f)", res_ns[0][C_IF_MISS],
	    res_ns[0][C_RM_MISS], ratio);
	if (!isnan(res_ns[0][C_QC]))
		printf(", qcache %.1f ns (no-qcache/qcache %.2f)",
		    res_ns[0][C_QC], res_ns[0][C_IF_MISS] / res_ns[0][C_QC]);
	printf("\n  (paper, k = 0: vmem 1560 ns, rmalloc 715 ns, vmem+qcache "
	    "482 ns: ratios 0.46 and 3.2)\n");

	met_flat = opt_maxk >= 1000000 && flat <= GOAL_FLAT;
	met_speed = !isnan(speed) && speed >= GOAL_SPEEDUP;
	met_nf = 1e3 / nf_ns >= GOAL_NEXTFIT;
	if (opt_quick) {
		printf("  goals not judged in a quick run\n");
	} else {
		printf("  goal: instant-fit flat, max/min <= %.1f over k = 10.."
		    "10^6: %s\n", GOAL_FLAT, opt_maxk < 1000000 ?
		    "not judged (k = 10^6 not run)" : met_flat ? "MET" :
		    "NOT MET");
		printf("  goal: >= %.0fx faster than first-fit at k = 10^5: "
		    "%s\n", GOAL_SPEEDUP, isnan(speed) ?
		    "not judged (k = 10^5 not run)" : met_speed ? "MET" :
		    "NOT MET");
		printf("  goal: next-fit ID alloc+free >= %.0f M/s on one "
		    "core: %s\n", GOAL_NEXTFIT, met_nf ? "MET" : "NOT MET");
	}
	printf("  total run time %.1f s\n", (double)(now_ns() - t0) / 1e9);

	if (opt_svg != NULL) {
		write_svg(opt_svg);
		printf("  plot: %s\n", opt_svg);
	}
	if (opt_quick)
		printf("vmem_bench: quick run ok\n");
	return (0);
}
