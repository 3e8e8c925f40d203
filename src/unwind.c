/*
 * unwind.c - call stacks from the unwind tables (.eh_frame), for the audit
 * records of code built without frame pointers (UMEM_DEBUG=...,unwind=dwarf;
 * debug.c walks frame pointers otherwise).  x86-64 only.
 *
 * A walk steps the registers a frame needs, pc, sp and bp, one frame at a
 * time.  A step needs the rule at pc: where the frame's canonical frame
 * address (CFA) is, sp or bp plus an offset, and whether the caller's bp
 * was saved (at CFA + n).  The return address is at CFA - 8 (the x86-64
 * ABI; checked against each CIE).  The rule comes from the FDE covering
 * pc, found by binary search in the object's .eh_frame_hdr table, by
 * running the CIE's and the FDE's call-frame instructions up to pc.
 *
 * Rules are cached by pc in a fixed direct-mapped table, so that a walk
 * over known code costs a hash and three loads a frame, about what a
 * frame-pointer walk costs.  A slot is two words written without a lock;
 * the second holds a check derived from pc, so a reader that sees words
 * of two different writers takes a miss.
 *
 * A signal frame (the trampoline a handler returns to, 'S' in its CIE) is
 * stepped by the kernel's ucontext at sp instead: the interrupted pc, sp
 * and bp, maybe on another stack (the caller finds its bounds).
 *
 * What ends a walk, never a guess: no FDE, a CFA from an expression or
 * from a register other than sp and bp, an undefined return address (the
 * outermost frame), a CFA outside the thread's stack or not above sp.
 *
 * Safety: stack words are read only inside [sp, top of the stack); unwind
 * tables only inside dl_iterate_phdr's callback, where no object can be
 * unloaded.  A cached rule can outlive its object (dlclose, then another
 * object at the same address); the table is emptied when the loader's
 * count of unloaded objects moves, seen at the next miss.  Nothing here
 * allocates or takes a umem lock.
 */
#define	_GNU_SOURCE
#include "umem_impl.h"
#include "debug.h"

#include <link.h>
#include <stddef.h>
#include <string.h>

/* DWARF register numbers (x86-64) and pointer encodings. */
#define	UW_RBP		6
#define	UW_RSP		7
#define	UW_RA		16

#define	DW_EH_PE_omit	0xff
#define	DW_EH_PE_pcrel	0x10
#define	DW_EH_PE_datarel 0x30
#define	DW_EH_PE_table	0x3b	/* datarel | sdata4: .eh_frame_hdr's table */

/*
 * A rule in 32 bits; 0: none (end the walk).  Bits: 0 valid, 1 the CFA is
 * bp + off (else sp + off), 2 the caller's bp is saved, 3-10 its offset
 * from the CFA in words + 128 (never 0: the offset is at most 1016), 11-31
 * the CFA offset.
 */
#define	RULE_VALID	0x1u
#define	RULE_CFA_BP	0x2u
#define	RULE_BP_SAVED	0x4u
/* The signal trampoline: the interrupted registers are in a ucontext */
/* at sp ('S' in the CIE; no other bit is set). */
#define	RULE_SIGFRAME	(RULE_VALID | 0x8u)
#define	RULE_BP_OFF(r)	(((int64_t)(((r) >> 3) & 0xff) - 128) * 8)
#define	RULE_CFA_OFF(r)	((uintptr_t)((r) >> 11))
#define	RULE_CFA_MAX	((1u << 21) - 1)

#define	UW_CACHE_BITS	12
typedef struct uw_slot {
	uintptr_t	us_pc;
	uint64_t	us_val;		/* check << 32 | rule */
} uw_slot_t;

static UMEM_BSS_LARGE uw_slot_t uw_cache[1 << UW_CACHE_BITS];
static unsigned long long uw_subs = ~0ULL;	/* loader's unload count */

static inline size_t
uw_index(uintptr_t pc)
{
	return ((size_t)((pc * 0x9e3779b97f4a7c15ULL) >> (64 - UW_CACHE_BITS)));
}

static inline uint32_t
uw_check(uintptr_t pc)
{
	return ((uint32_t)((pc * 0xc2b2ae3d27d4eb4fULL) >> 32) | 1u);
}

/*
 * ---- reading the tables ----
 */
/* A LEB128 number (sign: signed); stops at end. */
static uint64_t
uw_leb(const uint8_t **pp, const uint8_t *end, int sign)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;

	while (p < end) {
		b = *p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	if (sign && shift < 64 && (b & 0x40))
		v |= ~0ULL << shift;
	*pp = p;
	return (v);
}

#define	uw_uleb(pp, end)	uw_leb((pp), (end), 0)
#define	uw_sleb(pp, end)	((int64_t)uw_leb((pp), (end), 1))

/* A little-endian number of len bytes (sign: signed); -1 past end. */
static int
uw_fixed(const uint8_t **pp, const uint8_t *end, size_t len, int sign,
    uint64_t *vp)
{
	uint64_t v = 0;

	if ((size_t)(end - *pp) < len)
		return (-1);
	memcpy(&v, *pp, len);
	if (sign && len < 8 && ((v >> (8 * len - 1)) & 1))
		v |= ~0ULL << (8 * len);
	*pp += len;
	*vp = v;
	return (0);
}

/*
 * A pointer in encoding enc at *pp (absolute or pc-relative; the value
 * only, never dereferenced).  0 with *ok cleared for an encoding we do
 * not read.
 */
static uintptr_t
uw_ptr(const uint8_t **pp, const uint8_t *end, uint8_t enc, int *ok)
{
	static const uint8_t fixed[16] = {
		[0x00] = 8, [0x02] = 2, [0x03] = 4, [0x04] = 8,
		[0x0a] = 2, [0x0b] = 4, [0x0c] = 8
	};
	uintptr_t base = (enc & 0x70) == DW_EH_PE_pcrel ? (uintptr_t)*pp : 0;
	uint64_t v = 0;

	if (enc == DW_EH_PE_omit)
		return (0);
	if ((enc & 0x70) != 0 && (enc & 0x70) != DW_EH_PE_pcrel)
		*ok = 0;
	else if ((enc & 0x0f) == 0x01)
		v = uw_uleb(pp, end);
	else if ((enc & 0x0f) == 0x09)
		v = (uint64_t)uw_sleb(pp, end);
	else if (fixed[enc & 0x0f] == 0 ||
	    uw_fixed(pp, end, fixed[enc & 0x0f], enc & 0x08, &v) != 0)
		*ok = 0;
	return (*ok ? base + (uintptr_t)v : 0);
}

/*
 * ---- running call-frame instructions ----
 */
typedef struct uw_reg {
	uint8_t		ur_how;		/* UR_* */
	int64_t		ur_off;		/* UR_OFFSET: saved at CFA + off */
} uw_reg_t;

#define	UR_SAME		0	/* unchanged (or never said) */
#define	UR_OFFSET	1
#define	UR_UNDEF	2
#define	UR_OTHER	3	/* anything we cannot follow */

typedef struct uw_row {
	uint32_t	ur_cfa_reg;
	int64_t		ur_cfa_off;
	int		ur_cfa_bad;	/* an expression, or unknown */
	uw_reg_t	ur_bp;
	uw_reg_t	ur_ra;
} uw_row_t;

typedef struct uw_cie {
	const uint8_t	*uc_insns, *uc_end;
	uint64_t	uc_code_align;
	int64_t		uc_data_align;
	uint8_t		uc_fde_enc;
	int		uc_aug_z;
	int		uc_signal;	/* 'S': a signal trampoline */
} uw_cie_t;

#define	UW_STATES	8	/* remember_state depth */

static uw_reg_t *
uw_track(uw_row_t *row, uint64_t reg)
{
	if (reg == UW_RBP)
		return (&row->ur_bp);
	if (reg == UW_RA)
		return (&row->ur_ra);
	return (NULL);
}

/*
 * Run insns up to the row for target (loc: the address they start at;
 * init: the CIE's row, for DW_CFA_restore).  0, or -1 for an instruction
 * we do not know.  Stops early once loc passes target.
 */
static int
uw_run(const uw_cie_t *cie, const uint8_t *p, const uint8_t *end,
    uintptr_t loc, uintptr_t target, uw_row_t *row, const uw_row_t *init)
{
	uw_row_t saved[UW_STATES];
	int nsaved = 0, ok = 1;

	while (p < end) {
		uint8_t op = *p++;
		uint64_t reg = 0, delta = 0;
		int64_t off = 0;
		uw_reg_t *r;

		switch (op & 0xc0) {
		case 0x40:		/* advance_loc */
			delta = op & 0x3f;
			goto advance;
		case 0x80:		/* offset */
			reg = op & 0x3f;
			off = (int64_t)uw_uleb(&p, end) * cie->uc_data_align;
			goto offset;
		case 0xc0:		/* restore */
			reg = op & 0x3f;
			goto restore;
		default:
			break;
		}
		switch (op) {
		case 0x00:		/* nop */
			continue;
		case 0x01:		/* set_loc */
			loc = uw_ptr(&p, end, cie->uc_fde_enc, &ok);
			if (!ok)
				return (-1);
			if (loc > target)
				return (0);
			continue;
		case 0x02:		/* advance_loc1, 2, 4 */
		case 0x03:
		case 0x04:
			if (uw_fixed(&p, end, (size_t)1 << (op - 0x02), 0,
			    &delta) != 0)
				return (-1);
			goto advance;
		case 0x05:		/* offset_extended */
			reg = uw_uleb(&p, end);
			off = (int64_t)uw_uleb(&p, end) * cie->uc_data_align;
			goto offset;
		case 0x11:		/* offset_extended_sf */
			reg = uw_uleb(&p, end);
			off = uw_sleb(&p, end) * cie->uc_data_align;
			goto offset;
		case 0x2f:		/* GNU_negative_offset_extended */
			reg = uw_uleb(&p, end);
			off = -(int64_t)uw_uleb(&p, end) * cie->uc_data_align;
			goto offset;
		case 0x06:		/* restore_extended */
			reg = uw_uleb(&p, end);
			goto restore;
		case 0x07:		/* undefined */
			if ((r = uw_track(row, uw_uleb(&p, end))) != NULL)
				r->ur_how = UR_UNDEF;
			continue;
		case 0x08:		/* same_value */
			if ((r = uw_track(row, uw_uleb(&p, end))) != NULL)
				r->ur_how = UR_SAME;
			continue;
		case 0x0a:		/* remember_state */
			if (nsaved == UW_STATES)
				return (-1);
			saved[nsaved++] = *row;
			continue;
		case 0x0b:		/* restore_state */
			if (nsaved == 0)
				return (-1);
			*row = saved[--nsaved];
			continue;
		case 0x0c:		/* def_cfa */
			row->ur_cfa_reg = (uint32_t)uw_uleb(&p, end);
			row->ur_cfa_off = (int64_t)uw_uleb(&p, end);
			row->ur_cfa_bad = 0;
			continue;
		case 0x12:		/* def_cfa_sf */
			row->ur_cfa_reg = (uint32_t)uw_uleb(&p, end);
			row->ur_cfa_off = uw_sleb(&p, end) *
			    cie->uc_data_align;
			row->ur_cfa_bad = 0;
			continue;
		case 0x0d:		/* def_cfa_register */
			row->ur_cfa_reg = (uint32_t)uw_uleb(&p, end);
			continue;
		case 0x0e:		/* def_cfa_offset */
			row->ur_cfa_off = (int64_t)uw_uleb(&p, end);
			continue;
		case 0x13:		/* def_cfa_offset_sf */
			row->ur_cfa_off = uw_sleb(&p, end) *
			    cie->uc_data_align;
			continue;
		case 0x0f:		/* def_cfa_expression */
			row->ur_cfa_bad = 1;
			delta = uw_uleb(&p, end);
			if (delta > (uint64_t)(end - p))
				return (-1);
			p += delta;
			continue;
		case 0x09:		/* register */
		case 0x10:		/* expression */
		case 0x14:		/* val_offset */
		case 0x15:		/* val_offset_sf */
		case 0x16:		/* val_expression */
			/* Rules a step does not follow: the register is lost. */
			if ((r = uw_track(row, uw_uleb(&p, end))) != NULL)
				r->ur_how = UR_OTHER;
			/* one LEB128 operand (either sign), or a block */
			delta = uw_uleb(&p, end);
			if (op != 0x10 && op != 0x16)
				continue;
			if (delta > (uint64_t)(end - p))
				return (-1);
			p += delta;
			continue;
		case 0x2e:		/* GNU_args_size */
			(void) uw_uleb(&p, end);
			continue;
		default:
			return (-1);
		}
advance:
		loc += delta * cie->uc_code_align;
		if (loc > target)
			return (0);
		continue;
offset:
		if ((r = uw_track(row, reg)) != NULL) {
			r->ur_how = UR_OFFSET;
			r->ur_off = off;
		}
		continue;
restore:
		if ((r = uw_track(row, reg)) != NULL)
			*r = *uw_track((uw_row_t *)init, reg);
		continue;
	}
	return (0);
}

/* Parse the CIE at cie_start; 0, or -1 for one we do not follow. */
static int
uw_cie_parse(const uint8_t *cie_start, uw_cie_t *cie)
{
	const uint8_t *p = cie_start, *end, *aug;
	uint32_t len, id;
	uint8_t version;
	uint64_t ra_reg;
	int ok = 1;

	memcpy(&len, p, 4);
	if (len == 0 || len == 0xffffffffu)
		return (-1);
	end = p + 4 + len;
	p += 4;
	memcpy(&id, p, 4);
	p += 4;
	if (id != 0)
		return (-1);
	version = *p++;
	if (version != 1 && version != 3)
		return (-1);
	aug = p;
	while (p < end && *p != '\0')
		p++;
	if (p >= end)
		return (-1);
	p++;
	cie->uc_code_align = uw_uleb(&p, end);
	cie->uc_data_align = uw_sleb(&p, end);
	ra_reg = version == 1 ? *p++ : uw_uleb(&p, end);
	if (ra_reg != UW_RA)
		return (-1);
	cie->uc_fde_enc = 0;	/* absptr */
	cie->uc_aug_z = 0;
	cie->uc_signal = 0;
	if (aug[0] == 'z') {
		uint64_t alen = uw_uleb(&p, end);
		const uint8_t *aend = p + alen;

		if (alen > (uint64_t)(end - p))
			return (-1);
		cie->uc_aug_z = 1;
		for (const uint8_t *a = aug + 1; *a != '\0'; a++) {
			switch (*a) {
			case 'R':
				cie->uc_fde_enc = *p++;
				break;
			case 'P': {
				uint8_t penc = *p++;

				(void) uw_ptr(&p, aend, penc & 0x7f, &ok);
				break;
			}
			case 'L':
				p++;
				break;
			case 'S':
				cie->uc_signal = 1;
				break;
			default:
				return (-1);
			}
			if (!ok || p > aend)
				return (-1);
		}
		p = aend;
	} else if (aug[0] != '\0') {
		return (-1);
	}
	cie->uc_insns = p;
	cie->uc_end = end;
	return (0);
}

/* The rule at pc from the FDE at fde; 0 if none. */
static uint32_t
uw_rule_from_fde(const uint8_t *fde, uintptr_t pc)
{
	const uint8_t *p = fde, *end;
	uint32_t len, cie_off, rule;
	uintptr_t begin, range;
	uw_cie_t cie;
	uw_row_t init, row;
	int ok = 1;

	memcpy(&len, p, 4);
	if (len == 0 || len == 0xffffffffu)
		return (0);
	end = p + 4 + len;
	p += 4;
	memcpy(&cie_off, p, 4);
	if (cie_off == 0 || uw_cie_parse(p - cie_off, &cie) != 0)
		return (0);
	p += 4;
	begin = uw_ptr(&p, end, cie.uc_fde_enc, &ok);
	range = uw_ptr(&p, end, cie.uc_fde_enc & 0x0f, &ok);
	if (!ok || pc < begin || pc - begin >= range)
		return (0);
	if (cie.uc_signal)
		return (RULE_SIGFRAME);
	if (cie.uc_aug_z) {
		uint64_t alen = uw_uleb(&p, end);

		if (alen > (uint64_t)(end - p))
			return (0);
		p += alen;
	}
	memset(&init, 0, sizeof (init));
	init.ur_cfa_bad = 1;
	if (uw_run(&cie, cie.uc_insns, cie.uc_end, begin, UINTPTR_MAX, &init,
	    &init) != 0)
		return (0);
	row = init;
	if (uw_run(&cie, p, end, begin, pc, &row, &init) != 0)
		return (0);

	/* What a step can follow: CFA = sp or bp + off, RA at CFA - 8. */
	if (row.ur_cfa_bad || (row.ur_cfa_reg != UW_RSP &&
	    row.ur_cfa_reg != UW_RBP) || row.ur_cfa_off < 8 ||
	    row.ur_cfa_off > RULE_CFA_MAX || row.ur_ra.ur_how != UR_OFFSET ||
	    row.ur_ra.ur_off != -8)
		return (0);
	rule = RULE_VALID | (uint32_t)row.ur_cfa_off << 11;
	if (row.ur_cfa_reg == UW_RBP)
		rule |= RULE_CFA_BP;
	if (row.ur_bp.ur_how == UR_OFFSET) {
		if ((row.ur_bp.ur_off & 7) != 0 || row.ur_bp.ur_off < -1024 ||
		    row.ur_bp.ur_off > 1016)
			return (0);
		rule |= RULE_BP_SAVED |
		    (uint32_t)(row.ur_bp.ur_off / 8 + 128) << 3;
	} else if (row.ur_bp.ur_how != UR_SAME) {
		return (0);
	}
	return (rule);
}

/* The rule at pc from an object's .eh_frame_hdr; 0 if none. */
static uint32_t
uw_rule_from_hdr(const uint8_t *hdr, uintptr_t pc)
{
	const uint8_t *p = hdr + 4;
	const int32_t *t;
	uintptr_t count, base = (uintptr_t)hdr;
	size_t lo, hi;
	int ok = 1;

	if (hdr[0] != 1 || hdr[3] != DW_EH_PE_table)
		return (0);
	(void) uw_ptr(&p, p + 8, hdr[1], &ok);		/* eh_frame_ptr */
	count = uw_ptr(&p, p + 8, hdr[2], &ok);
	if (!ok || count == 0)
		return (0);
	t = (const int32_t *)(const void *)p;
	/* the last entry whose start is at or below pc */
	if (pc < base + (intptr_t)t[0])
		return (0);
	lo = 0;
	hi = count;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (base + (intptr_t)t[2 * mid] <= pc)
			lo = mid;
		else
			hi = mid;
	}
	return (uw_rule_from_fde((const uint8_t *)(base +
	    (intptr_t)t[2 * lo + 1]), pc));
}

typedef struct uw_find {
	uintptr_t	uf_pc;
	uint32_t	uf_rule;
} uw_find_t;

static int
uw_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	uw_find_t *uf = arg;
	const ElfW(Phdr) *eh;

	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) +
	    sizeof (info->dlpi_subs) &&
	    info->dlpi_subs != __atomic_load_n(&uw_subs, __ATOMIC_RELAXED)) {
		/* an object went away: its rules may be cached */
		for (size_t i = 0; i < sizeof (uw_cache) / sizeof (uw_cache[0]);
		    i++)
			__atomic_store_n(&uw_cache[i].us_pc, 0,
			    __ATOMIC_RELAXED);
		__atomic_store_n(&uw_subs, info->dlpi_subs, __ATOMIC_RELAXED);
	}
	if (umem_phdr_find(info, PT_LOAD, uf->uf_pc) == NULL)
		return (0);
	if ((eh = umem_phdr_find(info, PT_GNU_EH_FRAME, 0)) != NULL)
		uf->uf_rule = uw_rule_from_hdr((const uint8_t *)
		    (info->dlpi_addr + eh->p_vaddr), uf->uf_pc);
	return (1);
}

static uint32_t
uw_rule(uintptr_t pc)
{
	uw_slot_t *s = &uw_cache[uw_index(pc)];
	uint32_t chk = uw_check(pc);
	uw_find_t uf = { pc, 0 };
	uint64_t v;

	if (__atomic_load_n(&s->us_pc, __ATOMIC_RELAXED) == pc &&
	    ((v = __atomic_load_n(&s->us_val, __ATOMIC_RELAXED)) >> 32) == chk)
		return ((uint32_t)v);
	(void) dl_iterate_phdr(uw_find_cb, &uf);
	__atomic_store_n(&s->us_val, (uint64_t)chk << 32 | uf.uf_rule,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&s->us_pc, pc, __ATOMIC_RELAXED);
	return (uf.uf_rule);
}

/*
 * Where a signal handler's return lands (the trampoline), sp is the
 * kernel's ucontext: uc_flags, uc_link and uc_stack (40 bytes), then the
 * registers of struct sigcontext, r8 first (Linux x86-64 ABI).
 */
#define	UC_RBP		(40 + 10 * 8)
#define	UC_RSP		(40 + 15 * 8)
#define	UC_RIP		(40 + 16 * 8)

int
umem_unwind_step(uintptr_t *pcp, uintptr_t *spp, uintptr_t *bpp,
    uintptr_t top, int first)
{
	uintptr_t sp = *spp, cfa, at;
	uint32_t r;

#if !defined(__x86_64__)
	return (-1);		/* the rules above are x86-64's */
#endif
	/* a return address's call may be the function's last instruction */
	if ((r = uw_rule(first ? *pcp : *pcp - 1)) == 0)
		return (-1);
	if (r == RULE_SIGFRAME) {
		const uintptr_t *uc = (const uintptr_t *)sp;

		if ((sp & 7) != 0 || top < UC_RIP + 8 ||
		    sp > top - (UC_RIP + 8))
			return (-1);
		*pcp = uc[UC_RIP / 8];
		*spp = uc[UC_RSP / 8];
		*bpp = uc[UC_RBP / 8];
		return (1);
	}
	cfa = ((r & RULE_CFA_BP) ? *bpp : sp) + RULE_CFA_OFF(r);
	if (cfa < sp + 8 || cfa > top || (cfa & 7) != 0)
		return (-1);
	if (r & RULE_BP_SAVED) {
		at = cfa + (uintptr_t)RULE_BP_OFF(r);
		if (at < sp || at > top - 8)
			return (-1);
		*bpp = *(const uintptr_t *)at;
	}
	*pcp = ((const uintptr_t *)cfa)[-1];
	*spp = cfa;
	return (0);
}
