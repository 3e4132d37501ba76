#!/bin/sh
# One HTTP/1.0 answer per connection, run by socat for each client; says which source the backend saw.
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from the backend; you came from %s:%s\n' "$SOCAT_PEERADDR" "$SOCAT_PEERPORT"
