/*
 * test_vmem_model.c - randomized model-based test of vmem.
 *
 * Thousands of random create/alloc/xalloc/free/add/destroy sequences (with
 * importing child arenas, injected import failures, bad frees in non-fatal
 * mode and leaking destroys), each step checked against the reference model
 * in vmem_model.h (see there for the full list of checks).
 *
 * VMEM_MODEL_SEED=n runs just that seed (verbosely; VMEM_MODEL_TRACE=1
 * also prints every operation); VMEM_MODEL_SEEDS=n changes the number of
 * seeds.
 */
#include "test.h"
#include "vmem_model.h"

#ifdef TU_SAN
#define	SANITIZED	1
#else
#define	SANITIZED	0
#endif

/*
 * The expected reports of bad frees and leaks are kept out of the output,
 * except under sanitizers, whose own reports must not be swallowed.
 */
#define	HUSH	(SANITIZED ? 0 : VMM_HUSH)

static vmm_t model;

/* Odd seeds and long runs also do bad frees and leaking destroys. */
static int
seed_flags(unsigned long long seed)
{
	return ((seed & 1) || seed >= 1000000 ? VMM_BADFREE | VMM_LEAK : 0);
}

static long
env_long(const char *name, long dflt)
{
	const char *s = getenv(name);

	return (s != NULL && *s != '\0' ? strtol(s, NULL, 0) : dflt);
}

/* Many short sequences: lots of creates, destroys and edge cases. */
static void
test_model_short(void)
{
	long seeds = env_long("VMEM_MODEL_SEEDS", SANITIZED ? 1000 : 3000);
	uint64_t allocs = 0, imports = 0;
	long s, bad = 0;

	for (s = 1; s <= seeds; s++) {
		if (vmm_run(&model, NULL, 0, (unsigned long long)s, 150,
		    seed_flags((unsigned long long)s) | HUSH) != 0) {
			CHECKF(0, "seed %ld failed (rerun with "
			    "VMEM_MODEL_SEED=%ld)", s, s);
			if (++bad == 3)
				break;
		}
		allocs += model.m_nallocs_ok;
		imports += model.m_nimports;
	}
	/* The run must have exercised what it claims to. */
	CHECKF(bad > 0 || (allocs > (uint64_t)seeds * 20 &&
	    imports > (uint64_t)seeds), "only %llu allocations and %llu "
	    "imports in %ld runs",
	    (unsigned long long)allocs, (unsigned long long)imports, seeds);
}

/* Fewer, longer sequences: deep fragmentation, many segments. */
static void
test_model_long(void)
{
	long seeds = SANITIZED ? 20 : 60, s, bad = 0;

	for (s = 1; s <= seeds; s++) {
		unsigned long long seed = 1000000 + (unsigned long long)s;

		if (vmm_run(&model, NULL, 0, seed, 3000,
		    seed_flags(seed) | HUSH) != 0) {
			CHECKF(0, "seed %llu failed (rerun with "
			    "VMEM_MODEL_SEED=%llu)", seed, seed);
			if (++bad == 3)
				break;
		}
	}
}

/* The model's own fit arithmetic, on hand-computed cases. */
static void
test_model_fit(void)
{
	uintptr_t t = 0;

	/* The paper's example: [100,500), 20 bytes, align 64 phase 8. */
	CHECK(vmm_fit_low(100, 500, 20, 64, 8, 0, 200, 300, &t) && t == 200);
	CHECK(vmm_fit_high(100, 500, 20, 64, 8, 0, 200, 300, &t) && t == 264);
	/* nocross pushes to the next boundary plus the phase. */
	CHECK(vmm_fit_low(0x1000, 0x3000, 0x100, 0x10, 0x8, 0x1000, 0, 0,
	    &t) && t == 0x1008);
	CHECK(vmm_fit_low(0x1f80, 0x3000, 0x100, 0x10, 0x8, 0x1000, 0, 0,
	    &t) && t == 0x2008);
	CHECK(vmm_fit_high(0x1000, 0x2080, 0x100, 0x10, 0x8, 0x1000, 0, 0,
	    &t) && t == 0x1f08 - 0x10);
	CHECK(!vmm_fit_low(0x1000, 0x1100, 0x101, 1, 0, 0, 0, 0, &t));
	CHECK(vmm_fit_low(0x1000, 0x1100, 0x100, 1, 0, 0, 0x1000, 0x1100,
	    &t) && t == 0x1000);
	CHECK(!vmm_fit_low(0x1000, 0x1100, 0x100, 1, 0, 0, 0x1001, 0x1101,
	    &t));
	CHECK(!vmm_fit_low(0x1000, 0x1100, 0x100, 1, 0, 0, 0xfff, 0x10ff,
	    &t));
}

int
main(int argc, char **argv)
{
	long one = env_long("VMEM_MODEL_SEED", 0);

	if (one != 0) {
		int n = vmm_run(&model, NULL, 0, (unsigned long long)one,
		    one >= 1000000 ? 3000 : 150,
		    seed_flags((unsigned long long)one) |
		    (getenv("VMEM_MODEL_TRACE") ? VMM_TRACE : 0));

		printf("seed %ld: %d mismatches, %llu allocations, %llu "
		    "imports\n", one, n, (unsigned long long)model.m_nallocs_ok,
		    (unsigned long long)model.m_nimports);
		return (n != 0);
	}
	RUN(test_model_fit);
	RUN(test_model_short);
	RUN(test_model_long);
	return (test_summary(argv[0]));
}
