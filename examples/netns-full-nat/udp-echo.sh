#!/bin/sh
# Echoes one datagram, run by socat for each one received; says which source the backend saw.
read -r line
printf 'udp echo: %s (from %s:%s)\n' "$line" "$SOCAT_PEERADDR" "$SOCAT_PEERPORT"
