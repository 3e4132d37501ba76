#!/usr/bin/env bash
# Installs what ZonLb.AfXdp needs on Debian 12 and builds it (Release). Run as root (no sudo needed; with sudo
# works too). Idempotent: installs only missing packages, and the build is incremental.
#
# What each package is for (the build, the demo, the tests and the benchmarks; nothing else is needed on a
# Debian 12 minbase with the .NET SDK):
#   clang llvm linux-libc-dev libbpf-dev   compile the XDP programs (bpf/build.sh) against the kernel's UAPI headers
#   bpftool                                dumps the kernel's BTF into vmlinux.h for the drop tracer
#   libxdp-dev (libxdp1)                   libxdp, which the engine loads: XDP attach with the dispatcher, AF_XDP set-up
#   xdp-tools                              xdp-loader: the coexistence tests load a program of their own through libxdp
#   iproute2 ethtool procps                ip/tc/ip netns, offload and channel settings, sysctl/ps (tests, scripts)
#   nftables iperf3 curl netcat-openbsd    the tests' and benchmarks' traffic and the nftables reference rows
#   iputils-ping socat                     ping through the VIP, UDP clients
#   apache2-utils hping3                   ab: many short HTTP connections; hping3: spoofed floods (robustness tests)
#   man-db zsh fish                        man -l renders the generated man pages; the completions load (install test)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(clang llvm linux-libc-dev libbpf-dev bpftool libxdp-dev xdp-tools
          iproute2 ethtool procps nftables iperf3 curl netcat-openbsd iputils-ping socat apache2-utils hping3 man-db zsh fish)

say() { echo "setup.sh: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (AF_XDP, XDP attach and network namespaces need it)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${#missing[@]} Debian package(s): ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    say "packages installed"
else
    say "every package needed is installed"
fi

if ! command -v dotnet >/dev/null 2>&1; then
    echo "setup.sh: the .NET 10 SDK (dotnet) is not on PATH; install it first (https://learn.microsoft.com/dotnet/core/install/linux-debian)" >&2
    exit 1
fi

export HOME="${HOME:-/root}" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
say "BPF flags for this machine: $(bpf/cflags.sh)"
say "building ZonLb.sln (Release; the first build restores NuGet packages and takes a minute or two)"
start=$SECONDS
dotnet build ZonLb.sln -c Release -nologo -v minimal -clp:NoSummary
say "built in $((SECONDS - start)) s; the program is src/Cli/bin/Release/net10.0/zonlb-afxdp.dll (./scripts/install.sh puts zonlb-afxdp on PATH)"
