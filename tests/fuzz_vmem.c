/*
 * fuzz_vmem.c - libFuzzer target: the fuzzer's bytes drive the same random
 * operation sequences and reference model as test_vmem_model.c (see
 * tests/vmem_model.h), and any mismatch aborts.
 *
 * Byte 0 selects options (bad frees, leaking destroys); every later choice
 * consumes bytes from the input until it runs out.
 *
 *   make fuzz && build-fuzz/fuzz_vmem -max_total_time=30
 */
#include "vmem_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static vmm_t model;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int flags = VMM_FATAL;

	if (size < 2)
		return (0);
	if (data[0] & 1)
		flags |= VMM_BADFREE;
	if (data[0] & 2)
		flags |= VMM_LEAK;
	(void) vmm_run(&model, data + 1, size - 1, data[0], 4000, flags);
	return (0);
}
