/*
 * percpu.c - CPU identity for the magazine layer: mode selection, rseq
 * registration (glibc's, or our own when glibc has none), the slow path's
 * claim section, and the membarrier fence.  See percpu.h for the theory.
 *
 * Mode selection at init ("auto"):
 *  1. glibc registered rseq (__rseq_size != 0, cpu_id valid): use its area
 *     at %fs + __rseq_offset.  Usable size = min(max(__rseq_size, 32),
 *     AT_RSEQ_FEATURE_SIZE) (glibc 2.35-2.39 report 32, 2.40 reports 20
 *     for a 32-byte area); mm_cid is usable iff that is >= 28.
 *  2. glibc did not (GLIBC_TUNABLES=glibc.pthread.rseq=0, older glibc):
 *     register our own 32-byte initial-exec TLS area, per thread, lazily
 *     (a thread's area starts with cpu_id = mm_cid = -1, out of range, so
 *     its first fast path fails into the slow path, which registers it).
 *  3. Neither works (no rseq syscall, valgrind, seccomp), or not x86-64,
 *     or a TSan build: thread mode.
 * mm_cid is preferred over cpu_id: it is dense (close to 0) under cpusets
 * and for processes with few threads, so fewer slots hold magazines.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/membarrier.h>

#include "percpu.h"

#ifndef AT_RSEQ_FEATURE_SIZE
#define	AT_RSEQ_FEATURE_SIZE	27
#endif

umem_percpu_t umem_percpu;

/* glibc >= 2.35 exports these; weak so that we also link without them. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

static __thread uint32_t umem_thread_slot
    __attribute__((tls_model("initial-exec")));	/* slot + 1; 0 unset */
static uint32_t umem_slot_next;

#ifdef UMEM_HAVE_RSEQ
/* Our own area, used only when glibc registered none. */
static __thread struct umem_rseq_abi umem_own_rseq
    __attribute__((tls_model("initial-exec"))) = {
	.ra_cpu_id = (uint32_t)-1, .ra_mm_cid = (uint32_t)-1
};
static __thread int umem_own_state
    __attribute__((tls_model("initial-exec")));	/* 0 untried, 1 ok, -1 no */

/*
 * Where the fast paths point in thread mode: never registered, so its
 * slot index reads as UINT32_MAX, above every slot count, and every
 * critical section misses before its commit.  The fast paths then need no
 * test of the mode (one load and branch fewer in malloc and free).
 */
static __thread struct umem_rseq_abi umem_no_rseq
    __attribute__((tls_model("initial-exec"))) = {
	.ra_cpu_id = (uint32_t)-1, .ra_mm_cid = (uint32_t)-1
};

/* The %fs offset of a variable of this thread's TLS. */
static long
tls_offset(const void *p)
{
	long tp;

	__asm__ ("movq %%fs:0, %0" : "=r" (tp));
	return ((long)((const char *)p - (const char *)tp));
}
#endif

/* Parse a sysfs CPU list ("0-3,5"): count and 1 + highest CPU. */
static int
cpulist_read(const char *path, uint32_t *countp, uint32_t *maxp)
{
	char buf[512];
	ssize_t n;
	int fd, i;
	uint32_t count = 0, max = 0, a = 0, cur = 0;
	int have = 0, range = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return (-1);
	n = read(fd, buf, sizeof (buf) - 1);
	(void) close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	for (i = 0; i <= n; i++) {
		char c = buf[i];

		if (c >= '0' && c <= '9') {
			cur = cur * 10 + (uint32_t)(c - '0');
			have = 1;
		} else if (c == '-' && have) {
			a = cur;
			cur = 0;
			have = 0;
			range = 1;
		} else if (have) {
			uint32_t lo = range ? a : cur;

			if (cur >= lo) {
				count += cur - lo + 1;
				if (cur + 1 > max)
					max = cur + 1;
			}
			cur = 0;
			have = 0;
			range = 0;
		}
	}
	if (count == 0)
		return (-1);
	*countp = count;
	*maxp = max;
	return (0);
}

static void
cpu_counts(void)
{
	uint32_t cnt, max;
	cpu_set_t set;

	umem_percpu.pc_ncpu_possible = 0;
	umem_percpu.pc_ncpu_online = 0;
	if (cpulist_read("/sys/devices/system/cpu/possible", &cnt, &max) == 0)
		umem_percpu.pc_ncpu_possible = max;
	if (cpulist_read("/sys/devices/system/cpu/online", &cnt, &max) == 0)
		umem_percpu.pc_ncpu_online = cnt;
	if (umem_percpu.pc_ncpu_online == 0 &&
	    sched_getaffinity(0, sizeof (set), &set) == 0)
		umem_percpu.pc_ncpu_online = (uint32_t)CPU_COUNT(&set);
	if (umem_percpu.pc_ncpu_online == 0)
		umem_percpu.pc_ncpu_online = 1;
	if (umem_percpu.pc_ncpu_possible < umem_percpu.pc_ncpu_online)
		umem_percpu.pc_ncpu_possible = umem_percpu.pc_ncpu_online;
}

static void
thread_mode(void)
{
	uint32_t n = 1;

	/* illumos: 2 x online CPUs, a power of two. */
	while (n < 2 * umem_percpu.pc_ncpu_online)
		n <<= 1;
	umem_percpu.pc_rseq = 0;
	umem_percpu.pc_own = 0;
	umem_percpu.pc_fence = 0;
	umem_percpu.pc_mode = UMEM_PC_THREAD;
	umem_percpu.pc_nslots = n;
#ifdef UMEM_HAVE_RSEQ
	umem_percpu.pc_cs_off = tls_offset(&umem_no_rseq.ra_rseq_cs);
	umem_percpu.pc_idx_off = tls_offset(&umem_no_rseq.ra_cpu_id);
#endif
}

#ifdef UMEM_HAVE_RSEQ
static uint32_t
rseq_read_idx(void)
{
	uint32_t v;

	__asm__ __volatile__("movl %%fs:(%1), %0" : "=r" (v)
	    : "r" (umem_percpu.pc_idx_off) : "memory");
	return (v);
}

int
umem_percpu_register_thread(void)
{
	if (!umem_percpu.pc_own)
		return (-1);
	if (umem_own_state != 0)
		return (umem_own_state > 0 ? 0 : -1);
	if (syscall(SYS_rseq, &umem_own_rseq, sizeof (umem_own_rseq), 0,
	    UMEM_RSEQ_SIG) == 0) {
		umem_own_state = 1;
		return (0);
	}
	umem_own_state = -1;
	return (-1);
}

static int
rseq_try(int want_cid, int want_cpu)
{
	long area;
	uint32_t fsz, idx;
	unsigned long at = getauxval(AT_RSEQ_FEATURE_SIZE);

	if (&__rseq_size != NULL && &__rseq_offset != NULL &&
	    __rseq_size != 0) {
		/* glibc's registration. */
		fsz = __rseq_size < 32 ? 32 : __rseq_size;
		if (at != 0 && at < fsz)
			fsz = (uint32_t)at;
		if (at == 0)
			fsz = 20;	/* kernel before 6.3: no mm_cid */
		area = (long)__rseq_offset;
		umem_percpu.pc_own = 0;
	} else {
		/* None: our own, if the kernel lets us. */
		fsz = (at != 0 && at < 32) ? (uint32_t)at : 32;
		if (at == 0)
			fsz = 20;
		area = tls_offset(&umem_own_rseq);
		umem_percpu.pc_own = 1;
		umem_own_state = 0;
		if (umem_percpu_register_thread() != 0) {
			umem_percpu.pc_own = 0;
			return (-1);
		}
	}
	umem_percpu.pc_feature_size = fsz;
	umem_percpu.pc_cs_off = area + (long)offsetof(struct umem_rseq_abi,
	    ra_rseq_cs);
	if (want_cid && fsz >= offsetof(struct umem_rseq_abi, ra_mm_cid) + 4) {
		umem_percpu.pc_idx_off = area +
		    (long)offsetof(struct umem_rseq_abi, ra_mm_cid);
		umem_percpu.pc_mode = UMEM_PC_RSEQ_MMCID;
	} else if (want_cpu) {
		umem_percpu.pc_idx_off = area +
		    (long)offsetof(struct umem_rseq_abi, ra_cpu_id);
		umem_percpu.pc_mode = UMEM_PC_RSEQ_CPU;
	} else {
		return (-1);
	}
	/* Both are below the possible CPU count; check that it holds here. */
	umem_percpu.pc_nslots = umem_percpu.pc_ncpu_possible;
	idx = rseq_read_idx();
	if (idx >= umem_percpu.pc_nslots)
		return (-1);
	umem_percpu.pc_fence = (syscall(SYS_membarrier,
	    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0);
	umem_percpu.pc_rseq = 1;
	return (0);
}
#else
int
umem_percpu_register_thread(void)
{
	return (-1);
}
#endif

void
umem_percpu_init(const char *want)
{
	int cid = 1, cpu = 1;

	cpu_counts();
	thread_mode();
	if (want != NULL && strcmp(want, "thread") == 0)
		return;
	if (want != NULL && strcmp(want, "cpu") == 0)
		cid = 0;
	if (want != NULL && strcmp(want, "mmcid") == 0)
		cpu = 0;
#ifdef UMEM_HAVE_RSEQ
	if (rseq_try(cid, cpu) != 0)
		thread_mode();
#else
	(void) cid;
	(void) cpu;
#endif
}

UMEM_TEXT_COLD const char *
umem_percpu_mode_name(void)
{
	switch (umem_percpu.pc_mode) {
	case UMEM_PC_RSEQ_MMCID:
		return (umem_percpu.pc_own ? "rseq-mmcid+own" : "rseq-mmcid");
	case UMEM_PC_RSEQ_CPU:
		return (umem_percpu.pc_own ? "rseq-cpu+own" : "rseq-cpu");
	default:
		return ("thread-lock");
	}
}

uint32_t
umem_percpu_slot(void)
{
#ifdef UMEM_HAVE_RSEQ
	if (umem_percpu.pc_rseq) {
		uint32_t idx = rseq_read_idx();

		if (idx < umem_percpu.pc_nslots)
			return (idx);
		if (umem_percpu.pc_own && umem_own_state == 0 &&
		    umem_percpu_register_thread() == 0) {
			idx = rseq_read_idx();
			if (idx < umem_percpu.pc_nslots)
				return (idx);
		}
		return (UINT32_MAX);
	}
#endif
	if (UMEM_UNLIKELY(umem_thread_slot == 0)) {
		uint32_t s = __atomic_fetch_add(&umem_slot_next, 1,
		    __ATOMIC_RELAXED);

		umem_thread_slot = s % umem_percpu.pc_nslots + 1;
	}
	return (umem_thread_slot - 1);
}

#ifdef UMEM_HAVE_RSEQ
uint64_t
umem_percpu_claim(umem_cpu_cache_t *cc, uint32_t slot)
{
	uint64_t old;

	__asm__ __volatile__(
	    ".pushsection __rseq_cs, \"aw\"\n\t"
	    ".balign 32\n\t"
	    "3:\n\t"
	    ".long 0x0, 0x0\n\t"
	    ".quad 1f, (2f - 1f), 4f\n\t"
	    ".popsection\n\t"
	    ".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
	    ".quad 3b\n\t"
	    ".popsection\n\t"
	    "0:\n\t"
	    "movq $-1, %[old]\n\t"
	    "leaq 3b(%%rip), %%rax\n\t"
	    "movq %%rax, %%fs:(%[csoff])\n\t"
	    "1:\n\t"
	    "movl %%fs:(%[idxoff]), %%ecx\n\t"
	    "cmpl %[slot], %%ecx\n\t"
	    "jne 2f\n\t"
	    "movq %c[w](%[cc]), %[old]\n\t"
	    "movq $0xffff, %c[w](%[cc])\n\t"
	    "2:\n\t"
	    ".pushsection __rseq_failure, \"ax\"\n\t"
	    ".byte 0x0f, 0xb9, 0x3d\n\t"
	    ".long 0x53053053\n\t"
	    "4:\n\t"
	    "jmp 0b\n\t"
	    ".popsection\n\t"
	    : [old] "=&r" (old)
	    : [csoff] "r" (umem_percpu.pc_cs_off),
	      [idxoff] "r" (umem_percpu.pc_idx_off),
	      [slot] "r" (slot), [cc] "r" (cc),
	      [w] "i" (offsetof(umem_cpu_cache_t, cc_word))
	    : "rax", "rcx", "memory", "cc");
	return (old);
}

int
umem_percpu_fence(void)
{
	if (!umem_percpu.pc_fence)
		return (-1);
	while (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
	    0, 0) != 0) {
		if (errno != EINTR && errno != EAGAIN)
			return (-1);
	}
	return (0);
}
#else
uint64_t
umem_percpu_claim(umem_cpu_cache_t *cc, uint32_t slot)
{
	(void) cc;
	(void) slot;
	return (UMEM_PC_MOVED);
}

int
umem_percpu_fence(void)
{
	return (-1);
}
#endif

UMEM_TEXT_COLD void
umem_percpu_fork_child(void)
{
	/*
	 * The forking thread keeps its rseq registration (glibc's or ours)
	 * and its slot.  membarrier registration is per mm; the kernel copies
	 * it into the child's (a child of a single-threaded fork, which runs
	 * no handlers of ours, relies on that: platform.h), and registering
	 * again is harmless.
	 */
#ifdef UMEM_HAVE_RSEQ
	if (umem_percpu.pc_fence)
		umem_percpu.pc_fence = (syscall(SYS_membarrier,
		    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0);
#endif
}
