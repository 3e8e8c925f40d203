/*
 * platform.c - pages, time, locks, reports and record pools for Linux.
 *
 * Everything above this file reaches the OS only through it.  It uses
 * system calls and async-signal-safe libc functions only, so it can run
 * before the malloc layer exists, inside malloc, and in a forked child.
 */
#define	_GNU_SOURCE
#include "platform.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

size_t umem_pagesize = 4096;
int umem_abort_on_error = 1;

/*
 * The auxiliary vector rather than sysconf(): the same value, without
 * touching sysconf's code and its jump table in libc (pages that a small
 * program would not otherwise have resident).
 */
void
umem_platform_init(void)
{
	unsigned long ps = getauxval(AT_PAGESZ);

	if (ps > 0 && IS_P2((size_t)ps))
		umem_pagesize = (size_t)ps;
}

/*
 * String helpers for start-up and reports, so that initialisation does
 * not pull libc's getenv/strlen/strncpy pages in (each call into a libc
 * page that the program does not use costs a 64 KiB fault-around window
 * of resident file pages).
 */
size_t
umem_strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n] != '\0')
		n++;
	return (n);
}

/* Copy at most len - 1 characters and terminate (len > 0). */
void
umem_strlcpy(char *dst, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/*
 * prefix and then num in decimal, cut to len - 1 characters (len > 0):
 * the names of the caches made as a program runs.  (umem_format, which
 * does much more, is cold code: reports and statistics.)
 */
void
umem_name(char *dst, size_t len, const char *prefix, size_t num)
{
	char digits[20];
	size_t i, d = 0;

	for (i = 0; i + 1 < len && prefix[i] != '\0'; i++)
		dst[i] = prefix[i];
	do {
		digits[d++] = (char)('0' + num % 10);
		num /= 10;
	} while (num != 0);
	while (d > 0 && i + 1 < len)
		dst[i++] = digits[--d];
	dst[i] = '\0';
}

/* getenv() without libc's code; as thread-safe as getenv() is. */
const char *
umem_getenv(const char *name)
{
	size_t l = umem_strnlen(name, SIZE_MAX);

	for (char **e = environ; e != NULL && *e != NULL; e++) {
		const char *v = *e;
		size_t i;

		for (i = 0; i < l && v[i] == name[i]; i++)
			;
		if (i == l && v[l] == '=')
			return (v + l + 1);
	}
	return (NULL);
}

/*
 * ------------------------------------------------------------------------
 * Pages
 * ------------------------------------------------------------------------
 */
void *
umem_pages_map(size_t size)
{
	int saved = errno;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	errno = saved;
	return (p == MAP_FAILED ? NULL : p);
}

void
umem_pages_unmap(void *addr, size_t size)
{
	int saved = errno;

	(void) munmap(addr, size);
	errno = saved;
}

/*
 * Reserve address space that is readable and writable from the start but
 * not charged against commit (MAP_NORESERVE): pages are backed on first
 * touch and given back with umem_pages_release().  Keeping one protection
 * for the whole reservation means the kernel never splits it into more
 * mappings, however fragmented its use (see DESIGN.md, "page backend").
 * The result is aligned to align (a power of two >= the page size) by
 * over-mapping and trimming.
 */
void *
umem_pages_reserve(size_t size, size_t align)
{
	int saved = errno;
	size_t extra = align > umem_pagesize ? align - umem_pagesize : 0;
	char *p, *a;

	if (size + extra < size) {
		errno = ENOMEM;
		return (NULL);
	}
	p = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return (NULL);
	}
	a = (char *)P2ROUNDUP((uintptr_t)p, align);
	if (a != p)
		(void) munmap(p, (size_t)(a - p));
	if (a + size != p + size + extra)
		(void) munmap(a + size, (size_t)(p + size + extra - (a + size)));
	errno = saved;
	return (a);
}

uint64_t umem_pages_release_calls;

/*
 * Give the physical pages behind [addr, addr + size) back to the OS.  The
 * range stays mapped and reads as zero afterwards.  MADV_DONTNEED (not
 * MADV_FREE) so that RSS drops at once and measurements are honest.
 */
void
umem_pages_release(void *addr, size_t size)
{
	int saved = errno;

	(void) __atomic_fetch_add(&umem_pages_release_calls, 1,
	    __ATOMIC_RELAXED);
	(void) madvise(addr, size, MADV_DONTNEED);
	errno = saved;
}

/*
 * Fault in [addr, addr + size) for writing with one call
 * (MADV_POPULATE_WRITE, Linux 5.14), for fresh pages the caller is about
 * to write on every page: one kernel entry instead of a page fault per
 * page.  Pages already present are left as they are, so the call never
 * changes what the range holds.  A kernel without it (EINVAL) turns it
 * off; any other failure is left to the page faults it would have saved.
 */
#ifndef MADV_POPULATE_WRITE
#define	MADV_POPULATE_WRITE	23
#endif
static int umem_populate_off;

void
umem_pages_populate(void *addr, size_t size)
{
	int saved = errno;

	if (__atomic_load_n(&umem_populate_off, __ATOMIC_RELAXED))
		return;
	if (madvise(addr, size, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
		__atomic_store_n(&umem_populate_off, 1, __ATOMIC_RELAXED);
	errno = saved;
}

/*
 * ------------------------------------------------------------------------
 * Time and condition variables
 * ------------------------------------------------------------------------
 */
uint64_t
umem_gethrtime(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/*
 * The coarse clock's reader: libc's clock_gettime until the debug layer
 * asks for the vDSO's own function (umem_coarse_clock_init).
 */
umem_clock_fn_t umem_coarse_clock = clock_gettime;

/*
 * A function of the vDSO by name, or NULL.  The kernel maps this small
 * shared object into every process (AT_SYSINFO_EHDR, absent under
 * valgrind); calling it directly saves libc's wrapper and its PLT jump,
 * about 2 ns of the 5 a coarse clock read costs.  The symbol count comes
 * from the SysV hash table, which x86-64 and arm64 kernels link the vDSO
 * with; without one, NULL.  No allocation and no libc string calls.
 */
static void *
vdso_lookup(const char *name)
{
	uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR), bias = 0;
	const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
	const ElfW(Phdr) *ph;
	const ElfW(Dyn) *dyn = NULL;
	const ElfW(Sym) *sym = NULL;
	const Elf32_Word *hash = NULL;
	const char *str = NULL;
	int loaded = 0;

	if (base == 0 || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != (sizeof (void *) == 8 ? ELFCLASS64 :
	    ELFCLASS32))
		return (NULL);
	ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !loaded) {
			bias = base + ph[i].p_offset - ph[i].p_vaddr;
			loaded = 1;
		} else if (ph[i].p_type == PT_DYNAMIC) {
			dyn = (const ElfW(Dyn) *)(base + ph[i].p_offset);
		}
	}
	if (!loaded || dyn == NULL)
		return (NULL);
	for (; dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_SYMTAB)
			sym = (const ElfW(Sym) *)(bias + dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_STRTAB)
			str = (const char *)(bias + dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_HASH)
			hash = (const Elf32_Word *)(bias + dyn->d_un.d_ptr);
	}
	if (sym == NULL || str == NULL || hash == NULL)
		return (NULL);
	for (Elf32_Word i = 0; i < hash[1]; i++) {	/* nchain: symbols */
		const char *s = str + sym[i].st_name, *n = name;

		if (ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC ||
		    sym[i].st_shndx == SHN_UNDEF)
			continue;
		while (*n != '\0' && *s == *n)
			s++, n++;
		if (*s == '\0' && *n == '\0')
			return ((void *)(bias + sym[i].st_value));
	}
	return (NULL);
}

UMEM_TEXT_COLD void
umem_coarse_clock_init(void)
{
	static const char *const names[] = {
		"__vdso_clock_gettime",		/* x86-64 */
		"__kernel_clock_gettime",	/* arm64 */
	};
	struct timespec ts;

	for (size_t i = 0; i < sizeof (names) / sizeof (names[0]); i++) {
		umem_clock_fn_t fn = (umem_clock_fn_t)vdso_lookup(names[i]);

		/* used only if it answers now */
		if (fn != NULL && fn(CLOCK_MONOTONIC_COARSE, &ts) == 0) {
			__atomic_store_n(&umem_coarse_clock, fn,
			    __ATOMIC_RELAXED);
			return;
		}
	}
}

void
umem_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t attr;

	(void) pthread_condattr_init(&attr);
	(void) pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	(void) pthread_cond_init(cv, &attr);
	(void) pthread_condattr_destroy(&attr);
}

void
umem_cond_timedwait_ns(pthread_cond_t *cv, umem_lock_t *l, uint64_t ns)
{
	uint64_t t = umem_gethrtime() + ns;
	struct timespec ts;

	ts.tv_sec = (time_t)(t / 1000000000ull);
	ts.tv_nsec = (long)(t % 1000000000ull);
	(void) pthread_cond_timedwait(cv, l, &ts);
}

/*
 * ------------------------------------------------------------------------
 * Fork handlers, registered when a second thread appears (platform.h)
 * ------------------------------------------------------------------------
 */
#define	UMEM_ATFORK_MAX	8	/* vmem, the heap, update, malloc classes: 4 */

typedef struct umem_atfork {
	void	(*af_prepare)(void);
	void	(*af_parent)(void);
	void	(*af_child)(void);
} umem_atfork_t;

int umem_atfork_armed;
static umem_atfork_t umem_atfork_table[UMEM_ATFORK_MAX];
static int umem_atfork_count;
/* A raw mutex: umem_lock() would arm. */
static pthread_mutex_t umem_atfork_lock = PTHREAD_MUTEX_INITIALIZER;
/* pthread_atfork() may allocate: its malloc must not arm again. */
static __thread int umem_atfork_arming
    __attribute__((tls_model("initial-exec")));

void
umem_atfork_add(void (*prepare)(void), void (*parent)(void),
    void (*child)(void))
{
	(void) pthread_mutex_lock(&umem_atfork_lock);
	if (umem_atfork_armed) {
		(void) pthread_atfork(prepare, parent, child);
	} else {
		/* Registering out of order would break the lock order. */
		if (umem_atfork_count == UMEM_ATFORK_MAX)
			umem_panic("umem: more than %d fork handlers",
			    UMEM_ATFORK_MAX);
		umem_atfork_table[umem_atfork_count++] =
		    (umem_atfork_t){ prepare, parent, child };
	}
	(void) pthread_mutex_unlock(&umem_atfork_lock);
}

void
umem_atfork_arm(void)
{
	int i;

	if (umem_atfork_arming)
		return;
	umem_atfork_arming = 1;
	(void) pthread_mutex_lock(&umem_atfork_lock);
	if (!umem_atfork_armed) {
		for (i = 0; i < umem_atfork_count; i++)
			(void) pthread_atfork(umem_atfork_table[i].af_prepare,
			    umem_atfork_table[i].af_parent,
			    umem_atfork_table[i].af_child);
		__atomic_store_n(&umem_atfork_armed, 1, __ATOMIC_RELEASE);
	}
	(void) pthread_mutex_unlock(&umem_atfork_lock);
	umem_atfork_arming = 0;
}

/*
 * ------------------------------------------------------------------------
 * Formatting and reports
 * ------------------------------------------------------------------------
 */
typedef struct fmtbuf {
	char	*fb_buf;
	size_t	fb_len;		/* capacity including the NUL */
	size_t	fb_pos;		/* characters produced (may exceed fb_len) */
} fmtbuf_t;

static void
fmt_putc(fmtbuf_t *fb, char c)
{
	if (fb->fb_pos + 1 < fb->fb_len)
		fb->fb_buf[fb->fb_pos] = c;
	fb->fb_pos++;
}

UMEM_TEXT_COLD static void
fmt_num(fmtbuf_t *fb, uint64_t v, unsigned base, int neg, int width, int zero)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	if (neg && zero)
		fmt_putc(fb, '-');
	for (int w = n + (neg != 0); w < width; w++)
		fmt_putc(fb, zero ? '0' : ' ');
	if (neg && !zero)
		fmt_putc(fb, '-');
	while (n > 0)
		fmt_putc(fb, tmp[--n]);
}

UMEM_TEXT_COLD size_t
umem_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	fmtbuf_t fb = { buf, len, 0 };

	for (const char *f = fmt; *f != '\0'; f++) {
		int lng = 0, width = 0, zero = 0, prec = -1;

		if (*f != '%') {
			fmt_putc(&fb, *f);
			continue;
		}
		f++;
		if (*f == '0') {
			zero = 1;
			f++;
		}
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (*f++ - '0');
		if (*f == '.') {
			f++;
			if (*f == '*') {
				prec = va_arg(ap, int);
				f++;
			} else {
				for (prec = 0; *f >= '0' && *f <= '9'; f++)
					prec = prec * 10 + (*f - '0');
			}
		}
		while (*f == 'l' || *f == 'z') {
			lng = (*f == 'z') ? 2 : lng + 1;
			f++;
		}
		switch (*f) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);

			fmt_num(&fb, v < 0 ? -(uint64_t)v : (uint64_t)v, 10,
			    v < 0, width, zero);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? va_arg(ap, uint64_t) :
			    va_arg(ap, unsigned);

			fmt_num(&fb, v, *f == 'x' ? 16 : 10, 0, width, zero);
			break;
		}
		case 'p':
			fmt_putc(&fb, '0');
			fmt_putc(&fb, 'x');
			fmt_num(&fb, (uintptr_t)va_arg(ap, void *), 16, 0,
			    width, zero);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			size_t n = s == NULL ? 6 : umem_strnlen(s,
			    prec >= 0 ? (size_t)prec : SIZE_MAX);

			for (size_t i = n; i < (size_t)width; i++)
				fmt_putc(&fb, ' ');
			for (size_t i = 0; i < n; i++)
				fmt_putc(&fb, s == NULL ? "(null)"[i] : s[i]);
			break;
		}
		case 'c':
			fmt_putc(&fb, (char)va_arg(ap, int));
			break;
		case '%':
			fmt_putc(&fb, '%');
			break;
		case '\0':
			f--;
			break;
		default:
			fmt_putc(&fb, '%');
			fmt_putc(&fb, *f);
			break;
		}
	}
	if (len > 0)
		buf[fb.fb_pos < len ? fb.fb_pos : len - 1] = '\0';
	return (fb.fb_pos);
}

UMEM_TEXT_COLD size_t
umem_format(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = umem_vformat(buf, len, fmt, ap);
	va_end(ap);
	return (n);
}

#define	UMEM_REPORT_MAX	1024

static umem_lock_t report_lock = UMEM_LOCK_INITIALIZER;
static char report_last[UMEM_REPORT_MAX];
static size_t report_last_len;

static void
report_write(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

UMEM_TEXT_COLD static void
umem_vreport(const char *fmt, va_list ap)
{
	char line[UMEM_REPORT_MAX];
	int saved = errno;
	size_t n = umem_vformat(line, sizeof (line) - 1, fmt, ap);

	if (n > sizeof (line) - 2)
		n = sizeof (line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	umem_lock(&report_lock);
	(void) memcpy(report_last, line, n + 1);
	report_last_len = n;
	report_write(line, n);
	umem_unlock(&report_lock);
	errno = saved;
}

UMEM_TEXT_COLD void
umem_report(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	umem_vreport(fmt, ap);
	va_end(ap);
}

UMEM_TEXT_COLD void
umem_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	umem_vreport(fmt, ap);
	va_end(ap);
	if (umem_abort_on_error)
		abort();
}

UMEM_TEXT_COLD void
umem_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	umem_vreport(fmt, ap);
	va_end(ap);
	abort();
}

/*
 * Shared by the public error calls of each layer (vmem_last_error(), ...).
 */
size_t umem_last_report(char *buf, size_t len);

size_t
umem_last_report(char *buf, size_t len)
{
	size_t n;

	umem_lock(&report_lock);
	n = report_last_len;
	if (len > 0) {
		size_t c = n < len - 1 ? n : len - 1;

		(void) memcpy(buf, report_last, c);
		buf[c] = '\0';
	}
	umem_unlock(&report_lock);
	return (n);
}

/*
 * ------------------------------------------------------------------------
 * Record pools
 * ------------------------------------------------------------------------
 */
static int
pool_grow(umem_pool_t *pp)
{
	char *p = umem_pages_map(pp->pool_chunk);

	if (p == NULL)
		return (0);
	pp->pool_next = p;
	pp->pool_limit = p + pp->pool_chunk;
	pp->pool_mapped += pp->pool_chunk;
	return (1);
}

static void *
pool_take(umem_pool_t *pp)
{
	void *rec = pp->pool_free;

	if (rec != NULL) {
		pp->pool_free = *(void **)rec;
	} else {
		if ((size_t)(pp->pool_limit - pp->pool_next) < pp->pool_size &&
		    !pool_grow(pp))
			return (NULL);
		rec = pp->pool_next;
		pp->pool_next += pp->pool_size;
	}
	pp->pool_inuse++;
	return (rec);
}

void *
umem_pool_alloc(umem_pool_t *pp)
{
	void *rec;

	umem_lock(&pp->pool_lock);
	rec = pool_take(pp);
	umem_unlock(&pp->pool_lock);
	return (rec);
}

void
umem_pool_free(umem_pool_t *pp, void *rec)
{
	umem_lock(&pp->pool_lock);
	*(void **)rec = pp->pool_free;
	pp->pool_free = rec;
	pp->pool_inuse--;
	umem_unlock(&pp->pool_lock);
}

size_t
umem_pool_alloc_list(umem_pool_t *pp, void **listp, size_t n)
{
	size_t got = 0;

	umem_lock(&pp->pool_lock);
	while (got < n) {
		void *rec = pool_take(pp);

		if (rec == NULL)
			break;
		*(void **)rec = *listp;
		*listp = rec;
		got++;
	}
	umem_unlock(&pp->pool_lock);
	return (got);
}

void
umem_pool_free_list(umem_pool_t *pp, void *head, void *tail, size_t n)
{
	if (n == 0)
		return;
	umem_lock(&pp->pool_lock);
	*(void **)tail = pp->pool_free;
	pp->pool_free = head;
	pp->pool_inuse -= n;
	umem_unlock(&pp->pool_lock);
}
