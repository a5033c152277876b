#!/bin/sh
# Starts one of the demo apps built on real session libraries (image sessionstorm/lib-apps).
#   APP=django  Django sessions (cache backend) under gunicorn
#   APP=php     PHP native sessions under PHP's built-in server
# SESSION_MODE picks the session store (see each app), PORT the port (default 8080).
# gunicorn is exec'ed so that it is PID 1 and receives the signals Docker sends.
set -eu
PORT="${PORT:-8080}"
case "${APP:-}" in
django)
    cd /srv/lib-apps/django
    # Two processes of four threads each: enough concurrency for a handful of users, and
    # two separate memories per replica, as in a real deployment (LocMemCache is per process).
    exec gunicorn --bind "0.0.0.0:$PORT" --workers 2 --threads 4 --graceful-timeout 5 \
        --worker-tmp-dir /dev/shm libapp.wsgi
    ;;
php)
    export PHP_CLI_SERVER_WORKERS="${PHP_CLI_SERVER_WORKERS:-4}"
    # PHP's built-in server sets no SIGTERM handler, and the kernel drops a signal without
    # a handler sent to PID 1: exec'ed, `docker stop` would wait its full timeout. So this
    # shell stays PID 1 and passes SIGTERM/SIGINT on (the workers go with their parent).
    php -S "0.0.0.0:$PORT" -t /srv/lib-apps/php /srv/lib-apps/php/router.php &
    server=$!
    trap 'kill -TERM "$server"' TERM INT
    status=0
    # A trapped signal ends `wait` early: wait again until the server is gone.
    while kill -0 "$server" 2>/dev/null; do
        wait "$server" || status=$?
    done
    exit "$status"
    ;;
*)
    echo "lib-apps: set APP to django or php (APP is '${APP:-}')" >&2
    exit 64
    ;;
esac
