/*
 * test_umem_fork.c - fork under load (digest A5.6, D23): threads hammer
 * object caches and an arena's quantum caches while the main thread forks
 * again and again.  Each child must at once allocate, free, create and
 * destroy caches, reap, and (outside TSan, which forbids threads after a
 * multi-threaded fork) start threads of its own that allocate, all under
 * an alarm, so that a lock left held across fork shows as a timeout.  The
 * parent's caches must still balance afterwards.  Run in the default
 * per-CPU mode and again with UMEM_OPTIONS=percpu=thread.
 */
#include "test_umem.h"
#include "umem_impl.h"

#include <stdatomic.h>

#define	NOTMEM_BASE	((uintptr_t)1 << 32)

#ifdef TU_TSAN
/*
 * TSan: the fork prepare handler holds every cache's slot, depot and slab
 * locks and every arena lock at once (the documented lock order), more
 * than the 64 TSan's deadlock detector can track per thread; and a fork
 * child restarts the update thread, which TSan refuses by default.
 */
const char *__tsan_default_options(void);

const char *
__tsan_default_options(void)
{
	return ("detect_deadlocks=0:die_after_fork=0");
}
#endif

static umem_cache_t *fc[3];
static const size_t fsizes[3] = { 64, 1000, 5000 };
static vmem_t *qarena;
static atomic_int stop;
static atomic_ulong hammer_ops;

static void *
hammer(void *arg)
{
	unsigned long long seed = 77 + (uintptr_t)arg;
	void *v[48];
	void *q[8];
	size_t qs[8];
	int i, k;
	unsigned long n = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int burst = 1 + (int)(test_rand(&seed) % 48);

		k = (int)(test_rand(&seed) % 3);
		for (i = 0; i < burst; i++) {
			v[i] = umem_cache_alloc(fc[k], UMEM_DEFAULT);
			if (v[i] != NULL)
				memset(v[i], 0x11, 16);
		}
		for (i = 0; i < burst; i++)
			if (v[i] != NULL)
				umem_cache_free(fc[k], v[i]);
		for (i = 0; i < 8; i++) {
			qs[i] = 4096 * (1 + test_rand(&seed) % 4);
			q[i] = vmem_alloc(qarena, qs[i], VM_NOSLEEP);
		}
		for (i = 0; i < 8; i++)
			if (q[i] != NULL)
				vmem_free(qarena, q[i], qs[i]);
		n += (unsigned long)burst;
	}
	atomic_fetch_add(&hammer_ops, n);
	return (NULL);
}

static TU_UNUSED void *
child_thread(void *arg)
{
	void *v[100];
	int i, r;

	for (r = 0; r < 100; r++) {
		for (i = 0; i < 100; i++)
			v[i] = umem_cache_alloc(fc[r % 3], UMEM_DEFAULT);
		for (i = 0; i < 100; i++)
			if (v[i] != NULL)
				umem_cache_free(fc[r % 3], v[i]);
	}
	return (arg);
}

/* The child's work; returns its exit status (0 = all good). */
static int
in_child(void)
{
	void *v[3][500];
	umem_cache_t *cp;
	umem_cache_stat_t st;
	int i, k;

	for (k = 0; k < 3; k++) {
		for (i = 0; i < 500; i++) {
			v[k][i] = umem_cache_alloc(fc[k], UMEM_DEFAULT);
			if (v[k][i] == NULL)
				return (10);
			memset(v[k][i], 0x22, fsizes[k]);
		}
	}
	for (k = 0; k < 3; k++) {
		for (i = 0; i < 500; i++) {
			int j;

			/* No object was handed out twice in the child. */
			for (j = i + 1; j < 500; j++)
				if (v[k][i] == v[k][j])
					return (11);
			umem_cache_free(fc[k], v[k][i]);
		}
	}
	for (i = 0; i < 100; i++) {
		void *q = vmem_alloc(qarena, 4096 * (size_t)(1 + i % 4),
		    VM_NOSLEEP);

		if (q == NULL)
			return (12);
		vmem_free(qarena, q, 4096 * (size_t)(1 + i % 4));
	}
	cp = umem_cache_create("tf_child", 128, 0, NULL, NULL, NULL, NULL,
	    NULL, 0);
	if (cp == NULL)
		return (13);
	for (i = 0; i < 500; i++)
		v[0][i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (i = 0; i < 500; i++)
		umem_cache_free(cp, v[0][i]);
	if (umem_cache_getstat(cp, &st) != 0 || st.cs_alloc != 500 ||
	    st.cs_free != 500)
		return (14);
	umem_cache_destroy(cp);
	umem_reap();
#ifndef TU_TSAN
	{
		pthread_t t[2];

		for (i = 0; i < 2; i++)
			if (pthread_create(&t[i], NULL, child_thread,
			    NULL) != 0)
				return (15);
		for (i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
	}
#endif
	/* The caches' books balance in the child too, for its own work. */
	return (0);
}

static void
test_fork_under_load(void)
{
	enum { NT = 4 };
	int nforks = TU_SCALE(60, 4), f, i, bad = 0, hung = 0;
	pthread_t t[NT];
	char sbuf[96];

	for (i = 0; i < 3; i++) {
		fc[i] = umem_cache_create("tf_cache", fsizes[i], 0, NULL, NULL,
		    NULL, NULL, NULL, 0);
		CHECK(fc[i] != NULL);
	}
	qarena = vmem_create("tf_q", (void *)NOTMEM_BASE, (size_t)1 << 30,
	    4096, NULL, NULL, NULL, 4 * 4096, VM_SLEEP);
	CHECK(qarena != NULL);
	atomic_store(&stop, 0);
	for (i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)i);
	tu_sleep_ms(20);
	for (f = 0; f < nforks; f++) {
		pid_t pid;
		int st = 0;

		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid == 0) {
			signal(SIGALRM, SIG_DFL);
			alarm(10);
			_exit(in_child());
		}
		CHECK(pid > 0);
		if (pid < 0)
			break;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
				hung++;
			else
				bad++;
			CHECKF(0, "fork %d: child %s (exit 10-15: allocation, "
			    "double issue, vmem, create, stats, thread)", f,
			    tu_status_str(st, sbuf, sizeof (sbuf)));
			break;	/* one is enough; do not wait for more */
		}
		tu_sleep_ms(1 + f % 5);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	CHECKF(hung == 0, "%d of %d children hung (killed by the alarm): a "
	    "lock was held across fork", hung, f + (f < nforks));
	CHECKF(bad == 0, "%d of %d children failed", bad, nforks);
	CHECK(atomic_load(&hammer_ops) > 0);
	for (i = 0; i < 3; i++) {
		umem_cache_stat_t s = tu_stat(fc[i]);

		CHECKF(s.cs_alloc == s.cs_free && s.cs_buf_inuse ==
		    s.cs_buf_magazine, "parent, %zu-byte cache after the "
		    "forks: %llu allocs %llu frees, %llu out of slabs, %llu in "
		    "magazines", fsizes[i], (unsigned long long)s.cs_alloc,
		    (unsigned long long)s.cs_free,
		    (unsigned long long)s.cs_buf_inuse,
		    (unsigned long long)s.cs_buf_magazine);
		umem_cache_destroy(fc[i]);
	}
	CHECK(vmem_verify(qarena) == 0);
	vmem_destroy(qarena);
}

/* A child of a process that never used the caches before fork. */
static void
test_fork_fresh(void)
{
	pid_t pid;
	int st = 0;
	char sbuf[96];

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		umem_cache_t *cp;
		void *p;

		alarm(20);
		cp = umem_cache_create("tf_fresh", 32, 0, NULL, NULL, NULL,
		    NULL, NULL, 0);
		p = cp != NULL ? umem_cache_alloc(cp, UMEM_DEFAULT) : NULL;
		if (p == NULL)
			_exit(1);
		umem_cache_free(cp, p);
		umem_cache_destroy(cp);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s",
	    tu_status_str(st, sbuf, sizeof (sbuf)));
}

static void
test_fork_thread_mode(void)
{
	static const char *const env[] = { "UMEM_OPTIONS=percpu=thread",
	    NULL };

	tu_check_child("fork", env, 300);
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		tu_watchdog(280);
		RUN(test_fork_under_load);
		return (tu_child_summary(argv[2]));
	}
	tu_watchdog(600);
	RUN(test_fork_fresh);
	RUN(test_fork_under_load);
	RUN(test_fork_thread_mode);
	return (test_summary(argv[0]));
}
