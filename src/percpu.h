/*
 * percpu.h - which CPU cache a thread uses, and the restartable-sequence
 * (rseq) critical sections of the magazine fast path.
 *
 * Big theory statement
 * --------------------
 * The magazine layer keeps one CPU cache (umem_cpu_cache_t) per CPU slot.
 * Two ways to own a slot exist; the mode is fixed at init (percpu.c):
 *
 *  rseq modes ("rseq-mmcid", "rseq-cpu"): the slot is the thread's mm_cid
 *	(or CPU number), read from the rseq area *inside* each critical
 *	section.  A critical section runs to its single committing store on
 *	one CPU without interruption, or the kernel restarts it at the abort
 *	handler (preemption, migration, signal).  So two sections on one slot
 *	never interleave, and every change to a slot's state is published by
 *	one store of cc_word (rounds + op count).  The fast path takes no
 *	lock and makes no atomic read-modify-write.
 *
 *  thread mode ("thread-lock"): the paper's user-level scheme.  The slot
 *	is chosen by thread (round-robin at a thread's first use) among
 *	2 x CPUs slots, and each slot has a lock that every operation takes.
 *
 * In both modes the slow path (magazine exchange with the depot) runs
 * holding the slot's cc_lock with the slot "detached" (cc_word rounds =
 * UMEM_CC_NONE), so that fast paths fall into the slow path and wait on
 * cc_lock; see magazine.c for the protocol and why migration cannot make
 * it double-issue or lose an object.
 *
 * We never write or reinterpret cpu_id_start (Linux 6.19 stopped
 * rewriting it), never register a second rseq area when glibc has one
 * (tcmalloc's silent fall-back), and say which mode is active in the
 * statistics.
 */
#ifndef _UMEM_PERCPU_H
#define	_UMEM_PERCPU_H

#include <stddef.h>
#include <stdint.h>
#include "umem_impl.h"

#if defined(__x86_64__) && defined(__linux__)
#if defined(__SANITIZE_THREAD__)
#define	UMEM_NO_RSEQ	1	/* TSan cannot see through the asm */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define	UMEM_NO_RSEQ	1
#endif
#endif
#ifndef UMEM_NO_RSEQ
#define	UMEM_HAVE_RSEQ	1
#endif
#endif

#define	UMEM_RSEQ_SIG	0x53053053

/* The kernel ABI struct rseq (our copy: Debian 12's headers lack mm_cid). */
struct umem_rseq_abi {
	uint32_t	ra_cpu_id_start;
	uint32_t	ra_cpu_id;
	uint64_t	ra_rseq_cs;
	uint32_t	ra_flags;
	uint32_t	ra_node_id;
	uint32_t	ra_mm_cid;
	uint32_t	ra_pad;
} __attribute__((aligned(32)));

typedef enum umem_percpu_mode {
	UMEM_PC_THREAD = 0,	/* slot by thread, lock per slot */
	UMEM_PC_RSEQ_CPU,	/* rseq, slot = cpu_id */
	UMEM_PC_RSEQ_MMCID	/* rseq, slot = mm_cid */
} umem_percpu_mode_t;

/* Read-mostly state of the fast path, one cache line. */
typedef struct umem_percpu {
	int		pc_rseq;	/* nonzero: rseq fast path */
	int		pc_mode;	/* umem_percpu_mode_t */
	long		pc_cs_off;	/* %fs offset of rseq_cs */
	long		pc_idx_off;	/* %fs offset of cpu_id or mm_cid */
					/* (thread mode: an unregistered
					   area whose index never matches) */
	int		pc_own;		/* we registered rseq ourselves */
	int		pc_fence;	/* membarrier rseq fence works */
	uint32_t	pc_nslots;	/* CPU caches per cache */
	uint32_t	pc_ncpu_online;
	uint32_t	pc_ncpu_possible;
	uint32_t	pc_feature_size; /* usable bytes of struct rseq */
} __attribute__((aligned(64))) umem_percpu_t;

/* Hidden: reached PC-relative, not through the GOT, on the fast path. */
extern umem_percpu_t umem_percpu __attribute__((visibility("hidden")));

/* Choose the mode (UMEM_OPTIONS percpu=auto|mmcid|cpu|thread). */
void umem_percpu_init(const char *want);
const char *umem_percpu_mode_name(void);

/*
 * The slot the caller would use now.  rseq modes: a hint only (read
 * outside a critical section); UINT32_MAX if this thread has no usable
 * rseq registration (the caller then bypasses the magazine layer).
 * Thread mode: the thread's slot, stable.
 */
uint32_t umem_percpu_slot(void);

/*
 * rseq mode, slow path: with cc_lock of slot `slot' held, detach the slot
 * (store UMEM_CC_NONE into cc_word) in a critical section that commits
 * only if the caller is still on `slot'.  Returns the previous cc_word, or
 * UMEM_PC_MOVED if the caller is no longer on that slot.
 */
#define	UMEM_PC_MOVED	(~0ULL)
uint64_t umem_percpu_claim(umem_cpu_cache_t *cc, uint32_t slot);

/*
 * rseq mode: make every critical section running anywhere in the process
 * either finish or restart (membarrier PRIVATE_EXPEDITED_RSEQ).  Used to
 * take a slot away from its CPU remotely.  0, or -1 if unavailable.
 */
int umem_percpu_fence(void);

/* Own-registration mode: register the calling thread; 0 or -1. */
int umem_percpu_register_thread(void);

/* After fork, in the child. */
void umem_percpu_fork_child(void);

#ifdef UMEM_HAVE_RSEQ
/*
 * Offsets for the asm: the slot array inside the cache, and the fields
 * inside a slot.
 */
#define	UMEM_CC_OFF(f)	(offsetof(struct umem_cache, cache_cpu) + \
	offsetof(umem_cpu_cache_t, f))

/*
 * Fast-path pop: in one critical section on the current slot, if the
 * loaded magazine has rounds, take the top one and commit rounds - 1 (and
 * one more op) with a single store.  NULL means "take the slow path".
 * Only the cache pointer and scratch registers are used, so the caller
 * needs no callee-saved registers.  asm goto: a miss jumps straight to the
 * caller's slow path (no flag to set and test).  Slots at or above
 * *nslots miss: the inline fast paths pass cache_fast_slots, which is 0
 * for a debug cache, and the debug layer passes cache_ncpu.
 */
static inline __attribute__((always_inline)) void *
umem_rseq_pop(struct umem_cache *cp, const uint32_t *nslots)
{
	void *obj;

	__asm__ goto(
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
	    "movq %[csoff], %%rax\n\t"
	    "leaq 3b(%%rip), %%rdx\n\t"
	    "movq %%rdx, %%fs:(%%rax)\n\t"
	    "1:\n\t"
	    "movq %[idxoff], %%rax\n\t"
	    "movl %%fs:(%%rax), %%ecx\n\t"
	    "cmpl %[nslots], %%ecx\n\t"
	    "jae %l[miss]\n\t"
	    "shlq %[shift], %%rcx\n\t"
	    "addq %[cp], %%rcx\n\t"
	    "movq %c[w](%%rcx), %%rdx\n\t"
	    "movzwl %%dx, %%eax\n\t"
	    "subl $1, %%eax\n\t"
	    "cmpl $0xfffe, %%eax\n\t"
	    "jae %l[miss]\n\t"
	    "movq %c[ld](%%rcx), %%rsi\n\t"
	    "movq 8(%%rsi,%%rax,8), %[obj]\n\t"
	    "addq $0xffff, %%rdx\n\t"
	    "movq %%rdx, %c[w](%%rcx)\n\t"
	    "2:\n\t"
	    ".pushsection __rseq_failure, \"ax\"\n\t"
	    ".byte 0x0f, 0xb9, 0x3d\n\t"
	    ".long 0x53053053\n\t"
	    "4:\n\t"
	    "jmp 0b\n\t"
	    ".popsection\n\t"
	    : [obj] "=&r" (obj)
	    : [cp] "r" (cp),
	      [csoff] "m" (umem_percpu.pc_cs_off),
	      [idxoff] "m" (umem_percpu.pc_idx_off),
	      [shift] "i" (UMEM_CPU_CACHE_SHIFT),
	      [nslots] "m" (*nslots),
	      [w] "i" (UMEM_CC_OFF(cc_word)),
	      [ld] "i" (UMEM_CC_OFF(cc_loaded))
	    : "rax", "rcx", "rdx", "rsi", "memory", "cc"
	    : miss);
	if (obj == NULL)		/* rounds are never NULL */
		__builtin_unreachable();
	return (obj);
miss:
	return (NULL);
}

/*
 * Fast-path push: if the loaded magazine has room, store obj in the next
 * slot and commit rounds + 1.  The slot store precedes the commit; if the
 * section aborts, that slot is above rounds and simply unused.  Returns 0
 * for "take the slow path" (asm goto, as above).  UMEM_RSEQ_PUSH(keystore)
 * is the section; keystore is asm run once the push is sure to have room
 * (umem_rseq_push_keyed: the block layer's double-free key).
 */
#define	UMEM_RSEQ_PUSH(keystore)					\
	    ".pushsection __rseq_cs, \"aw\"\n\t"				\
	    ".balign 32\n\t"						\
	    "3:\n\t"							\
	    ".long 0x0, 0x0\n\t"						\
	    ".quad 1f, (2f - 1f), 4f\n\t"				\
	    ".popsection\n\t"						\
	    ".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"		\
	    ".quad 3b\n\t"						\
	    ".popsection\n\t"						\
	    "0:\n\t"							\
	    "movq %[csoff], %%rax\n\t"					\
	    "leaq 3b(%%rip), %%rdx\n\t"					\
	    "movq %%rdx, %%fs:(%%rax)\n\t"				\
	    "1:\n\t"							\
	    "movq %[idxoff], %%rax\n\t"					\
	    "movl %%fs:(%%rax), %%ecx\n\t"				\
	    "cmpl %[nslots], %%ecx\n\t"					\
	    "jae %l[full]\n\t"						\
	    "shlq %[shift], %%rcx\n\t"					\
	    "addq %[cp], %%rcx\n\t"					\
	    "movq %c[w](%%rcx), %%rdx\n\t"				\
	    "movzwl %%dx, %%eax\n\t"					\
	    "cmpl %c[ms](%%rcx), %%eax\n\t"				\
	    "jae %l[full]\n\t"						\
	    keystore							\
	    "movq %c[ld](%%rcx), %%rsi\n\t"				\
	    "movq %[obj], 8(%%rsi,%%rax,8)\n\t"				\
	    "addq $0x10001, %%rdx\n\t"					\
	    "movq %%rdx, %c[w](%%rcx)\n\t"				\
	    "2:\n\t"							\
	    ".pushsection __rseq_failure, \"ax\"\n\t"			\
	    ".byte 0x0f, 0xb9, 0x3d\n\t"					\
	    ".long 0x53053053\n\t"					\
	    "4:\n\t"							\
	    "jmp 0b\n\t"							\
	    ".popsection\n\t"

#define	UMEM_RSEQ_PUSH_INPUTS						\
	      [csoff] "m" (umem_percpu.pc_cs_off),			\
	      [idxoff] "m" (umem_percpu.pc_idx_off),			\
	      [shift] "i" (UMEM_CPU_CACHE_SHIFT),			\
	      [nslots] "m" (*nslots),					\
	      [w] "i" (UMEM_CC_OFF(cc_word)),				\
	      [ms] "i" (UMEM_CC_OFF(cc_magsize)),			\
	      [ld] "i" (UMEM_CC_OFF(cc_loaded))

static inline __attribute__((always_inline)) int
umem_rseq_push(struct umem_cache *cp, const uint32_t *nslots,
    void *obj)
{
	__asm__ goto(UMEM_RSEQ_PUSH("")
	    :
	    : [cp] "r" (cp), [obj] "r" (obj), UMEM_RSEQ_PUSH_INPUTS
	    : "rax", "rcx", "rdx", "rsi", "memory", "cc"
	    : full);
	return (1);
full:
	return (0);
}

/*
 * The same, storing key into the object's first word inside the section:
 * only a push that will commit writes it, so a block of a cache whose
 * pushes all miss (a debug cache: nslots 0) is never written here.
 */
static inline __attribute__((always_inline)) int
umem_rseq_push_keyed(struct umem_cache *cp, const uint32_t *nslots,
    void *obj, uintptr_t key)
{
	__asm__ goto(UMEM_RSEQ_PUSH("movq %[key], (%[obj])\n\t")
	    :
	    : [cp] "r" (cp), [obj] "r" (obj), [key] "r" (key),
	      UMEM_RSEQ_PUSH_INPUTS
	    : "rax", "rcx", "rdx", "rsi", "memory", "cc"
	    : full);
	return (1);
full:
	return (0);
}
#endif /* UMEM_HAVE_RSEQ */

/*
 * The fast paths of umem_cache_alloc()/umem_cache_free(), inline so that
 * the malloc layer pays no call for them: an rseq pop or push, else the
 * out-of-line slow path (umem.c), which ends in the same state machine.
 */
void *umem_cache_alloc_slow(umem_cache_t *cp, int flags);
void umem_cache_free_slow(umem_cache_t *cp, void *buf);

static inline __attribute__((always_inline)) void *
umem_cache_alloc_fast(umem_cache_t *cp, int flags)
{
#ifdef UMEM_HAVE_RSEQ
	void *buf = umem_rseq_pop(cp, &cp->cache_fast_slots);

	if (UMEM_LIKELY(buf != NULL))
		return (buf);
#endif
	return (umem_cache_alloc_slow(cp, flags));
}

static inline __attribute__((always_inline)) void
umem_cache_free_fast(umem_cache_t *cp, void *buf)
{
#ifdef UMEM_HAVE_RSEQ
	if (UMEM_LIKELY(umem_rseq_push(cp, &cp->cache_fast_slots, buf)))
		return;
#endif
	umem_cache_free_slow(cp, buf);
}

/*
 * The magazine layer alone, for the debug layer: its caches' slots are
 * out of the fast paths' reach (cache_fast_slots = 0), so these are their
 * fast paths, the same rseq sequences on any slot (cache_ncpu), inline as
 * above (a call each way was 4% of UMEM_DEBUG=default's alloc/free pair).
 * NULL / 0: no object / no room, use the slab layer.
 */
void *umem_mag_get_slow(umem_cache_t *cp);
int umem_mag_put_slow(umem_cache_t *cp, void *buf);

static inline __attribute__((always_inline)) void *
umem_mag_get(umem_cache_t *cp)
{
#ifdef UMEM_HAVE_RSEQ
	void *buf;

	if (UMEM_LIKELY(umem_percpu.pc_rseq) &&
	    !(cp->cache_flags & UMF_NOMAGAZINE) &&
	    (buf = umem_rseq_pop(cp, &cp->cache_ncpu)) != NULL)
		return (buf);
#endif
	return (umem_mag_get_slow(cp));
}

static inline __attribute__((always_inline)) int
umem_mag_put(umem_cache_t *cp, void *buf)
{
#ifdef UMEM_HAVE_RSEQ
	if (UMEM_LIKELY(umem_percpu.pc_rseq) &&
	    !(cp->cache_flags & UMF_NOMAGAZINE) &&
	    umem_rseq_push(cp, &cp->cache_ncpu, buf))
		return (1);
#endif
	return (umem_mag_put_slow(cp, buf));
}

#endif /* _UMEM_PERCPU_H */
