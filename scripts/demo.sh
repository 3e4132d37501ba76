#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (packages, build) and runs the two-namespace demo
# (examples/netns-full-nat): ping, curl and UDP through the VIP, the engine's counters, then cleanup.
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec examples/netns-full-nat/run.sh
