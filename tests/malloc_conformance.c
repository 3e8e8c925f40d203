/*
 * malloc_conformance.c - the malloc family against glibc 2.36 (Debian 12).
 *
 * A standalone program: it is NOT linked with libumem.  Run it as is to
 * check glibc, or with LD_PRELOAD=<allocator.so> to check an allocator that
 * replaces glibc's.  Every expected result below is what glibc 2.36 does
 * (measured by running it), so a correct drop-in passes unchanged.
 *
 * Build with -fno-builtin: the compiler must not fold or elide the very
 * calls under test (malloc(SIZE_MAX), free(malloc(n)), malloc+memset).
 * (Sizes go through tu_opaque() and pointers through tu_launder() where that
 * matters, so gcc and clang at -O2/-O3 pass without it too.)
 *
 *	cc -std=gnu11 -O2 -fno-builtin -pthread -o malloc_conformance \
 *	    tests/malloc_conformance.c
 *
 * Entry points that do not come from the object that provides malloc
 * (e.g. pvalloc or mallinfo2 left to glibc by jemalloc 5.3) fail
 * t_provenance: their results would describe, or come from, glibc's heap,
 * and freeing such a block through the preloaded free() corrupts it.  The
 * tests of those entry points are skipped rather than run into a crash.
 * MALLOC_CONFORMANCE_FOREIGN_OK=1 turns the provenance failures into
 * notes, to validate the rest of the suite against incomplete allocators.
 */
#include "test.h"

#include <umem.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/single_threaded.h>

#define	MiB		((size_t)1 << 20)

static size_t pagesize;
static int foreign_ok;
static void *malloc_base;		/* load base of the object giving malloc */
static const char *malloc_obj = "?";
static int skipped;


/*
 * Hide a pointer and make it escape, so that the compiler can neither
 * drop an allocation nor track a pointer across free().
 */

static void
skip(const char *what)
{
	skipped++;
	fprintf(stderr, "  skip %s: %s\n", test_cur_name, what);
}

/* Does the symbol resolve into the same object as malloc? */
static int
ours(const char *name)
{
	void *sym = dlsym(RTLD_DEFAULT, name);
	Dl_info di;

	if (sym == NULL || dladdr(sym, &di) == 0)
		return (0);
	return (di.dli_fbase == malloc_base);
}

/* Largest power of two <= n (n > 0). */
static size_t
floor_pow2(size_t n)
{
	size_t p = 1;

	while (p <= n / 2)
		p <<= 1;
	return (p);
}

static size_t
ceil_pow2(size_t n)
{
	size_t p = 1;

	while (p < n)
		p <<= 1;
	return (p);
}

/*
 * The alignment a block of n bytes must have: 16 (alignof(max_align_t))
 * from 16 bytes up; below that, enough for any type that fits in n bytes.
 * (glibc gives 16 for every size; jemalloc gives 8 to malloc(8).)
 */
static size_t
need_align(size_t n)
{
	if (n >= 16)
		return (16);
	return (n == 0 ? 1 : floor_pow2(n));
}

static int
aligned(const void *p, size_t a)
{
	return (((uintptr_t)p & (a - 1)) == 0);
}

/* Position- and tag-dependent bytes, so that shifted copies show. */
static inline unsigned char
pat(size_t i, unsigned tag)
{
	return ((unsigned char)((i ^ (i >> 8) ^ (i >> 16)) * 131u + tag));
}

static void
fill(void *p, size_t from, size_t to, unsigned tag)
{
	unsigned char *b = p;
	size_t i;

	for (i = from; i < to; i++)
		b[i] = pat(i, tag);
}

/* Index of the first wrong byte in [from, to), or (size_t)-1. */
static size_t
verify(const void *p, size_t from, size_t to, unsigned tag)
{
	const unsigned char *b = p;
	size_t i;

	for (i = from; i < to; i++)
		if (b[i] != pat(i, tag))
			return (i);
	return ((size_t)-1);
}

static int
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != 0)
			return (0);
	return (1);
}

static size_t
rss_bytes(void)
{
	char buf[128];
	long size = 0, res = 0;
	ssize_t n;
	int fd = open("/proc/self/statm", O_RDONLY);

	if (fd < 0)
		return (0);
	n = read(fd, buf, sizeof (buf) - 1);
	close(fd);
	if (n <= 0)
		return (0);
	buf[n] = '\0';
	if (sscanf(buf, "%ld %ld", &size, &res) != 2)
		return (0);
	return ((size_t)res * pagesize);
}

/* Bytes the allocator reports in use (mallinfo2: arena + mmapped). */
static size_t
inuse_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (mi.uordblks + mi.hblkhd);
}

/* ------------------------------------------------------------------ */

static void *ctor_block;

static void __attribute__((constructor))
ctor_alloc(void)
{
	/* Allocations before main (other libraries' constructors do this). */
	ctor_block = malloc(200);
	if (ctor_block != NULL)
		fill(ctor_block, 0, 200, 7);
}

static void
t_constructor_alloc(void)
{
	CHECK(ctor_block != NULL);
	if (ctor_block == NULL)
		return;
	CHECK(verify(ctor_block, 0, 200, 7) == (size_t)-1);
	CHECK(aligned(ctor_block, 16));
	ctor_block = realloc(ctor_block, 5000);
	CHECK(ctor_block != NULL);
	if (ctor_block != NULL)
		CHECK(verify(ctor_block, 0, 200, 7) == (size_t)-1);
	free(ctor_block);
}

/*
 * Every entry point must come from the allocator that provides malloc:
 * a glibc pvalloc/__libc_malloc block freed by another free() corrupts
 * the heap, and glibc's mallinfo2/malloc_trim see only glibc's heap.
 */
static const char *const family[] = {
	"malloc", "free", "calloc", "realloc", "reallocarray", "memalign",
	"posix_memalign", "aligned_alloc", "valloc", "pvalloc",
	"malloc_usable_size", "malloc_trim", "mallinfo", "mallinfo2",
	"malloc_stats", "mallopt", "malloc_info",
	/* glibc's own names for the allocating entry points */
	"__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
	"__libc_memalign", "__libc_valloc", "__libc_pvalloc",
};

static void
t_provenance(void)
{
	size_t i;

	for (i = 0; i < sizeof (family) / sizeof (family[0]); i++) {
		void *sym = dlsym(RTLD_DEFAULT, family[i]);
		Dl_info di;
		const char *where = "(not found)";

		if (sym != NULL && dladdr(sym, &di) != 0)
			where = di.dli_fname;
		if (ours(family[i]))
			continue;
		if (foreign_ok) {
			fprintf(stderr, "  note %s: %s comes from %s, malloc "
			    "from %s\n", test_cur_name, family[i], where,
			    malloc_obj);
			continue;
		}
		CHECKF(0, "%s comes from %s, malloc from %s", family[i], where,
		    malloc_obj);
	}
	/* C23 names, if anything defines them, must be ours too. */
	if (dlsym(RTLD_DEFAULT, "free_sized") != NULL)
		CHECK(ours("free_sized"));
	if (dlsym(RTLD_DEFAULT, "free_aligned_sized") != NULL)
		CHECK(ours("free_aligned_sized"));
}

/* malloc(0): a unique, freeable, non-NULL pointer each time; errno kept. */
static void
t_malloc_zero(void)
{
	enum { N = 1000 };
	static void *v[N];
	int i, j, dup = 0, nulls = 0;

	errno = 0;
	for (i = 0; i < N; i++) {
		v[i] = malloc(tu_opaque(0));
		nulls += v[i] == NULL;
	}
	CHECK(errno == 0);
	CHECK(nulls == 0);
	/* distinct: sort-free check on a small window is enough for slabs */
	for (i = 0; i < N; i++)
		for (j = i + 1; j < N && j < i + 64; j++)
			dup += v[i] != NULL && v[i] == v[j];
	CHECK(dup == 0);
	for (i = 0; i < N; i++)
		free(v[i]);

	/* the other ways of asking for zero bytes */
	v[0] = calloc(tu_opaque(0), 0);
	v[1] = calloc(tu_opaque(0), tu_opaque(SIZE_MAX));
	v[2] = calloc(tu_opaque(SIZE_MAX), 0);
	v[3] = realloc(NULL, tu_opaque(0));
	v[4] = memalign(64, tu_opaque(0));
	v[5] = aligned_alloc(64, tu_opaque(0));
	v[6] = valloc(tu_opaque(0));
	CHECK(v[0] != NULL && v[1] != NULL && v[2] != NULL && v[3] != NULL);
	CHECK(v[4] != NULL && aligned(v[4], 64));
	CHECK(v[5] != NULL && aligned(v[5], 64));
	CHECK(v[6] != NULL && aligned(v[6], pagesize));
	CHECK(v[0] != v[1] && v[1] != v[2] && v[2] != v[3]);
	for (i = 0; i < 7; i++)
		free(v[i]);
	v[0] = (void *)0x1;
	CHECK(posix_memalign(&v[0], 64, tu_opaque(0)) == 0);
	CHECK(v[0] != (void *)0x1 && v[0] != NULL && aligned(v[0], 64));
	free(v[0]);
}

/* Sizes nobody can have: NULL and ENOMEM, never a crash. */
static const size_t huge_sizes[] = {
	SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1,
	(size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4096, (size_t)1 << 62,
};
#define	NHUGE	(sizeof (huge_sizes) / sizeof (huge_sizes[0]))

static void
t_malloc_huge(void)
{
	size_t i;

	for (i = 0; i < NHUGE; i++) {
		void *p;

		errno = 0;
		p = malloc(tu_opaque(huge_sizes[i]));
		CHECKF(p == NULL && errno == ENOMEM,
		    "malloc(%#zx) = %p errno %d", huge_sizes[i], p, errno);
		free(p);
	}
}

/*
 * Every size 1..4096 live at once: alignment, malloc_usable_size >= n,
 * and no two blocks overlap (each keeps its own pattern).
 */
static void
t_alignment_small(void)
{
	enum { N = 4096 };
	static unsigned char *v[N + 1];
	size_t n, bad_align = 0, bad_usable = 0, bad_data = 0, nulls = 0;
	int usable = ours("malloc_usable_size");
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (n = 1; n <= N; n++) {
			v[n] = pass == 0 ? malloc(tu_opaque(n)) :
			    calloc(1, tu_opaque(n));
			if (v[n] == NULL) {
				nulls++;
				continue;
			}
			if (!aligned(v[n], need_align(n)))
				bad_align++;
			if (usable && malloc_usable_size(v[n]) < n)
				bad_usable++;
			if (pass == 1 && !all_zero(v[n], n))
				bad_data++;
			fill(v[n], 0, n, (unsigned)n);
		}
		for (n = 1; n <= N; n++)
			if (v[n] != NULL &&
			    verify(v[n], 0, n, (unsigned)n) != (size_t)-1)
				bad_data++;
		for (n = 1; n <= N; n++)
			free(v[n]);
		CHECK(nulls == 0);
		CHECKF(bad_align == 0, "%zu misaligned", bad_align);
		CHECKF(bad_usable == 0, "%zu with usable size < n", bad_usable);
		CHECKF(bad_data == 0, "%zu with wrong contents", bad_data);
	}
}

static const size_t large_sizes[] = {
	4097, 5000, 8191, 8193, 12288, 16385, 32768, 65535, 65537,
	131071, 131072, 131073, 262144 + 8, 1048575, 1048577, 4194304,
	33554432 + 17, 67108864,
};
#define	NLARGE	(sizeof (large_sizes) / sizeof (large_sizes[0]))

static void
t_alignment_large(void)
{
	int usable = ours("malloc_usable_size");
	unsigned char *v[NLARGE];
	size_t i, j;

	for (i = 0; i < NLARGE; i++) {
		size_t n = large_sizes[i];

		v[i] = (i & 1) ? calloc(tu_opaque(n), 1) : malloc(tu_opaque(n));
		CHECKF(v[i] != NULL, "size %zu", n);
		if (v[i] == NULL)
			continue;
		CHECKF(aligned(v[i], 16), "size %zu at %p", n, (void *)v[i]);
		if (usable)
			CHECK(malloc_usable_size(v[i]) >= n);
		if (i & 1)
			CHECKF(all_zero(v[i], n), "calloc(%zu)", n);
		/* touch the ends and a byte per page */
		for (j = 0; j < n - 1; j += 4096)
			v[i][j] = (unsigned char)(i + j / 4096);
		v[i][n - 1] = 0x5a;
	}
	for (i = 0; i < NLARGE; i++) {
		size_t n = large_sizes[i];
		size_t bad = 0;

		if (v[i] == NULL)
			continue;
		for (j = 0; j < n - 1; j += 4096)
			bad += v[i][j] != (unsigned char)(i + j / 4096);
		CHECKF(bad == 0 && v[i][n - 1] == 0x5a, "size %zu", n);
		free(v[i]);
	}
}

/*
 * malloc_usable_size(NULL) is 0, and the whole usable size may be written
 * (glibc documents the slack as usable) without harming the neighbours.
 */
static void
t_usable_size(void)
{
	static const size_t sizes[] = { 1, 8, 13, 16, 24, 40, 100, 250, 600,
	    1000, 2000, 3000, 5000, 10000, 70000, 200000, 3000000 };
	size_t i;

	if (!ours("malloc_usable_size")) {
		skip("malloc_usable_size is not the allocator's");
		return;
	}
	CHECK(malloc_usable_size(NULL) == 0);
	for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		size_t n = sizes[i], ua, ub, uc;
		unsigned char *a = malloc(tu_opaque(n));
		unsigned char *b = malloc(tu_opaque(n));
		unsigned char *c = malloc(tu_opaque(n));

		CHECK(a != NULL && b != NULL && c != NULL);
		if (a == NULL || b == NULL || c == NULL) {
			free(a);
			free(b);
			free(c);
			continue;
		}
		ua = malloc_usable_size(a);
		ub = malloc_usable_size(b);
		uc = malloc_usable_size(c);
		CHECKF(ua >= n && ub >= n && uc >= n, "n %zu: %zu %zu %zu",
		    n, ua, ub, uc);
		fill(a, 0, ua, 1);
		fill(c, 0, uc, 3);
		fill(b, 0, ub, 2);
		CHECKF(verify(a, 0, ua, 1) == (size_t)-1, "n %zu", n);
		CHECKF(verify(c, 0, uc, 3) == (size_t)-1, "n %zu", n);
		CHECKF(verify(b, 0, ub, 2) == (size_t)-1, "n %zu", n);
		/* usable size is stable while the block lives */
		CHECK(malloc_usable_size(b) == ub);
		free(b);
		free(a);
		free(c);
	}
}

/* free(NULL) does nothing; free() keeps errno (glibc >= 2.33). */
static void
t_free_errno(void)
{
	static const size_t sizes[] = { 0, 1, 100, 5000, 100000, 300000,
	    8 * MiB };
	size_t i;

	errno = EDOM;
	free(NULL);
	CHECK(errno == EDOM);
	for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		void *p = tu_launder(malloc(tu_opaque(sizes[i])));

		CHECK(p != NULL);
		errno = ERANGE;
		free(p);
		CHECKF(errno == ERANGE, "size %zu: errno %d", sizes[i], errno);
	}
}

static void
t_calloc_overflow(void)
{
	static const size_t bad[][2] = {
		{ SIZE_MAX, 2 }, { 2, SIZE_MAX }, { SIZE_MAX / 2, 3 },
		{ (size_t)1 << 32, (size_t)1 << 32 }, { SIZE_MAX, SIZE_MAX },
		{ SIZE_MAX / 2 + 1, 2 }, { 1, SIZE_MAX }, { SIZE_MAX, 1 },
		{ (size_t)PTRDIFF_MAX + 1, 1 }, { 1, (size_t)PTRDIFF_MAX },
		{ (size_t)1 << 32, (size_t)1 << 31 },	/* 2^63: no overflow */
	};
	size_t i;

	for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
		void *p;

		errno = 0;
		p = calloc(tu_opaque(bad[i][0]), tu_opaque(bad[i][1]));
		CHECKF(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) = %p "
		    "errno %d", bad[i][0], bad[i][1], p, errno);
		free(p);
	}
}

/*
 * calloc zeroes, also when it reuses dirty blocks of the same size that
 * were just freed (the case a "fresh memory is zero" shortcut gets wrong).
 */
static void
t_calloc_dirty(void)
{
	static const size_t sizes[] = { 1, 8, 16, 24, 48, 64, 100, 128, 256,
	    500, 1024, 3000, 4096, 8000, 16384, 40000, 100000, 140000,
	    1 * MiB, 4 * MiB + 3 };
	enum { K = 24 };
	void *v[K];
	size_t i;
	int k, round;

	for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		size_t n = sizes[i], bad = 0;
		int kmax = n > 200000 ? 3 : K;

		for (round = 0; round < 3; round++) {
			for (k = 0; k < kmax; k++) {
				v[k] = malloc(tu_opaque(n));
				if (v[k] != NULL)
					memset(v[k], 0xa5, n);
			}
			/* free in a different order each round */
			for (k = 0; k < kmax; k++) {
				int j = round == 1 ? kmax - 1 - k :
				    round == 2 ? (k * 7) % kmax : k;

				if (round == 2 && kmax % 7 == 0)
					j = k;
				free(v[j]);
			}
			for (k = 0; k < kmax; k++) {
				v[k] = calloc(tu_opaque(n), 1);
				CHECK(v[k] != NULL);
				if (v[k] != NULL && !all_zero(v[k], n))
					bad++;
				if (v[k] != NULL)
					memset(v[k], 0x5a, n);
			}
			for (k = 0; k < kmax; k++)
				free(v[k]);
		}
		CHECKF(bad == 0, "size %zu: %zu non-zero callocs", n, bad);
	}
}

/* realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and gives NULL. */
static void
t_realloc_edges(void)
{
	int info = ours("mallinfo2");
	unsigned char *p, *q;
	size_t before, after;

	errno = 0;
	p = realloc(NULL, tu_opaque(100));
	CHECK(p != NULL && aligned(p, 16) && errno == 0);
	if (p != NULL)
		fill(p, 0, 100, 9);
	q = realloc(NULL, tu_opaque(0));
	CHECK(q != NULL);
	free(q);

	/* glibc 2.36 (REALLOC_ZERO_BYTES_FREES): free, return NULL, errno kept */
	errno = EDOM;
	q = realloc(p, tu_opaque(0));
	CHECKF(q == NULL, "realloc(p, 0) = %p", (void *)q);
	CHECK(errno == EDOM);
	if (q != NULL)
		free(q);

	/* ... and it really frees: 8 MiB leaves the books */
	p = tu_launder(malloc(tu_opaque(8 * MiB)));
	CHECK(p != NULL);
	if (p == NULL)
		return;
	memset(p, 1, 8 * MiB);
	before = info ? inuse_bytes() : 0;
	q = realloc(p, tu_opaque(0));
	CHECK(q == NULL);
	if (info) {
		after = inuse_bytes();
		CHECKF(before >= after + 8 * MiB, "in use %zu -> %zu", before,
		    after);
	}

	/* same size: contents kept */
	p = malloc(tu_opaque(300));
	CHECK(p != NULL);
	if (p == NULL)
		return;
	fill(p, 0, 300, 4);
	p = realloc(p, tu_opaque(300));
	CHECK(p != NULL && verify(p, 0, 300, 4) == (size_t)-1);
	free(p);
}

/* realloc failures leave the block alone and set ENOMEM. */
static void
t_realloc_fail(void)
{
	static const size_t from[] = { 10, 1000, 100000, 4 * MiB };
	size_t i, j;

	for (i = 0; i < sizeof (from) / sizeof (from[0]); i++) {
		unsigned char *p = malloc(tu_opaque(from[i]));

		CHECK(p != NULL);
		if (p == NULL)
			continue;
		fill(p, 0, from[i], (unsigned)i);
		for (j = 0; j < NHUGE; j++) {
			void *q;

			errno = 0;
			q = realloc(tu_launder(p), tu_opaque(huge_sizes[j]));
			CHECKF(q == NULL && errno == ENOMEM, "realloc(%zu -> "
			    "%#zx) = %p errno %d", from[i], huge_sizes[j], q,
			    errno);
		}
		p = tu_launder(p);
		CHECK(verify(p, 0, from[i], (unsigned)i) == (size_t)-1);
		/* still a live block: it can grow and be freed */
		p = realloc(p, tu_opaque(from[i] * 2));
		CHECK(p != NULL);
		if (p != NULL)
			CHECK(verify(p, 0, from[i], (unsigned)i) ==
			    (size_t)-1);
		free(p);
	}
}

/* Across size classes, up through 64 MiB and down again. */
static const size_t ladder[] = {
	1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 96, 112,
	127, 128, 129, 160, 192, 255, 256, 257, 320, 384, 448, 511, 512, 513,
	640, 768, 1023, 1024, 1025, 1536, 2047, 2048, 2049, 3000, 4095, 4096,
	4097, 6000, 8191, 8192, 8193, 12000, 16384, 16385, 24576, 32768,
	32769, 49152, 65536, 65537, 98304, 131072, 131073, 200000, 262144,
	524289, 1048576, 1048577, 2097152, 4194305, 8388608, 16777217,
	33554432, 67108864,
};
#define	NLADDER	(sizeof (ladder) / sizeof (ladder[0]))

static void
t_realloc_ladder(void)
{
	int start;

	for (start = 0; start < 2; start++) {
		size_t cur = ladder[0], i, bad = 0;
		unsigned char *p = start == 0 ? malloc(tu_opaque(cur)) :
		    calloc(tu_opaque(cur), 1);

		CHECK(p != NULL);
		if (p == NULL)
			return;
		fill(p, 0, cur, 0x33);
		/* up */
		for (i = 1; i < NLADDER; i++) {
			unsigned char *q = realloc(p, tu_opaque(ladder[i]));

			if (q == NULL) {
				CHECKF(0, "realloc to %zu failed", ladder[i]);
				break;
			}
			p = q;
			if (!aligned(p, 16) ||
			    verify(p, 0, cur, 0x33) != (size_t)-1)
				bad++;
			fill(p, cur, ladder[i], 0x33);
			cur = ladder[i];
		}
		CHECKF(bad == 0, "%zu bad steps up", bad);
		/* down */
		bad = 0;
		for (i = NLADDER - 1; i-- > 0; ) {
			unsigned char *q = realloc(p, tu_opaque(ladder[i]));

			if (q == NULL) {
				CHECKF(0, "realloc to %zu failed", ladder[i]);
				break;
			}
			p = q;
			cur = ladder[i];
			if (!aligned(p, need_align(cur)) ||
			    verify(p, 0, cur, 0x33) != (size_t)-1)
				bad++;
		}
		CHECKF(bad == 0, "%zu bad steps down", bad);
		free(p);
	}
}

/*
 * A number from /proc/self/status ("VmHWM:" in kB, "Threads:"), -1 if
 * unknown.  read(2), no stdio: nothing here allocates.
 */
static long
status_field(const char *key)
{
	char buf[4096], *s;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY);

	if (fd < 0)
		return (-1);
	n = read(fd, buf, sizeof (buf) - 1);
	(void) close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	if ((s = strstr(buf, key)) == NULL)
		return (-1);
	return (strtol(s + strlen(key), NULL, 10));
}

/* VmHWM (peak RSS) in bytes, 0 if unknown. */
static size_t
hwm_bytes(void)
{
	long kb = status_field("VmHWM:");

	return (kb < 0 ? 0 : (size_t)kb << 10);
}

/*
 * Large blocks grow without being copied: glibc gives blocks this large
 * their own mapping and grows it with mremap; libumem grows them in place
 * or moves their pages (mremap).  Two blocks side by side, so that the
 * first cannot grow in place: the peak RSS while both double stays near
 * what they held (a copy would hold old and new at once), and every byte
 * arrives.  (The peak is reset through /proc/self/clear_refs.)
 */
static void
t_realloc_large_nocopy(void)
{
	size_t from = 34 * MiB, to = 2 * from, r0, hwm;
	unsigned char *p = malloc(tu_opaque(from)), *q = malloc(tu_opaque(from));
	int fd, reset;

	CHECK(p != NULL && q != NULL);
	if (p == NULL || q == NULL) {
		free(p);
		free(q);
		return;
	}
	fill(p, 0, from, 0x41);
	fill(q, 0, from, 0x42);
	fd = open("/proc/self/clear_refs", O_WRONLY);
	reset = fd >= 0 && write(fd, "5", 1) == 1;
	if (fd >= 0)
		close(fd);
	r0 = rss_bytes();
	p = realloc(tu_launder(p), tu_opaque(to));
	q = realloc(tu_launder(q), tu_opaque(to));
	hwm = hwm_bytes();
	CHECK(p != NULL && q != NULL);
	if (p == NULL || q == NULL)
		return;
	if (!reset || hwm == 0)
		skip("cannot reset VmHWM");
	else
		CHECKF(hwm < r0 + 16 * MiB, "peak RSS %zu KiB while two "
		    "blocks of %zu KiB doubled from %zu KiB", hwm >> 10,
		    from >> 10, r0 >> 10);
	CHECK(verify(p, 0, from, 0x41) == (size_t)-1);
	CHECK(verify(q, 0, from, 0x42) == (size_t)-1);
	CHECK(malloc_usable_size(p) >= to && malloc_usable_size(q) >= to);
	/* the grown part is usable */
	fill(p, from, to, 0x41);
	CHECK(verify(p, 0, to, 0x41) == (size_t)-1);
	free(p);
	free(q);
}

/* Random realloc chains over many live blocks. */
static void
t_realloc_random(void)
{
	enum { N = 64, STEPS = 6000 };
	unsigned char *v[N] = { 0 };
	size_t sz[N] = { 0 };
	unsigned long long seed = 12345;
	int i, k, bad = 0, fails = 0;

	for (i = 0; i < STEPS; i++) {
		unsigned long long r = test_rand(&seed);
		size_t n;
		unsigned char *q;

		k = (int)(r % N);
		r >>= 8;
		/* mostly small, some medium, a few up to 2 MiB */
		if (r % 100 < 70)
			n = (size_t)(r >> 8) % 600;
		else if (r % 100 < 97)
			n = (size_t)(r >> 8) % 40000;
		else
			n = (size_t)(r >> 8) % (2 * MiB);
		if (n == 0) {
			/* realloc(p, 0) frees (glibc); keep it a NULL slot */
			q = realloc(v[k], 0);
			if (v[k] == NULL)
				free(q);	/* realloc(NULL, 0) = malloc(0) */
			else if (q != NULL)
				fails++;
			v[k] = NULL;
			sz[k] = 0;
			continue;
		}
		q = realloc(v[k], tu_opaque(n));
		if (q == NULL) {
			fails++;
			continue;
		}
		if (verify(q, 0, sz[k] < n ? sz[k] : n, (unsigned)k) !=
		    (size_t)-1)
			bad++;
		if (n > sz[k])
			fill(q, sz[k], n, (unsigned)k);
		v[k] = q;
		sz[k] = n;
	}
	for (k = 0; k < N; k++) {
		if (v[k] != NULL &&
		    verify(v[k], 0, sz[k], (unsigned)k) != (size_t)-1)
			bad++;
		free(v[k]);
	}
	CHECK(fails == 0);
	CHECK(bad == 0);
}

static void
t_reallocarray(void)
{
	unsigned char *p, *q;
	size_t i;
	static const size_t bad[][2] = {
		{ SIZE_MAX, 2 }, { SIZE_MAX / 2, 3 },
		{ (size_t)1 << 32, (size_t)1 << 32 }, { 2, SIZE_MAX / 2 + 1 },
		{ 1, SIZE_MAX }, { (size_t)PTRDIFF_MAX + 1, 1 },
	};

	if (!ours("reallocarray")) {
		skip("reallocarray is not the allocator's");
		return;
	}
	p = reallocarray(NULL, tu_opaque(3), 5);
	CHECK(p != NULL && aligned(p, 16));
	if (p == NULL)
		return;
	fill(p, 0, 15, 21);
	q = reallocarray(p, tu_opaque(100), 10);
	CHECK(q != NULL && verify(q, 0, 15, 21) == (size_t)-1);
	if (q == NULL)
		return;
	p = q;
	fill(p, 15, 1000, 21);
	/* overflow: NULL, ENOMEM, block untouched and still live */
	for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
		errno = 0;
		q = reallocarray(tu_launder(p), tu_opaque(bad[i][0]),
		    tu_opaque(bad[i][1]));
		CHECKF(q == NULL && errno == ENOMEM, "reallocarray(p, %#zx, "
		    "%#zx) = %p errno %d", bad[i][0], bad[i][1], (void *)q,
		    errno);
	}
	p = tu_launder(p);
	CHECK(verify(p, 0, 1000, 21) == (size_t)-1);
	/* shrink */
	q = reallocarray(p, tu_opaque(10), 10);
	CHECK(q != NULL && verify(q, 0, 100, 21) == (size_t)-1);
	if (q == NULL)
		return;
	/* a zero product behaves as realloc(p, 0): frees, returns NULL */
	errno = EDOM;
	p = reallocarray(q, tu_opaque(0), 5);
	CHECK(p == NULL && errno == EDOM);
	free(p);
	p = reallocarray(NULL, tu_opaque(0), 0);
	CHECK(p != NULL);
	free(p);
}

/* Alignments 8 .. 4 MiB with several sizes, plus every error case. */
static void
t_posix_memalign(void)
{
	static const size_t sizes[] = { 1, 8, 17, 100, 1000, 4096, 5000,
	    70000 };
	static const size_t badalign[] = { 0, 1, 2, 4, 12, 24, 48, 96, 3,
	    7, 4095, 4097, SIZE_MAX, SIZE_MAX / 2 + 2, (SIZE_MAX / 2 + 1) | 8 };
	int usable = ours("malloc_usable_size");
	size_t a, i;
	void *p;

	if (!ours("posix_memalign")) {
		skip("posix_memalign is not the allocator's");
		return;
	}
	for (a = sizeof (void *); a <= 4 * MiB; a <<= 1) {
		for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
			size_t n = sizes[i];
			int rc;

			if (a >= MiB && n > 5000)
				continue;
			p = (void *)0x1;
			errno = EDOM;
			rc = posix_memalign(&p, tu_opaque(a), tu_opaque(n));
			CHECKF(rc == 0 && p != NULL && aligned(p, a),
			    "align %zu size %zu: rc %d p %p", a, n, rc, p);
			CHECK(errno == EDOM);
			if (rc != 0)
				continue;
			if (usable)
				CHECK(malloc_usable_size(p) >= n);
			fill(p, 0, n, (unsigned)a);
			CHECK(verify(p, 0, n, (unsigned)a) == (size_t)-1);
			free(p);
		}
	}
	/* EINVAL: not a power of two, or not a multiple of sizeof (void *) */
	for (i = 0; i < sizeof (badalign) / sizeof (badalign[0]); i++) {
		int rc;

		p = (void *)0x1;
		errno = EDOM;
		rc = posix_memalign(&p, tu_opaque(badalign[i]), tu_opaque(10));
		CHECKF(rc == EINVAL, "align %#zx: rc %d", badalign[i], rc);
		CHECKF(p == (void *)0x1, "align %#zx: *memptr changed",
		    badalign[i]);
		CHECKF(errno == EDOM, "align %#zx: errno %d", badalign[i],
		    errno);
	}
	/*
	 * ENOMEM: valid alignment, impossible size or alignment.  (glibc
	 * also sets errno to ENOMEM here, jemalloc leaves it; not checked.)
	 */
	for (i = 0; i < NHUGE; i++) {
		int rc;

		p = (void *)0x1;
		rc = posix_memalign(&p, tu_opaque(64), tu_opaque(huge_sizes[i]));
		CHECKF(rc == ENOMEM && p == (void *)0x1, "size %#zx: rc %d",
		    huge_sizes[i], rc);
	}
	p = (void *)0x1;
	CHECK(posix_memalign(&p, tu_opaque(SIZE_MAX / 2 + 1), 10) == ENOMEM);
	CHECK(p == (void *)0x1);
}

/*
 * memalign, glibc 2.36: alignment <= 16 (including 0) is plain malloc;
 * a non-power-of-two alignment is rounded up to the next power of two;
 * alignment > SIZE_MAX/2 + 1 is EINVAL; impossible sizes are ENOMEM.
 * aligned_alloc in 2.36 is the same function (the C17 EINVAL check for
 * non-powers of two arrived in glibc 2.38).
 */
static void
check_memalign_like(void *(*fn)(size_t, size_t), const char *name)
{
	static const size_t odd[] = { 0, 1, 2, 3, 5, 12, 24, 48, 100, 1000,
	    4095, 4097, 65535, 100000 };
	static const size_t sizes[] = { 0, 1, 10, 16, 100, 1000, 5000,
	    200000 };
	int usable = ours("malloc_usable_size");
	size_t a, i, j;
	void *p;

	for (a = 1; a <= 4 * MiB; a <<= 1) {
		for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
			size_t n = sizes[i];

			if (a >= MiB && n > 5000)
				continue;
			errno = EDOM;
			p = fn(tu_opaque(a), tu_opaque(n));
			CHECKF(p != NULL && aligned(p, a) && errno == EDOM,
			    "%s(%zu, %zu) = %p errno %d", name, a, n, p, errno);
			if (p == NULL)
				continue;
			/* never less than malloc would give */
			CHECK(aligned(p, need_align(n)));
			if (usable)
				CHECK(malloc_usable_size(p) >= n);
			fill(p, 0, n, 77);
			CHECK(verify(p, 0, n, 77) == (size_t)-1);
			free(p);
		}
	}
	for (i = 0; i < sizeof (odd) / sizeof (odd[0]); i++) {
		size_t want = ceil_pow2(odd[i] == 0 ? 1 : odd[i]);

		for (j = 0; j < 3; j++) {
			size_t n = j == 0 ? 10 : j == 1 ? 100 : 5000;

			errno = EDOM;
			p = fn(tu_opaque(odd[i]), tu_opaque(n));
			CHECKF(p != NULL && aligned(p, want) &&
			    aligned(p, need_align(n)) && errno == EDOM,
			    "%s(%zu, %zu) = %p errno %d (want %zu-aligned)",
			    name, odd[i], n, p, errno, want);
			if (p != NULL && usable)
				CHECK(malloc_usable_size(p) >= n);
			free(p);
		}
	}
	/* invalid alignments */
	errno = 0;
	p = fn(tu_opaque(SIZE_MAX / 2 + 2), 10);
	CHECKF(p == NULL && errno == EINVAL, "%s(SIZE_MAX/2+2): %p errno %d",
	    name, p, errno);
	errno = 0;
	p = fn(tu_opaque(SIZE_MAX), 10);
	CHECKF(p == NULL && errno == EINVAL, "%s(SIZE_MAX): %p errno %d",
	    name, p, errno);
	/* valid alignment, impossible: ENOMEM */
	errno = 0;
	p = fn(tu_opaque(SIZE_MAX / 2 + 1), 10);
	CHECKF(p == NULL && errno == ENOMEM, "%s(2^63, 10): %p errno %d",
	    name, p, errno);
	for (i = 0; i < NHUGE; i++) {
		errno = 0;
		p = fn(tu_opaque(4096), tu_opaque(huge_sizes[i]));
		CHECKF(p == NULL && errno == ENOMEM, "%s(4096, %#zx): %p "
		    "errno %d", name, huge_sizes[i], p, errno);
	}
}

static void *
call_memalign(size_t a, size_t n)
{
	return (memalign(a, n));
}

static void *
call_aligned_alloc(size_t a, size_t n)
{
	return (aligned_alloc(a, n));
}

static void
t_memalign(void)
{
	if (!ours("memalign")) {
		skip("memalign is not the allocator's");
		return;
	}
	check_memalign_like(call_memalign, "memalign");
}

static void
t_aligned_alloc(void)
{
	if (!ours("aligned_alloc")) {
		skip("aligned_alloc is not the allocator's");
		return;
	}
	check_memalign_like(call_aligned_alloc, "aligned_alloc");
}

static void
t_valloc_pvalloc(void)
{
	static const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 12293,
	    65536, MiB + 3 };
	int usable = ours("malloc_usable_size");
	int have_pv = ours("pvalloc");
	size_t i;
	void *p;

	if (!ours("valloc")) {
		skip("valloc is not the allocator's");
		return;
	}
	for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++) {
		size_t n = sizes[i];

		errno = EDOM;
		p = valloc(tu_opaque(n));
		CHECKF(p != NULL && aligned(p, pagesize) && errno == EDOM,
		    "valloc(%zu) = %p", n, p);
		if (p != NULL && usable)
			CHECK(malloc_usable_size(p) >= n);
		if (p != NULL)
			fill(p, 0, n, 5);
		free(p);
		if (!have_pv)
			continue;
		errno = EDOM;
		p = pvalloc(tu_opaque(n));
		CHECKF(p != NULL && aligned(p, pagesize) && errno == EDOM,
		    "pvalloc(%zu) = %p", n, p);
		/* pvalloc rounds the size up to whole pages */
		if (p != NULL && usable && n > 0)
			CHECKF(malloc_usable_size(p) >=
			    (n + pagesize - 1) / pagesize * pagesize,
			    "pvalloc(%zu): usable %zu", n,
			    malloc_usable_size(p));
		if (p != NULL && n > 0)
			fill(p, 0, (n + pagesize - 1) / pagesize * pagesize, 6);
		free(p);
	}
	for (i = 0; i < NHUGE; i++) {
		errno = 0;
		p = valloc(tu_opaque(huge_sizes[i]));
		CHECKF(p == NULL && errno == ENOMEM, "valloc(%#zx): %p "
		    "errno %d", huge_sizes[i], p, errno);
		if (!have_pv)
			continue;
		errno = 0;
		p = pvalloc(tu_opaque(huge_sizes[i]));
		CHECKF(p == NULL && errno == ENOMEM, "pvalloc(%#zx): %p "
		    "errno %d", huge_sizes[i], p, errno);
	}
	if (!have_pv)
		skip("pvalloc is not the allocator's");
}

/* C23 free_sized/free_aligned_sized: not in glibc 2.36; test if present. */
static void
t_free_sized(void)
{
	void (*fs)(void *, size_t) =
	    (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
	void (*fas)(void *, size_t, size_t) =
	    (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT,
	    "free_aligned_sized");
	size_t n;

	if (fs == NULL && fas == NULL) {
		skip("no free_sized/free_aligned_sized (glibc 2.36 has none)");
		return;
	}
	if (fs != NULL && ours("free_sized")) {
		errno = EDOM;
		fs(NULL, 0);
		CHECK(errno == EDOM);
		for (n = 1; n < 300000; n = n * 3 + 1) {
			void *p = malloc(tu_opaque(n));

			CHECK(p != NULL);
			fill(p, 0, n, 1);
			errno = EDOM;
			fs(p, n);
			CHECK(errno == EDOM);
			p = calloc(tu_opaque(n), 1);
			CHECK(p != NULL);
			fs(p, n);
		}
	}
	if (fas != NULL && ours("free_aligned_sized")) {
		size_t a;

		fas(NULL, 64, 0);
		for (a = 16; a <= 65536; a <<= 2) {
			for (n = a; n < 300000; n = n * 5) {
				void *p = aligned_alloc(a, n);

				CHECK(p != NULL && aligned(p, a));
				if (p == NULL)
					continue;
				fill(p, 0, n, 2);
				errno = EDOM;
				fas(p, a, n);
				CHECK(errno == EDOM);
			}
		}
	}
}

/* glibc's own names interoperate with the standard ones. */
static void
t_libc_aliases(void)
{
	void *(*lm)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT,
	    "__libc_malloc");
	void (*lf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT,
	    "__libc_free");
	void *(*lc)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(
	    RTLD_DEFAULT, "__libc_calloc");
	void *(*lr)(void *, size_t) = (void *(*)(void *, size_t))dlsym(
	    RTLD_DEFAULT, "__libc_realloc");
	void *(*lma)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(
	    RTLD_DEFAULT, "__libc_memalign");
	void *(*lv)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT,
	    "__libc_valloc");
	void *(*lpv)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT,
	    "__libc_pvalloc");
	unsigned char *p, *q;

	if (lm == NULL || lf == NULL || lc == NULL || lr == NULL ||
	    lma == NULL || lv == NULL || lpv == NULL ||
	    !ours("__libc_malloc") || !ours("__libc_free") ||
	    !ours("__libc_calloc") || !ours("__libc_realloc") ||
	    !ours("__libc_memalign") || !ours("__libc_valloc") ||
	    !ours("__libc_pvalloc")) {
		skip("__libc_* names are not all the allocator's");
		return;
	}
	p = lm(tu_opaque(100));
	CHECK(p != NULL && aligned(p, 16));
	fill(p, 0, 100, 3);
	p = realloc(p, tu_opaque(3000));
	CHECK(p != NULL && verify(p, 0, 100, 3) == (size_t)-1);
	free(p);
	q = malloc(tu_opaque(100));
	CHECK(q != NULL);
	fill(q, 0, 100, 4);
	q = lr(q, tu_opaque(50000));
	CHECK(q != NULL && verify(q, 0, 100, 4) == (size_t)-1);
	lf(q);
	p = lc(tu_opaque(10), 100);
	CHECK(p != NULL && all_zero(p, 1000));
	free(p);
	p = lma(tu_opaque(256), 100);
	CHECK(p != NULL && aligned(p, 256));
	lf(p);
	p = lv(tu_opaque(100));
	CHECK(p != NULL && aligned(p, pagesize));
	free(p);
	p = lpv(tu_opaque(100));
	CHECK(p != NULL && aligned(p, pagesize));
	free(p);
	lf(NULL);
}

/*
 * mallinfo2/mallinfo account for what is allocated and freed, with
 * glibc's meaning: uordblks + hblkhd is what the program holds (large
 * blocks in hblkhd/hblks only), uordblks + fordblks is the arena, freed
 * buffers cached for reuse are free (fsmblks within fordblks), and a
 * freed large block kept for reuse is keepcost, which malloc_trim(0)
 * gives back.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void
mallinfo_consistent(const struct mallinfo2 *m, const char *when)
{
	CHECKF(m->uordblks + m->fordblks == m->arena,
	    "%s: uordblks %zu + fordblks %zu != arena %zu", when, m->uordblks,
	    m->fordblks, m->arena);
	CHECKF(m->fsmblks <= m->fordblks && m->keepcost <= m->fordblks,
	    "%s: fsmblks %zu, keepcost %zu, fordblks %zu", when, m->fsmblks,
	    m->keepcost, m->fordblks);
	CHECKF(m->fsmblks >= m->smblks * 16, "%s: %zu bytes in %zu blocks",
	    when, m->fsmblks, m->smblks);
	CHECKF((m->hblks == 0) == (m->hblkhd == 0), "%s: hblks %zu, hblkhd "
	    "%zu", when, m->hblks, m->hblkhd);
	CHECK(m->usmblks == 0);
}

static void
t_mallinfo(void)
{
	enum { NSMALL = 2048, SMALL = 4000, KEPT = 512 * 1024 };
	static void *v[NSMALL];
	void *big, *kept;
	struct mallinfo2 m0, m1, m2, k0, k1;
	struct mallinfo o1;
	size_t want = (size_t)NSMALL * SMALL + 16 * MiB, d;
	int i, tries, seen = 0, umem = ours("umem_cache_stats_print");

	if (!ours("mallinfo2") || !ours("mallinfo")) {
		skip("mallinfo/mallinfo2 are not the allocator's");
		return;
	}
	(void) malloc_trim(0);
	m0 = mallinfo2();
	mallinfo_consistent(&m0, "start");
	for (i = 0; i < NSMALL; i++) {
		v[i] = tu_launder(malloc(tu_opaque(SMALL)));
		CHECK(v[i] != NULL);
		if (v[i] != NULL)
			memset(v[i], 1, SMALL);
	}
	big = tu_launder(malloc(tu_opaque(16 * MiB)));
	CHECK(big != NULL);
	if (big != NULL)
		memset(big, 1, 16 * MiB);
	m1 = mallinfo2();
	o1 = mallinfo();
	mallinfo_consistent(&m1, "allocated");
	d = (m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd);
	CHECKF(m1.uordblks + m1.hblkhd >= m0.uordblks + m0.hblkhd + want,
	    "mallinfo2 in use grew by %zu, %zu allocated", d, want);
	/* (glibc may serve 16 MiB from its heap: its mmap threshold moves) */
	CHECKF(!umem || (m1.uordblks >= m0.uordblks + (size_t)NSMALL * SMALL &&
	    m1.hblkhd >= m0.hblkhd + 16 * MiB && m1.hblks == m0.hblks + 1),
	    "small %zu -> %zu, large %zu in %zu -> %zu in %zu", m0.uordblks,
	    m1.uordblks, m0.hblkhd, m0.hblks, m1.hblkhd, m1.hblks);
	/* the int version is the same (sizes here fit in an int) */
	CHECKF((size_t)o1.uordblks == m1.uordblks &&
	    (size_t)o1.hblkhd == m1.hblkhd && (size_t)o1.hblks == m1.hblks &&
	    (size_t)o1.arena == m1.arena, "mallinfo %d %d %d %d, mallinfo2 "
	    "%zu %zu %zu %zu", o1.uordblks, o1.hblkhd, o1.hblks, o1.arena,
	    m1.uordblks, m1.hblkhd, m1.hblks, m1.arena);
	for (i = 0; i < NSMALL; i++)
		free(v[i]);
	free(big);
	m2 = mallinfo2();
	mallinfo_consistent(&m2, "freed");
	CHECKF(m2.uordblks + m2.hblkhd + want <= m1.uordblks + m1.hblkhd,
	    "after free: in use %zu, before free %zu",
	    m2.uordblks + m2.hblkhd, m1.uordblks + m1.hblkhd);
	CHECKF(m2.hblks == m0.hblks && m2.hblkhd == m0.hblkhd,
	    "large blocks %zu in %zu, at the start %zu in %zu", m2.hblkhd,
	    m2.hblks, m0.hblkhd, m0.hblks);
	if (!umem)
		return;		/* the rest is ours: glibc has no such cache */
	/* some of the freed buffers wait in magazines, counted free */
	CHECKF(tu_option_given("nomagazines") || (m2.smblks > 0 &&
	    m2.fsmblks >= m2.smblks * SMALL), "%zu bytes in %zu blocks in "
	    "magazines", m2.fsmblks, m2.smblks);

	/*
	 * A freed large block of 512 KiB is kept (keepcost, one more free
	 * block), not held (hblkhd).  The update thread may give it back
	 * before we look; a few tries make that unlikely.
	 */
	for (tries = 0; tries < 5 && !seen; tries++) {
		(void) malloc_trim(0);
		k0 = mallinfo2();
		CHECKF(k0.keepcost == 0, "keepcost %zu after malloc_trim(0)",
		    k0.keepcost);
		kept = tu_launder(malloc(tu_opaque(KEPT)));
		CHECK(kept != NULL);
		if (kept == NULL)
			break;
		memset(kept, 1, KEPT);
		k1 = mallinfo2();
		CHECKF(k1.hblkhd >= k0.hblkhd + KEPT && k1.hblks == k0.hblks + 1,
		    "a held %d-byte block: %zu in %zu -> %zu in %zu", KEPT,
		    k0.hblkhd, k0.hblks, k1.hblkhd, k1.hblks);
		free(kept);
		k1 = mallinfo2();
		mallinfo_consistent(&k1, "kept");
		CHECKF(k1.hblkhd == k0.hblkhd && k1.hblks == k0.hblks,
		    "freed large block still held: %zu in %zu, before %zu in "
		    "%zu", k1.hblkhd, k1.hblks, k0.hblkhd, k0.hblks);
		seen = k1.keepcost >= KEPT && k1.ordblks > k0.ordblks;
	}
	CHECKF(seen, "a freed %d-byte block is not in keepcost (%zu) and "
	    "ordblks (%zu -> %zu)", KEPT, k1.keepcost, k0.ordblks, k1.ordblks);
	(void) malloc_trim(0);
	k1 = mallinfo2();
	CHECKF(k1.keepcost == 0, "keepcost %zu after malloc_trim(0)",
	    k1.keepcost);
}
#pragma GCC diagnostic pop

/*
 * malloc_trim(0) gives free pages back at once: 64 MiB of 1 KiB blocks
 * freed except one block per MiB (so the heap cannot just shrink from
 * the top) must leave the resident set.
 */
static void
t_malloc_trim(void)
{
	enum { BS = 1024, NB = 65536 };
	static void *v[NB];
	size_t r0, rpeak, rtrim;
	int i, rc;

	if (!ours("malloc_trim")) {
		skip("malloc_trim is not the allocator's");
		return;
	}
	rc = malloc_trim(0);
	CHECK(rc == 0 || rc == 1);
	r0 = rss_bytes();
	for (i = 0; i < NB; i++) {
		v[i] = malloc(tu_opaque(BS));
		if (v[i] != NULL)
			memset(v[i], 0x77, BS);
	}
	rpeak = rss_bytes();
	for (i = 0; i < NB; i++)
		if (i % 1024 != 1023)
			free(v[i]);
	rc = malloc_trim(0);
	CHECK(rc == 0 || rc == 1);
	rtrim = rss_bytes();
	CHECKF(r0 != 0 && rpeak >= r0 + 60 * MiB, "rss %zu -> %zu", r0,
	    rpeak);
	CHECKF(rtrim + 48 * MiB <= rpeak, "rss %zu KiB at peak, %zu KiB "
	    "after free + malloc_trim(0)", rpeak >> 10, rtrim >> 10);
	for (i = 1023; i < NB; i += 1024)
		free(v[i]);
	CHECK(malloc_trim(tu_opaque(1 << 20)) <= 1);
}

static void
stats_child(void *arg)
{
	void *p = malloc(tu_opaque(1000));

	malloc_stats();
	free(p);
}

/* malloc_stats prints a report on stderr and nothing on stdout. */
static void
t_malloc_stats(void)
{
	char out[8192];
	int st;

	if (!ours("malloc_stats")) {
		skip("malloc_stats is not the allocator's");
		return;
	}
	st = test_in_child(stats_child, NULL, out, sizeof (out));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECKF(strlen(out) > 0, "no output on stderr");
}

/* The child of t_stats_at_exit: a few blocks, then a normal exit. */
static int
stats_exit_child(void)
{
	void *p = malloc(tu_opaque(100)), *q = malloc(tu_opaque(3000));

	free(p);
	free(q);
	return (0);
}

/*
 * UMEM_OPTIONS=stats prints the heap's totals and the cache table on
 * stderr at exit, after the program's output; without it, nothing.
 */
static void
t_stats_at_exit(void)
{
	static const char *const with[] = { "UMEM_OPTIONS=stats", NULL };
	static const char *const without[] = { "UMEM_OPTIONS=", NULL };
	char out[1 << 16];
	int st;

	if (!ours("umem_cache_stats_print")) {
		skip("UMEM_OPTIONS is libumem's");
		return;
	}
	st = tu_run_self("stats_exit", with, 30, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	CHECKF(strstr(out, "umem: at exit (UMEM_OPTIONS=stats): heap ") !=
	    NULL && strstr(out, "umem caches (per-CPU mode: ") != NULL &&
	    strstr(out, "\numem_alloc_3072 ") != NULL, "output:\n%s", out);
	st = tu_run_self("stats_exit", without, 30, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	CHECKF(strstr(out, "umem") == NULL, "output:\n%s", out);
}

/*
 * The child of t_heap_limit, under UMEM_OPTIONS=limit=32m: small blocks
 * until malloc fails, then the same memory as one large block once they
 * are freed (the failing allocation must first make the caches give back
 * what they hold), and requests over the limit.  Prints what it saw.
 */
static int
heap_limit_child(void)
{
	enum { SMALL = 64, LIMIT = 32 << 20, CAP = 2 * LIMIT / SMALL };
	void **v = mmap(NULL, CAP * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t n = 0, big = 24 << 20;
	char *p, *q;
	int err;

	if (v == MAP_FAILED)
		return (3);
	errno = 0;
	while (n < CAP && (p = malloc(tu_opaque(SMALL))) != NULL) {
		memset(p, (int)(n & 0xff), SMALL);
		v[n++] = p;
	}
	err = errno;
	CCHECK(n < CAP, "%zu blocks of %d bytes: no limit", n, SMALL);
	CCHECK(err == ENOMEM, "errno %d", err);
	CCHECK(n * SMALL >= LIMIT - (4 << 20), "only %zu KiB before failing",
	    n * SMALL >> 10);
	for (size_t i = 0; i < n; i++) {
		CCHECK(*(unsigned char *)v[i] == (i & 0xff), "block %zu", i);
		free(v[i]);
	}
	p = malloc(tu_opaque(big));
	CCHECK(p != NULL, "malloc(%zu) after freeing the small blocks", big);
	if (p != NULL)
		memset(p, 1, big);
	errno = 0;
	q = malloc(tu_opaque(LIMIT - big + (1 << 20)));
	CCHECK(q == NULL && errno == ENOMEM, "a block past the limit: %p, "
	    "errno %d", (void *)q, errno);
	free(p);
	errno = 0;
	CCHECK(calloc(1, tu_opaque(LIMIT)) == NULL && errno == ENOMEM,
	    "calloc of the limit: errno %d", errno);
	p = malloc(tu_opaque(100));
	if (p != NULL) {
		memset(p, 7, 100);
		errno = 0;
		q = realloc(p, tu_opaque(LIMIT + 1));
		CCHECK(q == NULL && errno == ENOMEM && p[99] == 7,
		    "realloc past the limit: %p, errno %d", (void *)q, errno);
		free(q != NULL ? q : p);
	}
	/* Under the limit again, everything works. */
	p = malloc(tu_opaque(big));
	CCHECK(p != NULL, "malloc(%zu) at the end", big);
	free(p);
	/* At run time: no limit, then one below what a block needs. */
	{
		size_t (*set)(size_t) = (size_t (*)(size_t))dlsym(RTLD_DEFAULT,
		    "umem_set_limit");
		size_t was;

		CCHECK(set != NULL, "no umem_set_limit");
		if (set != NULL) {
			was = set(0);
			CCHECK(was == LIMIT, "umem_set_limit(0) returned %zu",
			    was);
			p = malloc(tu_opaque(2 * LIMIT));
			CCHECK(p != NULL, "no limit: malloc(%d)", 2 * LIMIT);
			free(p);
			was = set(LIMIT / 4);
			CCHECK(was == 0, "umem_set_limit(%d) returned %zu",
			    LIMIT / 4, was);
			errno = 0;
			p = malloc(tu_opaque(LIMIT / 2));
			CCHECK(p == NULL && errno == ENOMEM, "a block past the "
			    "new limit: %p, errno %d", (void *)p, errno);
			free(p);
			(void) set(LIMIT);
		}
	}
	malloc_stats();
	tu_say("small=%zu KiB failed=%d\n", n * SMALL >> 10, tu_child_failed);
	munmap(v, CAP * sizeof (void *));
	return (tu_child_failed != 0);
}

/*
 * UMEM_OPTIONS=limit=SIZE bounds the memory the heap hands out: past it,
 * allocations fail with ENOMEM (blocks held are untouched), after the
 * caches gave back what they held; malloc_stats reports the limit.  A
 * malformed size is reported and ignored.
 */
static void
t_heap_limit(void)
{
	static const char *const lim[] = { "UMEM_OPTIONS=limit=32m", NULL };
	static const char *const bad[] = { "UMEM_OPTIONS=limit=32q", NULL };
	char out[1 << 16];
	int st;

	if (!ours("umem_cache_stats_print")) {
		skip("UMEM_OPTIONS is libumem's");
		return;
	}
	st = tu_run_self("heap_limit", lim, 60, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "failed=0") != NULL &&
	    strstr(out, "heap limit 32768 KiB: held ") != NULL,
	    "status %#x, output:\n%s", st, out);
	st = tu_run_self("stats_exit", bad, 30, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "UMEM_OPTIONS: limit needs a whole number") != NULL,
	    "status %#x, output:\n%s", st, out);
}

/*
 * The VmFlags advice of the mapping holding addr: 'h' (MADV_HUGEPAGE,
 * "hg"), 'n' (MADV_NOHUGEPAGE, "nh"), '-' (neither), '?' (not found).
 */
static char
thp_advice(const void *addr)
{
	uintptr_t p = (uintptr_t)addr, lo, hi;
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], c = '?';
	int in = 0;

	if (f == NULL)
		return ('?');
	while (fgets(line, sizeof (line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = (p >= lo && p < hi);
		} else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			c = strstr(line, " hg") != NULL ? 'h' :
			    strstr(line, " nh") != NULL ? 'n' : '-';
			break;
		}
	}
	fclose(f);
	return (c);
}

/*
 * The child of t_hugepages.  Prints the advice (thp_advice) of the
 * mappings holding: a first small block; a large block, once 80 MiB of
 * them have grown the heap past its first reservation; small blocks
 * allocated then; buffers over a page allocated then; the small blocks
 * once freed and trimmed (their memory given back).  4 MiB of each, and
 * the block in the middle: its 2 MiB block holds no other kind.
 */
static int
hugepages_child(void)
{
	enum { HP_LARGE = 40, HP_SMALL = 16384, HP_BIG = 256 };
	static void *large[HP_LARGE], *small[HP_SMALL], *big[HP_BIG];
	void *first = malloc(tu_opaque(64));
	char a_first, a_large, a_small, a_big, a_freed;
	int i;

	a_first = thp_advice(first);
	for (i = 0; i < HP_LARGE; i++)
		large[i] = malloc(tu_opaque(2 << 20));
	a_large = thp_advice(large[HP_LARGE - 1]);
	for (i = 0; i < HP_SMALL; i++)
		memset(small[i] = malloc(tu_opaque(256)), 1, 256);
	a_small = thp_advice(small[HP_SMALL / 2]);
	for (i = 0; i < HP_BIG; i++)
		memset(big[i] = malloc(tu_opaque(16384)), 1, 64);
	a_big = thp_advice(big[HP_BIG / 2]);
	for (i = 0; i < HP_SMALL; i++)
		free(small[i]);
	(void) malloc_trim(0);
	a_freed = thp_advice(small[HP_SMALL / 2]);
	printf("first=%c large=%c small=%c big=%c freed=%c\n", a_first,
	    a_large, a_small, a_big, a_freed);
	for (i = 0; i < HP_BIG; i++)
		free(big[i]);
	for (i = 0; i < HP_LARGE; i++)
		free(large[i]);
	free(first);
	return (0);
}

/*
 * Run this binary again as "--child what" (a fresh process, the same
 * environment) and find key in its output: the text from key on, or NULL
 * (reported) if the child failed or did not print it.
 */
static const char *
child_says(const char *what, unsigned timeout_s, const char *key,
    char *out, size_t outlen)
{
	static const char *const noenv[] = { NULL };
	int st = tu_run_self(what, noenv, timeout_s, out, outlen);
	const char *p = strstr(out, key);

	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && p != NULL)
		return (p);
	CHECKF(0, "child %s: status %#x, output:\n%s", what, st, out);
	return (NULL);
}

/*
 * A burst of small blocks freed, then a burst of another size: the second
 * reuses the first's memory within a few MiB of heap growth (the growth
 * scan gives the idle depot back), instead of growing the peak by its
 * whole size while the first waits for the timed reap.  Prints the growth
 * of the peak in MiB, and the second burst's page faults.
 */
static int
growth_reuse_child(void)
{
	enum { SMALL = 64, BIG = 1000, BYTES = 48 << 20 };
	size_t ns = BYTES / SMALL, nb = BYTES / 1024, i;
	void **v = mmap(NULL, ns * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rusage ru0, ru1;
	size_t hwm1;

	if (v == MAP_FAILED)
		return (2);
	for (i = 0; i < ns; i++)
		memset(v[i] = malloc(tu_opaque(SMALL)), 1, SMALL);
	for (i = 0; i < ns; i++)
		free(v[i]);
	hwm1 = hwm_bytes();
	(void) getrusage(RUSAGE_SELF, &ru0);
	for (i = 0; i < nb; i++)
		memset(v[i] = malloc(tu_opaque(BIG)), 2, BIG);
	(void) getrusage(RUSAGE_SELF, &ru1);
	/* (signed: the kernel's RSS counters are per-CPU estimates) */
	printf("grew=%ld faults=%ld of %zu pages\n", (long)(hwm_bytes() >>
	    20) - (long)(hwm1 >> 20), ru1.ru_minflt - ru0.ru_minflt,
	    nb * 1024 / (size_t)sysconf(_SC_PAGESIZE));
	for (i = 0; i < nb; i++)
		free(v[i]);
	(void) munmap(v, ns * sizeof (void *));
	return (0);
}

static void
t_growth_reuse(void)
{
	char out[4096];
	const char *p;
	long grew = LONG_MAX, faults = LONG_MAX, pages = 0;

	if (!ours("umem_cache_stats_print")) {
		skip("glibc keeps fastbin chunks apart from such requests");
		return;
	}
	if ((p = child_says("growth_reuse", 60, "grew=", out,
	    sizeof (out))) == NULL)
		return;
	CHECKF(sscanf(p, "grew=%ld faults=%ld of %ld", &grew, &faults,
	    &pages) == 3, "output:\n%s", out);
	/* 48 MiB of 1000-byte blocks after 48 MiB of 64-byte ones freed */
	CHECKF(grew < 24, "the peak grew by %ld MiB", grew);
	/*
	 * ... on the same pages, still resident: the growth scan kept them
	 * for it (vmem_heap.c, deferred release).  12.5k faults (every page
	 * again) when it gave them to the OS first, 2.3k when slabs took the
	 * reservation's untouched tail before the dirty pages; 237 now.
	 * Without magazines nothing waits in a depot for the scan: the
	 * first burst's slabs empty as it is freed and go back at once.
	 */
	CHECKF(tu_option_given("nomagazines") || faults < pages / 8,
	    "%ld page faults for %ld pages", faults, pages);
}

/*
 * Large blocks that go back keep their pages a while (vmem_heap_keep:
 * dirty, until a pass of the update thread finds them unused): the next
 * blocks take them without page faults, calloc still gives zeros, and
 * the pages go to the OS within about a second of idleness.  The blocks
 * are 2 MiB and 900 KiB, 16 and 20 of them: more than the large-block
 * cache holds.  Prints the page faults of the second round of 2 MiB
 * blocks (the fewest of three tries: a pass may flush between the
 * rounds), the callocs that were not zero, and how far the RSS stayed
 * above its start after an idle 1.5 s.
 */
/* k blocks of n bytes into v, every byte written: 0, or -1 (no memory). */
static int
blocks_filled(char **v, int k, size_t n, int byte)
{
	for (int i = 0; i < k; i++)
		if ((v[i] = malloc(tu_opaque(n))) == NULL)
			return (-1);
	for (int i = 0; i < k; i++)
		memset(v[i], byte, n);
	return (0);
}

static void
blocks_free(char **v, int k)
{
	for (int i = 0; i < k; i++)
		free(v[i]);
}

static int
large_reuse_child(void)
{
	enum { NB = 16, BIG = 2 << 20, NM = 20, MID = 900 << 10 };
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), nonzero = 0, rss0;
	long faults = LONG_MAX;
	char *v[NM];
	int i, try;

	pagesize = pg;
	rss0 = rss_bytes();
	for (try = 0; try < 3; try++) {
		struct rusage ru0, ru1;

		if (blocks_filled(v, NB, BIG, 1) != 0)
			return (2);
		blocks_free(v, NB);
		(void) getrusage(RUSAGE_SELF, &ru0);
		if (blocks_filled(v, NB, BIG, 2) != 0)
			return (2);
		(void) getrusage(RUSAGE_SELF, &ru1);
		if (ru1.ru_minflt - ru0.ru_minflt < faults)
			faults = ru1.ru_minflt - ru0.ru_minflt;
		blocks_free(v, NB);
	}
	/* calloc over dirty blocks: cleared (MID) or given back (BIG). */
	for (int sz = 0; sz < 2; sz++) {
		size_t n = sz == 0 ? MID : BIG;
		int k = sz == 0 ? NM : NB;

		if (blocks_filled(v, k, n, 0xa5) != 0)
			return (2);
		blocks_free(v, k);
		for (i = 0; i < k; i++) {
			if ((v[i] = calloc(1, tu_opaque(n))) == NULL)
				return (2);
			nonzero += !all_zero(v[i], n);
		}
		blocks_free(v, k);
	}
	(void) usleep(1500 * 1000);
	printf("faults=%ld of %zu pages, nonzero=%zu, idle rss +%ld KiB\n",
	    faults, (size_t)NB * BIG / pg, nonzero,
	    ((long)rss_bytes() - (long)rss0) / 1024);
	return (0);
}

/*
 * A flush never takes the pages of a block in use: two threads make
 * bursts of blocks, 7 in 8 of 8-64 KiB (classes whose emptied slabs keep
 * their pages, slab_destroy) and 1 in 8 of 1-3 MiB (past the large-block
 * cache: from the arena, over the dirty pages of blocks freed before),
 * write a word on every page, check them all and free the burst, for a
 * second, while the update thread flushes every 5 ms
 * (UMEM_OPTIONS=update_interval=5).  Prints the blocks made and those
 * found changed.
 */
struct race_arg {
	unsigned long	ra_made;
	unsigned long	ra_bad;
	unsigned	ra_seed;
};

static void *
large_race_thread(void *arg)
{
	struct race_arg *ra = arg;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	struct timespec t0, t;
	unsigned long long seed = ra->ra_seed;
	enum { K = 128 };
	uint64_t *v[K];
	size_t n[K];
	int k;

	(void) clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (k = 0; k < K; k++) {
			unsigned long long r = test_rand(&seed);

			n[k] = r % 8 != 0 ? (8 << 10) + (size_t)((r >> 8) %
			    (56 << 10)) : (1 << 20) + (size_t)((r >> 8) %
			    (2 << 20));
			if ((v[k] = malloc(tu_opaque(n[k]))) == NULL) {
				ra->ra_bad++;
				return (NULL);
			}
			for (size_t j = 0; j < n[k]; j += pg)
				v[k][j / 8] = (uintptr_t)v[k] ^ j;
		}
		for (k = 0; k < K; k++) {
			for (size_t j = 0; j < n[k]; j += pg)
				ra->ra_bad += v[k][j / 8] !=
				    ((uintptr_t)v[k] ^ j);
			free(v[k]);
		}
		ra->ra_made += K;
		(void) clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L +
	    (t.tv_nsec - t0.tv_nsec) < 1000000000L);
	return (NULL);
}

static int
large_race_child(void)
{
	struct race_arg ra[2] = { { 0, 0, 1 }, { 0, 0, 2 } };
	pthread_t t;

	if (pthread_create(&t, NULL, large_race_thread, &ra[1]) != 0)
		return (2);
	(void) large_race_thread(&ra[0]);
	(void) pthread_join(t, NULL);
	printf("made=%lu bad=%lu\n", ra[0].ra_made + ra[1].ra_made,
	    ra[0].ra_bad + ra[1].ra_bad);
	return (0);
}

static void
t_large_reuse(void)
{
	static const char *const fast[] = {
		"UMEM_OPTIONS=update_interval=5", NULL };
	char out[4096];
	const char *p;
	long faults = LONG_MAX, rss = LONG_MAX;
	size_t pages = 0, nonzero = 1;
	unsigned long made = 0, bad = 1;
	int st;

	if ((p = child_says("large_reuse", 60, "faults=", out,
	    sizeof (out))) != NULL) {
		CHECKF(sscanf(p, "faults=%ld of %zu pages, nonzero=%zu, "
		    "idle rss +%ld KiB", &faults, &pages, &nonzero,
		    &rss) == 4, "output:\n%s", out);
		CHECKF(nonzero == 0, "%zu callocs not zero", nonzero);
		/* 8192 faults when the blocks' pages went back at once. */
		CHECKF(!ours("umem_cache_stats_print") ||
		    faults < (long)pages / 8, "%ld page faults for %zu "
		    "pages", faults, pages);
		/* The 32 MiB kept dirty went back while idle. */
		CHECKF(!ours("umem_cache_stats_print") || rss < 8 * 1024,
		    "RSS +%ld KiB after 1.5 s idle", rss);
	}
	st = tu_run_self("large_race", fast, 60, out, sizeof (out));
	p = strstr(out, "made=");
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && p != NULL &&
	    sscanf(p, "made=%lu bad=%lu", &made, &bad) == 2,
	    "child large_race: status %#x, output:\n%s", st, out);
	CHECKF(bad == 0 && made > 50, "%lu of %lu blocks changed", bad, made);
}

/*
 * A storm of frees (2M blocks of 64 bytes, freed after all were made)
 * fills magazine after magazine.  The growth scans that the magazines'
 * own memory sets off give the idle full ones' rounds back to the slabs;
 * the magazines themselves stay, empty, for the frees still to come.
 * They used to go back to their cache's slabs, and the storm made a new
 * magazine for every full one (13986 for 2M frees) while the scans
 * destroyed 4055 slabs of magazines: python3's exit from a big dict
 * spent 4.4k page faults there.  Prints the magazine cache's slabs made
 * and destroyed, and the magazines made, during the frees.
 */
static int
free_storm_child(void)
{
	enum { N = 2000000 };
	void **v = mmap(NULL, N * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* (dlsym: this binary runs on glibc's malloc too) */
	umem_cache_t *(*lookup)(const char *) = (umem_cache_t *(*)(
	    const char *))dlsym(RTLD_DEFAULT, "umem_cache_lookup");
	int (*getstat)(umem_cache_t *, umem_cache_stat_t *) = (int (*)(
	    umem_cache_t *, umem_cache_stat_t *))dlsym(RTLD_DEFAULT,
	    "umem_cache_getstat");
	umem_cache_stat_t s0, s1;
	umem_cache_t *cp;
	char name[32];
	size_t i, m;

	if (v == MAP_FAILED || lookup == NULL || getstat == NULL)
		return (2);
	for (i = 0; i < N; i++)
		memset(v[i] = malloc(tu_opaque(64)), 1, 64);
	if ((cp = lookup("umem_alloc_64")) == NULL || getstat(cp, &s0) != 0 ||
	    (m = (size_t)s0.cs_magsize) == 0)
		return (2);
	(void) snprintf(name, sizeof (name), "umem_magazine_%zu", m);
	memset(&s0, 0, sizeof (s0));	/* (made on first use) */
	if ((cp = lookup(name)) != NULL && getstat(cp, &s0) != 0)
		return (2);
	for (i = 0; i < N; i++)
		free(v[i]);
	if ((cp = lookup(name)) == NULL || getstat(cp, &s1) != 0)
		return (2);
	printf("made=%llu destroyed=%llu magazines=%llu full=%zu\n",
	    (unsigned long long)(s1.cs_slab_create - s0.cs_slab_create),
	    (unsigned long long)(s1.cs_slab_destroy - s0.cs_slab_destroy),
	    (unsigned long long)(s1.cs_alloc - s0.cs_alloc), (size_t)N / m);
	(void) munmap(v, N * sizeof (void *));
	return (0);
}

static void
t_free_storm(void)
{
	char out[4096];
	const char *p;
	unsigned long long made = 0, gone = ~0ULL, mags = ~0ULL, full = 0;

	if (!ours("umem_cache_stats_print")) {
		skip("the magazines are libumem's");
		return;
	}
	if (tu_option_given("nomagazines")) {
		skip("UMEM_OPTIONS=nomagazines: no magazines");
		return;
	}
	if ((p = child_says("free_storm", 120, "made=", out,
	    sizeof (out))) == NULL)
		return;
	CHECKF(sscanf(p, "made=%llu destroyed=%llu magazines=%llu full=%llu",
	    &made, &gone, &mags, &full) == 4, "output:\n%s", out);
	/* (Slack for a timed reap: before, 4055 of 4566 were destroyed.) */
	CHECKF(gone < made / 4 + 1, "%llu slabs of magazines made and %llu "
	    "destroyed during the frees", made, gone);
	CHECKF(mags < full * 4 / 5, "%llu magazines made for %llu full ones",
	    mags, full);
}

/*
 * Fresh slabs are faulted in with one call (vmem_heap_populate): a burst
 * of small blocks takes page faults for the allocator's records, not one
 * for every page of its slabs.  Counted with the kernel's page-fault
 * event, which a populating call does not raise (ru_minflt counts both).
 * Prints the faults and the pages the blocks fill, or why it cannot count.
 */
static int
slab_populate_child(void)
{
	enum { SIZE = 64, N = (24 << 20) / SIZE };
	void **v = mmap(NULL, N * sizeof (void *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct perf_event_attr pa;
	long long faults = -1;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), i;
	int fd;

	if (v == MAP_FAILED)
		return (2);
	memset(v, 0, N * sizeof (void *));	/* (its own faults first) */
	if (madvise(v, pg, 23 /* MADV_POPULATE_WRITE */) != 0) {
		printf("unsupported: madvise(MADV_POPULATE_WRITE): errno %d\n",
		    errno);
		return (0);
	}
	memset(&pa, 0, sizeof (pa));
	pa.type = PERF_TYPE_SOFTWARE;
	pa.size = sizeof (pa);
	pa.config = PERF_COUNT_SW_PAGE_FAULTS;
	pa.disabled = 1;
	pa.exclude_kernel = 1;
	pa.exclude_hv = 1;
	if ((fd = (int)syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0)) < 0) {
		printf("unsupported: perf_event_open: errno %d\n", errno);
		return (0);
	}
	(void) ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	for (i = 0; i < N; i++)
		memset(v[i] = malloc(tu_opaque(SIZE)), 1, SIZE);
	(void) ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	if (read(fd, &faults, sizeof (faults)) != sizeof (faults))
		return (2);
	printf("faults=%lld of %zu pages\n", faults, (size_t)N * SIZE / pg);
	return (0);
}

static void
t_slab_populate(void)
{
	char out[4096];
	const char *p;
	long faults = LONG_MAX, pages = 0;

	if (!ours("umem_cache_stats_print")) {
		skip("glibc's heap faults its pages in one by one");
		return;
	}
	if ((p = child_says("slab_populate", 60, "", out,
	    sizeof (out))) == NULL)
		return;
	if ((p = strstr(out, "unsupported: ")) != NULL) {
		skip(p);
		return;
	}
	p = strstr(out, "faults=");
	CHECKF(p != NULL && sscanf(p, "faults=%ld of %ld", &faults,
	    &pages) == 2, "output:\n%s", out);
	/*
	 * 6144 pages of slabs: ~6200 faults when each page is faulted in on
	 * its first write; the records (boundary tags, the page map) are
	 * what is left.
	 */
	CHECKF(faults < pages / 8, "%ld page faults for %ld pages", faults,
	    pages);
}


/*
 * A fresh size class hands out new memory by rising address, as a bump
 * allocator (glibc's top chunk) does: programs that walk their objects in
 * the order they made them (garbage collectors' lists) then walk memory
 * upward.  A slot loaded with a batch from the slab layer used to hand it
 * out top-down.  In a fresh process: 256 blocks of 176 bytes (a class the
 * start-up has not used), and the share of neighbours in rising order.
 */
static int
address_order_child(void)
{
	enum { N = 256 };
	static void *v[N];
	int i, up = 0;

	for (i = 0; i < N; i++)
		if ((v[i] = malloc(176)) == NULL)
			return (1);
	for (i = 1; i < N; i++)
		up += (uintptr_t)v[i] > (uintptr_t)v[i - 1];
	printf("up=%d of %d\n", up, N - 1);
	for (i = 0; i < N; i++)
		free(v[i]);
	return (0);
}

static void
t_address_order(void)
{
	char out[4096];
	const char *p;
	int up = -1, n = 0;

	if ((p = child_says("address_order", 60, "up=", out,
	    sizeof (out))) == NULL)
		return;
	CHECKF(sscanf(p, "up=%d of %d", &up, &n) == 2 && n > 0, "output:\n%s",
	    out);
	CHECKF(up * 10 >= n * 9, "%d of %d neighbours in rising order", up,
	    n);
}

/*
 * UMEM_OPTIONS=hugepages=...: the slabs' memory is advised MADV_HUGEPAGE
 * from the start (always), once the heap outgrew its first reservation
 * (auto, or the bare option), or never (the default); large blocks never
 * are, nor a 2 MiB block that got a slab of buffers over a page or gave
 * memory back (MADV_NOHUGEPAGE: khugepaged must not fill it in again).
 * Whether the kernel then uses huge pages is its policy.
 */
static void
t_hugepages(void)
{
	static const struct {
		const char *env, *want;
	} modes[] = {
		{ "UMEM_OPTIONS=hugepages=always",
		    "first=h large=- small=h big=n freed=n" },
		{ "UMEM_OPTIONS=hugepages",
		    "first=- large=- small=h big=n freed=n" },
		{ "UMEM_OPTIONS=hugepages=auto",
		    "first=- large=- small=h big=n freed=n" },
		{ "UMEM_OPTIONS=hugepages=never",
		    "first=- large=- small=- big=- freed=-" },
		{ "UMEM_OPTIONS=", "first=- large=- small=- big=- freed=-" },
	};
	char out[4096];
	int st;

	if (!ours("umem_cache_stats_print")) {
		skip("UMEM_OPTIONS is libumem's");
		return;
	}
	for (size_t i = 0; i < sizeof (modes) / sizeof (modes[0]); i++) {
		const char *env[] = { modes[i].env, NULL };

		st = tu_run_self("hugepages", env, 30, out, sizeof (out));
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
		    strstr(out, modes[i].want) != NULL, "%s: status %#x, "
		    "want %s, output:\n%s", modes[i].env, st, modes[i].want,
		    out);
	}
}

/* Is the page holding addr resident (/proc/self/pagemap)?  -1: unknown. */
static int
page_resident(const void *addr)
{
	uint64_t e;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return (-1);
	n = pread(fd, &e, sizeof (e),
	    (off_t)((uintptr_t)addr / pagesize * sizeof (e)));
	close(fd);
	return (n == (ssize_t)sizeof (e) ? (int)(e >> 63) : -1);
}

/*
 * Does the executable mapping holding addr start at a 64 KiB boundary?
 * (The layout puts the code there; a kernel that loads the library off
 * such a boundary shifts the windows.)  1, 0, or -1 if not found.
 */
static int
code_aligned(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t lo, hi;
	int r = -1;

	if (f == NULL)
		return (-1);
	while (fgets(line, sizeof (line), f) != NULL)
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && addr >= lo &&
		    addr < hi) {
			r = (lo & 0xffff) == 0;
			break;
		}
	fclose(f);
	return (r);
}

static void *
cold_pages_thread(void *arg)
{
	free(malloc(tu_opaque(100)));
	return (arg);
}

/*
 * The child of t_cold_pages: a small program's usual calls, then which
 * text pages of the statistics and debugging code are resident.  Prints
 * "hot=1 cold=N resident=M base=B code=C", N the cold entry points
 * outside malloc's 64 KiB window (the kernel maps page-cache pages up to
 * 64 KiB around a fault), M those resident, B and C whether the library
 * and its code start a window.
 */
/* dl_iterate_phdr: the unwind tables (PT_GNU_EH_FRAME) of one object. */
typedef struct eh_find {
	uintptr_t	ef_base;	/* the object's load address */
	uintptr_t	ef_hdr;		/* out: .eh_frame_hdr, or 0 */
} eh_find_t;

static int
eh_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	eh_find_t *ef = arg;

	(void) size;
	if (info->dlpi_addr != ef->ef_base)
		return (0);
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME)
			ef->ef_hdr = info->dlpi_addr +
			    info->dlpi_phdr[i].p_vaddr;
	return (1);
}

static int
cold_pages_child(void)
{
	static const char *const cold[] = { "malloc_stats", "malloc_info",
	    "umem_cache_getstat", "vmem_getstat", "umem_findleaks",
	    "umem_log_print", "vmem_walk" };
	uintptr_t win = (uintptr_t)dlsym(RTLD_DEFAULT, "malloc") >> 16;
	void *p, *q, *r;
	pthread_t t;
	Dl_info di;
	eh_find_t ef = { 0, 0 };
	int ncold = 0, nres = 0;

	pagesize = (size_t)sysconf(_SC_PAGESIZE);
	p = calloc(tu_opaque(10), 30);
	q = realloc(malloc(tu_opaque(20)), 5000);
	r = realloc(malloc(tu_opaque(200000)), 900000);
	free(NULL);
	if (posix_memalign(&p, 4096, tu_opaque(100)) != 0 ||
	    pthread_create(&t, NULL, cold_pages_thread, NULL) != 0 ||
	    pthread_join(t, NULL) != 0)
		return (2);
	free(p);
	free(q);
	free(r);
	for (size_t i = 0; i < sizeof (cold) / sizeof (cold[0]); i++) {
		void *f = dlsym(RTLD_DEFAULT, cold[i]);

		/* (The first page past the window is exempt: a freshly */
		/* written library's page-cache folios straddle the window */
		/* boundary, and the kernel maps that page with the hot ones.) */
		if (f == NULL || (uintptr_t)f >> 16 == win ||
		    (uintptr_t)f / pagesize == ((win + 1) << 16) / pagesize)
			continue;
		ncold++;
		if (page_resident(f) == 1) {
			nres++;
			printf("resident: %s\n", cold[i]);
		}
	}
	if (dladdr(dlsym(RTLD_DEFAULT, "malloc"), &di) == 0)
		return (2);
	ef.ef_base = (uintptr_t)di.dli_fbase;
	(void) dl_iterate_phdr(eh_find_cb, &ef);
	printf("hot=%d cold=%d resident=%d base=%d code=%d unwind=%d\n",
	    page_resident(dlsym(RTLD_DEFAULT, "malloc")), ncold, nres,
	    ((uintptr_t)di.dli_fbase & 0xffff) == 0,
	    code_aligned((uintptr_t)dlsym(RTLD_DEFAULT, "malloc")),
	    ef.ef_hdr != 0 ? page_resident((void *)ef.ef_hdr) : -1);
	return (0);
}

/*
 * A program that never asks for statistics or debugging keeps none of
 * that code's text pages: the hot layers' code, .init and .plt share one
 * 64 KiB window, the rest lies beyond it (Makefile, src/libumem.ld); nor
 * the unwind tables, which the first read of .rodata mapped too until
 * they were given a mapping apart.  Fails if the hot code outgrows its
 * window, a common call runs cold code or the tables come back.
 */
static void
t_cold_pages(void)
{
	char out[4096];
	const char *p;
	int hot = -1, ncold = -1, nres = -1, base = -1, code = -1, unw = -2;

	if (!ours("umem_cache_stats_print")) {
		skip("the layout is libumem's");
		return;
	}
	if (tu_option_given("hugepages")) {
		skip("the huge-page code is cold, and runs when asked for");
		return;
	}
	if ((p = child_says("cold_pages", 30, "hot=", out,
	    sizeof (out))) == NULL)
		return;
	CHECKF(sscanf(p, "hot=%d cold=%d resident=%d base=%d code=%d "
	    "unwind=%d", &hot, &ncold, &nres, &base, &code, &unw) == 6,
	    "output:\n%s", out);
	if (hot != 1) {
		skip("/proc/self/pagemap does not show resident pages");
		return;
	}
	if (base != 1) {
		skip("the kernel loaded the library off a 64 KiB boundary");
		return;
	}
	CHECKF(code == 1, "the code does not start a 64 KiB window:\n%s",
	    out);
	CHECKF(ncold >= 3, "only %d cold entry points outside malloc's "
	    "64 KiB window", ncold);
	CHECKF(nres == 0, "%d of %d cold entry points' pages resident:\n%s",
	    nres, ncold, out);
	CHECKF(unw == 0, "the unwind tables' first page resident (1) or not "
	    "found (-1): %d\n%s", unw, out);
}

static size_t
file_text(FILE *f, char *buf, size_t len)
{
	size_t n;

	fflush(f);
	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	return (n);
}

/* malloc_info(0, f) writes an XML <malloc> document; other options EINVAL. */
static void
t_malloc_info(void)
{
	static char buf[1 << 16];
	FILE *f;
	size_t n;
	int rc;

	if (!ours("malloc_info")) {
		skip("malloc_info is not the allocator's");
		return;
	}
	f = tmpfile();
	CHECK(f != NULL);
	if (f == NULL)
		return;
	rc = malloc_info(1, f);
	CHECK(rc == EINVAL);
	n = file_text(f, buf, sizeof (buf));
	CHECK(n == 0);
	rc = malloc_info(0, f);
	CHECK(rc == 0);
	n = file_text(f, buf, sizeof (buf));
	CHECKF(n > 0 && strncmp(buf, "<malloc version=", 16) == 0,
	    "starts %.40s", buf);
	CHECKF(n >= 10 && strcmp(buf + n - 10, "</malloc>\n") == 0,
	    "ends %s", n >= 20 ? buf + n - 20 : buf);
	fclose(f);

	/*
	 * Our mmap total counts the large blocks held, as mallinfo2 (glibc's
	 * may serve 4 MiB from its heap: its mmap threshold moves).
	 */
	if (ours("umem_cache_stats_print")) {
		void *big = tu_launder(malloc(tu_opaque(4 * MiB)));
		struct mallinfo2 mi = mallinfo2();
		char want[96];

		CHECK(big != NULL);
		f = tmpfile();
		CHECK(f != NULL);
		if (f == NULL || big == NULL) {
			free(big);
			if (f != NULL)
				fclose(f);
			return;
		}
		CHECK(malloc_info(0, f) == 0);
		n = file_text(f, buf, sizeof (buf));
		(void) snprintf(want, sizeof (want), "<total type=\"mmap\" "
		    "count=\"%zu\" size=\"%zu\"/>", mi.hblks, mi.hblkhd);
		CHECKF(mi.hblks >= 1 && mi.hblkhd >= 4 * MiB &&
		    strstr(buf, want) != NULL, "%s not in %s", want, buf);
		fclose(f);
		free(big);
	}
}

/*
 * mallopt: 1 for the documented parameters with sensible values, 0 for an
 * out-of-range M_MXFAST (mallopt(3): "0 on error"); never anything else.
 * Run last: under glibc it changes policy for the rest of the process.
 */
static void
t_mallopt(void)
{
	if (!ours("mallopt")) {
		skip("mallopt is not the allocator's");
		return;
	}
	CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
	CHECK(mallopt(M_TOP_PAD, 0) == 1);
	CHECK(mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
	CHECK(mallopt(M_MMAP_MAX, 65536) == 1);
	CHECK(mallopt(M_ARENA_TEST, 8) == 1);
	CHECK(mallopt(M_ARENA_MAX, 8) == 1);
	CHECK(mallopt(M_PERTURB, 0) == 1);
	CHECK(mallopt(M_MXFAST, 64) == 1);
	CHECK(mallopt(M_MXFAST, 1 << 20) == 0);
	{
		int rc = mallopt(12345, 1);	/* unknown: glibc says 1 */

		CHECK(rc == 0 || rc == 1);
	}
	/* allocation still works */
	{
		void *p = malloc(tu_opaque(300000));

		CHECK(p != NULL);
		free(p);
	}
}

/*
 * Invalid frees are detected and reported.  glibc aborts with a message
 * ("free(): double free detected in tcache 2", "free(): invalid pointer");
 * an allocator may instead report and carry on, but then its heap must
 * still work.  Silence, or a crash of another kind, fails.
 */
static unsigned char static_block[256] __attribute__((aligned(64)));

static void
after_bad_free(void)
{
	int i;

	/* the heap still works after the report */
	for (i = 0; i < 2000; i++) {
		size_t n = (size_t)(i * 37) % 3000 + 1;
		unsigned char *p = malloc(tu_opaque(n));

		if (p == NULL)
			_exit(3);
		fill(p, 0, n, (unsigned)i);
		if (verify(p, 0, n, (unsigned)i) != (size_t)-1)
			_exit(4);
		free(p);
	}
	_exit(0);
}

static void
bad_double_free(void *arg)
{
	unsigned char *p = tu_launder(malloc(tu_opaque(64)));
	unsigned char *q = tu_launder(malloc(tu_opaque(64)));
	void *again = tu_launder(p);

	(void)arg;
	free(p);
	free(again);
	free(q);
	after_bad_free();
}

static void
bad_interior_free(void *arg)
{
	unsigned char *p = tu_launder(calloc(1, tu_opaque(256)));

	(void)arg;
	free(tu_launder(p + tu_opaque(64)));
	after_bad_free();
}

static void
bad_foreign_free(void *arg)
{
	(void)arg;
	free(tu_launder(static_block + 64));
	after_bad_free();
}

static void
t_invalid_free(void)
{
	static const struct {
		void		(*fn)(void *);
		const char	*what;
	} cases[] = {
		{ bad_double_free, "double free" },
		{ bad_interior_free, "free of an interior pointer" },
		{ bad_foreign_free, "free of a static address" },
	};
	char out[4096];
	size_t i;

	for (i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
		int st = test_in_child(cases[i].fn, NULL, out, sizeof (out));
		int reported = out[0] != '\0';

		CHECKF((CHILD_ABORTED(st) && reported) ||
		    (WIFEXITED(st) && WEXITSTATUS(st) == 0 && reported),
		    "%s: status %#x, report \"%.100s\"", cases[i].what, st,
		    out);
	}
}

/*
 * libumem's double-free test reads a block's first byte before its first
 * word (a narrow load is forwarded from a program's narrow store; a wide
 * one waits): a live block whose first byte matches the freed block's
 * key, and the other bytes not, is no double free.
 */
static void
key_byte_child(void *arg)
{
	unsigned char *p = tu_launder(malloc(tu_opaque(64))), *q;
	uint64_t key;

	(void)arg;
	free(p);
	memcpy(&key, tu_launder(p), sizeof (key));	/* the key, freed */
	q = tu_launder(malloc(tu_opaque(64)));
	if (q != p)
		_exit(2);	/* not the same block: cannot tell */
	q[0] = (unsigned char)key;	/* malloc cleared the word */
	free(q);
	_exit(0);
}

static void
t_free_key_byte(void)
{
	char out[4096];
	int st;

	if (!ours("umem_cache_stats_print")) {
		skip("the key is libumem's");
		return;
	}
	st = test_in_child(key_byte_child, NULL, out, sizeof (out));
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && out[0] == '\0',
	    "status %#x, report \"%.200s\"", st, out);
}

/* Many live blocks of random sizes: no overlap, random-order frees. */
static void
t_many_blocks(void)
{
	enum { N = 20000 };
	static unsigned char *v[N];
	static size_t sz[N];
	unsigned long long seed = 99;
	size_t bad = 0;
	int i, round;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < N; i++) {
			unsigned long long r = test_rand(&seed);

			sz[i] = r % 16 == 0 ? (size_t)(r >> 8) % 65536 :
			    (size_t)(r >> 8) % 512;
			switch ((r >> 4) % 4) {
			case 0:
				v[i] = calloc(1, tu_opaque(sz[i]));
				break;
			case 1:
				v[i] = memalign(64, tu_opaque(sz[i]));
				break;
			default:
				v[i] = malloc(tu_opaque(sz[i]));
				break;
			}
			CHECK(v[i] != NULL);
			if (v[i] != NULL)
				fill(v[i], 0, sz[i], (unsigned)i);
		}
		for (i = 0; i < N; i++)
			if (v[i] != NULL &&
			    verify(v[i], 0, sz[i], (unsigned)i) != (size_t)-1)
				bad++;
		/* free in a shuffled order */
		for (i = N - 1; i > 0; i--) {
			int j = (int)(test_rand(&seed) % (unsigned)(i + 1));
			unsigned char *t = v[i];
			size_t ts = sz[i];

			v[i] = v[j];
			sz[i] = sz[j];
			v[j] = t;
			sz[j] = ts;
		}
		for (i = 0; i < N; i++)
			free(v[i]);
	}
	CHECK(bad == 0);
}

static void *
thread_alloc(void *arg)
{
	unsigned char **out = arg;
	int i;

	for (i = 0; i < 100; i++) {
		out[i] = malloc(tu_opaque((size_t)i * 37 + 1));
		if (out[i] != NULL)
			fill(out[i], 0, (size_t)i * 37 + 1, (unsigned)i);
	}
	return (NULL);
}

/* Blocks from a thread that has exited are intact and freeable here. */
static void
t_thread_handoff(void)
{
	unsigned char *v[100];
	pthread_t t;
	int i, bad = 0;

	memset(v, 0, sizeof (v));
	CHECK(pthread_create(&t, NULL, thread_alloc, v) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	for (i = 0; i < 100; i++) {
		CHECK(v[i] != NULL);
		if (v[i] != NULL && verify(v[i], 0, (size_t)i * 37 + 1,
		    (unsigned)i) != (size_t)-1)
			bad++;
		v[i] = realloc(v[i], tu_opaque((size_t)i * 100 + 50));
		CHECK(v[i] != NULL);
		free(v[i]);
	}
	CHECK(bad == 0);
}

/*
 * libumem registers its fork handlers only when the process gets a second
 * thread (pthread_atfork touches about 120 KiB of libc that a small
 * program would not).  The test counts libumem's registrations by
 * interposing __register_atfork, which pthread_atfork calls with the
 * caller's __dso_handle.
 */
int __register_atfork(void (*)(void), void (*)(void), void (*)(void),
    void *);
static int (*real_register_atfork)(void (*)(void), void (*)(void),
    void (*)(void), void *);
static void *atfork_dso[32];
static int atfork_n;

static void
resolve_register_atfork(void)
{
	real_register_atfork = (int (*)(void (*)(void), void (*)(void),
	    void (*)(void), void *))dlsym(RTLD_NEXT, "__register_atfork");
}

int
__register_atfork(void (*prepare)(void), void (*parent)(void),
    void (*child)(void), void *dso)
{
	int i = __atomic_fetch_add(&atfork_n, 1, __ATOMIC_RELAXED);

	if (i < 32)
		atfork_dso[i] = dso;
	if (real_register_atfork == NULL)
		resolve_register_atfork();
	return (real_register_atfork(prepare, parent, child, dso));
}

/* Registrations so far by the object that gives malloc. */
static int
umem_atfork_calls(void)
{
	Dl_info di;
	int i, n = 0;

	for (i = 0; i < atfork_n && i < 32; i++)
		if (atfork_dso[i] != NULL && dladdr(atfork_dso[i], &di) != 0 &&
		    di.dli_fbase == malloc_base)
			n++;
	return (n);
}

/*
 * Bursts of 1 KiB blocks until *arg: a depot exchange (slot and depot
 * locks) every 15 calls, and a quarter MiB of heap - under the update
 * thread's start threshold, so that only the locks arm the fork handlers
 * (the depot of a 1 KiB class is not capped, so its slabs are not made
 * again and again).
 */
static void *
thread_bursts(void *arg)
{
	enum { N = 256 };
	void *v[N];
	int i;

	do {
		for (i = 0; i < N; i++)
			v[i] = malloc(tu_opaque(1000));
		for (i = 0; i < N; i++)
			free(v[i]);
	} while (!__atomic_load_n((int *)arg, __ATOMIC_RELAXED));
	return (NULL);
}

static void
t_atfork_deferred(void)
{
	void *v[64];
	pthread_t t;
	pid_t pid;
	int i, st = -1, single = __libc_single_threaded;
	int stop = 0, one = 1, hung = 0, threads;

	/*
	 * (With nomagazines every call is a slow path, which starts the
	 * update thread at once in a fork child whose parent had it.)
	 */
	if (dlsym(RTLD_DEFAULT, "umem_alloc") == NULL ||
	    real_register_atfork == NULL || tu_option_given("nomagazines")) {
		skipped++;
		return;
	}
	for (i = 0; i < 64; i++)
		v[i] = malloc(tu_opaque((size_t)i * 16 + 1));
	for (i = 0; i < 64; i++)
		free(v[i]);
	/* (TSan's runtime has a thread of its own from the start.) */
	if (single)
		CHECKF(umem_atfork_calls() == 0, "%d fork handlers "
		    "registered by a program with one thread",
		    umem_atfork_calls());

	/* A single-threaded fork runs no handlers of ours: its child */
	/* must still allocate, trim and allocate again. */
	if ((pid = fork()) == 0) {
		for (i = 0; i < 64; i++)
			v[i] = malloc(tu_opaque((size_t)i * 32 + 1));
		for (i = 0; i < 64; i++)
			free(v[i]);
		(void) malloc_trim(0);
		free(malloc(tu_opaque(5000)));
		_exit(0);
	}
	CHECK(pid > 0);
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);

	/*
	 * A second thread, allocating: its next lock registers the handlers,
	 * so a fork never finds a lock held.  A child that inherited one
	 * would hang in its first slow path; alarm() turns that into SIGALRM.
	 */
	CHECK(pthread_create(&t, NULL, thread_bursts, &stop) == 0);
	for (i = 0; i < 40 && hung == 0; i++) {
		usleep(2000);
		if ((pid = fork()) == 0) {
			alarm(10);
			thread_bursts(&one);
			_exit(0);
		}
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
		hung += WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
	}
	threads = (int)status_field("Threads:");
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	CHECK(pthread_join(t, NULL) == 0);
	CHECKF(hung == 0, "child %d hung after fork (a lock held)", i);
	/* Else the update thread's start registered them, not the locks. */
	CHECKF(threads == 2, "%d threads while forking", threads);
	CHECKF(umem_atfork_calls() >= 3, "%d fork handlers registered "
	    "after a second thread", umem_atfork_calls());
}

/*
 * libumem starts its update thread only once there is work for it: not
 * for a program that allocates little, but once the caches have taken
 * 1 MiB from the heap (then by the next slow path).  Run first, before
 * the other tests allocate.
 */
static void
t_update_thread_lazy(void)
{
	enum { N = 4096 };
	static void *v[N];
	int before, after = -1, i;

	if (dlsym(RTLD_DEFAULT, "umem_alloc") == NULL ||
	    tu_option_given("nomagazines")) {	/* (see t_atfork_deferred) */
		skipped++;
		return;
	}
	before = (int)status_field("Threads:");
	CHECKF(before == 1, "%d threads before the program did anything",
	    before);
	for (i = 0; i < N; i++)		/* 4 MiB of 1 KiB blocks */
		v[i] = malloc(tu_opaque(1000));
	for (i = 0; i < N; i++)
		free(v[i]);
	for (i = 0; i < 100 && after != 2; i++) {
		free(malloc(tu_opaque(3000)));	/* a slow path */
		usleep(10000);
		after = (int)status_field("Threads:");
	}
	CHECKF(after == 2, "%d threads after 4 MiB of blocks", after);
}

int
main(int argc, char **argv)
{
	Dl_info di;
	void *m = dlsym(RTLD_DEFAULT, "malloc");

	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "stats_exit") == 0)
		return (stats_exit_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "heap_limit") == 0)
		return (heap_limit_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "hugepages") == 0)
		return (hugepages_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "cold_pages") == 0)
		return (cold_pages_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "growth_reuse") == 0)
		return (growth_reuse_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "large_reuse") == 0)
		return (large_reuse_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "large_race") == 0)
		return (large_race_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "free_storm") == 0)
		return (free_storm_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "slab_populate") == 0)
		return (slab_populate_child());
	if (argc == 3 && strcmp(argv[1], "--child") == 0 &&
	    strcmp(argv[2], "address_order") == 0)
		return (address_order_child());
	pagesize = (size_t)sysconf(_SC_PAGESIZE);
	foreign_ok = getenv("MALLOC_CONFORMANCE_FOREIGN_OK") != NULL &&
	    strcmp(getenv("MALLOC_CONFORMANCE_FOREIGN_OK"), "0") != 0;
	if (m != NULL && dladdr(m, &di) != 0) {
		malloc_base = di.dli_fbase;
		malloc_obj = di.dli_fname;
	}
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  malloc from %s\n", malloc_obj);

	if (real_register_atfork == NULL)
		resolve_register_atfork();
	RUN(t_atfork_deferred);
	RUN(t_update_thread_lazy);
	RUN(t_provenance);
	RUN(t_constructor_alloc);
	RUN(t_malloc_zero);
	RUN(t_malloc_huge);
	RUN(t_alignment_small);
	RUN(t_alignment_large);
	RUN(t_usable_size);
	RUN(t_free_errno);
	RUN(t_calloc_overflow);
	RUN(t_calloc_dirty);
	RUN(t_realloc_edges);
	RUN(t_realloc_fail);
	RUN(t_realloc_ladder);
	RUN(t_realloc_large_nocopy);
	RUN(t_realloc_random);
	RUN(t_reallocarray);
	RUN(t_posix_memalign);
	RUN(t_memalign);
	RUN(t_aligned_alloc);
	RUN(t_valloc_pvalloc);
	RUN(t_free_sized);
	RUN(t_libc_aliases);
	RUN(t_mallinfo);
	RUN(t_malloc_trim);
	RUN(t_malloc_stats);
	RUN(t_stats_at_exit);
	RUN(t_heap_limit);
	RUN(t_hugepages);
	RUN(t_growth_reuse);
	RUN(t_large_reuse);
	RUN(t_free_storm);
	RUN(t_slab_populate);
	RUN(t_address_order);
	RUN(t_cold_pages);
	RUN(t_malloc_info);
	RUN(t_invalid_free);
	RUN(t_free_key_byte);
	RUN(t_many_blocks);
	RUN(t_thread_handoff);
	RUN(t_mallopt);
	if (skipped > 0)
		fprintf(stderr, "  (%d checks skipped)\n", skipped);
	(void)argc;
	return (test_summary(argv[0]));
}
