/*
 * test_debug.c - the debugging layer (issue 5): UMEM_DEBUG / UMEM_LOGGING,
 * one planted bug per error class, the report's format, abort and
 * noabort, audit stacks, firewall, mtbf, logs, option parsing, patterns
 * and the _umem_*_init hooks.
 *
 * The library reads UMEM_DEBUG once, when it initialises, so every case
 * runs in a fresh process: this binary executes itself as
 * "test_debug --child CASE" with the environment the case needs
 * (tu_run_self) and checks the child's output (stdout and stderr) and how
 * it ended.  The parent never calls the library.
 *
 * A planted-bug child prints the address it is about to misuse ("BUF=")
 * and its thread ("TID="), then commits the bug.  With abort (the
 * default) the child must die of SIGABRT after a report; with
 * UMEM_DEBUG=...,noabort it must carry on, and it then prints what
 * umem_error_log() holds between "ERRLOG-BEGIN" and "ERRLOG-END" and
 * shows that the library still works ("ALIVE").
 *
 * Audit stacks are frame-pointer walks and this file is built without
 * -fno-omit-frame-pointer: the functions whose names a report must show
 * keep a frame with FRAME() (__builtin_frame_address forces one in gcc
 * and clang), and the binary is linked with -rdynamic so that dladdr()
 * can name them.  They are global for the same reason.
 *
 * This file also defines _umem_debug_init(), _umem_logging_init() and
 * _umem_options_init(): statically linked, they satisfy the library's
 * weak references.  They return $DBGT_HOOK_DEBUG etc., so they are
 * inert unless a case sets those.
 */
#include "test_umem.h"

#include <dirent.h>
#include <sys/mman.h>

#include "umem_impl.h"
#include "debug.h"

/*
 * What the report's first line says, per class (debug.h numbering),
 * written out here rather than taken from debug.c: this is the spec.
 */
static const char *const errdesc[UMERR_NCLASSES] = {
	"buffer modified after being freed",
	"redzone violation: write past end of buffer",
	"duplicate free",
	"invalid free: buffer not allocated from this cache",
	"boundary tag corrupted",
	"bufctl corrupted",
	"buffer freed to wrong cache",
	"bad free: free size != alloc size",
	"bad free: free address is not the start of a buffer",
};

/* Keep a frame pointer in the calling function, and no tail calls. */
#define	FRAME() do {							\
	void *fa_ = __builtin_frame_address(0);				\
	__asm__ __volatile__("" : : "r" (fa_) : "memory");		\
} while (0)
#define	BARRIER()	__asm__ __volatile__("" : : : "memory")

/* ---------------------------------------------------------------------
 * Hooks (see the top).
 * --------------------------------------------------------------------- */
const char *_umem_debug_init(void);
const char *_umem_logging_init(void);
const char *_umem_options_init(void);

const char *
_umem_debug_init(void)
{
	return (getenv("DBGT_HOOK_DEBUG"));
}

const char *
_umem_logging_init(void)
{
	return (getenv("DBGT_HOOK_LOGGING"));
}

const char *
_umem_options_init(void)
{
	return (getenv("DBGT_HOOK_OPTIONS"));
}

/* ---------------------------------------------------------------------
 * Child side: allocation sites, planted bugs, checks.
 * --------------------------------------------------------------------- */
void *dbgt_cache_alloc(umem_cache_t *cp);
void dbgt_cache_free(umem_cache_t *cp, void *buf);
void *dbgt_alloc(size_t size);
void dbgt_free(void *buf, size_t size);

/* The allocation and free sites that audit records must name. */
void *
dbgt_cache_alloc(umem_cache_t *cp)
{
	void *p;

	FRAME();
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	BARRIER();
	return (p);
}

void
dbgt_cache_free(umem_cache_t *cp, void *buf)
{
	FRAME();
	umem_cache_free(cp, buf);
	BARRIER();
}

void *
dbgt_alloc(size_t size)
{
	void *p;

	FRAME();
	p = umem_alloc(size, UMEM_DEFAULT);
	BARRIER();
	return (p);
}

void
dbgt_free(void *buf, size_t size)
{
	FRAME();
	umem_free(buf, size);
	BARRIER();
}

static umem_cache_t *
mkcache_flags(const char *name, size_t size, int cflags)
{
	umem_cache_t *cp = umem_cache_create((char *)name, size, 0, NULL,
	    NULL, NULL, NULL, NULL, cflags);

	if (cp == NULL) {
		printf("CHILD-FAIL: umem_cache_create(%s) errno %d\n", name,
		    errno);
		exit(3);
	}
	return (cp);
}

static umem_cache_t *
mkcache(const char *name, size_t size)
{
	return (mkcache_flags(name, size, 0));
}

/* Announce the buffer about to be misused, then the thread. */
static void
announce(const void *buf)
{
	printf("BUF=%p\nTID=%d\n", buf, (int)gettid());
	fflush(stdout);
}

/* 1. Modified after free: 8 bytes at offset 8 of a freed buffer. */
void dcase_modified(void);
void
dcase_modified(void)
{
	umem_cache_t *cp = mkcache("dbgt_modified", 64);
	void *keep, *p, *q;

	FRAME();
	keep = dbgt_cache_alloc(cp);	/* keeps the slab */
	p = dbgt_cache_alloc(cp);
	dbgt_cache_free(cp, p);
	announce(p);
	((volatile uint64_t *)p)[1] = 0x1122334455667788ULL;
	q = dbgt_cache_alloc(cp);	/* the same buffer (LIFO) */
	BARRIER();
	(void) keep;
	(void) q;
}

/* 2a. umem_alloc(40), one byte written past its end. */
void dcase_redzone_alloc(void);
void
dcase_redzone_alloc(void)
{
	char *p;

	FRAME();
	p = dbgt_alloc(40);
	announce(p);
	((volatile char *)p)[40] = 0x5a;
	dbgt_free(p, 40);
}

/* One byte past a buffer of a new cache of size-byte buffers. */
void dcase_cache_overrun(const char *name, size_t size);
__attribute__((noinline)) void
dcase_cache_overrun(const char *name, size_t size)
{
	umem_cache_t *cp = mkcache(name, size);
	char *p;

	FRAME();
	p = dbgt_cache_alloc(cp);
	announce(p);
	((volatile char *)p)[size] = 0x5a;
	dbgt_cache_free(cp, p);
}

/* 2b. A 64-byte cache buffer: the byte past the end is in its tag. */
void dcase_redzone_tag(void);
void
dcase_redzone_tag(void)
{
	FRAME();
	dcase_cache_overrun("dbgt_redzone64", 64);
}

/* 2c. A 100-byte cache buffer: the byte past the end is slack. */
void dcase_redzone_slack(void);
void
dcase_redzone_slack(void)
{
	FRAME();
	dcase_cache_overrun("dbgt_redzone100", 100);
}

/* 3a. umem_cache_free twice. */
void dcase_dupfree_cache(void);
void
dcase_dupfree_cache(void)
{
	umem_cache_t *cp = mkcache("dbgt_dup", 64);
	void *keep, *p;

	FRAME();
	keep = dbgt_cache_alloc(cp);
	p = dbgt_cache_alloc(cp);
	announce(p);
	dbgt_cache_free(cp, p);
	dbgt_cache_free(cp, p);
	(void) keep;
}

/* 3b. umem_free twice. */
void dcase_dupfree_alloc(void);
void
dcase_dupfree_alloc(void)
{
	void *keep, *p;

	FRAME();
	keep = dbgt_alloc(64);
	p = dbgt_alloc(64);
	announce(p);
	dbgt_free(p, 64);
	dbgt_free(p, 64);
	(void) keep;
}

/*
 * 3d. umem_cache_free twice, two calls below dcase_nofp_outer, none of
 * them with a frame pointer (no FRAME(); -O2 omits them, except in the
 * sanitizer builds): under unwind=dwarf the stacks still reach the outer
 * function.  Work after each call keeps it from becoming a jump.
 */
void *dcase_nofp_alloc(umem_cache_t *cp);
void dcase_nofp_inner(umem_cache_t *cp);
void dcase_nofp_outer(void);
void dcase_nofp(void);

__attribute__((noinline)) void *
dcase_nofp_alloc(umem_cache_t *cp)
{
	void *p = umem_cache_alloc(cp, UMEM_DEFAULT);

	announce(p);
	return (tu_launder(p));
}

__attribute__((noinline)) void
dcase_nofp_inner(umem_cache_t *cp)
{
	void *p = dcase_nofp_alloc(cp);

	umem_cache_free(cp, p);
	umem_cache_free(cp, tu_launder(p));
	tu_say("NOT-REACHED\n");
}

__attribute__((noinline)) void
dcase_nofp_outer(void)
{
	dcase_nofp_inner(mkcache("dbgt_nofp", 64));
	tu_say("NOT-REACHED\n");
}

void
dcase_nofp(void)
{
	dcase_nofp_outer();
}

/* 3c. umem_cache_free twice, hashed cache (1000-byte buffers). */
void dcase_dupfree_hash(void);
void
dcase_dupfree_hash(void)
{
	umem_cache_t *cp = mkcache("dbgt_dup_hash", 1000);
	void *keep, *p;

	FRAME();
	keep = dbgt_cache_alloc(cp);
	p = dbgt_cache_alloc(cp);
	announce(p);
	if (!(cp->cache_flags & UMF_HASH))
		printf("CHILD-NOTE: dbgt_dup_hash is not hashed\n");
	dbgt_cache_free(cp, p);
	dbgt_cache_free(cp, p);
	(void) keep;
}

/*
 * 3e. umem_cache_free twice, 300 ms after the allocation and 200 ms after
 * the first free: the report's ages come from the audit records' clock.
 */
void dcase_dupfree_aged(void);
void
dcase_dupfree_aged(void)
{
	umem_cache_t *cp = mkcache("dbgt_aged", 64);
	void *p;

	FRAME();
	p = dbgt_cache_alloc(cp);
	announce(p);
	tu_sleep_ms(300);
	dbgt_cache_free(cp, p);
	tu_sleep_ms(200);
	dbgt_cache_free(cp, p);
}

static double
mono_s(void)
{
	return ((double)tu_now_ns() * 1e-9);
}

/* Voluntary context switches of this process's other threads so far. */
static long
other_thread_wakeups(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	char path[300], text[4096];
	long total = 0;

	if (d == NULL)
		return (-1);
	while ((e = readdir(d)) != NULL) {
		const char *v;
		FILE *f;
		size_t n;

		if (e->d_name[0] == '.' || atoi(e->d_name) == (int)gettid())
			continue;
		(void) snprintf(path, sizeof (path), "/proc/self/task/%s/status",
		    e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(text, 1, sizeof (text) - 1, f);
		(void) fclose(f);
		text[n] = '\0';
		if ((v = strstr(text, "\nvoluntary_ctxt_switches:")) != NULL)
			total += atol(v + strlen("\nvoluntary_ctxt_switches:"));
	}
	(void) closedir(d);
	return (total);
}

/* Audit records for secs seconds: umem_alloc/umem_free pairs. */
static void
make_records(double secs)
{
	double end = mono_s() + secs;

	while (mono_s() < end)
		for (int i = 0; i < 1000; i++)
			dbgt_free(dbgt_alloc(64), 64);
}

/*
 * 3f. The records' clock word: the update thread refreshes it once a tick
 * while records are made and stops when they stop.  p is allocated in a
 * busy phase (stamped from the word), freed after an idle second, and
 * freed again 0.2 s later; the child prints the true ages.
 */
void dcase_clock_ticks(void);
void
dcase_clock_ticks(void)
{
	double t_alloc, t_free;
	long a, b, c;
	void *p;

	FRAME();
	make_records(0.4);	/* the update thread starts and ticks */
	a = other_thread_wakeups();
	p = dbgt_alloc(200);	/* not a class make_records reuses */
	t_alloc = mono_s();
	announce(p);
	make_records(0.3);
	b = other_thread_wakeups();
	tu_sleep_ms(1000);
	c = other_thread_wakeups();
	dbgt_free(p, 200);
	t_free = mono_s();
	make_records(0.2);
	printf("ACTIVE=%ld\nIDLE=%ld\n", b - a, c - b);
	printf("ALLOC_AGE=%.3f\nFREE_AGE=%.3f\n", mono_s() - t_alloc,
	    mono_s() - t_free);
	dbgt_free(p, 200);
}

/*
 * 4a. umem_cache_free of an address in a mapping of our own: aligned so
 * that the slab header a small-slab cache reads from the address (at the
 * end of its slab-sized block) is mapped, and zero.
 */
static char *
foreign_block(size_t slabsize)
{
	size_t len = 3 * slabsize;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED) {
		printf("CHILD-FAIL: mmap errno %d\n", errno);
		exit(3);
	}
	return ((char *)P2ROUNDUP((uintptr_t)m, slabsize) + 64);
}

void dcase_badaddr_cache(void);
void
dcase_badaddr_cache(void)
{
	umem_cache_t *cp = mkcache("dbgt_badaddr", 64);
	void *keep, *p;

	FRAME();
	keep = dbgt_cache_alloc(cp);
	p = foreign_block(cp->cache_slabsize);
	announce(p);
	dbgt_cache_free(cp, p);
	(void) keep;
}

/* 4b. The same, hashed cache. */
void dcase_badaddr_hash(void);
void
dcase_badaddr_hash(void)
{
	umem_cache_t *cp = mkcache("dbgt_badaddr_hash", 1000);
	void *keep, *p;

	FRAME();
	keep = dbgt_cache_alloc(cp);
	p = foreign_block(cp->cache_slabsize);
	announce(p);
	dbgt_cache_free(cp, p);
	(void) keep;
}

/* 4c. umem_free of a stack address. */
void dcase_badaddr_alloc(void);
void
dcase_badaddr_alloc(void)
{
	uint64_t on_stack[8];
	void *keep;

	FRAME();
	keep = dbgt_alloc(64);		/* the library is initialised */
	memset(on_stack, 0, sizeof (on_stack));
	announce(&on_stack[2]);
	dbgt_free(&on_stack[2], 16);
	BARRIER();
	(void) keep;
}

/* 4d. The same as the process's first call into the library. */
void dcase_badaddr_first(void);
void
dcase_badaddr_first(void)
{
	uint64_t on_stack[8];

	FRAME();
	memset(on_stack, 0, sizeof (on_stack));
	announce(&on_stack[2]);
	dbgt_free(&on_stack[2], 16);
	BARRIER();
}

/* 5. A free-list link of a free buffer overwritten (write after free). */
void dcase_bufctl(void);
void
dcase_bufctl(void)
{
	/* no magazines: freed buffers go straight to the slab's list */
	umem_cache_t *cp = mkcache_flags("dbgt_bufctl", 64, UMC_NOMAGAZINE);
	void *keep, *a, *b, *c;
	umem_buftag_t *btp;

	FRAME();
	keep = dbgt_cache_alloc(cp);
	a = dbgt_cache_alloc(cp);
	b = dbgt_cache_alloc(cp);
	if (cp->cache_flags & UMF_HASH)
		printf("CHILD-NOTE: dbgt_bufctl is hashed\n");
	dbgt_cache_free(cp, a);
	dbgt_cache_free(cp, b);		/* b heads the slab's free list */
	btp = (umem_buftag_t *)((char *)b + cp->cache_buftag);
	CCHECK((void *)&btp->bt_link == (char *)b + cp->cache_bufctl,
	    "link at %p, cache_bufctl %zu", (void *)&btp->bt_link,
	    cp->cache_bufctl);
	announce(b);
	*(void *volatile *)&btp->bt_link = (void *)(uintptr_t)0x5a5a5a5a5a5a5a5aULL;
	c = dbgt_cache_alloc(cp);
	BARRIER();
	(void) keep;
	(void) c;
}

/* 6. The tag's bxstat word of an allocated buffer scribbled on. */
void dcase_buftag(void);
void
dcase_buftag(void)
{
	umem_cache_t *cp = mkcache("dbgt_buftag", 64);
	umem_buftag_t *btp;
	void *p;

	FRAME();
	p = dbgt_cache_alloc(cp);
	btp = umem_debug_tag(cp, p);
	announce(p);
	*(volatile uintptr_t *)&btp->bt_bxstat ^= 0x10000;
	dbgt_cache_free(cp, p);
}

/* 7. A buffer of cache A freed to cache B (same size). */
void dcase_wrongcache(void);
void
dcase_wrongcache(void)
{
	umem_cache_t *a = mkcache("dbgt_cache_a", 64);
	umem_cache_t *b = mkcache("dbgt_cache_b", 64);
	void *pa, *pb;

	FRAME();
	pa = dbgt_cache_alloc(a);
	pb = dbgt_cache_alloc(b);
	announce(pa);
	dbgt_cache_free(b, pa);
	(void) pb;
}

/* 8. umem_alloc(100) freed with size 99. */
void dcase_badsize(void);
void
dcase_badsize(void)
{
	void *p;

	FRAME();
	p = dbgt_alloc(100);
	announce(p);
	dbgt_free(p, 99);
}

/* 8b. The same for a large block (pages, with a tag at the end). */
void dcase_badsize_large(void);
void
dcase_badsize_large(void)
{
	void *p;

	FRAME();
	p = dbgt_alloc(100000);
	announce(p);
	dbgt_free(p, 100001);
}

/* 9a. umem_free of p + 8. */
void dcase_interior_alloc(void);
void
dcase_interior_alloc(void)
{
	char *p;

	FRAME();
	p = dbgt_alloc(100);
	announce(p + 8);
	dbgt_free(p + 8, 92);
}

/* 9b. umem_cache_free of p + 8. */
void dcase_interior_cache(void);
void
dcase_interior_cache(void)
{
	umem_cache_t *cp = mkcache("dbgt_interior", 64);
	char *p;

	FRAME();
	p = dbgt_cache_alloc(cp);
	announce(p + 8);
	dbgt_cache_free(cp, p + 8);
}

/* 9c. umem_cache_free of p + 8, hashed cache. */
void dcase_interior_hash(void);
void
dcase_interior_hash(void)
{
	umem_cache_t *cp = mkcache("dbgt_interior_hash", 1000);
	char *p;

	FRAME();
	p = dbgt_cache_alloc(cp);
	announce(p + 8);
	dbgt_cache_free(cp, p + 8);
}

/*
 * Firewall (UMEM_DEBUG=firewall=64,audit): one byte past the end of a
 * 128-byte buffer is on the guard page and must fault at once.
 */
void dcase_firewall(void);
void
dcase_firewall(void)
{
	umem_cache_t *cp = mkcache("dbgt_fw128", 128);
	char *p;

	FRAME();
	CCHECK(cp->cache_flags & UMF_FIREWALL, "flags 0x%x",
	    cp->cache_flags);
	p = dbgt_cache_alloc(cp);
	announce(p);
	CCHECK(P2END((uintptr_t)p + 127, umem_pagesize) ==
	    (uintptr_t)p + 128, "buffer %p does not end at a page", (void *)p);
	((volatile char *)p)[128] = 0x5a;
	printf("NOT-REACHED: the write past the buffer did not fault\n");
	dbgt_cache_free(cp, p);
}

/*
 * Firewall, a 100-byte buffer: the byte past its end is before the guard
 * page (the chunk is rounded up to the alignment); it must still be
 * caught, at the latest when the buffer is freed.
 */
void dcase_firewall_slack(void);
void
dcase_firewall_slack(void)
{
	umem_cache_t *cp = mkcache("dbgt_fw100", 100);
	char *p;

	FRAME();
	CCHECK(cp->cache_flags & UMF_FIREWALL, "flags 0x%x",
	    cp->cache_flags);
	p = dbgt_cache_alloc(cp);
	announce(p);
	((volatile char *)p)[100] = 0x5a;
	dbgt_cache_free(cp, p);
	printf("NOT-REACHED: the write past the buffer went unnoticed\n");
}

/*
 * Firewall with two caches of different slab sizes: a fault on one
 * cache's guard page must be reported as that cache's, not crash the
 * handler while it looks at the other cache.
 */
void dcase_firewall_two(void);
void
dcase_firewall_two(void)
{
	umem_cache_t *big = mkcache("dbgt_fw_big", 5008);
	umem_cache_t *cp = mkcache("dbgt_fw_small", 128);
	char *bp[4], *p[4];

	FRAME();
	for (int i = 0; i < 4; i++) {	/* interleave the slabs */
		bp[i] = dbgt_cache_alloc(big);
		p[i] = dbgt_cache_alloc(cp);
	}
	announce(p[3]);
	((volatile char *)p[3])[128] = 0x5a;
	printf("NOT-REACHED: the write past the buffer did not fault\n");
	(void) bp;
}

/*
 * Firewall, after umem_alloc's classes exist (umem_alloc_128 is then a
 * firewall cache of the same shape as ours): the fault is still ours.
 */
void dcase_firewall_same(void);
void
dcase_firewall_same(void)
{
	umem_cache_t *cp;
	char *p;

	FRAME();
	umem_free(umem_alloc(128, UMEM_DEFAULT), 128);
	cp = mkcache("dbgt_fw_same", 128);
	p = dbgt_cache_alloc(cp);
	announce(p);
	((volatile char *)p)[128] = 0x5a;
	printf("NOT-REACHED: the write past the buffer did not fault\n");
}

/* mtbf=3: failures, never for UMEM_NOFAIL, none after umem_setmtbf(0). */
void dcase_mtbf(void);
void
dcase_mtbf(void)
{
	umem_cache_t *cp = mkcache("dbgt_mtbf", 64);
	int fails = 0, nofail_null = 0, after = 0, alloc_fails = 0;

	for (int i = 0; i < 1000; i++) {
		void *p = umem_cache_alloc(cp, UMEM_DEFAULT);

		if (p == NULL)
			fails++;
		else
			umem_cache_free(cp, p);
	}
	for (int i = 0; i < 1000; i++) {
		void *p = umem_alloc(48, UMEM_DEFAULT);

		if (p == NULL)
			alloc_fails++;
		else
			umem_free(p, 48);
	}
	for (int i = 0; i < 1000; i++) {
		void *p = umem_cache_alloc(cp, UMEM_NOFAIL);

		if (p == NULL)
			nofail_null++;
		else
			umem_cache_free(cp, p);
	}
	umem_setmtbf(0);
	for (int i = 0; i < 1000; i++) {
		void *p = umem_cache_alloc(cp, UMEM_DEFAULT);

		if (p == NULL)
			after++;
		else
			umem_cache_free(cp, p);
	}
	printf("mtbf: %d of 1000 cache allocations failed, %d of 1000 "
	    "umem_alloc, %d NOFAIL NULL, %d after umem_setmtbf(0)\n", fails,
	    alloc_fails, nofail_null, after);
	CCHECK(fails > 0 && fails < 1000, "%d", fails);
	CCHECK(alloc_fails > 0 && alloc_fails < 1000, "%d", alloc_fails);
	CCHECK(nofail_null == 0, "%d", nofail_null);
	CCHECK(after == 0, "%d", after);
}

/* No debugging: umem_setmtbf() has no effect (no debug caches). */
void dcase_mtbf_nodebug(void);
void
dcase_mtbf_nodebug(void)
{
	umem_cache_t *cp = mkcache("dbgt_mtbf_nodebug", 64);
	int fails = 0;

	CCHECK(!(cp->cache_flags & UMF_DEBUG), "flags 0x%x",
	    cp->cache_flags);
	umem_setmtbf(2);
	for (int i = 0; i < 1000; i++) {
		void *p = umem_cache_alloc(cp, UMEM_DEFAULT);

		if (p == NULL)
			fails++;
		else
			umem_cache_free(cp, p);
	}
	umem_setmtbf(0);
	CCHECK(fails == 0, "%d", fails);
}

/* Print log `name` through a pipe; the text in out, the result returned. */
static int
log_text(const char *name, char *out, size_t outlen)
{
	int fds[2], r, e;
	size_t n = 0;
	ssize_t k;

	if (pipe(fds) != 0)
		return (-2);
	r = umem_log_print(fds[1], name);
	e = errno;
	close(fds[1]);
	while (n < outlen - 1 && (k = read(fds[0], out + n,
	    outlen - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(fds[0]);
	errno = e;
	return (r);
}

/* UMEM_DEBUG=audit UMEM_LOGGING=transaction,contents,fail */
void dcase_logs(void);
void
dcase_logs(void)
{
	static char text[65536];
	umem_cache_t *cp = mkcache("dbgt_logs", 64);
	char addr[32], *p;
	int r, failed = 0;

	FRAME();
	p = dbgt_cache_alloc(cp);
	memcpy(p, "HELLO-UMEM-LOG", 14);
	dbgt_cache_free(cp, p);
	(void) snprintf(addr, sizeof (addr), "%p", (void *)p);

	r = log_text("transaction", text, sizeof (text));
	CCHECK(r >= 2, "transaction log: %d records", r);
	CCHECK(strstr(text, "umem transaction log:") != NULL, "%s", text);
	CCHECK(strstr(text, "alloc of dbgt_logs") != NULL, "%s", text);
	CCHECK(strstr(text, "free of dbgt_logs") != NULL, "%s", text);
	CCHECK(strstr(text, addr) != NULL, "%s not in %s", addr, text);
	CCHECK(strstr(text, " dcase_logs+0x") != NULL, "no stack: %s", text);

	r = log_text("contents", text, sizeof (text));
	CCHECK(r >= 1, "contents log: %d records", r);
	CCHECK(strstr(text, addr) != NULL, "%s not in %s", addr, text);
	/* "HELLO-" in hex, as saved before the free pattern went in */
	CCHECK(strstr(text, "48 45 4c 4c 4f 2d") != NULL, "%s", text);

	/* a umem_alloc buffer: all its bytes as they were before the free */
	p = dbgt_alloc(40);
	memcpy(p, "ABCDEFGHIJKLMNOP", 16);
	dbgt_free(p, 40);
	(void) snprintf(addr, sizeof (addr), "%p", (void *)p);
	r = log_text("contents", text, sizeof (text));
	CCHECK(strstr(text, addr) != NULL, "%s not in %s", addr, text);
	CCHECK(strstr(text, "41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f "
	    "50") != NULL, "umem_alloc contents: %s", text);

	umem_setmtbf(2);
	for (int i = 0; i < 1000 && failed == 0; i++) {
		void *q = umem_cache_alloc(cp, UMEM_DEFAULT);

		if (q == NULL)
			failed = 1;
		else
			umem_cache_free(cp, q);
	}
	umem_setmtbf(0);
	CCHECK(failed, "mtbf=2 never failed");
	r = log_text("fail", text, sizeof (text));
	CCHECK(r >= 1, "fail log: %d records", r);
	CCHECK(strstr(text, "FAILED alloc of dbgt_logs") != NULL, "%s", text);

	errno = 0;
	r = log_text("bogus", text, sizeof (text));
	CCHECK(r == -1 && errno == EINVAL, "r %d errno %d", r, errno);
	errno = 0;
	r = umem_log_print(1, NULL);
	CCHECK(r == -1 && errno == EINVAL, "r %d errno %d", r, errno);
	errno = 0;
	r = log_text("Transaction", text, sizeof (text));
	CCHECK(r == -1 && errno == EINVAL, "r %d errno %d", r, errno);
}

/* No UMEM_LOGGING: every log is off (ENOENT). */
void dcase_logs_off(void);
void
dcase_logs_off(void)
{
	char text[256];
	const char *names[] = { "transaction", "contents", "fail" };

	for (int i = 0; i < 3; i++) {
		int r;

		errno = 0;
		r = log_text(names[i], text, sizeof (text));
		CCHECK(r == -1 && errno == ENOENT, "%s: r %d errno %d",
		    names[i], r, errno);
	}
	CCHECK(umem_error_log(NULL, 0) == 0, "error log not empty");
}

/* A report with UMEM_LOGGING=transaction carries the buffer's log. */
void dcase_report_log(void);
void
dcase_report_log(void)
{
	dcase_dupfree_cache();
}

/* Garbage options: messages, then a library that works. */
void dcase_options(void);
void
dcase_options(void)
{
	umem_cache_t *cp = mkcache("dbgt_options", 64);

	for (int i = 0; i < 1000; i++) {
		void *p = umem_cache_alloc(cp, UMEM_DEFAULT);
		void *q = umem_alloc((size_t)i % 300 + 1, UMEM_DEFAULT);

		CCHECK(p != NULL && q != NULL, "%d", i);
		umem_cache_free(cp, p);
		umem_free(q, (size_t)i % 300 + 1);
	}
	printf("flags 0x%x frames %u\n", cp->cache_flags, umem_audit_frames);
}

/* The patterns, with UMEM_DEBUG=guards. */
static int pat_nctor, pat_ndtor, pat_ndtor_all, pat_ctor_saw_uninit;

static int
pat_ctor(void *buf, void *priv, int flags)
{
	(void) priv;
	(void) flags;
	pat_nctor++;
	if (*(uint64_t *)buf == UMEM_UNINIT_PATTERN)
		pat_ctor_saw_uninit++;
	*(uint64_t *)buf = 42;
	return (0);
}

static void
pat_dtor(void *buf, void *priv)
{
	(void) priv;
	pat_ndtor_all++;
	if (*(uint64_t *)buf == 42)
		pat_ndtor++;
}

static size_t
count_words(const void *p, size_t n, uint64_t w)
{
	const uint64_t *q = p;
	size_t k = 0;

	for (size_t i = 0; i < n / 8; i++)
		k += q[i] == w;
	return (k);
}

void dcase_patterns(void);
void
dcase_patterns(void)
{
	umem_cache_t *cp = mkcache("dbgt_pat", 64);
	umem_cache_t *cc = umem_cache_create("dbgt_pat_ctor", 64, 0, pat_ctor,
	    pat_dtor, NULL, NULL, NULL, 0);
	umem_cache_t *nd = umem_cache_create("dbgt_pat_nodebug", 64, 0, NULL,
	    NULL, NULL, NULL, NULL, UMC_NODEBUG);
	uint64_t *p, *q;
	unsigned char *b;

	CCHECK(cc != NULL && nd != NULL, "create");
	if (cc == NULL || nd == NULL)
		return;
	CCHECK((cp->cache_flags & (UMF_DEADBEEF | UMF_REDZONE)) ==
	    (UMF_DEADBEEF | UMF_REDZONE), "flags 0x%x", cp->cache_flags);
	CCHECK(!(cp->cache_flags & UMF_AUDIT), "flags 0x%x", cp->cache_flags);
	CCHECK(!(nd->cache_flags & UMF_DEBUG), "UMC_NODEBUG flags 0x%x",
	    nd->cache_flags);

	/* a new buffer: 0xbaddcafe throughout; its tag says allocated */
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	CCHECK(count_words(p, 64, UMEM_UNINIT_PATTERN) == 8, "%zu words",
	    count_words(p, 64, UMEM_UNINIT_PATTERN));
	CCHECK(umem_debug_state(cp, p) == 1, "state %d",
	    umem_debug_state(cp, p));
	CCHECK(umem_debug_tag(cp, p)->bt_redzone == UMEM_REDZONE_PATTERN,
	    "redzone 0x%llx",
	    (unsigned long long)umem_debug_tag(cp, p)->bt_redzone);
	memset(p, 0x11, 64);
	umem_cache_free(cp, p);
	/* a free buffer: 0xdeadbeef throughout (white-box read) */
	CCHECK(count_words(p, 64, UMEM_FREE_PATTERN) == 8, "%zu words",
	    count_words(p, 64, UMEM_FREE_PATTERN));
	CCHECK(umem_debug_state(cp, p) == 0, "state %d",
	    umem_debug_state(cp, p));
	/* and again 0xbaddcafe when reallocated */
	q = umem_cache_alloc(cp, UMEM_DEFAULT);
	CCHECK(count_words(q, 64, UMEM_UNINIT_PATTERN) == 8, "%zu words",
	    count_words(q, 64, UMEM_UNINIT_PATTERN));
	umem_cache_free(cp, q);

	/*
	 * The constructor runs on every allocation and the destructor on
	 * every free: the magazines hold freed, patterned buffers.
	 */
	for (int i = 0; i < 10; i++) {
		p = umem_cache_alloc(cc, UMEM_DEFAULT);
		CCHECK(p != NULL && *p == 42, "ctor result");
		umem_cache_free(cc, p);
	}
	CCHECK(pat_nctor == 10 && pat_ndtor == 10, "ctor %d dtor %d",
	    pat_nctor, pat_ndtor);
	CCHECK(pat_ctor_saw_uninit == 10, "ctor saw 0xbaddcafe %d times",
	    pat_ctor_saw_uninit);
	{
		/* the freed buffer waits in a magazine, not in its slab */
		umem_cache_stat_t st;

		CCHECK(umem_cache_getstat(cc, &st) == 0 &&
		    st.cs_buf_magazine >= 1, "%llu buffers in magazines",
		    (unsigned long long)st.cs_buf_magazine);
	}

	/* umem_alloc(40): 40 bytes of 0xbaddcafe, then 0xbb */
	b = umem_alloc(40, UMEM_DEFAULT);
	CCHECK(count_words(b, 40, UMEM_UNINIT_PATTERN) == 5, "%zu words",
	    count_words(b, 40, UMEM_UNINIT_PATTERN));
	CCHECK(b[40] == UMEM_REDZONE_BYTE && b[47] == UMEM_REDZONE_BYTE,
	    "0x%x 0x%x", b[40], b[47]);
	umem_free(b, 40);
	/* umem_zalloc: zeroes */
	b = umem_zalloc(40, UMEM_DEFAULT);
	CCHECK(count_words(b, 40, 0) == 5, "zalloc not zero");
	CCHECK(b[40] == UMEM_REDZONE_BYTE, "0x%x", b[40]);
	umem_free(b, 40);
	/* destroying the magazines must not destruct their rounds again */
	umem_cache_destroy(cc);
	CCHECK(pat_ndtor_all == 10, "destructor called %d times for 10 "
	    "frees", pat_ndtor_all);
	umem_cache_destroy(nd);
}

/* Flags of a fresh cache, printed for the hook cases. */
void dcase_flags(void);
void
dcase_flags(void)
{
	umem_cache_t *cp = mkcache("dbgt_flags", 64);
	char text[256];

	printf("FLAGS=0x%x\n", cp->cache_flags);
	printf("LOG=%d\n", log_text("transaction", text, sizeof (text)));
}

/* umem_error_log() before any error; and a small destination. */
void dcase_errlog(void);
void
dcase_errlog(void)
{
	char small[16];
	umem_cache_t *cp = mkcache("dbgt_errlog", 64);
	void *p;
	size_t n;

	memset(small, 'x', sizeof (small));
	CCHECK(umem_error_log(small, sizeof (small)) == 0, "not empty");
	CCHECK(small[0] == '\0', "not NUL-terminated");
	p = umem_cache_alloc(cp, UMEM_DEFAULT);
	umem_cache_free(cp, p);
	umem_cache_free(cp, p);		/* noabort: reported, ignored */
	n = umem_error_log(NULL, 0);
	CCHECK(n > 100, "%zu bytes", n);
	memset(small, 'x', sizeof (small));
	CCHECK(umem_error_log(small, sizeof (small)) == n, "length");
	/* the newest 15 bytes, NUL-terminated */
	CCHECK(small[15] == '\0' && strlen(small) == 15 &&
	    small[14] == '\n', "'%s'", small);
}

static const struct {
	const char	*name;
	void		(*fn)(void);
} dcases[] = {
	{ "modified", dcase_modified },
	{ "redzone_alloc", dcase_redzone_alloc },
	{ "redzone_tag", dcase_redzone_tag },
	{ "redzone_slack", dcase_redzone_slack },
	{ "dupfree_cache", dcase_dupfree_cache },
	{ "dupfree_alloc", dcase_dupfree_alloc },
	{ "dupfree_aged", dcase_dupfree_aged },
	{ "clock_ticks", dcase_clock_ticks },
	{ "dupfree_hash", dcase_dupfree_hash },
	{ "nofp", dcase_nofp },
	{ "badaddr_cache", dcase_badaddr_cache },
	{ "badaddr_hash", dcase_badaddr_hash },
	{ "badaddr_alloc", dcase_badaddr_alloc },
	{ "badaddr_first", dcase_badaddr_first },
	{ "bufctl", dcase_bufctl },
	{ "buftag", dcase_buftag },
	{ "wrongcache", dcase_wrongcache },
	{ "badsize", dcase_badsize },
	{ "badsize_large", dcase_badsize_large },
	{ "interior_alloc", dcase_interior_alloc },
	{ "interior_cache", dcase_interior_cache },
	{ "interior_hash", dcase_interior_hash },
	{ "firewall", dcase_firewall },
	{ "firewall_slack", dcase_firewall_slack },
	{ "firewall_two", dcase_firewall_two },
	{ "firewall_same", dcase_firewall_same },
	{ "mtbf", dcase_mtbf },
	{ "mtbf_nodebug", dcase_mtbf_nodebug },
	{ "logs", dcase_logs },
	{ "logs_off", dcase_logs_off },
	{ "report_log", dcase_report_log },
	{ "options", dcase_options },
	{ "patterns", dcase_patterns },
	{ "flags", dcase_flags },
	{ "errlog", dcase_errlog },
};

/* After a planted bug under noabort: the error log, then some work. */
static void
after_bug(void)
{
	static char log[8192];
	umem_cache_t *cp;
	size_t n;

	n = umem_error_log(log, sizeof (log));
	printf("CONTINUED\nERRLOG-BEGIN %zu\n%sERRLOG-END\n", n, log);
	cp = umem_cache_create("dbgt_after", 200, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	CCHECK(cp != NULL, "create");
	for (int i = 0; cp != NULL && i < 200; i++) {
		void *p = umem_cache_alloc(cp, UMEM_DEFAULT);
		void *q = umem_alloc((size_t)i + 1, UMEM_DEFAULT);

		CCHECK(p != NULL && q != NULL, "alloc %d", i);
		memset(p, 1, 200);
		memset(q, 2, (size_t)i + 1);
		umem_cache_free(cp, p);
		umem_free(q, (size_t)i + 1);
	}
	CCHECK(umem_error_log(NULL, 0) == n, "new errors after the bug");
	printf("ALIVE\n");
}

static int
child_main(const char *what)
{
	setvbuf(stdout, NULL, _IONBF, 0);	/* nothing lost to abort() */
	for (size_t i = 0; i < sizeof (dcases) / sizeof (dcases[0]); i++) {
		if (strcmp(dcases[i].name, what) != 0)
			continue;
		dcases[i].fn();
		fflush(stdout);
		if (getenv("DBGT_AFTER") != NULL)
			after_bug();
		printf("CHILD-END failures=%d\n", tu_child_failed);
		fflush(stdout);
		return (tu_child_failed == 0 ? 0 : 1);
	}
	printf("CHILD-FAIL: no case '%s'\n", what);
	return (2);
}

/* ---------------------------------------------------------------------
 * Parent side.
 * --------------------------------------------------------------------- */
static char out[1 << 17];

/* Run case `what` with env (NAME=value, NAME= removes), NULL-ended. */
static unsigned run_timeout = 30;	/* seconds */

static int
run(const char *what, const char *debug, const char *logging,
    const char *extra)
{
	char d[2048], l[2048];
	const char *env[8];
	int k = 0;
#ifdef TU_TSAN
	static char tsan[1024];
	const char *t = getenv("TSAN_OPTIONS");

	/* TSan sleeps a second at exit by default */
	(void) snprintf(tsan, sizeof (tsan), "TSAN_OPTIONS=%s%s"
	    "atexit_sleep_ms=0", t != NULL ? t : "", t != NULL && *t ? ":" :
	    "");
	env[k++] = tsan;
#endif

	(void) snprintf(d, sizeof (d), "UMEM_DEBUG=%s", debug ? debug : "");
	(void) snprintf(l, sizeof (l), "UMEM_LOGGING=%s",
	    logging ? logging : "");
	env[k++] = d;
	env[k++] = l;
	env[k++] = "UMEM_OPTIONS=";
	if (extra != NULL)
		env[k++] = extra;
	env[k] = NULL;
	if (debug == NULL)
		d[strlen("UMEM_DEBUG=")] = '\0';
	if (logging == NULL)
		l[strlen("UMEM_LOGGING=")] = '\0';
	out[0] = '\0';
	return (tu_run_self(what, env, run_timeout, out, sizeof (out)));
}

/* One planted bug: what the report must say. */
typedef struct pcase {
	const char	*name;		/* child case */
	const char	*debug;		/* UMEM_DEBUG (",noabort" added) */
	const char	*logging;	/* UMEM_LOGGING or NULL */
	int		cls;		/* umem_errclass_t */
	const char	*cache;		/* "cache: NAME (" */
	const char	*detail[3];	/* more text the report must hold */
	int		audit;		/* 1 alloc record, 2 alloc + free */
	const char	*site;		/* function named in the stack */
} pcase_t;

static const pcase_t pcases[] = {
	{ "modified", "default", NULL, UMERR_MODIFIED, "dbgt_modified",
	    { "modification occurred at offset 0x8 (0xdeadbeefdeadbeef "
	    "replaced by 0x1122334455667788)" }, 2, "dcase_modified" },
	{ "redzone_alloc", "default", NULL, UMERR_REDZONE, "umem_alloc_",
	    { "byte at offset 0x28 (buffer of 40 bytes) is 0x5a, expected "
	    "0xbb" }, 1, "dcase_redzone_alloc" },
	{ "redzone_tag", "default", NULL, UMERR_REDZONE, "dbgt_redzone64",
	    { "redzone word at offset 0x40" }, 1, "dcase_cache_overrun" },
	{ "redzone_slack", "guards", NULL, UMERR_REDZONE, "dbgt_redzone100",
	    { "byte at offset 0x64 (buffer of 100 bytes) is 0x5a, expected "
	    "0xbb" }, 0, NULL },
	{ "dupfree_cache", "default", NULL, UMERR_DUPFREE, "dbgt_dup",
	    { NULL }, 2, "dcase_dupfree_cache" },
	{ "dupfree_alloc", "default", NULL, UMERR_DUPFREE, "umem_alloc_",
	    { NULL }, 2, "dcase_dupfree_alloc" },
	{ "dupfree_hash", "default", NULL, UMERR_DUPFREE, "dbgt_dup_hash",
	    { NULL }, 2, "dcase_dupfree_hash" },
	{ "nofp", "default,unwind=dwarf", NULL, UMERR_DUPFREE, "dbgt_nofp",
	    { NULL }, 2, "dcase_nofp_outer" },
	{ "badaddr_cache", "default", NULL, UMERR_BADADDR, "dbgt_badaddr",
	    { NULL }, 0, NULL },
	{ "badaddr_hash", "default", NULL, UMERR_BADADDR,
	    "dbgt_badaddr_hash", { NULL }, 0, NULL },
	{ "badaddr_alloc", "default", NULL, UMERR_BADADDR, NULL,
	    { "not allocated by libumem" }, 0, NULL },
	{ "bufctl", "default", NULL, UMERR_BADBUFCTL, "dbgt_bufctl",
	    { "free-list link 0x5a5a5a5a5a5a5a5a" }, 2, "dcase_bufctl" },
	{ "buftag", "default", NULL, UMERR_BADBUFTAG, "dbgt_buftag",
	    { "bxstat" }, 1, "dcase_buftag" },
	{ "wrongcache", "default", NULL, UMERR_BADCACHE, "dbgt_cache_b",
	    { "buffer was allocated from dbgt_cache_a, caller attempted to "
	    "free it to dbgt_cache_b" }, 1, "dcase_wrongcache" },
	{ "badsize", "default", NULL, UMERR_BADSIZE, "umem_alloc_",
	    { "free size (99) != alloc size (100)" }, 1, "dcase_badsize" },
	{ "badsize_large", "default", NULL, UMERR_BADSIZE, "(none)",
	    { "umem_free(", ", 100001): the block holds 100000 bytes" }, 0,
	    NULL },
	{ "interior_alloc", "default", NULL, UMERR_BADBASE, "umem_alloc_",
	    { NULL }, 0, NULL },
	{ "interior_cache", "default", NULL, UMERR_BADBASE, "dbgt_interior",
	    { "(offset 0x8)" }, 0, NULL },
	{ "interior_hash", "default", NULL, UMERR_BADBASE,
	    "dbgt_interior_hash", { "(offset 0x8)" }, 0, NULL },
	{ "report_log", "default", "transaction", UMERR_DUPFREE, "dbgt_dup",
	    { "transaction log for ", "  free of dbgt_dup buffer ",
	    "  alloc of dbgt_dup buffer " }, 2, "dcase_dupfree_cache" },
};

static void
check_report(const pcase_t *pc, const char *text, int noabort)
{
	char want[512], buf[64], tid[32];
	const char *mode = noabort ? "noabort" : "abort";

	(void) snprintf(want, sizeof (want), "umem allocator: %s\n",
	    errdesc[pc->cls]);
	CHECKF(strncmp(text, want, strlen(want)) == 0, "%s (%s): the report "
	    "does not start with \"%.*s\"", pc->name, mode,
	    (int)strlen(want) - 1, want);
	if (tu_field(out, "BUF=", buf, sizeof (buf)) != NULL) {
		(void) snprintf(want, sizeof (want), "buffer=%s ", buf);
		CHECKF(strstr(text, want) != NULL, "%s (%s): no \"%s\"",
		    pc->name, mode, want);
	} else {
		CHECKF(0, "%s (%s): the child printed no BUF=", pc->name,
		    mode);
	}
	if (pc->cache != NULL) {
		(void) snprintf(want, sizeof (want), "cache: %s%s", pc->cache,
		    pc->cache[strlen(pc->cache) - 1] == '_' ? "" : " (");
		CHECKF(strstr(text, want) != NULL, "%s (%s): no \"%s\"",
		    pc->name, mode, want);
	}
	for (int i = 0; i < 3 && pc->detail[i] != NULL; i++)
		CHECKF(strstr(text, pc->detail[i]) != NULL, "%s (%s): no "
		    "\"%s\"", pc->name, mode, pc->detail[i]);
	if (pc->audit > 0 && tu_field(out, "TID=", tid, sizeof (tid)) != NULL) {
		(void) snprintf(want, sizeof (want), "last allocated by "
		    "thread %s at T-", tid);
		CHECKF(strstr(text, want) != NULL, "%s (%s): no \"%s\"",
		    pc->name, mode, want);
		if (pc->audit > 1) {
			(void) snprintf(want, sizeof (want), "last freed by "
			    "thread %s at T-", tid);
			CHECKF(strstr(text, want) != NULL, "%s (%s): no "
			    "\"%s\"", pc->name, mode, want);
		}
		(void) snprintf(want, sizeof (want), " %s+0x", pc->site);
		CHECKF(tu_line_has(text, "    #", want), "%s (%s): no stack "
		    "frame names %s", pc->name, mode, pc->site);
	}
	(void) snprintf(want, sizeof (want), "umem: heap corruption "
	    "detected%s\n", noabort ? " (noabort: continuing)" : "");
	CHECKF(strstr(text, want) != NULL, "%s (%s): no \"%.*s\"", pc->name,
	    mode, (int)strlen(want) - 1, want);
}

/* The report in the output: from its first line. */
static const char *
report_of(const char *text)
{
	const char *r = strstr(text, "umem allocator: ");

	return (r != NULL ? r : "");
}

static void
test_planted_abort(void)
{
	for (size_t i = 0; i < sizeof (pcases) / sizeof (pcases[0]); i++) {
		const pcase_t *pc = &pcases[i];
		int st = run(pc->name, pc->debug, pc->logging, NULL);
		int before = test_cur_failed;

		CHECKF(CHILD_ABORTED(st), "%s: %s", pc->name, tu_status(st));
		CHECKF(strstr(out, "CHILD-END") == NULL, "%s: went on after "
		    "the bug", pc->name);
		CHECKF(strstr(out, "CHILD-FAIL") == NULL, "%s: child check "
		    "failed", pc->name);
		check_report(pc, report_of(out), 0);
		if (test_cur_failed != before || getenv("TEST_VERBOSE"))
			fprintf(stderr, "---- %s (UMEM_DEBUG=%s) output:\n%s"
			    "----\n", pc->name, pc->debug, out);
	}
}

static void
test_planted_noabort(void)
{
	for (size_t i = 0; i < sizeof (pcases) / sizeof (pcases[0]); i++) {
		const pcase_t *pc = &pcases[i];
		char debug[128];
		const char *log;
		int st, before = test_cur_failed;

		(void) snprintf(debug, sizeof (debug), "%s,noabort",
		    pc->debug);
		st = run(pc->name, debug, pc->logging, "DBGT_AFTER=1");
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s",
		    pc->name, tu_status(st));
		CHECKF(strstr(out, "ALIVE") != NULL, "%s: did not carry on",
		    pc->name);
		/* stderr has the report */
		check_report(pc, report_of(out), 1);
		/* and so has umem_error_log() */
		log = strstr(out, "ERRLOG-BEGIN");
		CHECKF(log != NULL, "%s: no error log printed", pc->name);
		if (log != NULL)
			check_report(pc, report_of(log), 1);
		if (test_cur_failed != before || getenv("TEST_VERBOSE"))
			fprintf(stderr, "---- %s (UMEM_DEBUG=%s) output:\n%s"
			    "----\n", pc->name, debug, out);
	}
}

static void
show_if_failed(int before, const char *what)
{
	if (test_cur_failed != before || getenv("TEST_VERBOSE"))
		fprintf(stderr, "---- %s output:\n%s----\n", what, out);
}

/* Firewall: the overrun faults at once and is reported. */
static void
test_firewall(void)
{
	char buf[64], want[128];
	int st, before = test_cur_failed;

	st = run("firewall", "firewall=64,audit", NULL, NULL);
	CHECKF(CHILD_ABORTED(st) || (WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGSEGV), "firewall: %s", tu_status(st));
	CHECKF(strstr(out, "NOT-REACHED") == NULL, "the overrun went on");
	CHECKF(strstr(out, "CHILD-FAIL") == NULL, "child check failed");
	CHECKF(strstr(out, "firewall") != NULL, "no report names the "
	    "firewall");
	CHECKF(strstr(out, "umem allocator: ") != NULL, "no report");
	CHECKF(strstr(out, "cache: dbgt_fw128 (") != NULL, "no cache name");
	if (tu_field(out, "BUF=", buf, sizeof (buf)) != NULL) {
		(void) snprintf(want, sizeof (want), "buffer=%s ", buf);
		CHECKF(strstr(out, want) != NULL, "no \"%s\"", want);
	}
	CHECKF(strstr(out, "last allocated by thread") != NULL, "no audit");
	CHECKF(tu_line_has(out, "    #", " dcase_firewall+0x"), "no stack");
	show_if_failed(before, "firewall");

	/* Two firewall caches with different slab sizes. */
	before = test_cur_failed;
	run_timeout = 5;	/* it hangs under TSan */
	st = run("firewall_two", "firewall=64,audit", NULL, NULL);
	run_timeout = 30;
	CHECKF(CHILD_ABORTED(st) || (WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGSEGV), "firewall_two: %s", tu_status(st));
	CHECKF(strstr(out, "NOT-REACHED") == NULL, "the overrun went on");
	CHECKF(strstr(out, "cache: dbgt_fw_small (") != NULL, "firewall_two: "
	    "no report naming the cache");
	show_if_failed(before, "firewall_two");
}

/* A firewall cache shaped like one of umem_alloc's. */
static void
test_firewall_same(void)
{
	char buf[64], want[128];
	int st, before = test_cur_failed;

	st = run("firewall_same", "firewall=64,audit", NULL, NULL);
	CHECKF(CHILD_ABORTED(st) || (WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGSEGV), "firewall_same: %s", tu_status(st));
	CHECKF(strstr(out, "NOT-REACHED") == NULL, "the overrun went on");
	CHECKF(strstr(out, "cache: dbgt_fw_same (") != NULL, "no report "
	    "naming the cache");
	if (tu_field(out, "BUF=", buf, sizeof (buf)) != NULL) {
		(void) snprintf(want, sizeof (want), "buffer=%s ", buf);
		CHECKF(strstr(out, want) != NULL, "no \"%s\"", want);
	}
	show_if_failed(before, "firewall_same");
}

/*
 * A 100-byte firewall buffer: the 1-4 bytes after it (up to the chunk's
 * alignment) are not on the guard page: they must be checked at free.
 */
static void
test_firewall_slack(void)
{
	int st, before = test_cur_failed;

	st = run("firewall_slack", "firewall=64,audit", NULL, NULL);
	CHECKF(CHILD_ABORTED(st) || (WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGSEGV), "firewall_slack: %s", tu_status(st));
	CHECKF(strstr(out, "cache: dbgt_fw100 (") != NULL, "no report");
	show_if_failed(before, "firewall_slack");
}

/* umem_free(stack address) as the first call into the library. */
static void
test_badaddr_first(void)
{
	char buf[64], want[128];
	int st, before = test_cur_failed;

	st = run("badaddr_first", "default", NULL, NULL);
	CHECKF(CHILD_ABORTED(st), "badaddr_first: %s", tu_status(st));
	CHECKF(strstr(out, "umem allocator: invalid free: buffer not "
	    "allocated from this cache\n") != NULL, "no report");
	if (tu_field(out, "BUF=", buf, sizeof (buf)) != NULL) {
		(void) snprintf(want, sizeof (want), "buffer=%s ", buf);
		CHECKF(strstr(out, want) != NULL, "no \"%s\"", want);
	}
	show_if_failed(before, "badaddr_first");
}

/* The seconds of the first "<what> by thread N at T-S.NNNs", or -1. */
static double
report_age(const char *what)
{
	const char *p = strstr(out, what), *t;

	if (p == NULL || (t = strstr(p, " at T-")) == NULL)
		return (-1);
	return (strtod(t + 6, NULL));
}

/*
 * The ages in a report are read from the coarse clock that stamps audit
 * records (through the vDSO when there is one): a double free 300 ms
 * after the allocation and 200 ms after the first free must say so, to
 * the clock's tick.  Only lower bounds and a generous upper one: sleeps
 * can overrun on a loaded machine.
 */
static void
test_report_ages(void)
{
	double a, f;
	int st, before = test_cur_failed;

	st = run("dupfree_aged", "audit", NULL, NULL);
	CHECKF(CHILD_ABORTED(st), "dupfree_aged: %s", tu_status(st));
	a = report_age("last allocated by thread ");
	f = report_age("last freed by thread ");
	CHECKF(a >= 0.49 && a < 30, "allocated T-%.3f s ago, want >= 0.5", a);
	CHECKF(f >= 0.19 && f < a - 0.28, "freed T-%.3f s ago, want >= 0.2 "
	    "and 0.3 after the allocation (T-%.3f)", f, a);
	show_if_failed(before, "report_ages");
}

/*
 * The clock word (debug.c): ticks while records are made, none while
 * idle (passes only: 4 a second), and stamps as good as the clock.
 * Bounds are loose (the thread may be delayed on a loaded machine), but
 * a frozen word, or one refreshed only at passes, fails the ages, and a
 * ticker that never stops fails IDLE.
 */
static void
test_clock_ticks(void)
{
	char v[32];
	double a = -1, f = -1, ra, rf;
	long active = -1, idle = -1;
	int st, before = test_cur_failed;

	st = run("clock_ticks", "audit", NULL, NULL);
	CHECKF(CHILD_ABORTED(st), "clock_ticks: %s", tu_status(st));
	if (tu_field(out, "ACTIVE=", v, sizeof (v)) != NULL)
		active = atol(v);
	if (tu_field(out, "IDLE=", v, sizeof (v)) != NULL)
		idle = atol(v);
	if (tu_field(out, "ALLOC_AGE=", v, sizeof (v)) != NULL)
		a = atof(v);
	if (tu_field(out, "FREE_AGE=", v, sizeof (v)) != NULL)
		f = atof(v);
	ra = report_age("last allocated by thread ");
	rf = report_age("last freed by thread ");
	CHECKF(active >= 10, "%ld wake-ups of the update thread in 0.3 s of "
	    "records, want >= 10 (a tick is 1-10 ms)", active);
	CHECKF(idle >= 0 && idle <= 30, "%ld wake-ups in an idle second, "
	    "want <= 30 (no ticks)", idle);
	CHECKF(a > 0 && ra >= a - 0.02 && ra <= a + 0.1, "allocated T-%.3f "
	    "s ago, truly %.3f s", ra, a);
	CHECKF(f > 0 && rf >= f - 0.02 && rf <= f + 0.1, "freed T-%.3f s "
	    "ago, truly %.3f s", rf, f);
	show_if_failed(before, "clock_ticks");
}

static void
expect_clean_exit(const char *what)
{
	CHECKF(strstr(out, "CHILD-END failures=0") != NULL, "%s: child "
	    "did not finish cleanly", what);
}

static void
test_mtbf(void)
{
	int st, before = test_cur_failed;

	st = run("mtbf", "mtbf=3", NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mtbf: %s",
	    tu_status(st));
	expect_clean_exit("mtbf");
	show_if_failed(before, "mtbf");

	before = test_cur_failed;
	st = run("mtbf_nodebug", NULL, NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mtbf_nodebug: %s",
	    tu_status(st));
	expect_clean_exit("mtbf_nodebug");
	show_if_failed(before, "mtbf_nodebug");
}

static void
test_logs(void)
{
	int st, before = test_cur_failed;

	st = run("logs", "audit", "transaction,contents,fail", NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logs: %s",
	    tu_status(st));
	expect_clean_exit("logs");
	show_if_failed(before, "logs");

	/* sizes with suffixes are accepted quietly */
	before = test_cur_failed;
	st = run("logs", "audit", "transaction=1m, contents=64K ,fail=8k",
	    NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logs (sizes): %s",
	    tu_status(st));
	expect_clean_exit("logs (sizes)");
	CHECKF(strstr(out, "UMEM_LOGGING") == NULL, "a complaint about good "
	    "sizes");
	show_if_failed(before, "logs (sizes)");

	before = test_cur_failed;
	st = run("logs_off", "default", NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logs_off: %s",
	    tu_status(st));
	expect_clean_exit("logs_off");
	show_if_failed(before, "logs_off");
}

static void
test_options(void)
{
	static const char *const msgs[] = {
		"UMEM_DEBUG: audit needs a number",
		"got 'abc'",
		"UMEM_DEBUG: firewall needs a number",
		"UMEM_DEBUG: 'zzz' not recognized",
		"UMEM_DEBUG: '=' not recognized",
		"got '99999999999999999999'",
		"UMEM_DEBUG: 'mtbf' not recognized",
		"UMEM_DEBUG: 'guards=1' not recognized",
		"UMEM_LOGGING: transaction needs a number",
		"got '12q'",
		"UMEM_LOGGING: 'slab' not recognized",
		"UMEM_LOGGING: contents needs a number",
	};
	char big[1200];
	int st, before = test_cur_failed;

	st = run("options", "audit=abc,,firewall=,zzz,=,"
	    "audit=99999999999999999999, mtbf ,guards=1,,",
	    "transaction=12q,slab,contents=-1,", NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "options: %s",
	    tu_status(st));
	expect_clean_exit("options");
	for (size_t i = 0; i < sizeof (msgs) / sizeof (msgs[0]); i++)
		CHECKF(strstr(out, msgs[i]) != NULL, "no \"%s\"", msgs[i]);
	/* audit (bad values) still turns auditing on, 15 frames kept */
	CHECKF(strstr(out, "frames 15\n") != NULL, "audit frames changed");
	show_if_failed(before, "options");

	/* an item longer than the 512-byte limit; only commas; blanks */
	before = test_cur_failed;
	memset(big, 'a', sizeof (big) - 1);
	big[sizeof (big) - 1] = '\0';
	memcpy(big, "guards,", 7);
	st = run("options", big, " , ,, ", NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "options (long): %s",
	    tu_status(st));
	expect_clean_exit("options (long)");
	CHECKF(strstr(out, "ignored") != NULL, "no word on the long item");
	show_if_failed(before, "options (long)");

	/* good values are quiet: audit=30, contents=1k, maxverify, lite */
	before = test_cur_failed;
	st = run("options", " audit=30 , contents=1k,maxverify=64,verbose",
	    NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "options (good): %s",
	    tu_status(st));
	expect_clean_exit("options (good)");
	CHECKF(strstr(out, "frames 30\n") != NULL, "audit=30 not taken");
	CHECKF(strstr(out, "not recognized") == NULL &&
	    strstr(out, "needs a number") == NULL, "complaint about good "
	    "options");
	show_if_failed(before, "options (good)");

	/* audit=100: clamped, with a word */
	before = test_cur_failed;
	st = run("options", "audit=100", NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "options (100): %s",
	    tu_status(st));
	expect_clean_exit("options (100)");
	CHECKF(strstr(out, "audit keeps at most") != NULL, "no clamp note");
	show_if_failed(before, "options (100)");
}

static void
test_patterns(void)
{
	int st, before = test_cur_failed;

	st = run("patterns", "guards", NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "patterns: %s",
	    tu_status(st));
	expect_clean_exit("patterns");
	show_if_failed(before, "patterns");
}

static unsigned
flags_of(void)
{
	char v[32];

	if (tu_field(out, "FLAGS=", v, sizeof (v)) == NULL)
		return (0xdead0000);
	return ((unsigned)strtoul(v, NULL, 16));
}

/* _umem_debug_init, _umem_logging_init, _umem_options_init. */
static void
test_hooks(void)
{
	unsigned f;
	char v[32];
	int st, before = test_cur_failed;

	/* no environment, no hook: no debugging */
	st = run("flags", NULL, NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", tu_status(st));
	f = flags_of();
	CHECKF((f & UMF_DEBUG) == 0, "flags 0x%x", f);
	CHECKF(tu_field(out, "LOG=", v, sizeof (v)) && strcmp(v, "-1") == 0,
	    "log on");

	/* the hooks alone */
	st = run("flags", NULL, NULL, "DBGT_HOOK_DEBUG=default");
	f = flags_of();
	CHECKF((f & (UMF_AUDIT | UMF_DEADBEEF | UMF_REDZONE | UMF_CONTENTS))
	    == (UMF_AUDIT | UMF_DEADBEEF | UMF_REDZONE | UMF_CONTENTS),
	    "_umem_debug_init: flags 0x%x", f);
	st = run("flags", "guards", NULL, "DBGT_HOOK_DEBUG=audit");
	f = flags_of();
	CHECKF((f & UMF_DEADBEEF) && !(f & UMF_AUDIT), "UMEM_DEBUG must win "
	    "over _umem_debug_init: flags 0x%x", f);
	st = run("flags", "audit", NULL, "DBGT_HOOK_LOGGING=transaction");
	CHECKF(tu_field(out, "LOG=", v, sizeof (v)) && atoi(v) >= 0,
	    "_umem_logging_init: log %s", v);
	st = run("flags", "audit", "fail", "DBGT_HOOK_LOGGING=transaction");
	CHECKF(tu_field(out, "LOG=", v, sizeof (v)) && strcmp(v, "-1") == 0,
	    "UMEM_LOGGING must win over _umem_logging_init: log %s", v);
	st = run("flags", NULL, NULL, "DBGT_HOOK_OPTIONS=nomagazines");
	f = flags_of();
	CHECKF((f & UMF_NOMAGAZINE) && !(f & UMF_DEBUG),
	    "_umem_options_init: flags 0x%x", f);
	/* a planted bug found through the hook's settings */
	st = run("dupfree_cache", NULL, NULL, "DBGT_HOOK_DEBUG=default");
	CHECKF(CHILD_ABORTED(st), "hook dupfree: %s", tu_status(st));
	CHECKF(strstr(out, "umem allocator: duplicate free\n") != NULL &&
	    strstr(out, "last allocated by thread") != NULL, "hook dupfree");
	show_if_failed(before, "hooks");
}

static void
test_errlog(void)
{
	int st, before = test_cur_failed;

	st = run("errlog", "guards,noabort", NULL, NULL);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "errlog: %s",
	    tu_status(st));
	expect_clean_exit("errlog");
	show_if_failed(before, "errlog");
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0)
		return (child_main(argv[2]));
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(test_planted_abort);
	RUN(test_planted_noabort);
	RUN(test_firewall);
	RUN(test_firewall_same);
	RUN(test_firewall_slack);
	RUN(test_badaddr_first);
	RUN(test_report_ages);
	RUN(test_clock_ticks);
	RUN(test_mtbf);
	RUN(test_logs);
	RUN(test_options);
	RUN(test_patterns);
	RUN(test_hooks);
	RUN(test_errlog);
	return (test_summary(argv[0]));
}
