/*
 * debug_malloc.c - UMEM_DEBUG through the malloc family (issue 5).
 *
 * A standalone program, NOT linked with libumem: run it with
 * LD_PRELOAD=libumem.so (make test does, after a run without, in which it
 * finds no libumem and skips everything).  Built like the other malloc
 * tests, with -fno-builtin so that the compiler keeps the very calls and
 * stores under test; pointers also go through tu_launder().
 *
 * Each planted bug (use after free, overrun, double free, interior free,
 * free of a stack address, realloc of a freed block) runs in a fresh
 * process: this program executes itself ("debug_malloc --child CASE")
 * with UMEM_DEBUG set, since the library reads it once.  The child prints
 * the block it is about to misuse ("BUF="), and the parent checks the
 * report's class line, the block's address, the cache, the audit record
 * and that the child died of SIGABRT.  Then: malloc_usable_size() under
 * debugging is the requested size; a mixed workload (random sizes,
 * realloc chains, aligned and zeroed blocks, contents checked) runs
 * without a report under UMEM_DEBUG=default and under firewall=0 (every
 * block on its own guard-paged slab).
 *
 * The hook test (_umem_debug_init defined here) needs the symbol in the
 * program's dynamic symbol table (-rdynamic): without it the test is
 * skipped with a note.
 *
 *	cc -std=gnu11 -O2 -fno-builtin -pthread -o debug_malloc \
 *	    tests/debug_malloc.c -ldl
 *	LD_PRELOAD=build/lib/libumem.so ./debug_malloc
 */
#include "test.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>



/* Keep a frame pointer in the calling function (for audit stacks). */
#define	FRAME() do {							\
	void *fa_ = __builtin_frame_address(0);				\
	__asm__ __volatile__("" : : "r" (fa_) : "memory");		\
} while (0)

/* The hook; see the top.  Inert unless DBGM_HOOK is set. */
const char *_umem_debug_init(void);

const char *
_umem_debug_init(void)
{
	return (getenv("DBGM_HOOK"));
}

/* ------------------------------------------------------------------ */
/* Child side.  Output by write(2): stdio could allocate. */

static void
announce(const void *p)
{
	tu_say("BUF=%p\n", p);
}

void *dm_malloc(size_t n);
void dm_free(void *p);

/* The allocation and free sites the audit record must show. */
__attribute__((noinline)) void *
dm_malloc(size_t n)
{
	void *p;

	FRAME();
	p = malloc(tu_opaque(n));
	return (tu_launder(p));
}

__attribute__((noinline)) void
dm_free(void *p)
{
	FRAME();
	free(tu_launder(p));
	__asm__ __volatile__("" : : : "memory");
}

static void
case_uaf(void)
{
	char *keep = dm_malloc(64), *p = dm_malloc(64), *q;

	dm_free(p);
	announce(p);
	((volatile uint64_t *)tu_launder(p))[1] = 0x1122334455667788ULL;
	q = dm_malloc(64);		/* the same block (LIFO) */
	tu_say("NOT-REACHED %p %p\n", (void *)q, (void *)keep);
}

/* One byte past a block of size bytes, then free it. */
static void
overrun_by_one(size_t size)
{
	char *p = dm_malloc(size);

	announce(p);
	((volatile char *)tu_launder(p))[size] = 0x5a;
	dm_free(p);
	tu_say("NOT-REACHED\n");
}

static void
case_overrun(void)
{
	overrun_by_one(40);
}

/* A double free of p (keep: a block that stays allocated meanwhile). */
static void
free_twice(void *p, void *keep)
{
	announce(p);
	dm_free(p);
	dm_free(p);
	tu_say("NOT-REACHED %p\n", keep);
}

/*
 * A double free of a block allocated in a static function: not in the
 * dynamic symbol table even with -rdynamic, so only the program's .symtab
 * names it in the report.
 */
static __attribute__((noinline)) void *
static_alloc_site(size_t n)
{
	void *p;

	FRAME();
	p = malloc(tu_opaque(n));
	return (tu_launder(p));
}

static void
case_static_site(void)
{
	char *keep = dm_malloc(64);

	free_twice(static_alloc_site(64), keep);
}

/* A block under 8 bytes: its slack starts at its size, not at 8. */
static void
case_overrun_small(void)
{
	overrun_by_one(3);
}

/*
 * UMEM_LOGGING=contents: free() logs a malloc block's bytes as the
 * program left them, its first word too (free's double-free key is never
 * stored into a block of a debug class).
 */
static void
case_contents(void)
{
	int (*logprint)(int, const char *) = (int (*)(int, const char *))
	    dlsym(RTLD_DEFAULT, "umem_log_print");
	char *p = dm_malloc(40);

	memcpy(p, "ABCDEFGHIJKLMNOP", 16);
	announce(p);
	dm_free(p);
	CCHECK(logprint != NULL, "no umem_log_print");
	if (logprint != NULL)
		CCHECK(logprint(STDOUT_FILENO, "contents") >= 1,
		    "umem_log_print(contents) printed nothing");
}

/*
 * A double free three calls deep in functions without frame pointers (the
 * file is built -O2, which omits them; no FRAME() here): with
 * unwind=dwarf the records still name every caller.  Global, so that
 * -rdynamic names them in the report; work after each call keeps the
 * calls from becoming jumps.
 */
void *nofp_make(size_t n);
void nofp_level2(void);
void nofp_level1(void);

__attribute__((noinline)) void *
nofp_make(size_t n)
{
	char *p = malloc(tu_opaque(n));

	memset(tu_launder(p), 0x11, n);
	return (tu_launder(p));
}

__attribute__((noinline)) void
nofp_level2(void)
{
	void *p = nofp_make(40);

	announce(p);
	free(tu_launder(p));
	free(tu_launder(p));
	tu_say("NOT-REACHED\n");
}

__attribute__((noinline)) void
nofp_level1(void)
{
	nofp_level2();
	tu_say("NOT-REACHED\n");
}

static void
case_nofp(void)
{
	nofp_level1();
	tu_say("NOT-REACHED\n");
}

/*
 * The same from a signal handler: the walk goes through the signal frame
 * (the kernel's saved registers) into the code it interrupted.
 */
void sig_raiser(void);

static void
sig_handler(int sig)
{
	(void) sig;
	nofp_level2();
}

__attribute__((noinline)) void
sig_raiser(void)
{
	(void) raise(SIGUSR1);
	tu_say("NOT-REACHED\n");
}

static void
case_sig_nofp(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof (sa));
	sa.sa_handler = sig_handler;
	(void) sigaction(SIGUSR1, &sa, NULL);
	sig_raiser();
	tu_say("NOT-REACHED\n");
}

/* Large blocks (pages from vmem) carry a tag at their end, after 0xbb. */
static void
case_large_overrun(void)
{
	overrun_by_one(100000);
}

/* 25 pages less the tag: no slack, the overrun lands on the tag. */
static void
case_large_tag(void)
{
	overrun_by_one(25 * 4096 - 16);
}

static void
case_double(void)
{
	char *keep = dm_malloc(64);

	free_twice(dm_malloc(64), keep);
}

static void
case_interior(void)
{
	char *p = dm_malloc(100);

	announce(p + 8);
	dm_free(p + tu_opaque(8));
	tu_say("NOT-REACHED\n");
}

static void
case_stack(void)
{
	uint64_t local[8];
	void *keep = dm_malloc(64);	/* the library is initialised */

	memset(local, 0, sizeof (local));
	announce(&local[2]);
	dm_free(&local[2]);
	tu_say("NOT-REACHED %p\n", keep);
}

/* The same as the process's first call into the malloc family. */
static void
case_stack_first(void)
{
	uint64_t local[8];

	memset(local, 0, sizeof (local));
	announce(&local[2]);
	dm_free(&local[2]);
	tu_say("NOT-REACHED\n");
}

static void
case_realloc_freed(void)
{
	char *keep = dm_malloc(64), *p = dm_malloc(64), *q;

	dm_free(p);
	announce(p);
	q = realloc(tu_launder(p), tu_opaque(128));
	tu_say("NOT-REACHED %p %p\n", (void *)q, (void *)keep);
}

/* UMEM_DEBUG=firewall=0,audit: one byte past a 128-byte block. */
static void
case_fw_overrun(void)
{
	char *p = dm_malloc(128);

	announce(p);
	((volatile char *)tu_launder(p))[128] = 0x5a;
	tu_say("NOT-REACHED\n");
}

/* noabort: a double free is reported and kept in umem_error_log(). */
static void
case_noabort(void)
{
	size_t (*errlog)(char *, size_t) = (size_t (*)(char *, size_t))
	    dlsym(RTLD_DEFAULT, "umem_error_log");
	static char log[8192];
	char *p = dm_malloc(64), *q;

	announce(p);
	dm_free(p);
	dm_free(p);
	CCHECK(errlog != NULL, "no umem_error_log");
	if (errlog != NULL) {
		size_t n = errlog(log, sizeof (log));

		CCHECK(n > 0 && strstr(log, "umem allocator: duplicate "
		    "free\n") != NULL, "error log: %s", log);
	}
	q = dm_malloc(64);
	CCHECK(q != NULL, "malloc after the error");
	dm_free(q);
	tu_say("ALIVE\n");
}

static void
case_usable(void)
{
	static const size_t sizes[] = { 1, 7, 8, 40, 100, 1000, 4000, 20000,
	    100000, 25 * 4096 - 16, 25 * 4096 };
	unsigned char *p, *q;

	for (size_t i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		size_t u;

		p = dm_malloc(sizes[i]);
		u = malloc_usable_size(p);
		CCHECK(u == sizes[i], "malloc_usable_size(malloc(%zu)) = %zu",
		    sizes[i], u);
		memset(p, 0x33, u);	/* all of it is the caller's */
		dm_free(p);
	}
	/* a large block moves to a new one, its bytes with it */
	p = dm_malloc(100000);
	for (size_t i = 0; i < 100000; i++)
		p[i] = (unsigned char)(i * 7);
	q = realloc(tu_launder(p), tu_opaque(300000));
	CCHECK(q != NULL && malloc_usable_size(q) == 300000, "realloc");
	for (size_t i = 0; q != NULL && i < 100000; i++)
		if (q[i] != (unsigned char)(i * 7)) {
			CCHECK(0, "byte %zu lost in realloc", i);
			break;
		}
	dm_free(q);
}

/* Position-dependent bytes, so that shifted copies show. */
static unsigned char
pat(size_t i, unsigned tag)
{
	return ((unsigned char)((i ^ (i >> 8)) * 131u + tag));
}

static size_t
check(const unsigned char *b, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != pat(i, tag))
			return (i);
	return (SIZE_MAX);
}

static void
fill(unsigned char *b, size_t from, size_t to, unsigned tag)
{
	for (size_t i = from; i < to; i++)
		b[i] = pat(i, tag);
}

static unsigned long long
rnd(unsigned long long *s)
{
	return (test_rand(s));
}

/* A mixed workload that must run without a single report. */
static void
case_workload(void)
{
	enum { SLOTS = 400, OPS = 6000 };
	static unsigned char *v[SLOTS];
	static size_t sz[SLOTS];
	static unsigned tag[SLOTS];
	unsigned long long seed = 12345;
	int bad = 0;

	for (int op = 0; op < OPS && bad < 5; op++) {
		unsigned long long r = rnd(&seed);
		int i = (int)(r % SLOTS);
		size_t n;

		if (v[i] != NULL) {
			size_t at = check(v[i], sz[i], tag[i]);

			if (at != SIZE_MAX) {
				CCHECK(0, "block %p of %zu bytes: byte %zu",
				    (void *)v[i], sz[i], at);
				bad++;
			}
			if ((r >> 8) % 3 == 0) {
				/* realloc chain: grow or shrink, keep prefix */
				size_t m = (r >> 12) % 5 == 0 ?
				    (size_t)(r >> 20) % 80000 + 1 :
				    (size_t)(r >> 20) % 700 + 1;
				unsigned char *q = realloc(v[i], m);

				CCHECK(q != NULL, "realloc %zu", m);
				if (q == NULL)
					continue;
				at = check(q, sz[i] < m ? sz[i] : m, tag[i]);
				CCHECK(at == SIZE_MAX, "realloc lost byte %zu",
				    at);
				if (m > sz[i])
					fill(q, sz[i], m, tag[i]);
				v[i] = q;
				sz[i] = m;
				continue;
			}
			free(v[i]);
			v[i] = NULL;
			continue;
		}
		n = (r >> 8) % 16 == 0 ? (size_t)(r >> 20) % 70000 + 1 :
		    (size_t)(r >> 20) % 512 + 1;
		tag[i] = (unsigned)(r >> 40);
		switch ((r >> 4) % 5) {
		case 0: {
			unsigned char *c = calloc(1, n);

			CCHECK(c != NULL, "calloc %zu", n);
			for (size_t k = 0; c != NULL && k < n; k++)
				if (c[k] != 0) {
					CCHECK(0, "calloc(%zu) byte %zu = %u",
					    n, k, c[k]);
					break;
				}
			v[i] = c;
			break;
		}
		case 1: {
			void *a = NULL;
			size_t al = (size_t)16 << ((r >> 30) % 8);

			CCHECK(posix_memalign(&a, al, n) == 0, "memalign");
			CCHECK(((uintptr_t)a & (al - 1)) == 0, "align %zu: %p",
			    al, a);
			v[i] = a;
			break;
		}
		default:
			v[i] = malloc(n);
			break;
		}
		CCHECK(v[i] != NULL, "alloc %zu", n);
		if (v[i] == NULL)
			continue;
		CCHECK(malloc_usable_size(v[i]) >= n, "usable %zu < %zu",
		    malloc_usable_size(v[i]), n);
		sz[i] = n;
		fill(v[i], 0, n, tag[i]);
	}
	for (int i = 0; i < SLOTS; i++) {
		if (v[i] != NULL)
			CCHECK(check(v[i], sz[i], tag[i]) == SIZE_MAX,
			    "final check");
		free(v[i]);
	}
	/* strdup, asprintf and friends allocate through us too */
	for (int i = 0; i < 200; i++) {
		char *s = strdup("umem debugging");

		CCHECK(s != NULL && strcmp(s, "umem debugging") == 0, "strdup");
		free(s);
	}
}

static const struct {
	const char	*name;
	void		(*fn)(void);
} cases[] = {
	{ "uaf", case_uaf },
	{ "overrun", case_overrun },
	{ "overrun_small", case_overrun_small },
	{ "contents", case_contents },
	{ "nofp", case_nofp },
	{ "sig_nofp", case_sig_nofp },
	{ "static_site", case_static_site },
	{ "double", case_double },
	{ "interior", case_interior },
	{ "stack", case_stack },
	{ "stack_first", case_stack_first },
	{ "realloc_freed", case_realloc_freed },
	{ "large_overrun", case_large_overrun },
	{ "large_tag", case_large_tag },
	{ "fw_overrun", case_fw_overrun },
	{ "noabort", case_noabort },
	{ "usable", case_usable },
	{ "workload", case_workload },
};

static int
child_main(const char *what)
{
	for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
		if (strcmp(cases[i].name, what) == 0) {
			cases[i].fn();
			tu_say("CHILD-END failures=%d\n", tu_child_failed);
			return (tu_child_failed == 0 ? 0 : 1);
		}
	}
	tu_say("CHILD-FAIL: no case '%s'\n", what);
	return (2);
}

/* ------------------------------------------------------------------ */
/* Parent side. */

static char out[1 << 16];

/*
 * Run "self --child what" with UMEM_DEBUG=debug (NULL: unset) and one
 * more NAME=value (or NULL), without UMEM_LOGGING or DBGM_HOOK (the only
 * DBGM_ variable: list any new one here); stdout and stderr into out;
 * killed after 30 s.  Returns the wait status, -1 if it could not run.
 */
static int
run(const char *what, const char *debug, const char *extra)
{
	char ebuf[512];
	const char *env[] = {
		"UMEM_DEBUG=", "UMEM_LOGGING=", "DBGM_HOOK=", extra, NULL
	};

	if (debug != NULL) {
		(void) snprintf(ebuf, sizeof (ebuf), "UMEM_DEBUG=%s", debug);
		env[0] = ebuf;
	}
	return (tu_run_self(what, env, 30, out, sizeof (out)));
}

static const char *self_name = "debug_malloc";

static void
show_if(int before, const char *what)
{
	if (test_cur_failed != before || getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "---- %s output:\n%s----\n", what, out);
}

static const struct pcase {
	const char	*name;
	const char	*debug;
	const char	*cls;		/* the report's first line */
	const char	*detail;	/* more text it must hold, or NULL */
	int		audit;		/* an allocation record expected */
} pcases[] = {
	{ "uaf", "default", "buffer modified after being freed",
	    "modification occurred at offset 0x8 (0xdeadbeefdeadbeef "
	    "replaced by 0x1122334455667788)", 1 },
	{ "overrun", "default", "redzone violation: write past end of "
	    "buffer", "byte at offset 0x28 (buffer of 40 bytes) is 0x5a, "
	    "expected 0xbb", 1 },
	{ "overrun_small", "default", "redzone violation: write past end "
	    "of buffer", "byte at offset 0x3 (buffer of 3 bytes) is 0x5a, "
	    "expected 0xbb", 1 },
	{ "double", "default", "duplicate free", NULL, 1 },
	{ "static_site", "default", "duplicate free", " static_alloc_site+0x",
	    1 },
	{ "interior", "default", "bad free: free address is not the start "
	    "of a buffer", NULL, 0 },
	{ "stack", "default", "invalid free: buffer not allocated from this "
	    "cache", NULL, 0 },
	{ "realloc_freed", "default", "duplicate free", NULL, 1 },
	{ "fw_overrun", "firewall=0,audit", "redzone violation: write past "
	    "end of buffer", "firewall", 1 },
	{ "large_overrun", "default", "redzone violation: write past end of "
	    "buffer", "byte at offset 0x186a0 (large block of 100000 bytes) "
	    "is 0x5a, expected 0xbb", 0 },
	{ "large_tag", "guards", "redzone violation: write past end of "
	    "buffer", "large block of 25 pages: its tag at offset 0x18ff0 is "
	    "overwritten", 0 },
};

static void
t_planted(void)
{
	for (size_t i = 0; i < sizeof (pcases) / sizeof (pcases[0]); i++) {
		const struct pcase *pc = &pcases[i];
		int st = run(pc->name, pc->debug, NULL), before =
		    test_cur_failed;
		char buf[64], want[256];
		const char *rep = strstr(out, "umem allocator: ");

		if (strcmp(pc->name, "fw_overrun") == 0)
			CHECKF(CHILD_ABORTED(st) || (WIFSIGNALED(st) &&
			    WTERMSIG(st) == SIGSEGV), "%s: %s", pc->name,
			    tu_status(st));
		else
			CHECKF(CHILD_ABORTED(st), "%s: %s", pc->name,
			    tu_status(st));
		CHECKF(strstr(out, "NOT-REACHED") == NULL, "%s: went on",
		    pc->name);
		(void) snprintf(want, sizeof (want), "umem allocator: %s\n",
		    pc->cls);
		CHECKF(rep != NULL && strncmp(rep, want, strlen(want)) == 0,
		    "%s: the report does not start with \"%s\"", pc->name,
		    pc->cls);
		if (tu_field(out, "BUF=", buf, sizeof (buf)) != NULL) {
			(void) snprintf(want, sizeof (want), "buffer=%s ", buf);
			CHECKF(strstr(out, want) != NULL, "%s: no \"%s\"",
			    pc->name, want);
		} else {
			CHECKF(0, "%s: no BUF= line", pc->name);
		}
		if (strcmp(pc->name, "stack") != 0 &&
		    strncmp(pc->name, "large_", 6) != 0)
			CHECKF(strstr(out, "cache: umem_alloc_") != NULL,
			    "%s: no cache named", pc->name);
		if (pc->detail != NULL)
			CHECKF(strstr(out, pc->detail) != NULL, "%s: no \"%s\"",
			    pc->name, pc->detail);
		if (pc->audit) {
			CHECKF(strstr(out, "last allocated by thread ") !=
			    NULL, "%s: no audit record", pc->name);
			/* a frame in this program (named by file) */
			CHECKF(tu_line_has(out, "    #", self_name), "%s: no "
			    "stack frame in %s", pc->name, self_name);
		}
		CHECKF(strstr(out, "umem: heap corruption detected\n") != NULL,
		    "%s: no closing line", pc->name);
		show_if(before, pc->name);
	}
}

static void
expect_clean(const char *what, const char *debug, int st)
{
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s (%s): %s", what,
	    debug, tu_status(st));
	CHECKF(strstr(out, "CHILD-END failures=0") != NULL, "%s (%s): did "
	    "not finish cleanly", what, debug);
	CHECKF(strstr(out, "umem allocator:") == NULL, "%s (%s): a report",
	    what, debug);
}

static void
t_noabort(void)
{
	int before = test_cur_failed;
	int st = run("noabort", "default,noabort", NULL);

	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "noabort: %s",
	    tu_status(st));
	CHECKF(strstr(out, "CHILD-END failures=0") != NULL, "noabort: did "
	    "not finish cleanly");
	CHECKF(strstr(out, "umem allocator: duplicate free\n") != NULL &&
	    strstr(out, "umem: heap corruption detected (noabort: "
	    "continuing)\n") != NULL, "no report");
	CHECKF(strstr(out, "ALIVE") != NULL, "did not carry on");
	show_if(before, "noabort");
}

/* The contents log holds a freed malloc block's first word as it was. */
static void
t_contents(void)
{
	int before = test_cur_failed;
	int st = run("contents", "audit", "UMEM_LOGGING=contents");
	char buf[64];

	expect_clean("contents", "audit", st);
	CHECKF(tu_field(out, "BUF=", buf, sizeof (buf)) != NULL &&
	    strstr(out, buf + 2) != NULL, "the block is not in the log");
	/* "ABCDEFGH": the word free() used to overwrite with its key */
	CHECKF(strstr(out, "41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f "
	    "50") != NULL, "first bytes not logged as written");
	show_if(before, "contents");
}

/* The first "    #" frame line at or after from naming name, or NULL. */
static const char *
frame_line(const char *from, const char *name)
{
	const char *l = from;

	while ((l = strstr(l, "    #")) != NULL) {
		const char *e = strchr(l, '\n');

		if (e == NULL)
			e = l + strlen(l);
		if (memmem(l, (size_t)(e - l), name, strlen(name)) != NULL)
			return (l);
		l = e;
	}
	return (NULL);
}

/*
 * unwind=dwarf: the allocation record of a block allocated three calls
 * deep in code without frame pointers names all three callers, in order;
 * from a signal handler, it goes on into the interrupted function.
 */
static void
t_unwind(void)
{
	int before = test_cur_failed;
	int st = run("nofp", "default,unwind=dwarf", NULL);
	const char *rec = strstr(out, "last allocated by thread ");
	const char *a, *b, *c;

	CHECKF(CHILD_ABORTED(st), "nofp: %s", tu_status(st));
	CHECKF(strstr(out, "umem allocator: duplicate free\n") != NULL,
	    "nofp: no report");
	CHECKF(rec != NULL, "nofp: no allocation record");
	if (rec != NULL) {
		a = frame_line(rec, "nofp_make+");
		b = frame_line(rec, "nofp_level2+");
		c = frame_line(rec, "nofp_level1+");
		CHECKF(a != NULL && b != NULL && c != NULL && a < b && b < c,
		    "nofp: the allocation stack lacks a caller");
	}
	show_if(before, "nofp");

	/* through a signal frame, into the code the signal interrupted */
	before = test_cur_failed;
	st = run("sig_nofp", "default,unwind=dwarf", NULL);
	rec = strstr(out, "last allocated by thread ");
	CHECKF(CHILD_ABORTED(st), "sig_nofp: %s", tu_status(st));
	CHECKF(rec != NULL, "sig_nofp: no allocation record");
	if (rec != NULL) {
		a = frame_line(rec, "nofp_level2+");
		b = frame_line(rec, "sig_raiser+");
		CHECKF(a != NULL && b != NULL && a < b, "sig_nofp: the "
		    "allocation stack does not reach sig_raiser");
	}
	show_if(before, "sig_nofp");

	before = test_cur_failed;
	st = run("usable", "default,unwind=sideways", NULL);
	expect_clean("usable", "unwind=sideways", st);
	CHECKF(strstr(out, "UMEM_DEBUG: unwind is fp or dwarf, not "
	    "'sideways'") != NULL, "no complaint about unwind=sideways");
	show_if(before, "unwind=sideways");
}

/* free(stack address) before any allocation. */
static void
t_stack_first(void)
{
	int before = test_cur_failed;
	int st = run("stack_first", "default", NULL);

	CHECKF(CHILD_ABORTED(st), "stack_first: %s", tu_status(st));
	CHECKF(strstr(out, "umem allocator: invalid free: buffer not "
	    "allocated from this cache\n") != NULL, "no report");
	show_if(before, "stack_first");
}

static void
t_usable_size(void)
{
	int before = test_cur_failed;
	int st = run("usable", "default", NULL);

	expect_clean("usable", "default", st);
	show_if(before, "usable");
}

static void
t_workload(void)
{
	static const char *const modes[] = {
		"default", "firewall=0", "guards,audit=4", "lite"
	};

	for (size_t i = 0; i < sizeof (modes) / sizeof (modes[0]); i++) {
		int before = test_cur_failed;
		int st = run("workload", modes[i], NULL);

		expect_clean("workload", modes[i], st);
		show_if(before, modes[i]);
	}
}

static void
t_hook(void)
{
	int before = test_cur_failed, st;

	if (dlsym(RTLD_DEFAULT, "_umem_debug_init") == NULL) {
		printf("  skip t_hook: _umem_debug_init is not in the "
		    "program's dynamic symbol table (link with -rdynamic); "
		    "under LD_PRELOAD the library cannot see it\n");
		return;
	}
	st = run("double", NULL, "DBGM_HOOK=default");
	CHECKF(CHILD_ABORTED(st), "hook: %s", tu_status(st));
	CHECKF(strstr(out, "umem allocator: duplicate free\n") != NULL &&
	    strstr(out, "last allocated by thread") != NULL, "hook: no "
	    "debug report");
	show_if(before, "hook");
}

int
main(int argc, char **argv)
{
	const char *n;

	if (argc >= 3 && strcmp(argv[1], "--child") == 0)
		return (child_main(argv[2]));
	setvbuf(stdout, NULL, _IOLBF, 0);
	n = strrchr(argv[0], '/');
	self_name = n != NULL ? n + 1 : argv[0];
	if (dlsym(RTLD_DEFAULT, "umem_error_log") == NULL) {
		printf("  skip: malloc is not libumem's (run with "
		    "LD_PRELOAD=libumem.so)\n");
		return (test_summary(argv[0]));
	}
	RUN(t_planted);
	RUN(t_stack_first);
	RUN(t_noabort);
	RUN(t_contents);
	RUN(t_unwind);
	RUN(t_usable_size);
	RUN(t_workload);
	RUN(t_hook);
	return (test_summary(argv[0]));
}
