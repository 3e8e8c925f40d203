/*
 * debug.h - the debugging layer (debug.c) beside the object caches:
 * UMEM_DEBUG / UMEM_LOGGING, buffer tags, audit records, error reports,
 * logs and failure injection.  Not installed.
 *
 * The inline fast paths never serve a cache with any debugging (UMF_DEBUG:
 * its cache_fast_slots is 0), so every allocation and free goes through
 * umem_cache_alloc_slow / umem_cache_free_slow, which hand it to
 * umem_debug_alloc / umem_debug_free; those check the buffer and then use
 * the cache's magazine layer (umem_mag_get / umem_mag_put), which holds
 * freed, patterned buffers.  The release fast path pays nothing.
 *
 * Chunk layout of a debug cache (cache_buftag >= 0):
 *
 *	buf                 buf + cache_buftag
 *	| buffer | 0xbb slack | umem_buftag_t | audit[0] alloc | audit[1] free |
 *
 * A firewall cache (UMF_FIREWALL) puts its buffer at the end of a slab
 * aligned to its size and followed by an unmapped page; its tag and audit
 * records sit at the start of that slab (cache_buftag < 0: the tag is at
 * P2ALIGN(buf, cache_slabsize)).
 */
#ifndef _UMEM_DEBUG_H
#define	_UMEM_DEBUG_H

#include "umem_impl.h"
#include <link.h>		/* ElfW */

struct dl_phdr_info;		/* <link.h> declares it with _GNU_SOURCE */

/* Debug bits of cache_flags (illumos values where illumos has them). */
#define	UMF_AUDIT	0x0100	/* last alloc and free: thread, time, stack */
#define	UMF_DEADBEEF	0x0200	/* free / uninitialised patterns */
#define	UMF_REDZONE	0x0400	/* redzone word and slack bytes */
#define	UMF_CONTENTS	0x0800	/* freed contents to the contents log */
#define	UMF_FIREWALL	0x1000	/* buffer ends at an unmapped page */
#define	UMF_LITE	0x2000	/* verify only the first 8 bytes */
#define	UMF_CHECKSIGNAL	0x4000	/* report calls from signal handlers */
#define	UMF_DEBUG	(UMF_AUDIT | UMF_DEADBEEF | UMF_REDZONE | \
			    UMF_CONTENTS | UMF_FIREWALL | UMF_LITE | \
			    UMF_CHECKSIGNAL)

/* Patterns (64-bit forms of the 1994 paper's words). */
#define	UMEM_FREE_PATTERN	0xdeadbeefdeadbeefULL
#define	UMEM_UNINIT_PATTERN	0xbaddcafebaddcafeULL
#define	UMEM_REDZONE_PATTERN	0xfeedfacefeedfaceULL
#define	UMEM_REDZONE_BYTE	0xbb
#define	UMEM_BUFTAG_ALLOC	0xa110c8edUL
#define	UMEM_BUFTAG_FREE	0xf4eef4eeUL
/* A sized buffer (umem_alloc, malloc) keeps 251 * size + 1 here. */
#define	UMEM_SIZE_ENCODE(x)	(251 * (uint64_t)(x) + 1)
#define	UMEM_SIZE_VALID(x)	((x) % 251 == 1)
#define	UMEM_SIZE_DECODE(x)	(((x) - 1) / 251)

/*
 * The buffer tag.  bt_redzone is UMEM_REDZONE_PATTERN, or for a sized
 * buffer the pattern's low half with UMEM_SIZE_ENCODE(size) in the high
 * half.  bt_link is the slab layer's free-list link (small slabs) so that
 * nothing is written into a free buffer's pattern.  bt_bxstat is the
 * buffer's address XOR UMEM_BUFTAG_ALLOC or UMEM_BUFTAG_FREE.
 */
typedef struct umem_buftag {
	uint64_t	bt_redzone;
	void		*bt_link;
	uintptr_t	bt_bxstat;
} umem_buftag_t;

/* One transaction of a buffer (UMF_AUDIT): [0] last alloc, [1] last free. */
typedef struct umem_audit {
	uint64_t	au_time;	/* umem_gethrtime(); 0 = never */
	uint32_t	au_tid;		/* gettid() */
	uint16_t	au_depth;	/* frames in au_stack */
	uint16_t	au_pad;
	uintptr_t	au_stack[];	/* return addresses, innermost first */
} umem_audit_t;

/* Error classes (illumos numbering). */
typedef enum umem_errclass {
	UMERR_MODIFIED = 0,	/* buffer modified after being freed */
	UMERR_REDZONE,		/* write past the end of the buffer */
	UMERR_DUPFREE,		/* duplicate free */
	UMERR_BADADDR,		/* not a buffer of this cache */
	UMERR_BADBUFTAG,	/* buffer tag corrupted */
	UMERR_BADBUFCTL,	/* free-list link / bufctl corrupted */
	UMERR_BADCACHE,		/* freed to the wrong cache */
	UMERR_BADSIZE,		/* umem_free size != allocated size */
	UMERR_BADBASE,		/* free of an interior pointer */
	UMERR_NCLASSES
} umem_errclass_t;

/* Settings from UMEM_DEBUG / UMEM_LOGGING (debug.c). */
extern uint32_t umem_debug_flags;	/* UMF_* for new caches */
extern size_t umem_debug_maxverify;	/* bytes of pattern checked */
extern size_t umem_debug_minfirewall;	/* firewall buffers >= this */
extern uint32_t umem_audit_frames;	/* stack depth kept */
extern size_t umem_content_bytes;	/* bytes saved per free */
extern int umem_debug_findleaks_atexit;	/* UMEM_DEBUG=findleaks */
extern volatile uint32_t umem_mtbf;	/* 0 = no failure injection */

/* Read UMEM_DEBUG and UMEM_LOGGING (and the _umem_*_init hooks). */
void umem_debug_options(void);
/* The update thread's tick for the records' clock (ns; 0: none due). */
uint64_t umem_debug_clock_tick(void);
/* Debug flags for a new cache; 0 for internal, NOTOUCH, NODEBUG caches. */
uint32_t umem_debug_cache_flags(int cflags, size_t bufsize);
/*
 * Lay out a debug cache (sets cache_buftag, cache_verify, cache_audit
 * and the chunk size) before its slab geometry; 0 or an errno value.
 */
int umem_debug_geometry(umem_cache_t *cp);
/* After umem_slab_geometry(): link offset, firewall slab shape. */
void umem_debug_geometry_post(umem_cache_t *cp);
/* The program's _umem_options_init() string, or NULL. */
const char *umem_options_hook(void);
/* The slab layer's link offset for a debug cache (in the tag). */
size_t umem_debug_link_offset(umem_cache_t *cp);
/* A new slab's buffers: mark free, fill patterns.  No locks. */
void umem_debug_slab_init(umem_cache_t *cp, void *base, uint32_t chunks);

/* The slow paths of a debug cache. */
void *umem_debug_alloc(umem_cache_t *cp, int flags);
void umem_debug_free(umem_cache_t *cp, void *buf);
/* umem_alloc / malloc from a debug class: a tagged block of size bytes. */
void *umem_debug_block_alloc(umem_cache_t *cp, size_t size, int umflags);
/*
 * Large blocks (pages from vmem) with redzones on: UMEM_LARGE_TAG more
 * bytes, holding a tag at the block's end (requested size, state) after
 * 0xbb slack.  umem_debug_large_size() returns the requested size, or
 * SIZE_MAX after reporting a damaged tag (or, with check_slack, slack).
 */
#define	UMEM_LARGE_TAG		16
#define	umem_debug_large_extra()	\
	((umem_debug_flags & UMF_REDZONE) ? UMEM_LARGE_TAG : 0)
void umem_debug_large_init(void *buf, size_t rsize, size_t size);
size_t umem_debug_large_size(void *buf, size_t rsize, int check_slack);
/* The requested size of a sized buffer, else the cache's bufsize. */
size_t umem_debug_get_size(umem_cache_t *cp, void *buf);
/* umem_free(buf, size): report a size that is not the allocated one. */
int umem_debug_check_size(umem_cache_t *cp, void *buf, size_t size);

/* Accessors for leak detection and reports. */
umem_buftag_t *umem_debug_tag(umem_cache_t *cp, void *buf);
/* 1 allocated, 0 free, -1 the tag is corrupt (debug caches only). */
int umem_debug_state(umem_cache_t *cp, void *buf);
/* which: 0 = last allocation, 1 = last free; NULL without UMF_AUDIT. */
umem_audit_t *umem_debug_audit(umem_cache_t *cp, void *buf, int which);
/* Print an audit record's stack, symbolised, to fd, one frame a line. */
void umem_debug_print_stack(int fd, const umem_audit_t *ap,
    const char *indent);

/*
 * Report an error of class cls about buf, which was given to cache cp
 * (NULL if unknown); extra is a one-line detail (may be NULL).  Writes the
 * report to stderr and to the error log, then aborts unless noabort.
 */
void umem_debug_error(umem_errclass_t cls, umem_cache_t *cp, void *buf,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Failure log entry for a failed allocation (UMEM_LOGGING=fail). */
void umem_debug_log_fail(umem_cache_t *cp, size_t size);
/* The UMEM_LOGGING logs' memory, for the leak scan to leave out. */
int umem_debug_log_ranges(uintptr_t *lo, size_t *size, int max);
/* Firewall: the arena of firewall slabs (guard page after each). */
void *umem_firewall_slab_alloc(size_t slabsize);
void umem_firewall_slab_free(void *mem, size_t slabsize);

/* Capture up to max return addresses of the caller's callers, skipping */
/* frames inside libumem; returns the number stored. */
int umem_getpcstack(uintptr_t *pcs, int max);
/*
 * unwind.c: one frame up from (pc, sp, bp) by the unwind tables, reading
 * the stack only below top; first: pc is not a return address.  0; 1
 * after a signal frame (pc is the interrupted instruction, not a return
 * address, and sp may be on another stack); -1 where the walk ends.
 */
int umem_unwind_step(uintptr_t *pcp, uintptr_t *spp, uintptr_t *bpp,
    uintptr_t top, int first);
extern int umem_unwind_dwarf;		/* UMEM_DEBUG=unwind=dwarf */
const ElfW(Phdr) *umem_phdr_find(const struct dl_phdr_info *info,
    uint32_t type, uintptr_t addr);
/*
 * symbols.c: the function holding pc (from its object's .symtab, else its
 * exports) and pc's offset in it; *filep: the object's file, or NULL.
 */
const char *umem_symbol(uintptr_t pc, const char **filep, uintptr_t *offp);

#endif /* _UMEM_DEBUG_H */
