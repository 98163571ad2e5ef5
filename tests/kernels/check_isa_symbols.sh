#!/bin/sh
# Usage: check_isa_symbols.sh NM SUFFIXES OBJECTS
#   SUFFIXES: object name endings to check, e.g. "_avx2.cpp.o _avx512.cpp.o"
#   OBJECTS:  the kernel layer's objects (';' or ' ' separated)
# Fails if one of those per-ISA objects defines a weak or vague-linkage symbol (an inline function
# or template instance that another file may also emit): the linker keeps one copy for the whole
# program, so an AVX-512 copy could end up called on an AVX2-only CPU (SIGILL). The C++ personality
# pointer (DW.ref.__gxx_personality_v0) is data, not code, and is allowed.
nm=$1
suffixes=$2
shift 2
found=0
for o in $(echo "$*" | tr ';' ' '); do
  match=0
  for s in $suffixes; do
    case $o in *"$s") match=1 ;; esac
  done
  [ $match = 1 ] || continue
  found=1
  weak=$("$nm" -C "$o" | grep -E '^[0-9a-f]* +[VWu] ' | grep -v 'DW.ref.__gxx_personality_v0') || true
  if [ -n "$weak" ]; then
    echo "$o defines weak / vague-linkage symbols:"
    echo "$weak"
    exit 1
  fi
  echo "$o: only its own strong symbols"
done
if [ $found = 0 ]; then
  echo "no object ending in one of: $suffixes"
  exit 1
fi
