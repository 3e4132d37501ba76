#!/usr/bin/env bash
# Installs what ZonLb.AfXdp needs on Debian 12 and builds it (Release). Run as root. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libxdp-dev libbpf-dev clang llvm bpftool iproute2 ethtool nftables iperf3 curl netcat-openbsd
          iputils-ping socat linux-libc-dev)

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (AF_XDP, XDP attach and network namespaces need it)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null 2>&1; then
    echo "setup.sh: the .NET 10 SDK (dotnet) is not on PATH; install it first" >&2
    exit 1
fi

# clang -target bpf needs the multiarch asm/ headers; Debian keeps them under /usr/include/<triplet>.
if [ ! -e /usr/include/asm/types.h ] && [ ! -e "/usr/include/$(uname -m)-linux-gnu/asm/types.h" ]; then
    echo "setup.sh: asm/types.h not found (linux-libc-dev)" >&2
    exit 1
fi

export HOME="${HOME:-/root}" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build ZonLb.sln -c Release -nologo -v quiet -clp:ErrorsOnly
echo "setup.sh: built; the program is src/Cli/bin/Release/net10.0/zonlb-afxdp.dll"
