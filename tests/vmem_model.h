/*
 * vmem_model.h - a simple reference model of vmem arenas, and a random
 * operation driver that checks the real arenas against it after every step.
 *
 * Shared by tests/test_vmem_model.c (driven by a PRNG) and tests/fuzz_vmem.c
 * (driven by the fuzzer's bytes).  The model knows only what is promised:
 * the spans of each arena and its live allocations.  Everything else (free
 * segments, statistics, which segment a policy may choose, whether an
 * import must happen) is derived from those plus what vmem_walk() reports.
 *
 * Checked after every operation, for every arena:
 *   - vmem_verify() passes;
 *   - VMEM_SPAN and VMEM_ALLOC walks equal the model exactly;
 *   - allocated and free segments tile every span exactly (no overlap,
 *     every byte accounted for), and free segments are coalesced (at most
 *     one split, at the next-fit rotor, once VM_NEXTFIT has been used);
 *   - every statistic that the model can know agrees with it;
 *   - vmem_size() and vmem_contains() agree with the model;
 *   - no fully free imported span is left unreleased.
 * Checked for every allocation:
 *   - every constraint (quantum, align, phase, nocross, [minaddr, maxaddr));
 *   - the result lay inside one free segment (or a span imported for it);
 *   - completeness: it succeeds, without importing, iff some free segment
 *     can satisfy it; constrained requests never import; an import that
 *     succeeded makes the request succeed;
 *   - the policy: instant fit takes the first non-empty freelist that is
 *     guaranteed to fit (else the list the size is in), best fit the
 *     smallest adequate segment, first fit a segment on the lowest list
 *     with an adequate one; allocations start at the low end of the chosen
 *     segment unless VM_ENDALLOC, which takes the highest feasible address.
 */
#ifndef _VMEM_MODEL_H
#define	_VMEM_MODEL_H

#ifndef _GNU_SOURCE
#define	_GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <vmem.h>
#include "vmem_impl.h"

#define	VMM_FN		static __attribute__((unused))
#define	VMM_NARENA	3
#define	VMM_MAXSPANS	40
#define	VMM_MAXALLOCS	160
#define	VMM_MAXSEGS	1024
#define	VMM_NROTOR	64

/* Run options. */
#define	VMM_BADFREE	0x1	/* also do bad frees (non-fatal mode) */
#define	VMM_LEAK	0x2	/* sometimes destroy arenas with live allocs */
#define	VMM_FATAL	0x4	/* abort() at the first mismatch (fuzzer) */
#define	VMM_QUIET	0x8	/* print nothing on mismatch */
/*
 * Do not insist that next fit continues exactly at the rotor when there
 * is room there (only that it starts at the rotor or at the start of a
 * free segment).  Not the specified behaviour: for isolating other
 * mismatches while that one is open.
 */
#define	VMM_ROTOR_OK	0x10
/*
 * Keep the library's (expected) reports out of the output: they go to a
 * scratch file, whose tail is shown if the run fails or crashes.
 */
#define	VMM_HUSH	0x20
#define	VMM_TRACE	0x40	/* print every operation */

typedef struct vmm_seg {
	uintptr_t	s_start;
	uintptr_t	s_size;		/* rounded to the quantum */
	size_t		s_req;		/* size as requested */
	int		s_kind;		/* allocs: 1 = xalloc, 2 = xalloc_tag; */
					/* spans: imported */
	void		*s_tag;		/* kind 2: the tag */
} vmm_seg_t;

typedef struct vmm_arena {
	vmem_t		*a_vmp;
	int		a_live;
	char		a_name[24];
	size_t		a_quantum;
	int		a_source;	/* imports from the parent */
	int		a_xcreate;	/* ... through a vmem_ximport_t */
	size_t		a_xextra;	/* the ximporter enlarges by this */
	int		a_import_fail;	/* the importer fails (injected) */
	uintptr_t	a_rotor;	/* just past the last next fit */
	long		a_rotor_op;
	int		a_rotor_lost;	/* its span was given back */
	uintptr_t	a_rotors[VMM_NROTOR];	/* recent rotor positions */
	unsigned	a_nrotor;
	int		a_rotor_imp;
	int		a_destroying;
	uintptr_t	a_rbase;	/* region for own spans */
	uintptr_t	a_rsize;
	vmm_seg_t	a_spans[VMM_MAXSPANS];
	int		a_nspans;
	vmm_seg_t	a_allocs[VMM_MAXALLOCS];
	int		a_nallocs;
	uint64_t	a_n_alloc, a_n_free, a_n_import, a_n_import_fail;
	uint64_t	a_n_release, a_n_bad, a_n_wrong, a_n_calls;
	uint64_t	a_n_fail, a_n_contains;
} vmm_arena_t;

typedef struct vmm {
	const uint8_t	*m_data;	/* fuzzer input, or NULL: PRNG */
	size_t		m_len, m_pos;
	int		m_done;		/* input exhausted */
	unsigned long long m_seed, m_state;
	int		m_flags;
	vmem_t		*m_parent;
	size_t		m_pquantum;
	uintptr_t	m_pbase, m_psize;
	uint64_t	m_parent_inuse;
	vmm_arena_t	m_a[VMM_NARENA];
	vmm_arena_t	*m_cur;		/* the arena being operated on */
	long		m_op;
	const char	*m_opname;
	int		m_nfail;
	int		m_errfd;	/* where mismatches are reported */
	uint64_t	m_nallocs_ok, m_nimports;	/* coverage counters */
	/* walk scratch */
	vmm_seg_t	*m_wbuf;
	int		m_wn, m_wover;
	vmm_seg_t	m_fs[VMM_MAXSEGS];	/* free segments (sorted) */
	int		m_nfs;
	vmm_seg_t	m_ws[2 * VMM_MAXSEGS];
	vmm_seg_t	m_tmp[VMM_MAXSEGS];
} vmm_t;

static vmm_t *vmm_global;	/* for the import callbacks */

static int vmm_hush_fd = -1;	/* scratch file standing in for stderr */
static int vmm_real_fd = -1;	/* the real stderr meanwhile */

/* Copy the last few KiB of hushed output to the real stderr. */
VMM_FN void
vmm_hush_tail(void)
{
	char buf[4096];
	off_t end;
	ssize_t n;

	if (vmm_hush_fd < 0 || vmm_real_fd < 0)
		return;
	end = lseek(vmm_hush_fd, 0, SEEK_END);
	if (end <= 0)
		return;
	(void) lseek(vmm_hush_fd, end > (off_t)sizeof (buf) ?
	    end - (off_t)sizeof (buf) : 0, SEEK_SET);
	n = read(vmm_hush_fd, buf, sizeof (buf));
	if (n > 0) {
		(void) write(vmm_real_fd, "--- vmem reports (tail) ---\n", 28);
		(void) write(vmm_real_fd, buf, (size_t)n);
		(void) write(vmm_real_fd, "---\n", 4);
	}
	(void) lseek(vmm_hush_fd, 0, SEEK_END);
}

/* A crash while hushed: show the tail and the real stderr, then die. */
VMM_FN void
vmm_hush_signal(int sig)
{
	vmm_hush_tail();
	if (vmm_real_fd >= 0)
		(void) dup2(vmm_real_fd, STDERR_FILENO);
	(void) signal(sig, SIG_DFL);
	(void) raise(sig);
}

VMM_FN void
vmm_hush(int on)
{
	static int installed;

	if (on) {
		if (vmm_hush_fd < 0)
			vmm_hush_fd = memfd_create("vmm_reports", 0);
		if (vmm_hush_fd < 0)
			return;
		(void) ftruncate(vmm_hush_fd, 0);
		(void) lseek(vmm_hush_fd, 0, SEEK_SET);
		fflush(stderr);
		vmm_real_fd = dup(STDERR_FILENO);
		(void) dup2(vmm_hush_fd, STDERR_FILENO);
		if (!installed) {
			installed = 1;
			(void) signal(SIGABRT, vmm_hush_signal);
			(void) signal(SIGSEGV, vmm_hush_signal);
			(void) signal(SIGBUS, vmm_hush_signal);
		}
	} else if (vmm_real_fd >= 0) {
		fflush(stderr);
		(void) dup2(vmm_real_fd, STDERR_FILENO);
		(void) close(vmm_real_fd);
		vmm_real_fd = -1;
	}
}

VMM_FN void
vmm_fail(vmm_t *m, int line, const char *cond, const char *fmt, ...)
{
	char msg[1024], last[512];
	va_list ap;

	if (m->m_nfail++ < 5 && !(m->m_flags & VMM_QUIET)) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof (msg), fmt, ap);
		va_end(ap);
		if (vmem_last_error(last, sizeof (last)) == 0)
			last[0] = '\0';
		if (m->m_nfail == 1)
			vmm_hush_tail();
		dprintf(m->m_errfd, "vmem model: seed %llu op %ld (%s), "
		    "vmem_model.h:%d: %s: %s\n  (last vmem report: %s)\n",
		    m->m_seed, m->m_op, m->m_opname ? m->m_opname : "-", line,
		    cond, msg, last);
	}
	if (m->m_flags & VMM_FATAL) {
		vmm_hush(0);
		abort();
	}
}

#define	VMM_CHECK(m, cond, ...) do {					\
	if (!(cond))							\
		vmm_fail((m), __LINE__, #cond, __VA_ARGS__);		\
} while (0)

typedef unsigned long long vmm_ull;
#define	VMM_T(m, ...) do {						\
	if ((m)->m_flags & VMM_TRACE)					\
		dprintf((m)->m_errfd, __VA_ARGS__);			\
} while (0)
#define	U(x)	((vmm_ull)(x))

/*
 * Random numbers: from the PRNG, or consumed from the fuzzer's input (as
 * few bytes as the range needs; 0 once the input is exhausted).
 */
VMM_FN uint64_t
vmm_below(vmm_t *m, uint64_t n)
{
	uint64_t v = 0;
	int i, nb;

	if (n <= 1)
		return (0);
	if (m->m_data == NULL) {
		uint64_t x = m->m_state;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		m->m_state = x;
		return ((x * 2685821657736338717ull) % n);
	}
	nb = n <= 0x100 ? 1 : n <= 0x10000 ? 2 : n <= 0x100000000ull ? 4 : 8;
	for (i = 0; i < nb; i++) {
		if (m->m_pos >= m->m_len) {
			m->m_done = 1;
			break;
		}
		v |= (uint64_t)m->m_data[m->m_pos++] << (8 * i);
	}
	return (v % n);
}

VMM_FN int
vmm_p2(uint64_t x)
{
	return (x != 0 && (x & (x - 1)) == 0);
}

VMM_FN int
vmm_lst(uint64_t size)		/* freelist index of a size */
{
	return (63 - __builtin_clzll(size));
}

VMM_FN uintptr_t
vmm_roundup(uintptr_t x, uintptr_t a)
{
	return ((x + a - 1) & ~(a - 1));
}

/*
 * The lowest (vmm_fit_low) or highest (vmm_fit_high) address in free
 * segment [s, e) meeting the constraints; returns 0 if there is none.
 * maxaddr 0 means unbounded.  Arguments are valid (checked by the caller).
 */
VMM_FN int
vmm_window(uintptr_t s, uintptr_t e, uintptr_t size, uintptr_t minaddr,
    uintptr_t maxaddr, uintptr_t *startp, uintptr_t *endp)
{
	uintptr_t start = s > minaddr ? s : minaddr;
	uintptr_t end = (maxaddr != 0 && maxaddr < e) ? maxaddr : e;

	if (start >= end || end - start < size)
		return (0);
	*startp = start;
	*endp = end;
	return (1);
}

VMM_FN int
vmm_crosses(uintptr_t t, uintptr_t size, uintptr_t nocross)
{
	return (nocross != 0 && (t ^ (t + size - 1)) >= nocross);
}

VMM_FN int
vmm_fit_low(uintptr_t s, uintptr_t e, uintptr_t size, uintptr_t align,
    uintptr_t phase, uintptr_t nocross, uintptr_t minaddr, uintptr_t maxaddr,
    uintptr_t *out)
{
	uintptr_t start, end, t;

	if (!vmm_window(s, e, size, minaddr, maxaddr, &start, &end))
		return (0);
	t = start + ((phase - start) & (align - 1));
	if (t < start)
		return (0);
	if (vmm_crosses(t, size, nocross)) {
		t = (t & ~(nocross - 1)) + nocross + phase;
		if (t < start)
			return (0);
	}
	if (t > end || end - t < size)
		return (0);
	*out = t;
	return (1);
}

VMM_FN int
vmm_fit_high(uintptr_t s, uintptr_t e, uintptr_t size, uintptr_t align,
    uintptr_t phase, uintptr_t nocross, uintptr_t minaddr, uintptr_t maxaddr,
    uintptr_t *out)
{
	uintptr_t start, end, t, b;

	if (!vmm_window(s, e, size, minaddr, maxaddr, &start, &end))
		return (0);
	t = end - size;
	if (((t - phase) & (align - 1)) > t)
		return (0);
	t -= (t - phase) & (align - 1);
	if (t < start)
		return (0);
	if (vmm_crosses(t, size, nocross)) {
		b = (t + size - 1) & ~(nocross - 1);
		if (b < size)
			return (0);
		t = b - size;
		if (((t - phase) & (align - 1)) > t)
			return (0);
		t -= (t - phase) & (align - 1);
		if (t < start)
			return (0);
	}
	*out = t;
	return (1);
}

VMM_FN int
vmm_cmp_seg(const void *a, const void *b)
{
	const vmm_seg_t *x = a, *y = b;

	return (x->s_start < y->s_start ? -1 : x->s_start > y->s_start);
}

VMM_FN void
vmm_walk_cb(void *arg, void *start, size_t size)
{
	vmm_t *m = arg;

	if (m->m_wn >= VMM_MAXSEGS) {
		m->m_wover = 1;
		return;
	}
	m->m_wbuf[m->m_wn].s_start = (uintptr_t)start;
	m->m_wbuf[m->m_wn].s_size = size;
	m->m_wbuf[m->m_wn].s_req = size;
	m->m_wbuf[m->m_wn].s_kind = 0;
	m->m_wn++;
}

/* Walk one segment type into buf, sorted by address; returns the count. */
VMM_FN int
vmm_collect(vmm_t *m, vmm_arena_t *a, int type, vmm_seg_t *buf)
{
	m->m_wbuf = buf;
	m->m_wn = 0;
	m->m_wover = 0;
	vmem_walk(a->a_vmp, type, vmm_walk_cb, m);
	VMM_CHECK(m, !m->m_wover, "%s: walk of type %#x overflowed",
	    a->a_name, type);
	qsort(buf, (size_t)m->m_wn, sizeof (vmm_seg_t), vmm_cmp_seg);
	return (m->m_wn);
}

VMM_FN void
vmm_collect_free(vmm_t *m, vmm_arena_t *a)
{
	m->m_nfs = vmm_collect(m, a, VMEM_FREE, m->m_fs);
}

/* Index of the span holding [addr, addr + size), or -1. */
VMM_FN int
vmm_span_of(vmm_arena_t *a, uintptr_t addr, uintptr_t size)
{
	int i;

	for (i = 0; i < a->a_nspans; i++) {
		vmm_seg_t *s = &a->a_spans[i];

		if (addr >= s->s_start && addr - s->s_start <= s->s_size &&
		    size <= s->s_size - (addr - s->s_start))
			return (i);
	}
	return (-1);
}

/* Index of the pre-operation free segment holding the range, or -1. */
VMM_FN int
vmm_free_of(vmm_t *m, uintptr_t addr, uintptr_t size)
{
	int i;

	for (i = 0; i < m->m_nfs; i++) {
		vmm_seg_t *s = &m->m_fs[i];

		if (addr >= s->s_start && addr - s->s_start < s->s_size &&
		    size <= s->s_size - (addr - s->s_start))
			return (i);
	}
	return (-1);
}

VMM_FN int
vmm_span_allocs(vmm_arena_t *a, const vmm_seg_t *sp)
{
	int i, n = 0;

	for (i = 0; i < a->a_nallocs; i++)
		if (a->a_allocs[i].s_start >= sp->s_start &&
		    a->a_allocs[i].s_start < sp->s_start + sp->s_size)
			n++;
	return (n);
}

/*
 * Import callbacks: get the span from the parent arena and record it as a
 * span of the arena being operated on.
 */
VMM_FN void *
vmm_do_import(vmem_t *src, size_t *sizep, int flag, int x)
{
	vmm_t *m = vmm_global;
	vmm_arena_t *a = m->m_cur;
	void *p;

	VMM_CHECK(m, a != NULL && a->a_source, "import by an arena "
	    "without a source");
	if (a == NULL || !a->a_source)
		return (NULL);
	a->a_n_calls++;
	VMM_CHECK(m, src == m->m_parent, "%s: import from the wrong source",
	    a->a_name);
	VMM_CHECK(m, *sizep != 0 && *sizep % a->a_quantum == 0,
	    "%s: import size %#llx not a multiple of the quantum %#llx",
	    a->a_name, U(*sizep), U(a->a_quantum));
	VMM_CHECK(m, (flag & VM_NOSLEEP) != 0, "%s: VM_NOSLEEP request "
	    "imported with flags %#x", a->a_name, flag);
	if (a->a_import_fail || a->a_nspans == VMM_MAXSPANS || *sizep == 0) {
		a->a_n_import_fail++;
		return (NULL);
	}
	if (x)
		*sizep += a->a_xextra;
	p = vmem_alloc(m->m_parent, *sizep, VM_NOSLEEP);
	if (p == NULL) {
		a->a_n_import_fail++;
		return (NULL);
	}
	VMM_T(m, "  import [%p, +%#llx)\n", p, U(*sizep));
	m->m_parent_inuse += vmm_roundup(*sizep, m->m_pquantum);
	a->a_spans[a->a_nspans].s_start = (uintptr_t)p;
	a->a_spans[a->a_nspans].s_size = *sizep;
	a->a_spans[a->a_nspans].s_req = *sizep;
	a->a_spans[a->a_nspans].s_kind = 1;
	a->a_nspans++;
	a->a_n_import++;
	m->m_nimports++;
	return (p);
}

VMM_FN void *
vmm_afunc(vmem_t *src, size_t size, int flag)
{
	return (vmm_do_import(src, &size, flag, 0));
}

VMM_FN void *
vmm_xafunc(vmem_t *src, size_t *sizep, int flag)
{
	return (vmm_do_import(src, sizep, flag, 1));
}

VMM_FN void
vmm_ffunc(vmem_t *src, void *addr, size_t size)
{
	vmm_t *m = vmm_global;
	vmm_arena_t *a = m->m_cur;
	int i;

	VMM_CHECK(m, a != NULL && a->a_source, "release by an arena "
	    "without a source");
	if (a == NULL)
		return;
	VMM_CHECK(m, src == m->m_parent, "%s: release to the wrong source",
	    a->a_name);
	for (i = 0; i < a->a_nspans; i++)
		if (a->a_spans[i].s_kind && a->a_spans[i].s_start ==
		    (uintptr_t)addr && a->a_spans[i].s_size == size)
			break;
	VMM_CHECK(m, i < a->a_nspans, "%s: released [%#llx, +%#llx) is not "
	    "an imported span", a->a_name, U(addr), U(size));
	if (i == a->a_nspans)
		return;
	VMM_CHECK(m, a->a_destroying || vmm_span_allocs(a, &a->a_spans[i]) ==
	    0, "%s: released span [%#llx, +%#llx) still has allocations",
	    a->a_name, U(addr), U(size));
	VMM_T(m, "  release [%p, +%#llx)\n", addr, U(size));
	/* A rotor inside a vanished span has no defined place any more. */
	if (a->a_rotor >= (uintptr_t)addr && a->a_rotor <= (uintptr_t)addr +
	    size)
		a->a_rotor_lost = 1;
	a->a_spans[i] = a->a_spans[--a->a_nspans];
	a->a_n_release++;
	m->m_parent_inuse -= vmm_roundup(size, m->m_pquantum);
	vmem_free(m->m_parent, addr, size);
}

/* The full consistency check of one arena against the model. */
VMM_FN void
vmm_check_arena(vmm_t *m, vmm_arena_t *a)
{
	vmm_seg_t *ws = m->m_ws, *tmp = m->m_tmp;
	vmm_seg_t spans[VMM_MAXSPANS];
	uint64_t inuse = 0, total = 0, imported = 0;
	int i, j, n, nal, nfree, nsplit = 0;
	vmem_stat_t st;

	VMM_CHECK(m, vmem_verify(a->a_vmp) == 0, "%s: vmem_verify failed",
	    a->a_name);

	/* Spans. */
	n = vmm_collect(m, a, VMEM_SPAN, tmp);
	memcpy(spans, a->a_spans, sizeof (vmm_seg_t) * (size_t)a->a_nspans);
	qsort(spans, (size_t)a->a_nspans, sizeof (vmm_seg_t), vmm_cmp_seg);
	VMM_CHECK(m, n == a->a_nspans, "%s: walk shows %d spans, model %d",
	    a->a_name, n, a->a_nspans);
	for (i = 0; i < n && i < a->a_nspans; i++) {

		VMM_CHECK(m, tmp[i].s_start == spans[i].s_start &&
		    tmp[i].s_size == spans[i].s_size, "%s: span %d is "
		    "[%#llx, +%#llx), model [%#llx, +%#llx)", a->a_name, i,
		    U(tmp[i].s_start), U(tmp[i].s_size),
		    U(spans[i].s_start), U(spans[i].s_size));
		total += spans[i].s_size;
		if (spans[i].s_kind) {
			imported += spans[i].s_size;
			VMM_CHECK(m, vmm_span_allocs(a, &spans[i]) > 0,
			    "%s: imported span [%#llx, +%#llx) is free but "
			    "was not given back", a->a_name,
			    U(spans[i].s_start), U(spans[i].s_size));
		}
	}

	/* Allocated segments. */
	nal = vmm_collect(m, a, VMEM_ALLOC, tmp);
	VMM_CHECK(m, nal == a->a_nallocs, "%s: walk shows %d allocated "
	    "segments, model %d", a->a_name, nal, a->a_nallocs);
	memcpy(ws, a->a_allocs, sizeof (vmm_seg_t) * (size_t)a->a_nallocs);
	qsort(ws, (size_t)a->a_nallocs, sizeof (vmm_seg_t), vmm_cmp_seg);
	for (i = 0; i < nal && i < a->a_nallocs; i++) {
		VMM_CHECK(m, tmp[i].s_start == ws[i].s_start &&
		    tmp[i].s_size == ws[i].s_size, "%s: allocated segment %d "
		    "is [%#llx, +%#llx), model [%#llx, +%#llx)", a->a_name, i,
		    U(tmp[i].s_start), U(tmp[i].s_size),
		    U(ws[i].s_start), U(ws[i].s_size));
		inuse += ws[i].s_size;
	}
	if (m->m_nfail)
		return;

	/* Free segments: with the allocated ones they tile every span. */
	vmm_collect_free(m, a);
	nfree = m->m_nfs;
	for (i = 0; i < nal; i++)
		tmp[i].s_kind = 1;
	memcpy(ws, tmp, sizeof (vmm_seg_t) * (size_t)nal);
	for (i = 0; i < nfree; i++) {
		ws[nal + i] = m->m_fs[i];
		ws[nal + i].s_kind = 0;
	}
	qsort(ws, (size_t)(nal + nfree), sizeof (vmm_seg_t), vmm_cmp_seg);
	for (i = 0, j = 0; i < a->a_nspans; i++) {
		uintptr_t cur = spans[i].s_start;
		uintptr_t end = spans[i].s_start + spans[i].s_size;
		int prevfree = 0;

		while (j < nal + nfree && cur < end) {
			VMM_CHECK(m, ws[j].s_start == cur && ws[j].s_size > 0 &&
			    ws[j].s_size <= end - cur, "%s: segment [%#llx, "
			    "+%#llx) (%s) does not continue span [%#llx, "
			    "+%#llx) at %#llx", a->a_name, U(ws[j].s_start),
			    U(ws[j].s_size), ws[j].s_kind ? "alloc" : "free",
			    U(spans[i].s_start), U(spans[i].s_size), U(cur));
			if (m->m_nfail)
				return;
			if (!ws[j].s_kind && prevfree)
				nsplit++;
			prevfree = !ws[j].s_kind;
			cur += ws[j].s_size;
			j++;
		}
		VMM_CHECK(m, cur == end, "%s: span [%#llx, +%#llx) is covered "
		    "only up to %#llx", a->a_name, U(spans[i].s_start),
		    U(spans[i].s_size), U(cur));
	}
	VMM_CHECK(m, j == nal + nfree, "%s: %d segments outside every span",
	    a->a_name, nal + nfree - j);
	VMM_CHECK(m, nsplit == 0, "%s: %d pairs of adjacent free segments "
	    "not coalesced", a->a_name, nsplit);

	/* Statistics. */
	VMM_CHECK(m, vmem_getstat(a->a_vmp, &st) == 0, "%s: vmem_getstat",
	    a->a_name);
#define	VMM_STAT(field, want)						\
	VMM_CHECK(m, st.field == (want), "%s: " #field " is %llu, model %llu",\
	    a->a_name, U(st.field), U(want))
	VMM_CHECK(m, strcmp(st.vk_name, a->a_name) == 0, "%s: vk_name %s",
	    a->a_name, st.vk_name);
	VMM_STAT(vk_quantum, a->a_quantum);
	VMM_STAT(vk_mem_inuse, inuse);
	VMM_STAT(vk_mem_total, total);
	VMM_STAT(vk_mem_import, imported);
	VMM_STAT(vk_alloc, a->a_n_alloc);
	VMM_STAT(vk_free, a->a_n_free);
	VMM_STAT(vk_seg_alloc, a->a_n_alloc);	/* no quantum caches */
	VMM_STAT(vk_seg_free, a->a_n_free);
	VMM_STAT(vk_import, a->a_n_import);
	VMM_STAT(vk_import_fail, a->a_n_import_fail);
	VMM_STAT(vk_span_release, a->a_n_release);
	VMM_STAT(vk_bad_free, a->a_n_bad);
	VMM_STAT(vk_wrong_size, a->a_n_wrong);
	VMM_STAT(vk_nsegs_alloc, (uint64_t)a->a_nallocs);
	VMM_STAT(vk_nsegs_free, (uint64_t)nfree);
	VMM_STAT(vk_nspans, (uint64_t)a->a_nspans);
	VMM_STAT(vk_fail, a->a_n_fail);
	VMM_STAT(vk_wait, 0);
	VMM_STAT(vk_contains, a->a_n_contains);
	VMM_CHECK(m, st.vk_hash_size > 0 && st.vk_hash_maxchain <=
	    (uint64_t)a->a_nallocs, "%s: hash size %llu, max chain %llu",
	    a->a_name, U(st.vk_hash_size), U(st.vk_hash_maxchain));
#undef VMM_STAT
	VMM_CHECK(m, vmem_size(a->a_vmp, VMEM_ALLOC) == inuse,
	    "%s: vmem_size(ALLOC) %llu, model %llu", a->a_name,
	    U(vmem_size(a->a_vmp, VMEM_ALLOC)), U(inuse));
	VMM_CHECK(m, vmem_size(a->a_vmp, VMEM_FREE) == total - inuse,
	    "%s: vmem_size(FREE) %llu, model %llu", a->a_name,
	    U(vmem_size(a->a_vmp, VMEM_FREE)), U(total - inuse));
	VMM_CHECK(m, vmem_size(a->a_vmp, VMEM_ALLOC | VMEM_FREE) == total,
	    "%s: vmem_size(ALLOC|FREE) %llu, model %llu", a->a_name,
	    U(vmem_size(a->a_vmp, VMEM_ALLOC | VMEM_FREE)), U(total));

	/* vmem_contains: each span, and probes around a random span. */
	for (i = 0; i < a->a_nspans; i++, a->a_n_contains++)
		VMM_CHECK(m, vmem_contains(a->a_vmp, (void *)spans[i].s_start,
		    spans[i].s_size) == 1, "%s: vmem_contains(span %d) != 1",
		    a->a_name, i);
	if (a->a_nspans > 0) {
		vmm_seg_t *s = &spans[vmm_below(m, (uint64_t)a->a_nspans)];
		uintptr_t probe[4][2] = {
			{ s->s_start - 1, 2 }, { s->s_start + s->s_size - 1, 2 },
			{ s->s_start + s->s_size, 1 }, { s->s_start + 1,
			    s->s_size - 1 } };

		for (i = 0; i < 4; i++) {
			int want = vmm_span_of(a, probe[i][0], probe[i][1]) >= 0;

			if (probe[i][1] == 0)
				continue;
			a->a_n_contains++;
			VMM_CHECK(m, vmem_contains(a->a_vmp, (void *)probe[i][0],
			    probe[i][1]) == want, "%s: vmem_contains(%#llx, "
			    "%#llx) != %d", a->a_name, U(probe[i][0]),
			    U(probe[i][1]), want);
		}
	}
}

VMM_FN void
vmm_check_all(vmm_t *m)
{
	vmem_stat_t st;
	int i;

	for (i = 0; i < VMM_NARENA && m->m_nfail == 0; i++) {
		if (m->m_a[i].a_live)
			vmm_check_arena(m, &m->m_a[i]);
	}
	VMM_CHECK(m, vmem_verify(m->m_parent) == 0, "parent: vmem_verify");
	VMM_CHECK(m, vmem_getstat(m->m_parent, &st) == 0 &&
	    st.vk_mem_inuse == m->m_parent_inuse, "parent: in use %llu, "
	    "model %llu", U(st.vk_mem_inuse), U(m->m_parent_inuse));
}

/* A request size: small, unaligned, power-of-two or large. */
VMM_FN size_t
vmm_gen_size(vmm_t *m, size_t q)
{
	switch (vmm_below(m, 5)) {
	case 0:
		return (q * (1 + vmm_below(m, 4)));
	case 1:
		return (1 + vmm_below(m, q * 64));
	case 2:
		return (q << vmm_below(m, 12));
	case 3:
		return (q * (1 + vmm_below(m, 4096)));
	default:
		return (q * (1 + vmm_below(m, 48)));
	}
}

VMM_FN int
vmm_overlaps(vmm_arena_t *a, uintptr_t addr, uintptr_t size)
{
	int i;

	for (i = 0; i < a->a_nallocs; i++) {
		vmm_seg_t *s = &a->a_allocs[i];

		if (addr < s->s_start + s->s_size && s->s_start < addr + size)
			return (1);
	}
	return (0);
}

VMM_FN void
vmm_record(vmm_t *m, vmm_arena_t *a, uintptr_t addr, size_t req,
    uintptr_t size, int kind)
{
	VMM_CHECK(m, !vmm_overlaps(a, addr, size), "%s: [%#llx, +%#llx) "
	    "overlaps a live allocation", a->a_name, U(addr), U(size));
	VMM_CHECK(m, vmm_span_of(a, addr, size) >= 0, "%s: [%#llx, +%#llx) "
	    "is not inside one span", a->a_name, U(addr), U(size));
	a->a_allocs[a->a_nallocs].s_start = addr;
	a->a_allocs[a->a_nallocs].s_size = size;
	a->a_allocs[a->a_nallocs].s_req = req;
	a->a_allocs[a->a_nallocs].s_kind = kind;
	a->a_nallocs++;
	a->a_n_alloc++;
	m->m_nallocs_ok++;
}

#define	VMM_POL_INSTANT	0
#define	VMM_POL_BEST	1
#define	VMM_POL_FIRST	2
#define	VMM_POL_NEXT	3

/*
 * The policy check: seg is the free segment the allocation came from, fit
 * says which free segments could have served the request.
 */
VMM_FN void
vmm_check_policy(vmm_t *m, vmm_arena_t *a, int pol, int unconstrained,
    uintptr_t size, const vmm_seg_t *seg, const char *fit)
{
	int i, n = vmm_lst(size), lmin = 64, ldef = 64;
	uintptr_t smin = UINTPTR_MAX;

	for (i = 0; i < m->m_nfs; i++) {
		int l = vmm_lst(m->m_fs[i].s_size);

		if (fit[i]) {
			if (m->m_fs[i].s_size < smin)
				smin = m->m_fs[i].s_size;
			if (l < lmin)
				lmin = l;
		}
		if (l >= (vmm_p2(size) ? n : n + 1) && l < ldef)
			ldef = l;
	}
	switch (pol) {
	case VMM_POL_BEST:
		VMM_CHECK(m, seg->s_size == smin, "%s: best fit of %#llx chose "
		    "a %#llx segment, smallest adequate is %#llx", a->a_name,
		    U(size), U(seg->s_size), U(smin));
		break;
	case VMM_POL_FIRST:
		VMM_CHECK(m, vmm_lst(seg->s_size) == lmin, "%s: first fit of "
		    "%#llx chose list %d, lowest adequate list is %d",
		    a->a_name, U(size), vmm_lst(seg->s_size), lmin);
		break;
	case VMM_POL_INSTANT:
		if (!unconstrained)
			break;
		/* The first list guaranteed to fit, else the size's own. */
		if (ldef == 64)
			ldef = n;
		VMM_CHECK(m, vmm_lst(seg->s_size) == ldef, "%s: instant fit "
		    "of %#llx chose list %d, expected list %d", a->a_name,
		    U(size), vmm_lst(seg->s_size), ldef);
		break;
	}
}

/*
 * The logical free space: walked free segments with any that touch inside a
 * span joined (the walk shows them apart only where a marker splits them).
 */
VMM_FN int
vmm_merge_free(vmm_t *m, vmm_arena_t *a, vmm_seg_t *out)
{
	int i, j, n = 0;

	for (i = 0; i < m->m_nfs; i++) {
		vmm_seg_t *s = &m->m_fs[i];
		int boundary = 0;

		for (j = 0; j < a->a_nspans; j++)
			if (a->a_spans[j].s_start == s->s_start)
				boundary = 1;
		if (n > 0 && !boundary && out[n - 1].s_start +
		    out[n - 1].s_size == s->s_start)
			out[n - 1].s_size += s->s_size;
		else
			out[n++] = *s;
	}
	return (n);
}

/*
 * One allocation.  x: vmem_xalloc with the given constraints (invalid ones
 * expect EINVAL); otherwise vmem_alloc with the policy in flag.
 */
VMM_FN void
vmm_do_alloc(vmm_t *m, vmm_arena_t *a, int x, size_t req, size_t align,
    size_t phase, size_t nocross, uintptr_t minaddr, uintptr_t maxaddr,
    int flag, int invalid)
{
	size_t q = a->a_quantum;
	uintptr_t size = vmm_roundup(req, q), addr, t;
	uintptr_t al = align ? align : q;
	int constrained = nocross != 0 || minaddr != 0 || maxaddr != 0;
	int pol = (flag & VM_BESTFIT) ? VMM_POL_BEST : (flag & VM_FIRSTFIT) ?
	    VMM_POL_FIRST : (flag & VM_NEXTFIT) ? VMM_POL_NEXT :
	    VMM_POL_INSTANT;
	int endalloc = (flag & VM_ENDALLOC) != 0;
	uint64_t calls0 = a->a_n_calls, imp0 = a->a_n_import;
	char fit[VMM_MAXSEGS];
	vmm_seg_t *mfs = m->m_tmp;
	int i, si, nfit = 0, nmfit = 0, nmfs, called, imported;
	int rotor_room = 0;
	int tagged = x && !invalid && phase == 0 && nocross == 0 &&
	    minaddr == 0 && maxaddr == 0 && vmm_below(m, 2);
	void *tag = NULL;
	const vmm_seg_t *seg;
	vmm_seg_t impseg;
	void *p;
	char what[256];

	vmm_collect_free(m, a);
	for (i = 0; i < m->m_nfs; i++) {
		fit[i] = !invalid && vmm_fit_low(m->m_fs[i].s_start,
		    m->m_fs[i].s_start + m->m_fs[i].s_size, size, al, phase,
		    nocross, minaddr, maxaddr, &t);
		nfit += fit[i];
	}
	nmfs = vmm_merge_free(m, a, mfs);
	for (i = 0; i < nmfs && !invalid; i++)
		nmfit += vmm_fit_low(mfs[i].s_start, mfs[i].s_start +
		    mfs[i].s_size, size, al, phase, nocross, minaddr, maxaddr,
		    &t);
	if (pol == VMM_POL_NEXT) {
		/*
		 * Room right at the rotor: next fit must continue there.
		 * (Only within the span of the last next fit: the order of
		 * spans in the arena list is not defined.)
		 */
		for (i = 0; i < nmfs && a->a_rotor != 0 &&
		    vmm_span_of(a, a->a_rotor - 1, 2) >= 0; i++)
			if (a->a_rotor >= mfs[i].s_start && a->a_rotor -
			    mfs[i].s_start < mfs[i].s_size && mfs[i].s_size -
			    (a->a_rotor - mfs[i].s_start) >= size)
				rotor_room = 1;
	}
	if (a->a_nallocs == VMM_MAXALLOCS)
		return;
	snprintf(what, sizeof (what), "%s(%#llx, align %#llx, phase %#llx, "
	    "nocross %#llx, min %#llx, max %#llx, flags %#x)",
	    tagged ? "xalloc_tag" : x ? "xalloc" : "alloc", U(req), U(align),
	    U(phase), U(nocross),
	    U(minaddr), U(maxaddr), flag);

	errno = 0;
	if (tagged)
		p = vmem_xalloc_tag(a->a_vmp, req, align, flag, &tag);
	else if (x)
		p = vmem_xalloc(a->a_vmp, req, align, phase, nocross,
		    (void *)minaddr, (void *)maxaddr, flag);
	else
		p = vmem_alloc(a->a_vmp, req, flag);
	called = a->a_n_calls != calls0;
	imported = a->a_n_import != imp0;
	addr = (uintptr_t)p;
	VMM_T(m, "op %ld %s: %s -> %p%s\n", m->m_op, a->a_name, what, p,
	    imported ? " (imported)" : "");
	if (p == NULL)
		a->a_n_fail++;

	if (invalid) {
		VMM_CHECK(m, p == NULL && errno == EINVAL && !called,
		    "%s: invalid %s returned %p errno %d", a->a_name, what, p,
		    errno);
		if (p != NULL)
			vmm_record(m, a, addr, req, size, x);
		return;
	}
	if (nmfit > 0) {
		VMM_CHECK(m, p != NULL && !called, "%s: %s -> %p (import calls "
		    "%llu) although %d free segments fit (%d as the walk shows "
		    "them)", a->a_name, what, p, U(a->a_n_calls - calls0),
		    nmfit, nfit);
	} else if (a->a_source && !constrained) {
		VMM_CHECK(m, called, "%s: %s that no free segment fits did not "
		    "try to import", a->a_name, what);
		VMM_CHECK(m, p != NULL || !imported, "%s: import succeeded but "
		    "%s failed", a->a_name, what);
	} else {
		VMM_CHECK(m, p == NULL && !called, "%s: %s -> %p (import calls "
		    "%llu) although no free segment fits", a->a_name, what, p,
		    U(a->a_n_calls - calls0));
	}
	if (p == NULL) {
		/*
		 * A window that can never hold the request (after rounding
		 * to the quantum) is overconstrained: EINVAL.  Anything else
		 * that fails is ENOMEM.
		 */
		VMM_CHECK(m, errno == ENOMEM || (errno == EINVAL &&
		    maxaddr != 0 && (maxaddr - vmm_roundup(minaddr, q)) < size),
		    "%s: %s failed with errno %d", a->a_name, what, errno);
		return;
	}

	/* Constraints. */
	VMM_CHECK(m, addr % al == phase, "%s: %s: %#llx %% %#llx != %#llx",
	    a->a_name, what, U(addr), U(al), U(phase));
	VMM_CHECK(m, addr >= minaddr && (maxaddr == 0 || (addr < maxaddr &&
	    size <= maxaddr - addr)), "%s: %s: [%#llx, +%#llx) is outside "
	    "the window", a->a_name, what, U(addr), U(size));
	VMM_CHECK(m, !vmm_crosses(addr, size, nocross), "%s: %s: [%#llx, "
	    "+%#llx) crosses a boundary", a->a_name, what, U(addr), U(size));

	/* The segment it came from. */
	si = vmm_free_of(m, addr, size);
	if (si >= 0) {
		seg = &m->m_fs[si];
	} else {
		for (i = 0; i < nmfs; i++)
			if (addr >= mfs[i].s_start && addr - mfs[i].s_start <
			    mfs[i].s_size && size <= mfs[i].s_size -
			    (addr - mfs[i].s_start))
				break;
		if (i < nmfs) {
			impseg = mfs[i];
		} else {
			i = vmm_span_of(a, addr, size);
			VMM_CHECK(m, imported && i >= 0 &&
			    a->a_spans[i].s_kind && vmm_span_allocs(a,
			    &a->a_spans[i]) == 0, "%s: %s: result [%#llx, "
			    "+%#llx) is not inside a free segment nor a new "
			    "span", a->a_name, what, U(addr), U(size));
			if (m->m_nfail)
				return;
			impseg = a->a_spans[i];
		}
		seg = &impseg;
	}
	VMM_CHECK(m, !imported || seg == &impseg, "%s: %s imported, yet the "
	    "result [%#llx, +%#llx) came from old free space", a->a_name,
	    what, U(addr), U(size));
	if (m->m_nfail)
		return;

	if (pol == VMM_POL_NEXT) {
		/*
		 * Next fit continues at the rotor if there is room there,
		 * else takes the start of a free segment (which one depends
		 * on the arena list's order of spans; the PID tests check the
		 * order within a span).
		 */
		int old_rotor = 0;

		for (i = 0; i < VMM_NROTOR; i++)
			old_rotor |= a->a_rotors[i] == addr;
		if (((m->m_flags & VMM_ROTOR_OK) || a->a_rotor_lost) &&
		    (old_rotor || addr == seg->s_start))
			;	/* tolerated: lost the rotor */
		else if (rotor_room)
			VMM_CHECK(m, addr == a->a_rotor, "%s: next fit of "
			    "%#llx gave %#llx, but the rotor %#llx has room "
			    "(rotor set by next fit at op %ld%s)",
			    a->a_name, U(size), U(addr), U(a->a_rotor),
			    a->a_rotor_op, a->a_rotor_imp ? ", which imported"
			    : "");
		else
			VMM_CHECK(m, addr == seg->s_start, "%s: next fit "
			    "%#llx is not the start of its free segment %#llx",
			    a->a_name, U(addr), U(seg->s_start));
		a->a_rotor = addr + size;
		a->a_rotors[a->a_nrotor++ % VMM_NROTOR] = addr + size;
		a->a_rotor_op = m->m_op;
		a->a_rotor_lost = 0;
		a->a_rotor_imp = imported;
	} else if (endalloc) {
		VMM_CHECK(m, vmm_fit_high(seg->s_start, seg->s_start +
		    seg->s_size, size, al, phase, nocross, minaddr, maxaddr,
		    &t) && t == addr, "%s: %s gave %#llx, the highest "
		    "feasible in [%#llx, +%#llx) is %#llx", a->a_name, what,
		    U(addr), U(seg->s_start), U(seg->s_size), U(t));
	} else {
		VMM_CHECK(m, vmm_fit_low(seg->s_start, seg->s_start +
		    seg->s_size, size, al, phase, nocross, minaddr, maxaddr,
		    &t) && t == addr, "%s: %s gave %#llx, the lowest feasible "
		    "in [%#llx, +%#llx) is %#llx", a->a_name, what, U(addr),
		    U(seg->s_start), U(seg->s_size), U(t));
	}
	if (si >= 0 && pol != VMM_POL_NEXT)
		vmm_check_policy(m, a, pol, !x, size, seg, fit);
	vmm_record(m, a, addr, req, size, tagged ? 2 : x);
	a->a_allocs[a->a_nallocs - 1].s_tag = tag;
}

VMM_FN int
vmm_gen_policy(vmm_t *m)
{
	static const int pols[] = { 0, 0, 0, VM_BESTFIT, VM_FIRSTFIT,
	    VM_NEXTFIT, VM_ENDALLOC, VM_ENDALLOC | VM_BESTFIT,
	    VM_ENDALLOC | VM_FIRSTFIT, VM_BESTFIT };

	return (pols[vmm_below(m, sizeof (pols) / sizeof (pols[0]))]);
}

VMM_FN void
vmm_op_alloc(vmm_t *m, vmm_arena_t *a)
{
	size_t req = vmm_gen_size(m, a->a_quantum);

	m->m_opname = "alloc";
	vmm_do_alloc(m, a, 0, req, 0, 0, 0, 0, 0,
	    VM_NOSLEEP | vmm_gen_policy(m), 0);
}

VMM_FN void
vmm_op_xalloc(vmm_t *m, vmm_arena_t *a, int invalid)
{
	size_t q = a->a_quantum, req = vmm_gen_size(m, q);
	size_t align = 0, al, phase = 0, nocross = 0, need;
	uintptr_t minaddr = 0, maxaddr = 0;
	int flag = VM_NOSLEEP | (vmm_gen_policy(m) & ~VM_NEXTFIT);

	m->m_opname = invalid ? "xalloc-einval" : "xalloc";
	if (vmm_below(m, 3) != 0)
		align = q << vmm_below(m, 11);
	al = align ? align : q;
	if (vmm_below(m, 2))
		phase = q * vmm_below(m, al / q);
	need = vmm_roundup(phase + vmm_roundup(req, q), al);
	if (vmm_below(m, 3) == 0) {
		nocross = al > need ? al : need;
		while (!vmm_p2(nocross))
			nocross &= nocross - 1;
		if (nocross < need)
			nocross <<= 1;
		nocross <<= vmm_below(m, 4);
	}
	if (a->a_nspans > 0 && vmm_below(m, 2)) {
		vmm_seg_t *s = &a->a_spans[vmm_below(m, (uint64_t)a->a_nspans)];
		uintptr_t lo = s->s_start + q * vmm_below(m, s->s_size / q + 1);
		uintptr_t len = q * (1 + vmm_below(m, 2 * s->s_size / q + 1));

		switch (vmm_below(m, 3)) {
		case 0:
			minaddr = lo;
			break;
		case 1:
			maxaddr = lo + len;
			break;
		default:
			minaddr = lo;
			maxaddr = lo + len;
			break;
		}
	}
	if (invalid) {
		switch (vmm_below(m, 9)) {
		case 0:
			req = 0;
			break;
		case 1:		/* align not a power of two */
			align = 3 * q << vmm_below(m, 4);
			phase = 0;
			break;
		case 2:		/* phase >= align */
			align = al;
			phase = al * (1 + vmm_below(m, 2));
			break;
		case 3:		/* nocross not a power of two */
			align = al;
			phase = 0;
			nocross = 3 * al * 4;
			break;
		case 4:		/* nocross < align */
			align = q * 4 << vmm_below(m, 4);
			phase = 0;
			nocross = align / 2;
			break;
		case 5:		/* overconstrained */
			align = al;
			nocross = al << vmm_below(m, 3);
			req = nocross - phase + 1;
			break;
		case 6:		/* minaddr >= maxaddr */
			if (minaddr == 0)
				minaddr = a->a_rbase + q;
			maxaddr = minaddr - q * vmm_below(m, 2);
			if (maxaddr == 0)
				maxaddr = minaddr;
			break;
		case 7:		/* align not a multiple of the quantum */
			if (q == 1) {
				req = 0;
				break;
			}
			align = q / 2;
			phase = 0;
			nocross = 0;
			break;
		default:	/* phase not a multiple of the quantum */
			if (q == 1) {
				align = 5;
				break;
			}
			align = q * 2;
			phase = q / 2;
			nocross = 0;
			break;
		}
	}
	vmm_do_alloc(m, a, 1, req, align, phase, nocross, minaddr, maxaddr,
	    flag, invalid);
}

VMM_FN void
vmm_free_index(vmm_t *m, vmm_arena_t *a, int i)
{
	vmm_seg_t s = a->a_allocs[i];
	size_t size = s.s_req;

	/* Any size that rounds to the same quantum multiple is right. */
	if (vmm_below(m, 4) == 0)
		size = s.s_size - vmm_below(m, a->a_quantum);
	VMM_T(m, "op %ld %s: free(%#llx, %#llx)\n", m->m_op, a->a_name,
	    U(s.s_start), U(size));
	a->a_allocs[i] = a->a_allocs[--a->a_nallocs];
	a->a_n_free++;
	if (s.s_kind == 2)
		vmem_xfree_tag(a->a_vmp, (void *)s.s_start, size, s.s_tag);
	else if (s.s_kind)
		vmem_xfree(a->a_vmp, (void *)s.s_start, size);
	else
		vmem_free(a->a_vmp, (void *)s.s_start, size);
}

VMM_FN void
vmm_op_free(vmm_t *m, vmm_arena_t *a)
{
	m->m_opname = "free";
	if (a->a_nallocs > 0)
		vmm_free_index(m, a, (int)vmm_below(m, (uint64_t)a->a_nallocs));
}

VMM_FN void
vmm_expect_report(vmm_t *m, vmm_arena_t *a, const char *what)
{
	char buf[512];

	VMM_CHECK(m, vmem_last_error(buf, sizeof (buf)) > 0 &&
	    strstr(buf, what) != NULL && strstr(buf, a->a_name) != NULL,
	    "%s: last error \"%s\" should say \"%s\" and name the arena",
	    a->a_name, buf, what);
}

/* A bad free (non-fatal mode): must be reported, counted and ignored. */
VMM_FN void
vmm_op_badfree(vmm_t *m, vmm_arena_t *a)
{
	size_t q = a->a_quantum;
	vmm_seg_t *s;

	m->m_opname = "bad-free";
	vmm_collect_free(m, a);
	switch (vmm_below(m, 4)) {
	case 0:		/* the start of a free segment */
		if (m->m_nfs == 0)
			return;
		s = &m->m_fs[vmm_below(m, (uint64_t)m->m_nfs)];
		vmem_free(a->a_vmp, (void *)s->s_start, q);
		a->a_n_bad++;
		vmm_expect_report(m, a, "bad free");
		break;
	case 1:		/* double free */
		if (a->a_nallocs == 0)
			return;
		s = &a->a_allocs[vmm_below(m, (uint64_t)a->a_nallocs)];
		{
			vmm_seg_t c = *s;

			vmm_free_index(m, a, (int)(s - a->a_allocs));
			vmm_check_all(m);
			if (m->m_nfail)
				return;
			vmem_free(a->a_vmp, (void *)c.s_start, c.s_req);
		}
		a->a_n_bad++;
		vmm_expect_report(m, a, "bad free");
		break;
	case 2:		/* inside an allocation */
		if (a->a_nallocs == 0)
			return;
		s = &a->a_allocs[vmm_below(m, (uint64_t)a->a_nallocs)];
		if (s->s_size < 2 * q)
			return;
		vmem_free(a->a_vmp, (void *)(s->s_start + q), q);
		a->a_n_bad++;
		vmm_expect_report(m, a, "bad free");
		break;
	default:	/* wrong size */
		if (a->a_nallocs == 0)
			return;
		s = &a->a_allocs[vmm_below(m, (uint64_t)a->a_nallocs)];
		if (s->s_kind == 2) {
			/* A tagged free checks the size with the tag. */
			vmem_xfree_tag(a->a_vmp, (void *)s->s_start,
			    s->s_size + q, s->s_tag);
			a->a_n_bad++;
			vmm_expect_report(m, a, "bad free");
			break;
		}
		vmem_free(a->a_vmp, (void *)s->s_start, vmm_below(m, 2) ||
		    s->s_size == q ? s->s_size + q : s->s_size - q);
		a->a_n_wrong++;
		vmm_expect_report(m, a, "wrong size");
		break;
	}
}

/* Add a span in the arena's own region, not overlapping its spans. */
VMM_FN void
vmm_op_add(vmm_t *m, vmm_arena_t *a)
{
	size_t q = a->a_quantum;
	uintptr_t addr, size;
	int tries, i;
	void *p;

	m->m_opname = "add";
	if (a->a_nspans >= VMM_MAXSPANS - 4)
		return;
	for (tries = 0; tries < 8; tries++) {
		size = q * (1 + vmm_below(m, vmm_below(m, 2) ? 64 : 8192));
		if (a->a_nspans > 0 && vmm_below(m, 3) == 0) {
			/* adjacent to an existing span: must not merge */
			vmm_seg_t *s = &a->a_spans[vmm_below(m,
			    (uint64_t)a->a_nspans)];

			addr = s->s_start + s->s_size;
		} else {
			addr = a->a_rbase + q * vmm_below(m, a->a_rsize / q -
			    16384);
		}
		if (addr < a->a_rbase + q || addr - a->a_rbase + size >
		    a->a_rsize)
			continue;
		for (i = 0; i < a->a_nspans; i++)
			if (addr < a->a_spans[i].s_start +
			    a->a_spans[i].s_size &&
			    a->a_spans[i].s_start < addr + size)
				break;
		if (i == a->a_nspans)
			break;
	}
	if (tries == 8)
		return;
	p = vmem_add(a->a_vmp, (void *)addr, size, VM_NOSLEEP);
	VMM_T(m, "op %ld %s: add(%#llx, %#llx) -> %p\n", m->m_op, a->a_name,
	    U(addr), U(size), p);
	VMM_CHECK(m, p == (void *)addr, "%s: vmem_add(%#llx, %#llx) "
	    "returned %p", a->a_name, U(addr), U(size), p);
	if (p == NULL)
		return;
	a->a_spans[a->a_nspans].s_start = addr;
	a->a_spans[a->a_nspans].s_size = size;
	a->a_spans[a->a_nspans].s_req = size;
	a->a_spans[a->a_nspans].s_kind = 0;
	a->a_nspans++;
}

VMM_FN void
vmm_create(vmm_t *m, int slot)
{
	vmm_arena_t *a = &m->m_a[slot];
	uintptr_t base = 0, size = 0;
	size_t q;

	memset(a, 0, sizeof (*a));
	m->m_cur = a;
	m->m_opname = "create";
	a->a_source = vmm_below(m, 2);
	q = (size_t)1 << vmm_below(m, 13);
	if (a->a_source && q > m->m_pquantum)
		q = m->m_pquantum;
	a->a_quantum = q;
	a->a_rbase = (uintptr_t)(slot + 1) << 36;
	a->a_rsize = (uintptr_t)1 << 34;
	snprintf(a->a_name, sizeof (a->a_name), "vmm%d_%llu", slot,
	    U(m->m_op));
	if (vmm_below(m, 4) != 0) {
		base = a->a_rbase + q * vmm_below(m, 1024);
		size = q * (2 + vmm_below(m, vmm_below(m, 2) ? 64 : 16384));
		if (slot == 0 && vmm_below(m, 4) == 0) {
			/* A span at address 0 loses its first quantum. */
			a->a_rbase = 0;
			base = 0;
		}
	}
	if (a->a_source) {
		a->a_xcreate = vmm_below(m, 2);
		a->a_xextra = m->m_pquantum * vmm_below(m, 4);
		if (a->a_xcreate)
			a->a_vmp = vmem_xcreate(a->a_name, (void *)base, size, q,
			    vmm_xafunc, vmm_ffunc, m->m_parent, 0, VM_SLEEP);
		else
			a->a_vmp = vmem_create(a->a_name, (void *)base, size, q,
			    vmm_afunc, vmm_ffunc, m->m_parent, 0, VM_SLEEP);
	} else {
		a->a_vmp = vmem_create(a->a_name, (void *)base, size, q,
		    NULL, NULL, NULL, 0, VM_SLEEP);
	}
	VMM_CHECK(m, a->a_vmp != NULL, "vmem_create(%s, %#llx, %#llx, %#llx) "
	    "failed, errno %d", a->a_name, U(base), U(size), U(q), errno);
	if (a->a_vmp == NULL)
		return;
	a->a_live = 1;
	if (size != 0) {
		a->a_spans[0].s_start = base == 0 ? q : base;
		a->a_spans[0].s_size = base == 0 ? size - q : size;
		a->a_spans[0].s_req = size;
		a->a_nspans = 1;
	}
}

/*
 * Destroy an arena.  Normally everything is freed first and the arena
 * must then hold one free segment per own span and no imported span;
 * with leak, vmem_destroy() must report the leak and still give every
 * imported span back.
 */
VMM_FN void
vmm_destroy(vmm_t *m, vmm_arena_t *a, int leak)
{
	int i, own = 0;

	m->m_cur = a;
	m->m_opname = leak ? "destroy-leaking" : "destroy";
	if (!leak) {
		while (a->a_nallocs > 0 && m->m_nfail == 0) {
			vmm_free_index(m, a, (int)vmm_below(m,
			    (uint64_t)a->a_nallocs));
			if (a->a_nallocs % 16 == 0)
				vmm_check_arena(m, a);
		}
		vmm_check_arena(m, a);
		if (m->m_nfail)
			return;
		for (i = 0; i < a->a_nspans; i++)
			own += !a->a_spans[i].s_kind;
		VMM_CHECK(m, a->a_nspans == own, "%s: %d imported spans left "
		    "after freeing everything", a->a_name, a->a_nspans - own);
		vmm_collect_free(m, a);
		VMM_CHECK(m, m->m_nfs == a->a_nspans, "%s: %d free segments "
		    "for %d spans after freeing everything", a->a_name,
		    m->m_nfs, a->a_nspans);
	} else {
		char buf[512];

		a->a_destroying = 1;
		vmem_destroy(a->a_vmp);
		VMM_CHECK(m, vmem_last_error(buf, sizeof (buf)) > 0 &&
		    strstr(buf, "leaked") != NULL && strstr(buf, a->a_name) !=
		    NULL, "%s: leak not reported (last error \"%s\")",
		    a->a_name, buf);
		for (i = 0; i < a->a_nspans; i++)
			VMM_CHECK(m, !a->a_spans[i].s_kind, "%s: imported span "
			    "[%#llx, +%#llx) not given back by vmem_destroy",
			    a->a_name, U(a->a_spans[i].s_start),
			    U(a->a_spans[i].s_size));
		a->a_live = 0;
		return;
	}
	vmem_destroy(a->a_vmp);
	a->a_live = 0;
}

VMM_FN vmm_arena_t *
vmm_pick(vmm_t *m)
{
	int i, slot = (int)vmm_below(m, VMM_NARENA);

	for (i = 0; i < VMM_NARENA; i++) {
		vmm_arena_t *a = &m->m_a[(slot + i) % VMM_NARENA];

		if (a->a_live)
			return (a);
	}
	vmm_create(m, slot);
	return (m->m_a[slot].a_live ? &m->m_a[slot] : NULL);
}

/*
 * Run one random sequence of nops operations (or until the fuzzer's input
 * runs out).  Returns the number of mismatches (0: all good).
 */
VMM_FN int
vmm_run(vmm_t *m, const uint8_t *data, size_t len, unsigned long long seed,
    long nops, int flags)
{
	int prev_abort, i;
	vmm_arena_t *a;
	unsigned r;

	memset(m, 0, sizeof (*m));
	m->m_errfd = STDERR_FILENO;
	if (flags & VMM_HUSH) {
		vmm_hush(1);
		if (vmm_real_fd >= 0)
			m->m_errfd = vmm_real_fd;
	}
	m->m_data = data;
	m->m_len = len;
	m->m_seed = seed;
	m->m_state = seed * 0x9E3779B97F4A7C15ull + 1;
	m->m_flags = flags;
	vmm_global = m;
	prev_abort = vmem_set_abort(0);

	m->m_pquantum = (size_t)1 << vmm_below(m, 13);
	m->m_pbase = (uintptr_t)1 << 44;
	m->m_psize = m->m_pquantum * (64 + vmm_below(m, vmm_below(m, 4) ?
	    (1 << 16) : 2048));
	m->m_parent = vmem_create("vmm_parent", (void *)m->m_pbase,
	    m->m_psize, m->m_pquantum, NULL, NULL, NULL, 0, VM_SLEEP);
	VMM_CHECK(m, m->m_parent != NULL, "parent vmem_create failed");
	if (m->m_parent == NULL)
		goto out;
	for (i = 0; i < VMM_NARENA; i++)
		if (i == 0 || vmm_below(m, 2))
			vmm_create(m, i);

	for (m->m_op = 1; m->m_op <= nops && !m->m_done && !m->m_nfail;
	    m->m_op++) {
		if ((a = vmm_pick(m)) == NULL)
			break;
		m->m_cur = a;
		r = (unsigned)vmm_below(m, 100);
		if (r < 35)
			vmm_op_alloc(m, a);
		else if (r < 58)
			vmm_op_xalloc(m, a, 0);
		else if (r < 90)
			vmm_op_free(m, a);
		else if (r < 94)
			vmm_op_add(m, a);
		else if (r < 96)
			vmm_op_xalloc(m, a, 1);
		else if (r < 97) {
			if (flags & VMM_BADFREE)
				vmm_op_badfree(m, a);
		} else if (r < 98) {
			vmm_destroy(m, a, (flags & VMM_LEAK) &&
			    a->a_nallocs > 0 && vmm_below(m, 3) == 0);
			if (m->m_nfail == 0 && vmm_below(m, 2))
				vmm_create(m, (int)(a - m->m_a));
		} else {
			m->m_opname = "toggle-import-failure";
			a->a_import_fail = a->a_source && vmm_below(m, 3) == 0;
		}
		if (m->m_nfail == 0)
			vmm_check_all(m);
	}

	/* Free everything: one free segment per span, parent back to 0. */
	for (i = 0; i < VMM_NARENA && m->m_nfail == 0; i++) {
		m->m_op++;
		if (m->m_a[i].a_live) {
			m->m_a[i].a_import_fail = 0;
			vmm_destroy(m, &m->m_a[i], 0);
		}
	}
	if (m->m_nfail == 0) {
		vmm_check_all(m);
		VMM_CHECK(m, m->m_parent_inuse == 0, "parent still lends %llu",
		    U(m->m_parent_inuse));
	}
	if (m->m_nfail == 0)
		vmem_destroy(m->m_parent);
out:
	if (flags & VMM_HUSH) {
		vmm_hush(0);
		m->m_errfd = STDERR_FILENO;
	}
	vmem_set_abort(prev_abort);
	vmm_global = NULL;
	return (m->m_nfail);
}

#undef U
#endif /* _VMEM_MODEL_H */
