/*
 * malloc.c - the malloc family over the block layer (umem_alloc.h).
 *
 * Results and errno follow glibc 2.36 for every edge case: malloc(0) is a
 * unique block; calloc and reallocarray overflow give ENOMEM; realloc(p, 0)
 * frees p and returns NULL; memalign and aligned_alloc round a
 * non-power-of-two alignment up; posix_memalign returns EINVAL for an
 * alignment that is not a power of two multiple of sizeof (void *) and
 * leaves errno alone.  Every block of 16 bytes or more is 16-aligned.
 *
 * A pointer that is not ours, or a double free, is reported (umem_error:
 * abort unless aborting is off) and otherwise ignored: the heap is never
 * touched through it.  glibc's internal __libc_* names are provided too.
 */
#define	_GNU_SOURCE
#include "umem_alloc.h"
#include "debug.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define	MALLOC_ALIGNMENT	16

UMEM_EXPORT UMEM_HOT void *
malloc(size_t size)
{
	return (umem_block_alloc(size, 0));
}

UMEM_EXPORT UMEM_HOT void
free(void *buf)
{
	/* NULL has no page-map entry: umem_block_bad_free() returns. */
	umem_block_free(buf, "free");
}

UMEM_EXPORT void *
calloc(size_t n, size_t m)
{
	size_t total;
	void *buf;

	if (__builtin_mul_overflow(n, m, &total)) {
		errno = ENOMEM;
		return (NULL);
	}
	buf = umem_block_alloc(total, UMEM_ZERO_LARGE);
	/* Large blocks are fresh pages, or cleared if reused. */
	if (buf != NULL && total <= UMEM_MAXBUF)
		(void) memset(buf, 0, total);
	return (buf);
}

UMEM_EXPORT void *
realloc(void *old, size_t size)
{
	umem_cache_t *cp;
	uintptr_t pm;
	size_t oldsize;
	int pages = 0;		/* the new block: pages, not a class */
	void *buf;

	if (old == NULL)
		return (umem_block_alloc(size, 0));
	if (size == 0) {
		umem_block_free(old, "realloc");
		return (NULL);
	}
	pm = umem_pagemap_get(old);
	if ((cp = umem_block_cache(old, pm)) != NULL) {
		oldsize = cp->cache_bufsize;
		if (size <= UMEM_MAXBUF && umem_size_to_cache(size) == cp)
			return (old);
		/*
		 * Growth into the top classes: a block of pages, which
		 * grows in place or moves without copying next time, and
		 * is kept with the large blocks when freed, instead of a
		 * class block that the class would keep (DESIGN.md §5).
		 */
		pages = size > UMEM_REALLOC_PAGES && size > oldsize &&
		    !(cp->cache_flags & UMF_DEBUG);
		/* Debug: always a new block; copy what was asked for. */
		if (UMEM_UNLIKELY(cp->cache_flags & UMF_DEBUG) &&
		    (oldsize = umem_debug_get_size(cp, old)) == SIZE_MAX) {
			errno = EINVAL;
			return (NULL);
		}
	} else if ((oldsize = umem_block_large(old, pm)) != 0) {
		if (UMEM_UNLIKELY(pm & UMEM_PM_TAGGED)) {
			/* Debug: always a new block, as for the classes. */
			if ((oldsize = umem_debug_large_size(old, oldsize,
			    0)) == SIZE_MAX) {
				errno = EINVAL;
				return (NULL);
			}
		} else if (size > UMEM_REALLOC_PAGES &&
		    (buf = umem_large_realloc(old, oldsize, size)) != NULL) {
			/* In place, or moved without copying (mremap). */
			return (buf);
		}
	} else {
		umem_block_bad_free(old, pm, "realloc");
		errno = EINVAL;
		return (NULL);
	}
	buf = pages ? umem_large_alloc(size, 0, 0) : umem_block_alloc(size, 0);
	if (buf == NULL)
		return (NULL);		/* old is untouched */
	(void) memcpy(buf, old, oldsize < size ? oldsize : size);
	umem_block_free(old, "realloc");
	return (buf);
}

UMEM_EXPORT void *
reallocarray(void *old, size_t n, size_t m)
{
	size_t total;

	if (__builtin_mul_overflow(n, m, &total)) {
		errno = ENOMEM;
		return (NULL);
	}
	return (realloc(old, total));
}

UMEM_EXPORT void *
memalign(size_t align, size_t size)
{
	if (align <= MALLOC_ALIGNMENT)
		return (umem_block_alloc(size, 0));
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return (NULL);
	}
	if (!IS_P2(align))
		align = (size_t)1 << highbit(align);
	return (umem_alloc_aligned_any(size, align, 0));
}

UMEM_EXPORT void *
aligned_alloc(size_t align, size_t size)
{
	return (memalign(align, size));
}

UMEM_EXPORT int
posix_memalign(void **bufp, size_t align, size_t size)
{
	int saved = errno;
	void *buf;

	if (align == 0 || align % sizeof (void *) != 0 || !IS_P2(align))
		return (EINVAL);
	buf = memalign(align, size);
	errno = saved;
	if (buf == NULL)
		return (ENOMEM);
	*bufp = buf;
	return (0);
}

UMEM_EXPORT void *
valloc(size_t size)
{
	return (memalign(umem_pagesize, size));
}

UMEM_EXPORT void *
pvalloc(size_t size)
{
	size_t rsize = P2ROUNDUP(size, umem_pagesize);

	if (rsize < size) {
		errno = ENOMEM;
		return (NULL);
	}
	return (memalign(umem_pagesize, rsize == 0 ? umem_pagesize : rsize));
}

UMEM_EXPORT size_t
malloc_usable_size(void *buf)
{
	return (umem_block_size(buf));
}

/* C23 sized frees (glibc 2.36 has none): the size is a promise we ignore. */
void free_sized(void *, size_t);
void free_aligned_sized(void *, size_t, size_t);

UMEM_EXPORT void
free_sized(void *buf, size_t size)
{
	(void) size;
	free(buf);
}

UMEM_EXPORT void
free_aligned_sized(void *buf, size_t align, size_t size)
{
	(void) align;
	(void) size;
	free(buf);
}

/*
 * ------------------------------------------------------------------------
 * Introspection and tuning
 * ------------------------------------------------------------------------
 */

/* Give every cached free page back to the OS now. */
UMEM_EXPORT int
malloc_trim(size_t pad)
{
	(void) pad;
	if (!__atomic_load_n(&umem_alloc_ready, __ATOMIC_ACQUIRE))
		return (0);
	umem_trim();
	return (1);
}

/*
 * glibc's accounting, mapped onto ours.  Large blocks play glibc's mmapped
 * chunks (hblks, hblkhd); everything else the heap arena has handed out
 * (slabs, kept large blocks, the library's records) is the "arena", of
 * which the program holds uordblks.  So, as in glibc, uordblks + hblkhd is
 * what the program holds and arena + hblkhd what came from the system.
 * Buffers in magazines play fastbins (smblks, fsmblks), free buffers in
 * slabs and kept large blocks the other free chunks (ordblks), and kept
 * blocks, which malloc_trim(0) gives back, the top chunk (keepcost).
 */
UMEM_TEXT_COLD static struct mallinfo2
umem_mallinfo(void)
{
	vmem_t *heap = vmem_heap_arena(NULL, NULL);
	size_t total = heap != NULL ? vmem_size(heap, VMEM_ALLOC) : 0;
	struct mallinfo2 mi;
	umem_alloc_info_t ai;

	(void) memset(&mi, 0, sizeof (mi));
	umem_alloc_info(&ai);
	mi.hblks = ai.ai_large_count;
	mi.hblkhd = ai.ai_large;
	mi.arena = total > ai.ai_large ? total - ai.ai_large : 0;
	mi.uordblks = ai.ai_inuse < mi.arena ? ai.ai_inuse : mi.arena;
	mi.fordblks = mi.arena - mi.uordblks;
	mi.smblks = ai.ai_magazine_count;
	mi.fsmblks = ai.ai_magazine < mi.fordblks ? ai.ai_magazine :
	    mi.fordblks;
	mi.ordblks = ai.ai_slab_free_count + ai.ai_kept_count;
	mi.keepcost = ai.ai_kept;
	return (mi);
}

UMEM_TEXT_COLD UMEM_EXPORT struct mallinfo2
mallinfo2(void)
{
	return (umem_mallinfo());
}

/* glibc's mallinfo: the same, each field truncated to int. */
UMEM_TEXT_COLD UMEM_EXPORT struct mallinfo
mallinfo(void)
{
	struct mallinfo2 m2 = umem_mallinfo();
	struct mallinfo mi;

	mi.arena = (int)m2.arena;
	mi.ordblks = (int)m2.ordblks;
	mi.smblks = (int)m2.smblks;
	mi.hblks = (int)m2.hblks;
	mi.hblkhd = (int)m2.hblkhd;
	mi.usmblks = (int)m2.usmblks;
	mi.fsmblks = (int)m2.fsmblks;
	mi.uordblks = (int)m2.uordblks;
	mi.fordblks = (int)m2.fordblks;
	mi.keepcost = (int)m2.keepcost;
	return (mi);
}

UMEM_TEXT_COLD UMEM_EXPORT void
malloc_stats(void)
{
	(void) umem_cache_stats_print(STDERR_FILENO);
}

/*
 * UMEM_OPTIONS=stats: the cache table and the heap's totals on stderr at
 * exit (as jemalloc's stats_print or MIMALLOC_SHOW_STATS).  A destructor,
 * not atexit(): registering from inside malloc could allocate.  It runs
 * after the program's own destructors (the library was initialised
 * before the program).
 */
UMEM_TEXT_COLD static void
malloc_stats_print_exit(void)
{
	char line[256];
	struct mallinfo2 mi;
	size_t n;

	mi = umem_mallinfo();
	n = umem_format(line, sizeof (line), "umem: at exit (UMEM_OPTIONS="
	    "stats): heap %zu KiB, in use by the program %zu KiB (%zu KiB "
	    "in large blocks)\n", (mi.arena + mi.hblkhd) >> 10,
	    (mi.uordblks + mi.hblkhd) >> 10, mi.hblkhd >> 10);
	if (write(STDERR_FILENO, line, n) == (ssize_t)n)
		(void) umem_cache_stats_print(STDERR_FILENO);
}

/*
 * (Not cold itself: every process runs it, and a call into the cold
 * section at exit made the cold text's 64 KiB fault-around window
 * resident, in the peak RSS that time -v and the like report.)
 */
static void __attribute__((destructor))
malloc_stats_at_exit(void)
{
	if (umem_stats_at_exit && __atomic_load_n(&umem_ready,
	    __ATOMIC_ACQUIRE))
		malloc_stats_print_exit();
}

/*
 * glibc's parameters are accepted and have no effect here; the result is
 * glibc's (M_MXFAST rejects values above its 160-byte limit).
 */
UMEM_EXPORT int
mallopt(int param, int value)
{
	if (param == M_MXFAST)
		return (value >= 0 && (size_t)value <= 80 * sizeof (size_t) / 4);
	return (param >= -8 && param <= 1 ? 1 : 0);
}

UMEM_TEXT_COLD UMEM_EXPORT int
malloc_info(int options, FILE *fp)
{
	char buf[768];
	struct mallinfo2 mi;
	size_t n;
	int fd;

	if (options != 0)
		return (EINVAL);	/* glibc returns it, errno untouched */
	if (fp == NULL || (fd = fileno(fp)) < 0) {
		errno = EINVAL;
		return (-1);
	}
	mi = umem_mallinfo();
	/* glibc's totals (fast, rest, mmap, system), then ours. */
	n = umem_format(buf, sizeof (buf), "<malloc version=\"umem-1\">\n"
	    "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
	    "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
	    "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
	    "<system type=\"current\" size=\"%zu\"/>\n"
	    "<total type=\"heap\" size=\"%zu\"/>\n"
	    "<total type=\"inuse\" size=\"%zu\"/>\n"
	    "<total type=\"large\" size=\"%zu\"/>\n"
	    "</malloc>\n", mi.smblks, mi.fsmblks, mi.ordblks,
	    mi.fordblks - mi.fsmblks, mi.hblks, mi.hblkhd,
	    mi.arena + mi.hblkhd, mi.arena + mi.hblkhd,
	    mi.uordblks + mi.hblkhd, mi.hblkhd);
	return (write(fd, buf, n < sizeof (buf) ? n : sizeof (buf) - 1) < 0 ?
	    -1 : 0);
}

/*
 * glibc's internal names, which some programs and libraries call.  Thin
 * wrappers (tail calls), since an alias would have to copy glibc's
 * attributes, which clang cannot express.
 */
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);

UMEM_EXPORT void *
__libc_malloc(size_t size)
{
	return (malloc(size));
}

UMEM_EXPORT void
__libc_free(void *buf)
{
	free(buf);
}

UMEM_EXPORT void *
__libc_calloc(size_t n, size_t m)
{
	return (calloc(n, m));
}

UMEM_EXPORT void *
__libc_realloc(void *old, size_t size)
{
	return (realloc(old, size));
}

UMEM_EXPORT void *
__libc_memalign(size_t align, size_t size)
{
	return (memalign(align, size));
}

UMEM_EXPORT void *
__libc_valloc(size_t size)
{
	return (valloc(size));
}

UMEM_EXPORT void *
__libc_pvalloc(size_t size)
{
	return (pvalloc(size));
}
