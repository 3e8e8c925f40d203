/*
 * addrspace.c - managing a device's bus address space with vmem.
 *
 * vmem arenas hold integers, not memory, so they can hand out addresses
 * that this process never touches: here a fake 32-bit bus address space, as
 * a driver would manage DMA and MMIO windows.  The demo shows:
 *
 *   - constrained allocation with vmem_xalloc(): a buffer that a 24-bit
 *     DMA engine can reach (maxaddr), a descriptor ring that must not cross
 *     a 64 KiB boundary (align, nocross, minaddr), a register block at an
 *     offset within its alignment (phase), and a window carved from the
 *     top of a range (minaddr, maxaddr, VM_ENDALLOC);
 *   - an MMIO window reserved from the bus and run as an arena of its own;
 *   - an importing child arena ("dvma") that takes spans from the bus arena
 *     as needed and gives them back when they are wholly free;
 *   - a child with quantum caches for the common small sizes;
 *   - vmem_walk(), vmem_contains(), vmem_size() and vmem_getstat().
 *
 * It checks its own results and exits non-zero if any is wrong (the test
 * suite runs it).
 *
 *	cc -Iinclude examples/addrspace.c build/lib/libumem.a -pthread
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#define	PG		((uintptr_t)4096)	/* the bus's page size */
#define	KB		((uintptr_t)1024)
#define	MB		(KB * KB)
#define	BUS_BASE	PG			/* 0 is vmem's failure value */
#define	BUS_END		((uintptr_t)1 << 32)	/* exclusive */
#define	NMAP		24

static int failures;

#define	EXPECT(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "addrspace: FAILED: %s: ", #cond);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

#define	A(x)	((void *)(uintptr_t)(x))
#define	U(p)	((uintptr_t)(p))

/* True if [a, a + size) straddles a multiple of bound. */
static int
crosses(uintptr_t a, uintptr_t size, uintptr_t bound)
{
	return (a / bound != (a + size - 1) / bound);
}

/* A small LCG: the demo is the same on every run. */
static uintptr_t
next_rand(unsigned long long *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return ((uintptr_t)(*s >> 33));
}

static void
print_seg(void *arg, void *start, size_t size)
{
	int *np = arg;

	printf("    [%#010lx, %#010lx) %7zu KiB\n", (unsigned long)U(start),
	    (unsigned long)(U(start) + size), size / KB);
	(*np)++;
}

typedef struct range {
	uintptr_t	r_start;
	uintptr_t	r_size;
} range_t;

static int
range_cmp(const void *a, const void *b)
{
	const range_t *x = a, *y = b;

	return (x->r_start < y->r_start ? -1 : x->r_start > y->r_start);
}

/* The ranges must lie in [lo, hi) and must not overlap. */
static void
check_disjoint(const char *what, range_t *r, int n, uintptr_t lo,
    uintptr_t hi)
{
	int i;

	qsort(r, n, sizeof (range_t), range_cmp);
	for (i = 0; i < n; i++) {
		EXPECT(r[i].r_start >= lo && r[i].r_start + r[i].r_size <= hi,
		    "%s: %#lx+%#lx outside the bus", what,
		    (unsigned long)r[i].r_start, (unsigned long)r[i].r_size);
		if (i > 0)
			EXPECT(r[i - 1].r_start + r[i - 1].r_size <=
			    r[i].r_start, "%s: %#lx overlaps %#lx", what,
			    (unsigned long)r[i - 1].r_start,
			    (unsigned long)r[i].r_start);
	}
}

int
main(void)
{
	vmem_t *bus, *mmio, *dvma, *iommu;
	vmem_stat_t st;
	range_t maps[NMAP], small[64];
	uintptr_t isa, ring, bar, reg, win, mmio_base, base_inuse;
	size_t sizes[NMAP], total;
	unsigned long long seed = 42;
	void *p;
	int i, nseg;

	bus = vmem_create("bus32", A(BUS_BASE), BUS_END - BUS_BASE, PG,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	if (bus == NULL) {
		fprintf(stderr, "addrspace: vmem_create: %s\n",
		    strerror(errno));
		return (1);
	}
	printf("addrspace: bus arena [%#010lx, %#lx), quantum %lu\n",
	    (unsigned long)BUS_BASE, (unsigned long)BUS_END,
	    (unsigned long)PG);

	/* An old DMA engine with 24 address lines: below 16 MiB. */
	isa = U(vmem_xalloc(bus, 128 * KB, 64 * KB, 0, 0, NULL, A(16 * MB),
	    VM_NOSLEEP));
	printf("addrspace: 24-bit DMA buffer, 128 KiB aligned 64 KiB: "
	    "%#010lx\n", (unsigned long)isa);
	EXPECT(isa != 0, "errno %d", errno);
	EXPECT(isa % (64 * KB) == 0, "%#lx", (unsigned long)isa);
	EXPECT(isa >= BUS_BASE && isa + 128 * KB <= 16 * MB, "%#lx",
	    (unsigned long)isa);

	/*
	 * A 48 KiB descriptor ring: 16 KiB aligned, must not cross a 64 KiB
	 * boundary, above 288 KiB.  The lowest aligned candidate, 288 KiB,
	 * would cross 320 KiB, so the ring has to move up.
	 */
	ring = U(vmem_xalloc(bus, 48 * KB, 16 * KB, 0, 64 * KB, A(288 * KB),
	    NULL, VM_NOSLEEP));
	printf("addrspace: 48 KiB ring, align 16 KiB, nocross 64 KiB, "
	    "min 288 KiB: %#010lx\n", (unsigned long)ring);
	EXPECT(ring != 0, "errno %d", errno);
	EXPECT(ring % (16 * KB) == 0, "%#lx", (unsigned long)ring);
	EXPECT(ring >= 288 * KB, "%#lx", (unsigned long)ring);
	EXPECT(!crosses(ring, 48 * KB, 64 * KB), "%#lx", (unsigned long)ring);

	/* A register block at offset 4 KiB within a 16 KiB-aligned unit. */
	reg = U(vmem_xalloc(bus, 8 * KB, 16 * KB, 4 * KB, 16 * KB, NULL,
	    NULL, VM_NOSLEEP));
	printf("addrspace: 8 KiB registers, phase 4 KiB in 16 KiB: "
	    "%#010lx\n", (unsigned long)reg);
	EXPECT(reg != 0, "errno %d", errno);
	EXPECT(reg % (16 * KB) == 4 * KB, "%#lx", (unsigned long)reg);
	EXPECT(!crosses(reg, 8 * KB, 16 * KB), "%#lx", (unsigned long)reg);

	/* A 1 MiB window from the top of [3 GiB, 3.75 GiB). */
	win = U(vmem_xalloc(bus, MB, MB, 0, 0, A(3072 * MB), A(3840 * MB),
	    VM_NOSLEEP | VM_ENDALLOC));
	printf("addrspace: 1 MiB window in [3 GiB, 3.75 GiB), top-down: "
	    "%#010lx\n", (unsigned long)win);
	EXPECT(win != 0, "errno %d", errno);
	EXPECT(win % MB == 0, "%#lx", (unsigned long)win);
	EXPECT(win >= 3072 * MB && win + MB <= 3840 * MB, "%#lx",
	    (unsigned long)win);

	/*
	 * The top 16 MiB is the MMIO window: reserved from the bus, then
	 * managed as an arena of its own, where BARs are assigned top-down.
	 */
	mmio_base = U(vmem_xalloc(bus, 16 * MB, 16 * MB, 0, 0,
	    A(BUS_END - 16 * MB), NULL, VM_NOSLEEP));
	EXPECT(mmio_base == BUS_END - 16 * MB, "%#lx",
	    (unsigned long)mmio_base);
	mmio = mmio_base == 0 ? NULL : vmem_create("mmio", A(mmio_base),
	    16 * MB, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	EXPECT(mmio != NULL, "errno %d", errno);
	bar = mmio == NULL ? 0 : U(vmem_alloc(mmio, 256 * KB,
	    VM_NOSLEEP | VM_ENDALLOC));
	printf("addrspace: 256 KiB BAR from the top of the MMIO arena: "
	    "%#010lx\n", (unsigned long)bar);
	EXPECT(bar == BUS_END - 256 * KB, "%#lx", (unsigned long)bar);

	nseg = 0;
	printf("addrspace: bus32 allocated segments:\n");
	vmem_walk(bus, VMEM_ALLOC, print_seg, &nseg);
	EXPECT(nseg == 5, "%d segments", nseg);
	base_inuse = vmem_size(bus, VMEM_ALLOC);
	EXPECT(base_inuse == 128 * KB + 48 * KB + 8 * KB + MB + 16 * MB,
	    "in use %lu", (unsigned long)base_inuse);

	/*
	 * A child arena of DMA virtual addresses that imports from the bus.
	 * It starts empty; a constrained request never imports, so it fails.
	 */
	dvma = vmem_create("dvma", NULL, 0, PG, vmem_alloc, vmem_free, bus, 0,
	    VM_SLEEP);
	EXPECT(dvma != NULL, "errno %d", errno);
	if (dvma == NULL)
		return (1);
	errno = 0;
	p = vmem_xalloc(dvma, PG, 0, 0, 0, A(BUS_BASE), A(BUS_END),
	    VM_NOSLEEP);
	printf("addrspace: constrained request on the empty child: %s\n",
	    p == NULL && errno == ENOMEM ? "NULL, ENOMEM (no import)" :
	    "unexpected");
	EXPECT(p == NULL && errno == ENOMEM, "%p errno %d", p, errno);

	total = 0;
	for (i = 0; i < NMAP; i++) {
		sizes[i] = (1 + i % 16) * PG;
		maps[i].r_size = sizes[i];
		maps[i].r_start = U(vmem_alloc(dvma, sizes[i], VM_NOSLEEP));
		EXPECT(maps[i].r_start != 0, "map %d errno %d", i, errno);
		EXPECT(vmem_contains(dvma, A(maps[i].r_start), sizes[i]),
		    "map %d", i);
		EXPECT(vmem_contains(bus, A(maps[i].r_start), sizes[i]),
		    "map %d", i);
		total += sizes[i];
	}
	EXPECT(vmem_getstat(dvma, &st) == 0, "getstat");
	printf("addrspace: dvma: %d mappings, %zu KiB, imported %llu spans, "
	    "%llu KiB\n", NMAP, total / KB, (unsigned long long)st.vk_import,
	    (unsigned long long)(st.vk_mem_import / KB));
	EXPECT(vmem_size(dvma, VMEM_ALLOC) == total, "%zu",
	    vmem_size(dvma, VMEM_ALLOC));
	EXPECT(st.vk_import > 0 && st.vk_mem_import >= total,
	    "import %llu %llu", (unsigned long long)st.vk_import,
	    (unsigned long long)st.vk_mem_import);
	EXPECT(vmem_size(bus, VMEM_ALLOC) == base_inuse + st.vk_mem_import,
	    "bus in use %zu", vmem_size(bus, VMEM_ALLOC));
	check_disjoint("dvma", maps, NMAP, BUS_BASE, BUS_END);
	for (i = 0; i < NMAP; i++) {
		EXPECT(maps[i].r_start < isa || maps[i].r_start >= isa +
		    128 * KB, "dvma %#lx inside the DMA buffer",
		    (unsigned long)maps[i].r_start);
	}

	/* Wholly free spans go back to the bus. */
	for (i = 0; i < NMAP; i++)
		vmem_free(dvma, A(maps[i].r_start), maps[i].r_size);
	EXPECT(vmem_getstat(dvma, &st) == 0, "getstat");
	printf("addrspace: dvma after freeing all: %llu spans given back, "
	    "bus in use %zu KiB\n", (unsigned long long)st.vk_span_release,
	    vmem_size(bus, VMEM_ALLOC) / KB);
	EXPECT(st.vk_mem_import == 0, "still imported %llu",
	    (unsigned long long)st.vk_mem_import);
	EXPECT(st.vk_span_release == st.vk_import, "released %llu of %llu",
	    (unsigned long long)st.vk_span_release,
	    (unsigned long long)st.vk_import);
	EXPECT(vmem_size(bus, VMEM_ALLOC) == base_inuse, "bus in use %zu",
	    vmem_size(bus, VMEM_ALLOC));
	vmem_destroy(dvma);

	/*
	 * IOMMU mappings of 1-4 pages are the common case: quantum caches
	 * serve them.  The resource is not memory, so nothing may be written
	 * at these addresses (they are not mapped in this process).
	 */
	iommu = vmem_create("iommu", NULL, 0, PG, vmem_alloc, vmem_free, bus,
	    4 * PG, VM_SLEEP);
	EXPECT(iommu != NULL, "errno %d", errno);
	if (iommu == NULL)
		return (1);
	for (i = 0; i < 64; i++) {
		small[i].r_size = (1 + next_rand(&seed) % 4) * PG;
		small[i].r_start = U(vmem_alloc(iommu, small[i].r_size,
		    VM_NOSLEEP));
		EXPECT(small[i].r_start != 0, "iommu %d errno %d", i, errno);
		EXPECT(small[i].r_start % PG == 0, "%#lx",
		    (unsigned long)small[i].r_start);
	}
	check_disjoint("iommu", small, 64, BUS_BASE, BUS_END);
	/* The caches carve slabs: the segment list sees few requests. */
	EXPECT(vmem_getstat(iommu, &st) == 0, "getstat");
	printf("addrspace: iommu: quantum caches up to %zu KiB; 64 mappings "
	    "of 1-4 pages took %llu segment-list allocations\n",
	    st.vk_qcache_max / KB, (unsigned long long)st.vk_seg_alloc);
	EXPECT(st.vk_qcache_max == 4 * PG, "qcache_max %zu (is the object "
	    "cache layer linked in?)", st.vk_qcache_max);
	EXPECT(st.vk_seg_alloc < 64, "%llu segment-list allocations",
	    (unsigned long long)st.vk_seg_alloc);
	for (i = 0; i < 64; i++)
		vmem_free(iommu, A(small[i].r_start), small[i].r_size);
	vmem_destroy(iommu);
	EXPECT(vmem_size(bus, VMEM_ALLOC) == base_inuse, "bus in use %zu "
	    "after destroying the children", vmem_size(bus, VMEM_ALLOC));

	vmem_xfree(bus, A(isa), 128 * KB);
	vmem_xfree(bus, A(ring), 48 * KB);
	vmem_xfree(bus, A(reg), 8 * KB);
	vmem_xfree(bus, A(win), MB);
	if (mmio != NULL) {
		vmem_free(mmio, A(bar), 256 * KB);
		vmem_destroy(mmio);
		vmem_xfree(bus, A(mmio_base), 16 * MB);
	}
	EXPECT(vmem_size(bus, VMEM_ALLOC) == 0, "%zu",
	    vmem_size(bus, VMEM_ALLOC));
	EXPECT(vmem_size(bus, VMEM_FREE) == BUS_END - BUS_BASE, "%zu",
	    vmem_size(bus, VMEM_FREE));
	vmem_destroy(bus);

	if (failures != 0) {
		printf("addrspace: %d checks FAILED\n", failures);
		return (1);
	}
	printf("addrspace: all checks passed\n");
	return (0);
}
