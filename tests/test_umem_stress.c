/*
 * test_umem_stress.c - object caches under many threads, in every
 * per-CPU mode:
 *
 *  - 8 threads, and 64 threads on the 2 CPUs, allocate, free and pass
 *    objects to each other through four caches (small and large slabs);
 *  - threads are moved between CPUs with sched_setaffinity in a loop
 *    while they allocate and free (rseq sections must restart, slow paths
 *    must not lose their slot's magazines);
 *  - threads exit with objects in "their" magazines; the objects they
 *    allocated are freed by others; nothing is lost.
 *
 * Each object carries an owner word: an allocation claims it with a CAS
 * from 0 (failure = the object was handed out twice), a free releases it
 * (failure = someone else claimed it meanwhile), and the constructed state
 * (magic, zeroed sequence and tail) is checked on every allocation, so a
 * magazine or slab layer writing into a constructed object is caught.  At
 * the end, for each cache: allocations == frees, every buffer outside the
 * slab layer is in a magazine, constructed objects == buffers outside the
 * slab layer, and destroying the caches returns every byte to the source.
 *
 * The same tests run in the default mode (rseq), then in children with
 * UMEM_OPTIONS=percpu=thread, percpu=cpu, and with glibc's rseq
 * registration disabled (GLIBC_TUNABLES=glibc.pthread.rseq=0: the library
 * registers its own or falls back), each checking umem_percpu_mode().
 */
#include "test_umem.h"
#include "umem_impl.h"

#include <stdatomic.h>

#define	MAGIC	0x5354524553534f42ull

typedef struct sobj {
	_Atomic uint64_t	so_owner;	/* 0: not handed out */
	uint64_t		so_magic;
	uint64_t		so_seq;
	uint64_t		so_check;
} sobj_t;

static const size_t obj_sizes[] = { 48, 200, 1000, 5000 };
#define	NCACHE	(sizeof (obj_sizes) / sizeof (obj_sizes[0]))

static umem_cache_t *caches[NCACHE];
static vmem_t *src;
static atomic_ulong n_ctor[NCACHE], n_dtor[NCACHE];
static atomic_ulong n_double, n_corrupt, n_lost_owner, n_null, n_ops;

/* The tail word (last 8 bytes of the object) belongs to the client too. */
static uint64_t *
tailp(sobj_t *o, size_t k)
{
	return ((uint64_t *)((char *)o + obj_sizes[k] - sizeof (uint64_t)));
}

static int
s_construct(void *buf, void *priv, int flags)
{
	size_t k = (size_t)(uintptr_t)priv;
	sobj_t *o = buf;

	atomic_store_explicit(&o->so_owner, 0, memory_order_relaxed);
	o->so_magic = MAGIC;
	o->so_seq = 0;
	o->so_check = 0;
	*tailp(o, k) = 0;
	atomic_fetch_add_explicit(&n_ctor[k], 1, memory_order_relaxed);
	return (0);
}

static void
s_destruct(void *buf, void *priv)
{
	size_t k = (size_t)(uintptr_t)priv;
	sobj_t *o = buf;

	if (o->so_magic != MAGIC ||
	    atomic_load_explicit(&o->so_owner, memory_order_relaxed) != 0)
		atomic_fetch_add(&n_corrupt, 1);
	o->so_magic = 0;
	atomic_fetch_add_explicit(&n_dtor[k], 1, memory_order_relaxed);
}

static void
caches_create(void)
{
	size_t k;

	src = tu_mem_arena("ts_src");
	for (k = 0; k < NCACHE; k++) {
		atomic_store(&n_ctor[k], 0);
		atomic_store(&n_dtor[k], 0);
		caches[k] = umem_cache_create("ts_cache", obj_sizes[k], 0,
		    s_construct, s_destruct, NULL, (void *)(uintptr_t)k, src,
		    0);
		CHECK(caches[k] != NULL);
	}
	atomic_store(&n_double, 0);
	atomic_store(&n_corrupt, 0);
	atomic_store(&n_lost_owner, 0);
	atomic_store(&n_null, 0);
	atomic_store(&n_ops, 0);
}

/* Claim an object just allocated: it must be free and constructed. */
static void
claim(sobj_t *o, size_t k, uint64_t me, uint64_t seq)
{
	uint64_t zero = 0;

	if (!atomic_compare_exchange_strong(&o->so_owner, &zero, me)) {
		atomic_fetch_add(&n_double, 1);
		return;
	}
	if (o->so_magic != MAGIC || o->so_seq != 0 || o->so_check != 0 ||
	    *tailp(o, k) != 0)
		atomic_fetch_add(&n_corrupt, 1);
	o->so_seq = seq;
	o->so_check = seq ^ me ^ MAGIC;
	*tailp(o, k) = ~seq;
}

/* Release an object before freeing it, restoring the constructed state. */
static void
release(sobj_t *o, size_t k, uint64_t me)
{
	uint64_t cur = me;

	if (o->so_magic != MAGIC || o->so_check != (o->so_seq ^ me ^ MAGIC) ||
	    *tailp(o, k) != ~o->so_seq)
		atomic_fetch_add(&n_corrupt, 1);
	o->so_seq = 0;
	o->so_check = 0;
	*tailp(o, k) = 0;
	if (!atomic_compare_exchange_strong(&o->so_owner, &cur, 0))
		atomic_fetch_add(&n_lost_owner, 1);
}

/* Hand-over between threads: a small locked mailbox. */
#define	MAILBOX	256
static pthread_mutex_t mb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { sobj_t *m_obj; size_t m_k; uint64_t m_from; }
    mailbox[MAILBOX];
static size_t mb_n;

static int
mb_put(sobj_t *o, size_t k, uint64_t from)
{
	int ok = 0;

	pthread_mutex_lock(&mb_lock);
	if (mb_n < MAILBOX) {
		mailbox[mb_n].m_obj = o;
		mailbox[mb_n].m_k = k;
		mailbox[mb_n].m_from = from;
		mb_n++;
		ok = 1;
	}
	pthread_mutex_unlock(&mb_lock);
	return (ok);
}

static int
mb_get(sobj_t **op, size_t *kp, uint64_t *fromp, unsigned long long *seed)
{
	int ok = 0;

	pthread_mutex_lock(&mb_lock);
	if (mb_n > 0) {
		size_t i = (size_t)(test_rand(seed) % mb_n);

		*op = mailbox[i].m_obj;
		*kp = mailbox[i].m_k;
		*fromp = mailbox[i].m_from;
		mailbox[i] = mailbox[--mb_n];
		ok = 1;
	}
	pthread_mutex_unlock(&mb_lock);
	return (ok);
}

/* Take over an object from the mailbox: the owner word moves to us. */
static void
adopt(sobj_t *o, size_t k, uint64_t from, uint64_t me)
{
	uint64_t cur = from;

	if (!atomic_compare_exchange_strong(&o->so_owner, &cur, me)) {
		atomic_fetch_add(&n_lost_owner, 1);
		return;
	}
	o->so_check = o->so_seq ^ me ^ MAGIC;
}

typedef struct worker {
	int		w_id;
	size_t		w_ops;
	int		w_migrate;	/* move between CPUs every n ops */
	int		w_hold;		/* max objects held */
	int		w_keep;		/* thread-exit test: keep, don't free */
	sobj_t		**w_kept;
	size_t		*w_keptk;
	size_t		w_nkept;
} worker_t;

static void *
worker(void *arg)
{
	worker_t *w = arg;
	uint64_t me = (uint64_t)w->w_id + 1;
	unsigned long long seed = 0x9e3779b97f4a7c15ull * me;
	sobj_t *held[128];
	size_t heldk[128], nheld = 0, i, ncpu = (size_t)tu_ncpus();
	uint64_t seq = 1;

	for (i = 0; i < w->w_ops; i++) {
		unsigned r = (unsigned)(test_rand(&seed) % 100);

		if (w->w_migrate > 0 && i % (size_t)w->w_migrate == 0)
			(void) tu_pin(tu_nth_cpu((int)(test_rand(&seed) %
			    ncpu)));
		if (r < 50 && nheld < (size_t)w->w_hold) {
			size_t k = (size_t)(test_rand(&seed) % NCACHE);
			sobj_t *o = umem_cache_alloc(caches[k], UMEM_DEFAULT);

			if (o == NULL) {
				atomic_fetch_add(&n_null, 1);
				continue;
			}
			claim(o, k, me, seq++);
			held[nheld] = o;
			heldk[nheld++] = k;
		} else if (r < 94 && nheld > 0) {
			size_t j = (size_t)(test_rand(&seed) % nheld);
			sobj_t *o = held[j];
			size_t k = heldk[j];

			held[j] = held[--nheld];
			heldk[j] = heldk[nheld];
			release(o, k, me);
			umem_cache_free(caches[k], o);
		} else if (r < 97 && nheld > 0) {
			size_t j = (size_t)(test_rand(&seed) % nheld);

			if (mb_put(held[j], heldk[j], me)) {
				held[j] = held[--nheld];
				heldk[j] = heldk[nheld];
			}
		} else if (nheld < (size_t)w->w_hold) {
			sobj_t *o;
			size_t k;
			uint64_t from;

			if (mb_get(&o, &k, &from, &seed)) {
				adopt(o, k, from, me);
				held[nheld] = o;
				heldk[nheld++] = k;
			}
		}
	}
	if (w->w_keep) {
		/* Leave them for someone else to free (after we exit). */
		for (i = 0; i < nheld; i++) {
			w->w_kept[i] = held[i];
			w->w_keptk[i] = heldk[i];
			adopt(held[i], heldk[i], me, 1000);	/* to main */
		}
		w->w_nkept = nheld;
	} else {
		while (nheld > 0) {
			nheld--;
			release(held[nheld], heldk[nheld], me);
			umem_cache_free(caches[heldk[nheld]], held[nheld]);
		}
	}
	atomic_fetch_add(&n_ops, w->w_ops);
	return (NULL);
}

/* Free what the mailbox holds (main thread), then check and destroy. */
static void
finish(const char *what)
{
	sobj_t *o;
	size_t k;
	uint64_t from;
	unsigned long long seed = 1;

	while (mb_get(&o, &k, &from, &seed)) {
		adopt(o, k, from, 999);
		release(o, k, 999);
		umem_cache_free(caches[k], o);
	}
	CHECKF(atomic_load(&n_double) == 0 && atomic_load(&n_corrupt) == 0 &&
	    atomic_load(&n_lost_owner) == 0 && atomic_load(&n_null) == 0,
	    "%s: %lu objects handed out twice, %lu corrupted, %lu changed "
	    "owner while held, %lu failed allocations (%lu ops)", what,
	    atomic_load(&n_double), atomic_load(&n_corrupt),
	    atomic_load(&n_lost_owner), atomic_load(&n_null),
	    atomic_load(&n_ops));
	for (k = 0; k < NCACHE; k++) {
		umem_cache_stat_t st = tu_stat(caches[k]);
		unsigned long cons = atomic_load(&n_ctor[k]) -
		    atomic_load(&n_dtor[k]);

		CHECKF(st.cs_alloc == st.cs_free && st.cs_alloc > 0,
		    "%s, %zu-byte cache: %llu allocations, %llu frees", what,
		    obj_sizes[k], (unsigned long long)st.cs_alloc,
		    (unsigned long long)st.cs_free);
		CHECKF(st.cs_buf_inuse == st.cs_buf_magazine && cons ==
		    st.cs_buf_inuse, "%s, %zu-byte cache, everything freed: "
		    "%llu buffers out of the slab layer, %llu in magazines, "
		    "%lu constructed", what, obj_sizes[k],
		    (unsigned long long)st.cs_buf_inuse,
		    (unsigned long long)st.cs_buf_magazine, cons);
		CHECK(st.cs_ctor == atomic_load(&n_ctor[k]) &&
		    st.cs_dtor == atomic_load(&n_dtor[k]));
		CHECK(strcmp(st.cs_percpu_mode, umem_percpu_mode()) == 0);
		umem_cache_destroy(caches[k]);
		CHECKF(atomic_load(&n_ctor[k]) == atomic_load(&n_dtor[k]),
		    "%s, %zu-byte cache destroyed: %lu constructed, %lu "
		    "destructed", what, obj_sizes[k], atomic_load(&n_ctor[k]),
		    atomic_load(&n_dtor[k]));
	}
	CHECKF(tu_inuse(src) == 0, "%s: caches destroyed, the source still "
	    "has %llu bytes in use", what, (unsigned long long)tu_inuse(src));
	CHECK(atomic_load(&n_corrupt) == 0);
	vmem_destroy(src);
	src = NULL;
}

static void
run_workers(const char *what, int nthreads, size_t ops, int migrate,
    int hold)
{
	pthread_t *t = calloc((size_t)nthreads, sizeof (pthread_t));
	worker_t *w = calloc((size_t)nthreads, sizeof (worker_t));
	int i;

	caches_create();
	for (i = 0; i < nthreads; i++) {
		w[i].w_id = i;
		w[i].w_ops = ops;
		w[i].w_migrate = migrate;
		w[i].w_hold = hold;
		CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	finish(what);
	free(t);
	free(w);
}

static void
test_threads8(void)
{
	run_workers("8 threads", 8, TU_SCALE(200000, 4), 0, 100);
}

static void
test_threads64(void)
{
	cpu_set_t set;
	int i;

	/* 64 threads on (at most) 2 CPUs: heavy preemption inside sections. */
	CPU_ZERO(&set);
	CPU_SET(tu_nth_cpu(0), &set);
	CPU_SET(tu_nth_cpu(1), &set);
	(void) sched_setaffinity(0, sizeof (set), &set);	/* inherited */
	run_workers("64 threads on 2 CPUs", 64, TU_SCALE(25000, 4), 0, 40);
	CPU_ZERO(&set);
	for (i = 0; i < tu_ncpus(); i++)
		CPU_SET(tu_nth_cpu(i), &set);
	(void) sched_setaffinity(0, sizeof (set), &set);
}

static void
test_migrate(void)
{
	/* Moved every op, every 7 ops, every 100 ops. */
	run_workers("migrating every op", 4, TU_SCALE(30000, 10), 1, 60);
	run_workers("migrating every 7 ops", 4, TU_SCALE(60000, 10), 7, 60);
	run_workers("migrating every 100 ops", 6, TU_SCALE(100000, 10), 100,
	    60);
}

/*
 * Threads exit holding nothing themselves, but with objects in the
 * magazines of the slots they used; the objects they leave behind are
 * freed by the main thread afterwards.
 */
static void
test_thread_exit(void)
{
	enum { ROUNDS = 8, PER = 8 };
	pthread_t t[PER];
	worker_t w[PER];
	size_t r, i, j, k;

	caches_create();
	for (r = 0; r < ROUNDS; r++) {
		for (i = 0; i < PER; i++) {
			memset(&w[i], 0, sizeof (w[i]));
			w[i].w_id = (int)(r * PER + i);
			w[i].w_ops = TU_SCALE(5000, 5);
			w[i].w_hold = 100;
			w[i].w_keep = 1;
			w[i].w_kept = calloc(128, sizeof (sobj_t *));
			w[i].w_keptk = calloc(128, sizeof (size_t));
			CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
		}
		for (i = 0; i < PER; i++)
			pthread_join(t[i], NULL);
		/* Their threads are gone: free what they left. */
		for (i = 0; i < PER; i++) {
			for (j = 0; j < w[i].w_nkept; j++) {
				sobj_t *o = w[i].w_kept[j];

				k = w[i].w_keptk[j];
				release(o, k, 1000);
				umem_cache_free(caches[k], o);
			}
			free(w[i].w_kept);
			free(w[i].w_keptk);
		}
	}
	umem_reap();
	finish("thread exit");
}

/* The per-CPU mode is what was asked for, and stable. */
static void
check_mode(const char *want)
{
	const char *m = umem_percpu_mode();

#ifdef TU_TSAN
	/* TSan builds always use the locked slots (umem.h). */
	want = "thread";
#endif
	if (strcmp(want, "thread") == 0)
		CHECKF(strcmp(m, "thread-lock") == 0, "mode %s, want "
		    "thread-lock", m);
	else if (strcmp(want, "cpu") == 0)
		CHECKF(strncmp(m, "rseq-cpu", 8) == 0, "mode %s, want "
		    "rseq-cpu", m);
	else if (strcmp(want, "own") == 0)
		/* glibc's registration is off: our own, or the fallback. */
		CHECKF(strstr(m, "+own") != NULL ||
		    strcmp(m, "thread-lock") == 0, "GLIBC_TUNABLES="
		    "glibc.pthread.rseq=0: mode %s", m);
	else
		CHECKF(strncmp(m, "rseq-", 5) == 0 && strstr(m, "+own") ==
		    NULL, "default mode %s: glibc's rseq registration was not "
		    "used (want rseq-mmcid or rseq-cpu)", m);
	CHECK(strcmp(m, umem_percpu_mode()) == 0);
}

static const char *child_want = NULL;

/* The mode this process's environment asks for (make test-modes). */
static const char *
env_mode(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	if (tu_option_given("percpu=thread"))
		return ("thread");
	if (tu_option_given("percpu=cpu"))
		return ("cpu");
	if (t != NULL && strstr(t, "glibc.pthread.rseq=0") != NULL)
		return ("own");
	return ("default");
}

static void
test_mode(void)
{
	check_mode(child_want != NULL ? child_want : env_mode());
}

static void
test_mode_children(void)
{
	static const char *const env_thr[] = {
		"UMEM_OPTIONS=percpu=thread", NULL };
	static const char *const env_cpu[] = {
		"UMEM_OPTIONS=percpu=cpu", NULL };
	static const char *const env_own[] = {
		"GLIBC_TUNABLES=glibc.pthread.rseq=0", NULL };

	tu_check_child("thread", env_thr, 300);
#ifndef TU_TSAN
	/* (TSan builds are thread-lock whatever is asked.) */
	tu_check_child("cpu", env_cpu, 300);
	tu_check_child("own", env_own, 300);
#else
	(void) env_cpu;
	(void) env_own;
#endif
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		tu_watchdog(280);
		child_want = argv[2];
		RUN(test_mode);
		RUN(test_threads8);
		RUN(test_threads64);
		RUN(test_migrate);
		RUN(test_thread_exit);
		return (tu_child_summary(argv[2]));
	}
	tu_watchdog(900);
	RUN(test_mode);
	RUN(test_threads8);
	RUN(test_threads64);
	RUN(test_migrate);
	RUN(test_thread_exit);
	RUN(test_mode_children);
	return (test_summary(argv[0]));
}
