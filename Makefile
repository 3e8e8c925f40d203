# libumem for Linux - build.
#
#   make                 build/lib/libumem.so and build/lib/libumem.a
#   make test            build and run the test suite (tests/run.sh)
#   make bench           build and run the benchmark (the README's main job)
#   make SAN=asan test   the suite under ASan+UBSan (objects in build-asan/)
#   make SAN=tsan test   the suite under TSan (objects in build-tsan/)
#   make fuzz            libFuzzer targets (clang), in build-fuzz/
#   make install PREFIX=/usr/local
#
# CC=clang works everywhere.  Warnings are errors.

CC      ?= cc
PREFIX  ?= /usr/local
SAN     ?=
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith -Wno-unused-parameter
CSTD    := -std=gnu11
OPT     ?= -O2 -g
BASEFLAGS := $(CSTD) $(WARN) -fPIC -pthread -Iinclude -Isrc

ifeq ($(SAN),asan)
  BUILD := build-asan
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer -DUMEM_DEBUG_ASSERT
  OPT := -O1 -g
else ifeq ($(SAN),tsan)
  BUILD := build-tsan
  SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -DUMEM_DEBUG_ASSERT
  OPT := -O1 -g
else
  BUILD ?= build
  SANFLAGS :=
endif

CFLAGS_ALL := $(BASEFLAGS) $(OPT) $(SANFLAGS) $(CFLAGS)
LIBFLAGS   := -fvisibility=hidden -fno-semantic-interposition
LDLIBS     := -pthread

# The layers, bottom-up (see docs/DESIGN.md).
# CORE: everything but the malloc family.  Tests link CORE statically (so
# their own malloc stays glibc's); the malloc family is tested through
# libumem.so.  Sanitizer builds leave malloc.c out of the library, since
# ASan and TSan must own malloc themselves.
CORE_SRCS := src/platform.c src/vmem.c src/vmem_heap.c \
            src/percpu.c src/slab.c src/magazine.c src/umem.c src/update.c \
            src/pagemap.c src/umem_alloc.c src/leaks.c src/debug.c \
            src/unwind.c src/symbols.c
CORE_OBJS := $(CORE_SRCS:src/%.c=$(BUILD)/obj/%.o)
# The library's link order is its layout: the layers every process runs
# first, the update thread's code (run only by a long-lived process) at
# their end, the debugging layers (debug.c, leaks.c, unwind.c, symbols.c)
# last, so that a program without UMEM_DEBUG has none of their code or
# data pages resident (the kernel maps file pages 64 KiB around each
# fault; src/libumem.ld has the rest, and puts the large arrays, such as
# pagemap.c's 2 MiB root, after all other .bss).
COLD_SRCS := src/debug.c src/leaks.c src/unwind.c src/symbols.c
HOT_SRCS  := $(filter-out src/pagemap.c src/update.c $(COLD_SRCS),$(CORE_SRCS))
ifeq ($(SAN),)
  LIB_SRCS := $(HOT_SRCS) src/malloc.c src/update.c src/pagemap.c $(COLD_SRCS)
else
  LIB_SRCS := $(HOT_SRCS) src/update.c src/pagemap.c $(COLD_SRCS)
endif
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_HDRS := $(wildcard src/*.h include/*.h)

TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/*_bench.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
EX_SRCS    := $(wildcard examples/*.c)
EX_BINS    := $(EX_SRCS:examples/%.c=$(BUILD)/examples/%)

.PHONY: all lib tests test test-modes test-real bench benchbins examples fuzz install clean check-symbols

all: lib

lib: $(BUILD)/lib/libumem.so $(BUILD)/lib/libumem.a

$(BUILD)/obj/%.o: src/%.c $(LIB_HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LIBFLAGS) -c $< -o $@

# Audit stacks walk frame pointers: debug.c keeps them (the hot paths,
# elsewhere, do not pay for them).
$(BUILD)/obj/debug.o: CFLAGS_ALL += -fno-omit-frame-pointer

$(BUILD)/lib/libumem.so: $(LIB_OBJS) src/libumem.ld
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libumem.so.0 -Wl,-z,now -Wl,-z,nodelete \
	    -Wl,-T,src/libumem.ld -o $@ $(LIB_OBJS) $(SANFLAGS) $(LDLIBS)

# One relocatable object with the internal symbols made local: a static
# user sees only the public API and always links the whole library.
$(BUILD)/lib/libumem.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	ld -r -o $(BUILD)/obj/libumem_all.o $^
	objcopy --localize-hidden $(BUILD)/obj/libumem_all.o
	rm -f $@ && ar rcs $@ $(BUILD)/obj/libumem_all.o

# Tests and benchmarks link the objects statically so that internal
# (hidden) symbols are reachable for white-box tests.
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -rdynamic -o $@ $< $(CORE_OBJS) $(LDLIBS) -lm

$(BUILD)/bench/%: bench/%.c $(CORE_OBJS) $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(CORE_OBJS) $(LDLIBS) -lm

$(BUILD)/examples/%: examples/%.c $(BUILD)/lib/libumem.a $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/lib/libumem.a $(LDLIBS)

# The malloc family's own tests are standalone programs, never linked
# with the library: run on glibc (which proves the suite) and then with
# LD_PRELOAD=libumem.so.  Not in sanitizer builds (no malloc there).
MT_BINS := $(BUILD)/malloc-tests/malloc_conformance \
           $(BUILD)/malloc-tests/malloc_stress \
           $(BUILD)/malloc-tests/debug_malloc
MT_BINS += $(BUILD)/malloc-tests/leaks_malloc
ifneq ($(shell command -v g++ 2>/dev/null),)
  MT_BINS += $(BUILD)/malloc-tests/malloc_cxx
endif
$(BUILD)/malloc-tests/%: tests/%.c tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) -Iinclude -fno-builtin -pthread -rdynamic \
	    -o $@ $< -ldl
$(BUILD)/malloc-tests/malloc_cxx: tests/malloc_cxx.cc
	@mkdir -p $(dir $@)
	g++ -std=c++17 $(OPT) -Wall -Wextra -Werror -Wshadow \
	    -fno-allocation-dce -pthread -o $@ $<
# The stress suite once more with debugging on: the debug layer's checks
# and its magazines under threads, cross-thread frees, fork and signals.
ifeq ($(SAN),)
  MALLOC_TESTS_OURS := --preload $(abspath $(BUILD)/lib/libumem.so) \
                  $(MT_BINS) --env UMEM_DEBUG=default \
                  $(BUILD)/malloc-tests/malloc_stress
  MALLOC_TESTS := $(MT_BINS) $(MALLOC_TESTS_OURS)
else
  MT_BINS :=
  MALLOC_TESTS :=
  MALLOC_TESTS_OURS :=
endif

tests: $(TEST_BINS) $(EX_BINS) $(MT_BINS)

test: tests lib check-symbols
	BUILD=$(BUILD) sh tests/run.sh $(TEST_BINS) $(MALLOC_TESTS)

# The suite again under each mode that is not the default: the per-CPU
# fallbacks (locked slots; our own rseq registration when glibc's is off),
# no magazines, huge pages.  A check of a default skips under its option
# (tests/test.h, TU_SKIP_IF_OPTION); the stress tests run a quarter of
# their volume (TEST_LIGHT, tu_volume).  The malloc suites run with the
# library only: the modes are its options, and glibc's runs (which prove
# the suites) are make test's.
TEST_MODES := UMEM_OPTIONS=percpu=thread GLIBC_TUNABLES=glibc.pthread.rseq=0 \
              UMEM_OPTIONS=nomagazines UMEM_OPTIONS=hugepages=always
test-modes: tests lib
	@for m in $(TEST_MODES); do \
	    echo "== make test under $$m"; \
	    env $$m TEST_LIGHT=1 BUILD=$(BUILD) sh tests/run.sh $(TEST_BINS) \
	        $(MALLOC_TESTS_OURS) >$(BUILD)/test-modes.log 2>&1; rc=$$?; \
	    grep -E '^  FAIL|BROKEN' $(BUILD)/test-modes.log; \
	    tail -n 1 $(BUILD)/test-modes.log; \
	    [ $$rc -eq 0 ] || exit 1; \
	done

# Real programs (python3's regression tests, sqlite3, redis) under
# LD_PRELOAD, compared with their glibc runs; installs what is missing.
test-real: lib
	sh tests/real/run.sh $(abspath $(BUILD)/lib/libumem.so)

# We are the allocator: the library must not call the malloc family, nor
# stdio, which allocates.
check-symbols: $(BUILD)/lib/libumem.so
	@sh tests/check_symbols.sh $(BUILD)/lib/libumem.so

benchbins: $(BENCH_BINS)

bench: benchbins lib
	sh bench/run.sh $(BUILD)

examples: $(EX_BINS)

FUZZ_SRCS := $(wildcard tests/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/%.c=build-fuzz/%)
fuzz: $(FUZZ_BINS)
build-fuzz/%: tests/%.c $(wildcard tests/*.h) $(CORE_SRCS) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	clang $(BASEFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined \
	    -DUMEM_DEBUG_ASSERT -o $@ $< $(CORE_SRCS) $(LDLIBS)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/share/man/man3
	install -m 755 $(BUILD)/lib/libumem.so $(DESTDIR)$(PREFIX)/lib/libumem.so.$(VERSION)
	ln -sf libumem.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libumem.so.0
	ln -sf libumem.so.0 $(DESTDIR)$(PREFIX)/lib/libumem.so
	install -m 644 $(BUILD)/lib/libumem.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/*.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    libumem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/libumem.pc

clean:
	rm -rf build build-asan build-tsan build-fuzz build-clang
