#!/usr/bin/env bash
# Installs and builds what is missing (scripts/setup.sh), runs every test (unit, then integration over real
# network namespaces) and prints the totals last, on a line of their own: "N passed, N failed". Run as root.
set -uo pipefail
cd "$(dirname "$0")/.."
export HOME="${HOME:-/root}" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! ./scripts/setup.sh; then
    echo "test.sh: setup failed; no test ran"
    echo "0 passed, 1 failed"
    exit 1
fi

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
for project in tests/ZonLb.UnitTests tests/ZonLb.IntegrationTests; do
    name=$(basename "$project")
    echo "== $name"
    timeout 1800 dotnet test "$project" -c Release --no-build \
        --blame-hang-timeout 5m \
        --logger "trx;LogFileName=$results/$name.trx" \
        --logger "console;verbosity=normal" || status=1
done

passed=0
failed=0
for trx in "$results"/*.trx; do
    [ -f "$trx" ] || continue
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
    p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
    f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
done
expected=2
found=$(ls "$results"/*.trx 2>/dev/null | wc -l)
if [ "$found" -lt "$expected" ]; then
    echo "test.sh: only $found of $expected test assemblies reported results" >&2
    failed=$((failed + expected - found))
    status=1
fi
[ "$failed" -gt 0 ] && status=1

# Namespaces are removed by the tests themselves; say so if any of ours survived.
left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^zlbt' || true)
[ -n "$left" ] && echo "test.sh: warning: test namespaces left behind: $left" >&2

echo "$passed passed, $failed failed"
exit $status
