#!/bin/sh
# Install what building, testing and benchmarking need on Debian 12, if it
# is missing.  Safe to run again; uses sudo when not root.
set -e
need=""
command -v cc >/dev/null 2>&1 || need="$need build-essential"
command -v make >/dev/null 2>&1 || need="$need make"
command -v clang >/dev/null 2>&1 || need="$need clang"
[ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ] || \
  [ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || \
  need="$need libclang-rt-14-dev"
# valgrind: memcheck's client-request header (built into libumem when
# present) and the debug-overhead benchmark's reference point.
command -v valgrind >/dev/null 2>&1 && [ -e /usr/include/valgrind/memcheck.h ] || \
  need="$need valgrind"
# The allocators `make bench` compares libumem with (bench/malloc_bench.sh).
for pkg in libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 libtbbmalloc2; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || \
    need="$need $pkg"
done
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps.sh: installing:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
