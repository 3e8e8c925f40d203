/*
 * pid_alloc.c - a PID-style identifier allocator on a vmem arena.
 *
 * Process IDs should not be reused soon after they are freed: a stale PID
 * held by some tool (a kill(1) typed a moment too late) would name a new,
 * unrelated process.  A vmem arena of integers with quantum 1 and the
 * VM_NEXTFIT policy gives exactly that: a rotor walks through the range, so
 * every free ID is handed out once before any ID is handed out again.
 *
 * The demo prints what it does and checks its own expectations; it exits
 * non-zero if any of them fails (the test suite runs it).
 *
 *	cc -Iinclude examples/pid_alloc.c build/lib/libumem.a -pthread
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#define	PID_MIN		1		/* 0 is vmem's failure value */
#define	PID_LIMIT	32768		/* exclusive, like Linux pid_max */
#define	PID_COUNT	(PID_LIMIT - PID_MIN)
#define	NFIRST		10

static int failures;

#define	EXPECT(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "pid_alloc: FAILED: %s: ", #cond);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

static vmem_t *pid_arena;

/* One new ID, or 0 when every ID is in use. */
static unsigned
pid_get(void)
{
	return ((unsigned)(uintptr_t)vmem_alloc(pid_arena, 1,
	    VM_NOSLEEP | VM_NEXTFIT));
}

static void
pid_put(unsigned pid)
{
	vmem_free(pid_arena, (void *)(uintptr_t)pid, 1);
}

int
main(void)
{
	unsigned first[NFIRST], next, prev, pid, held, cycle_first;
	unsigned char *seen;
	unsigned *all;
	size_t i, n, handed, wrap = 0;
	int wraps = 0;

	/* No quantum caches: IDs are not memory, and we want pure next-fit. */
	pid_arena = vmem_create("pid", (void *)(uintptr_t)PID_MIN, PID_COUNT,
	    1, NULL, NULL, NULL, 0, VM_SLEEP | VMC_IDENTIFIER);
	if (pid_arena == NULL) {
		fprintf(stderr, "pid_alloc: vmem_create: %s\n",
		    strerror(errno));
		return (1);
	}
	printf("pid_alloc: arena [%u, %u), %u IDs\n", PID_MIN, PID_LIMIT,
	    PID_COUNT);
	EXPECT(vmem_size(pid_arena, VMEM_FREE) == PID_COUNT, "free %zu",
	    vmem_size(pid_arena, VMEM_FREE));

	/* A fresh arena hands out IDs in order from the bottom. */
	printf("pid_alloc: first %d IDs:", NFIRST);
	for (i = 0; i < NFIRST; i++) {
		first[i] = pid_get();
		printf(" %u", first[i]);
		EXPECT(first[i] == PID_MIN + i, "ID %zu is %u", i, first[i]);
	}
	printf("\n");

	/* Processes 3..7 exit; their IDs must not come back yet. */
	for (i = 2; i < 7; i++)
		pid_put(first[i]);
	next = pid_get();
	printf("pid_alloc: freed %u..%u, next ID: %u\n", first[2], first[6],
	    next);
	EXPECT(next == first[NFIRST - 1] + 1, "next %u", next);
	held = NFIRST - 5 + 1;		/* 1, 2, 8, 9, 10 and next */

	/*
	 * Many short-lived processes: each ID is freed at once.  Next-fit
	 * must still walk the whole range: every ID that is not held comes
	 * out exactly once, in increasing order until the rotor wraps, before
	 * any of them comes out again.
	 */
	seen = calloc(PID_LIMIT, 1);
	all = calloc(PID_LIMIT, sizeof (unsigned));
	if (seen == NULL || all == NULL) {
		fprintf(stderr, "pid_alloc: out of memory\n");
		return (1);
	}
	handed = PID_COUNT - held;
	prev = next;
	for (n = 0; n < handed; n++) {
		pid = pid_get();
		if (pid < PID_MIN || pid >= PID_LIMIT) {
			EXPECT(0, "ID %u out of range after %zu", pid, n);
			break;
		}
		if (seen[pid]) {
			EXPECT(0, "ID %u reused after only %zu IDs", pid, n);
			break;
		}
		seen[pid] = 1;
		all[n] = pid;
		if (pid < prev) {
			wrap = n;
			wraps++;
		}
		prev = pid;
		pid_put(pid);
	}
	cycle_first = all[0];
	EXPECT(n == handed, "only %zu distinct", n);
	EXPECT(wraps == 1 && wrap > 0, "the rotor wrapped %d times, at %zu",
	    wraps, wrap);
	if (n == handed && wraps == 1 && wrap > 0) {
		printf("pid_alloc: %zu short-lived processes got %zu distinct "
		    "IDs: %u..%u, then wrapped to %u..%u\n", handed, n,
		    all[0], all[wrap - 1], all[wrap], all[n - 1]);
		EXPECT(all[wrap - 1] == PID_LIMIT - 1, "top %u",
		    all[wrap - 1]);
		EXPECT(all[wrap] == first[2], "wrapped to %u", all[wrap]);
		EXPECT(all[n - 1] == first[6], "cycle ends at %u",
		    all[n - 1]);
	}
	EXPECT(cycle_first == next + 1, "cycle starts at %u", cycle_first);
	for (i = 0; i < NFIRST; i++) {
		int heldnow = (i < 2 || i >= 7);

		EXPECT(seen[first[i]] == !heldnow, "ID %u seen %d",
		    first[i], seen[first[i]]);
	}

	/* Only now, with the range used up, does the first one come back. */
	pid = pid_get();
	printf("pid_alloc: after a full cycle the first reused ID is %u\n",
	    pid);
	EXPECT(pid == cycle_first, "reused %u, expected %u", pid,
	    cycle_first);
	pid_put(pid);

	/* Fill the table: the allocator fails cleanly with ENOMEM. */
	n = 0;
	for (;;) {
		errno = 0;
		pid = pid_get();
		if (pid == 0)
			break;
		if (pid >= PID_MIN && pid < PID_LIMIT)
			all[n] = pid;
		if (++n > PID_COUNT)
			break;
	}
	printf("pid_alloc: table full after %zu more IDs (%s)\n", n,
	    errno == ENOMEM ? "ENOMEM" : "unexpected errno");
	EXPECT(n == PID_COUNT - held, "filled with %zu", n);
	EXPECT(pid == 0 && errno == ENOMEM, "pid %u errno %d", pid, errno);
	EXPECT(vmem_size(pid_arena, VMEM_FREE) == 0, "free %zu",
	    vmem_size(pid_arena, VMEM_FREE));

	while (n > 0)
		pid_put(all[--n]);
	pid_put(first[0]);
	pid_put(first[1]);
	for (i = 7; i < NFIRST; i++)
		pid_put(first[i]);
	pid_put(next);
	EXPECT(vmem_size(pid_arena, VMEM_ALLOC) == 0, "in use %zu",
	    vmem_size(pid_arena, VMEM_ALLOC));
	vmem_destroy(pid_arena);
	free(seen);
	free(all);

	if (failures != 0) {
		printf("pid_alloc: %d checks FAILED\n", failures);
		return (1);
	}
	printf("pid_alloc: all checks passed\n");
	return (0);
}
