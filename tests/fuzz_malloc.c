/*
 * fuzz_malloc.c - libFuzzer target for the block layer under malloc.
 *
 * The input is a program of operations on 64 slots: allocate (any size up
 * to 1 MiB, so size classes and large blocks both), allocate aligned,
 * allocate zeroed, resize (in place for large blocks, else move: what
 * realloc does), and free.  Every block is filled with a pattern of its own
 * and checked whole before it is resized or freed, so a block handed out
 * twice, an overlap or a lost byte shows at once.  Alignment, the usable
 * size and zeroing are checked on every allocation.  It drives the block
 * layer directly (umem_alloc.h), since in a sanitizer build ASan owns the
 * process's malloc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umem_alloc.h"

#define	NSLOTS	64

typedef struct slot {
	uint8_t	*s_buf;
	size_t	s_size;
	uint8_t	s_seed;
} slot_t;

static slot_t slots[NSLOTS];

static void
die(const char *what, size_t i, size_t size)
{
	fprintf(stderr, "fuzz_malloc: %s (slot %zu, size %zu)\n", what, i,
	    size);
	abort();
}

static void
fill(slot_t *s)
{
	for (size_t i = 0; i < s->s_size; i++)
		s->s_buf[i] = (uint8_t)(s->s_seed + i * 7);
}

static void
check(slot_t *s, size_t idx, size_t upto)
{
	for (size_t i = 0; i < upto; i++) {
		if (s->s_buf[i] != (uint8_t)(s->s_seed + i * 7))
			die("block contents changed", idx, s->s_size);
	}
}

static void
check_new(uint8_t *buf, size_t size, size_t align, size_t idx)
{
	if (buf == NULL)
		die("allocation failed", idx, size);
	if (size >= 16 && ((uintptr_t)buf & 15) != 0)
		die("block of 16 bytes or more not 16-aligned", idx, size);
	if (align != 0 && ((uintptr_t)buf & (align - 1)) != 0)
		die("block not aligned as asked", idx, size);
	if (umem_block_size(buf) < size)
		die("usable size below the size asked", idx, size);
}

static void
release(size_t idx)
{
	slot_t *s = &slots[idx];

	if (s->s_buf == NULL)
		return;
	check(s, idx, s->s_size);
	umem_block_free(s->s_buf, "fuzz");
	s->s_buf = NULL;
}

static size_t
take_size(const uint8_t **p, const uint8_t *end)
{
	size_t v = 0;

	for (int i = 0; i < 3 && *p < end; i++)
		v = (v << 8) | *(*p)++;
	/* Mostly small, sometimes large: the class boundary matters most. */
	switch (v & 3) {
	case 0:
	case 1:
		return ((v >> 2) & 1023);
	case 2:
		return ((v >> 2) % (UMEM_MAXBUF + 4096));
	default:
		return ((v >> 2) % (1u << 20));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const uint8_t *p = data, *end = data + len;

	while (p + 2 <= end) {
		uint8_t op = *p++;
		size_t idx = *p++ % NSLOTS, size, align = 0;
		slot_t *s = &slots[idx];
		uint8_t *buf;

		switch (op % 5) {
		case 0:		/* allocate */
		case 1:		/* allocate aligned */
			release(idx);
			size = take_size(&p, end);
			if (op % 5 == 1) {
				align = (size_t)1 << (4 + (op >> 3) % 10);
				buf = umem_alloc_aligned_any(size, align, 0);
			} else {
				buf = umem_block_alloc(size, 0);
			}
			check_new(buf, size, align, idx);
			s->s_buf = buf;
			s->s_size = size;
			s->s_seed = op;
			fill(s);
			break;
		case 2:		/* allocate zeroed, like calloc */
			release(idx);
			size = take_size(&p, end);
			buf = umem_block_alloc(size, UMEM_ZERO_LARGE);
			check_new(buf, size, 0, idx);
			if (size <= UMEM_MAXBUF)
				memset(buf, 0, size);
			for (size_t i = 0; i < size; i++) {
				if (buf[i] != 0)
					die("zeroed block not zero", idx, size);
			}
			s->s_buf = buf;
			s->s_size = size;
			s->s_seed = op;
			fill(s);
			break;
		case 3: {	/* resize, as realloc does */
			uintptr_t pm;
			size_t keep;

			if (s->s_buf == NULL)
				break;
			size = take_size(&p, end);
			check(s, idx, s->s_size);
			keep = size < s->s_size ? size : s->s_size;
			pm = umem_pagemap_get(s->s_buf);
			if (umem_block_large(s->s_buf, pm) != 0 &&
			    size > UMEM_MAXBUF && (buf = umem_large_realloc(
			    s->s_buf, umem_block_large(s->s_buf, pm),
			    size)) != NULL) {
				/* in place, or moved without copying */
				s->s_buf = buf;
				if (umem_block_size(s->s_buf) < size)
					die("resized block too small", idx,
					    size);
			} else {
				buf = umem_block_alloc(size, 0);
				check_new(buf, size, 0, idx);
				memcpy(buf, s->s_buf, keep);
				umem_block_free(s->s_buf, "fuzz");
				s->s_buf = buf;
			}
			s->s_size = keep;
			check(s, idx, keep);
			s->s_size = size;
			fill(s);
			break;
		}
		default:	/* free */
			release(idx);
			break;
		}
	}
	for (size_t i = 0; i < NSLOTS; i++)
		release(i);
	return (0);
}
