#!/bin/sh
# The official redis image's entry point contract, for Debian's Redis.
set -e

# Flags or a config file alone are for redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# Without a config file Redis would only answer on loopback (protected mode): a container's
# port is for others. Given first, later arguments still override these.
if [ "$1" = 'redis-server' ] && [ "${2%.conf}" = "${2:-}" ]; then
	shift
	set -- redis-server --protected-mode no --bind 0.0.0.0 "$@"
fi

exec "$@"
