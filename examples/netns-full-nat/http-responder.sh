#!/bin/sh
# One HTTP/1.0 answer per connection, run by socat for each client; says which source the backend saw.
# It reads the request first: closing with unread request bytes would make the kernel reset the connection.
while IFS= read -r line; do
    case "$line" in ""|"$(printf '\r')") break ;; esac
done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from the backend; you came from %s:%s\n' "$SOCAT_PEERADDR" "$SOCAT_PEERPORT"
