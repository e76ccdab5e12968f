#!/bin/sh
# Entry point of the basalt image, modelled on the official redis image's
# docker-entrypoint.sh so that compose files written for `redis` keep working:
#   redis-server --appendonly yes      -> basalt --appendonly yes
#   --save 60 1 --loglevel warning     -> basalt --save 60 1 --loglevel warning
#   /usr/local/etc/redis/redis.conf    -> basalt /usr/local/etc/redis/redis.conf
#   redis-cli ..., sh, anything else   -> run as is
set -e

case "$1" in
    redis-server | basalt) shift; set -- basalt "$@" ;;
    -* | *.conf) set -- basalt "$@" ;;
esac

# Files the server writes are private to its user, as with the redis image.
um="$(umask)"
if [ "$um" = 0022 ]; then
    umask 0077
fi

if [ "$1" = basalt ]; then
    # The official image is built with protected mode off by default, so other containers
    # reach it without a password. Do the same unless a config file or the command line
    # decides (a config file must come first, so it is the first argument if there is one).
    shift
    case "$1" in
        "" | -*)
            case " $* " in
                *" --protected-mode "*) ;;
                *) set -- --protected-mode no "$@" ;;
            esac
            ;;
    esac
    set -- basalt "$@"

    # Started as root (the default): make the data directory ours and drop to the basalt
    # user (uid 999, as redis's, so a volume written by the redis image is already ours).
    if [ "$(id -u)" = 0 ] && id basalt >/dev/null 2>&1; then
        find . \! -user basalt -exec chown basalt:basalt '{}' +
        exec setpriv --reuid=basalt --regid=basalt --init-groups "$@"
    fi
fi

exec "$@"
