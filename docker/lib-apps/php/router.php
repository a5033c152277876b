<?php
// A visit counter on PHP native sessions, the way most PHP apps use them: the `PHPSESSID`
// cookie, `session_start()`, `$_SESSION`, and the default non-strict mode (an unknown id
// is adopted as it is: the page shows an empty session and sends no new cookie).
//
// Environment:
//   SESSION_MODE=redis  sessions in Redis through phpredis (`session.save_handler=redis`),
//                       at SESSION_STORE (`redis://host:port`, default redis://127.0.0.1:6379)
//   SESSION_MODE=files  PHP's default `files` handler: a directory inside each replica
//
// Routes:
//   GET /         counts the visit in the session and shows `Visits: N`, N including this
//                 visit. Every page view writes: there is no read-only page.
//   GET /healthz  200, or 503 when the Redis store does not answer (redis mode)

$mode = getenv('SESSION_MODE') ?: 'files';
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);

/** `redis://host:port` (the harness's SESSION_STORE) as [host, port]. */
function redis_store(): array
{
    $url = parse_url(getenv('SESSION_STORE') ?: 'redis://127.0.0.1:6379');
    return [$url['host'] ?? '127.0.0.1', $url['port'] ?? 6379];
}

if ($mode !== 'redis' && $mode !== 'files') {
    http_response_code(500);
    error_log("php app: SESSION_MODE must be redis or files, not '$mode'");
    echo "bad SESSION_MODE\n";
    return true;
}

if ($path === '/healthz') {
    if ($mode === 'redis') {
        [$host, $port] = redis_store();
        try {
            $redis = new Redis();
            $redis->connect($host, $port, 0.5);
            $redis->ping();
        } catch (Throwable $e) {
            http_response_code(503);
            echo "store unreachable\n";
            return true;
        }
    }
    echo "ok\n";
    return true;
}

if ($path !== '/' || $_SERVER['REQUEST_METHOD'] !== 'GET') {
    http_response_code(404);
    echo "not found\n";
    return true;
}

if ($mode === 'redis') {
    [$host, $port] = redis_store();
    ini_set('session.save_handler', 'redis');
    ini_set('session.save_path', "tcp://$host:$port");
}
if (!session_start()) {
    http_response_code(500);
    echo "session store unavailable\n";
    return true;
}
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
$visits = $_SESSION['visits'];
// Saved before the page is sent: a 200 means the visit is stored.
if (!session_write_close()) {
    http_response_code(500);
    echo "session not saved\n";
    return true;
}
header('Content-Type: text/html; charset=utf-8');
echo "<!doctype html>\n<title>Visits</title>\n<p>Visits: $visits</p>\n";
return true;
