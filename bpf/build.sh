#!/usr/bin/env bash
# bpf/build.sh OUTDIR: compiles the project's BPF programs into OUTDIR.
#   zonlb_xdp.o    the steering program (always; needs only the kernel's UAPI headers and libbpf's);
#   zonlb_trace.o  the drop tracer used by `zonlb-afxdp trace` (CO-RE: its vmlinux.h is dumped from the kernel's
#                  BTF). Skipped, with a message, when the build machine's kernel has no BTF; everything else
#                  builds and runs without it, and `trace` then says why it cannot run.
# KERNEL_BTF overrides where the kernel's BTF is read (default /sys/kernel/btf/vmlinux).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: bpf/build.sh OUTDIR}
out=${out%/}
btf=${KERNEL_BTF:-/sys/kernel/btf/vmlinux}
mkdir -p "$out"
read -r -a flags <<<"$("$here/cflags.sh")"

echo "bpf/build.sh: clang ${flags[*]} zonlb_xdp.c -> $out/zonlb_xdp.o"
clang "${flags[@]}" -c "$here/zonlb_xdp.c" -o "$out/zonlb_xdp.o"

if [ -r "$btf" ]; then
    bpftool btf dump file "$btf" format c > "$out/vmlinux.h.part"
    mv "$out/vmlinux.h.part" "$out/vmlinux.h"
    echo "bpf/build.sh: clang ${flags[*]} zonlb_trace.bpf.c -> $out/zonlb_trace.o (vmlinux.h from $btf)"
    clang "${flags[@]}" -I"$out" -c "$here/zonlb_trace.bpf.c" -o "$out/zonlb_trace.o"
else
    rm -f "$out/zonlb_trace.o" "$out/vmlinux.h"
    echo "bpf/build.sh: $btf not found: the kernel has no BTF, so the drop tracer (zonlb-afxdp trace) is not built"
fi
