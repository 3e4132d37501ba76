#!/usr/bin/env bash
# Prints the clang flags that compile a BPF program of this project on the build machine, whatever its
# architecture: -target bpf, the multiarch directory that holds the kernel's asm/ UAPI headers (Debian keeps
# them under /usr/include/<triplet>), and __TARGET_ARCH_<arch> for libbpf's bpf_tracing.h (CO-RE programs).
# No glibc header is needed: the programs include only the kernel's UAPI headers and libbpf's.
#   clang $(bpf/cflags.sh) -c prog.bpf.c -o prog.o
set -euo pipefail

machine=$(uname -m)
triplet=$(clang -print-multiarch 2>/dev/null || true)
if [ -z "$triplet" ]; then
    case "$machine" in
        armv7l|armv8l) triplet=arm-linux-gnueabihf ;;
        ppc64le) triplet=powerpc64le-linux-gnu ;;
        *) triplet="$machine-linux-gnu" ;;
    esac
fi
case "$machine" in
    x86_64|i?86) arch=x86 ;;
    aarch64|arm64) arch=arm64 ;;
    arm*) arch=arm ;;
    s390x) arch=s390 ;;
    ppc64le|ppc64) arch=powerpc ;;
    riscv64) arch=riscv ;;
    loongarch64) arch=loongarch ;;
    mips*) arch=mips ;;
    *) echo "bpf/cflags.sh: unknown machine $machine: no __TARGET_ARCH for bpf_tracing.h" >&2; exit 1 ;;
esac

flags=(-O2 -g -Wall -Werror -target bpf "-D__TARGET_ARCH_$arch")
if [ -d "/usr/include/$triplet/asm" ]; then
    flags+=("-I/usr/include/$triplet")
elif [ ! -d /usr/include/asm ]; then
    echo "bpf/cflags.sh: the kernel's asm/ headers are in neither /usr/include/$triplet nor /usr/include (install linux-libc-dev)" >&2
    exit 1
fi
echo "${flags[*]}"
