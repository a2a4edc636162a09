#!/usr/bin/env bash
# install-check.sh - `make install` into a scratch prefix, then build and run
# examples/hello using nothing but `pkg-config --cflags --libs labyrinth`,
# statically and against the shared library; and check the shared library
# exports exactly the public lab_* API.
set -eu
cd "$(dirname "$0")/.."
command -v pkg-config >/dev/null || { echo "pkg-config not installed (scripts/install-deps.sh)"; exit 1; }
prefix=$(mktemp -d /tmp/labyrinth-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
make -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs labyrinth)
echo "pkg-config --cflags --libs labyrinth: $flags"
cc -std=c11 -Wall -Werror -o "$prefix/hello" examples/hello/hello.c $flags
LD_LIBRARY_PATH="$prefix/lib" "$prefix/hello" | tee "$prefix/out.txt"
grep -q "VM 2 freeing it: frame belongs to another owner" "$prefix/out.txt"
grep -q "VM 1 freeing it: success" "$prefix/out.txt"
grep -q "VM 1 freeing it again: frame is not allocated" "$prefix/out.txt"
grep -q "lab_check: success" "$prefix/out.txt"
cc -std=c11 -Wall -Werror -o "$prefix/hello-static" examples/hello/hello.c $(pkg-config --cflags labyrinth) \
	"$prefix/lib/liblabyrinth.a" -lpthread
"$prefix/hello-static" >/dev/null
# Exported symbols: only lab_*, and each one declared LAB_API in an installed header.
exported=$(nm -D --defined-only "$prefix/lib/liblabyrinth.so" | awk '$2 ~ /[TDB]/ {print $3}' | sort)
bad=$(echo "$exported" | grep -v '^lab_' || true)
[ -z "$bad" ] || { echo "FAIL: exported symbols outside lab_*: $bad"; exit 1; }
for s in $exported; do
	grep -rqE "LAB_API .*[ *]$s\(" "$prefix/include" || { echo "FAIL: $s exported but not declared LAB_API"; exit 1; }
done
echo "OK: installed, built with pkg-config only (shared and static), $(echo "$exported" | wc -l) exported symbols, all public lab_*"
