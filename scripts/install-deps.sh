#!/usr/bin/env bash
# install-deps.sh - everything `make check`, `make demo`, `labyrinth bench`
# (librsvg2-bin: its --plot FILE.png), `make fuzz` (clang, llvm, the
# libFuzzer runtime; python3 for fuzz/gen_corpus.py) and the QEMU kernel
# need from Debian 12.  Run as root.
set -eu
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (it calls apt-get install)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
	build-essential make gcc clang llvm libclang-rt-14-dev \
	valgrind pkg-config python3 librsvg2-bin \
	spin qemu-system-x86 grub-pc-bin xorriso mtools \
	libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
