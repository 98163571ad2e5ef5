#!/bin/sh
# Usage: check_dotprod_symbols.sh NM OBJECTS   (OBJECTS: the kernel layer's objects, ';' or ' '
# separated). Fails if an armv8.2 object (*_dotprod.cpp.o) defines a weak or vague-linkage symbol
# (an inline function or template instance that another file may also emit): the linker could
# keep that armv8.2 copy for the armv8.0 code too, which then dies with SIGILL on CPUs without
# dotprod, and only on those that happen to use it. See kernels/src/kernels_dotprod.cpp.
nm=$1
shift
found=0
for o in $(echo "$*" | tr ';' ' '); do
  case $o in *_dotprod.cpp.o) ;; *) continue ;; esac
  found=1
  weak=$("$nm" -C "$o" | grep -E '^[0-9a-f]* +[VWu] ') || true
  if [ -n "$weak" ]; then
    echo "$o defines weak / vague-linkage symbols:"
    echo "$weak"
    exit 1
  fi
  echo "$o: only its own strong symbols"
done
if [ $found = 0 ]; then
  echo "no *_dotprod.cpp.o among the objects"
  exit 1
fi
