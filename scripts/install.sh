#!/usr/bin/env bash
# Installs zonlb-afxdp like a system tool, or removes it again.
#
#   ./scripts/install.sh [--prefix /usr/local] [--destdir DIR] [--no-build]
#   ./scripts/install.sh --uninstall [--prefix /usr/local] [--destdir DIR]
#
# Installs (PREFIX defaults to /usr/local; DESTDIR, empty by default, is prepended to every path, for packaging):
#   PREFIX/lib/zonlb-afxdp/                 the published program (framework-dependent: needs the .NET 10 runtime)
#                                           with its BPF objects under bpf/
#   PREFIX/bin/zonlb-afxdp                  a link to it
#   PREFIX/share/man/man8/zonlb-afxdp.8     the manual, generated from the CLI's own definition
#   PREFIX/share/man/man5/zonlb.toml.5      every configuration key, generated from the option table
#   PREFIX/share/bash-completion/completions/zonlb-afxdp, PREFIX/share/zsh/site-functions/_zonlb-afxdp,
#   PREFIX/share/fish/vendor_completions.d/zonlb-afxdp.fish
#   PREFIX/lib/systemd/system/zonlb-afxdp.service   (Type=notify; ExecStart points at PREFIX/bin)
#   PREFIX/share/doc/zonlb-afxdp/zonlb.toml.example
# Every installed path is listed in PREFIX/lib/zonlb-afxdp/install-manifest, which --uninstall removes again.
# It never touches /etc/zonlb/zonlb.toml: write your configuration there yourself (see the example).
# Runs scripts/setup.sh first unless --no-build (packages and the Release build).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=
uninstall=0
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --uninstall) uninstall=1; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
    esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
destdir=${destdir%/}

root="$destdir$prefix"
libdir="$root/lib/zonlb-afxdp"
manifest="$libdir/install-manifest"
say() { echo "install.sh: $*"; }

if [ "$uninstall" = 1 ]; then
    if [ ! -f "$manifest" ]; then
        echo "install.sh: nothing to uninstall: $manifest not found" >&2
        exit 1
    fi
    n=0
    while IFS= read -r path; do
        [ -n "$path" ] || continue
        if [ -e "$destdir$path" ] || [ -L "$destdir$path" ]; then rm -f "$destdir$path"; n=$((n + 1)); fi
    done < "$manifest"
    rm -rf "$libdir"
    say "removed $n file(s) and $libdir"
    exit 0
fi

if [ "$build" = 1 ]; then
    ./scripts/setup.sh
fi
export HOME="${HOME:-/root}" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

say "publishing src/Cli to $libdir"
rm -rf "$libdir"
mkdir -p "$libdir"
dotnet publish src/Cli -c Release -nologo -v minimal -clp:NoSummary -o "$libdir"
rm -f "$libdir"/*.pdb
installed=()
while IFS= read -r f; do installed+=("${f#"$destdir"}"); done < <(find "$libdir" -type f -o -type l)

put() {  # put MODE FILE: records FILE (written already) with MODE
    chmod "$1" "$2"
    installed+=("${2#"$destdir"}")
}

mkdir -p "$root/bin"
ln -sfn "../lib/zonlb-afxdp/zonlb-afxdp" "$root/bin/zonlb-afxdp"
installed+=("$prefix/bin/zonlb-afxdp")
bin="$libdir/zonlb-afxdp"

say "man pages, completions, systemd unit and example"
mkdir -p "$root/share/man/man8" "$root/share/man/man5"
"$bin" manual zonlb-afxdp.8 > "$root/share/man/man8/zonlb-afxdp.8"; put 644 "$root/share/man/man8/zonlb-afxdp.8"
"$bin" manual zonlb.toml.5 > "$root/share/man/man5/zonlb.toml.5"; put 644 "$root/share/man/man5/zonlb.toml.5"

mkdir -p "$root/share/bash-completion/completions" "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
"$bin" completion bash > "$root/share/bash-completion/completions/zonlb-afxdp"; put 644 "$root/share/bash-completion/completions/zonlb-afxdp"
"$bin" completion zsh > "$root/share/zsh/site-functions/_zonlb-afxdp"; put 644 "$root/share/zsh/site-functions/_zonlb-afxdp"
"$bin" completion fish > "$root/share/fish/vendor_completions.d/zonlb-afxdp.fish"; put 644 "$root/share/fish/vendor_completions.d/zonlb-afxdp.fish"

mkdir -p "$root/lib/systemd/system"
sed "s|/usr/local/bin/zonlb-afxdp|$prefix/bin/zonlb-afxdp|g" examples/systemd/zonlb-afxdp.service > "$root/lib/systemd/system/zonlb-afxdp.service"
put 644 "$root/lib/systemd/system/zonlb-afxdp.service"

mkdir -p "$root/share/doc/zonlb-afxdp"
cp examples/netns-full-nat/zonlb.toml "$root/share/doc/zonlb-afxdp/zonlb.toml.example"; put 644 "$root/share/doc/zonlb-afxdp/zonlb.toml.example"

printf '%s\n' "${installed[@]}" > "$manifest"
echo "$prefix/lib/zonlb-afxdp/install-manifest" >> "$manifest"
say "installed ${#installed[@]} file(s) under $root; $("$bin" --version)"
if [ -z "$destdir" ]; then
    case ":$PATH:" in *":$prefix/bin:"*) ;; *) say "note: $prefix/bin is not on PATH" ;; esac
    say "next: write /etc/zonlb/zonlb.toml (example: $prefix/share/doc/zonlb-afxdp/zonlb.toml.example), then"
    say "      systemctl daemon-reload && systemctl enable --now zonlb-afxdp"
fi
