#!/bin/sh
# The library is the allocator: it must not import the malloc family or
# stdio (which allocates).  Lists the offending undefined symbols, if any.
lib=${1:?usage: check_symbols.sh libumem.so}
bad=$(nm -D -u "$lib" | awk '{print $NF}' | sed 's/@.*//' | grep -E -x \
  'malloc|calloc|realloc|free|reallocarray|memalign|posix_memalign|aligned_alloc|valloc|pvalloc|strdup|strndup|asprintf|vasprintf|printf|fprintf|sprintf|snprintf|vsnprintf|vfprintf|fopen|fdopen|fclose|fputs|puts|fwrite|fflush|perror|getline|backtrace_symbols|qsort|setenv|putenv|opendir|scandir|dlerror' || true)
if [ -n "$bad" ]; then
	echo "check_symbols: $lib imports forbidden functions:"; echo "$bad"; exit 1
fi
echo "check_symbols: $lib imports no malloc-family or stdio functions"
