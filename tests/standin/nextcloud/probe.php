<?php
declare(strict_types=1);
/*
 * NOT PART OF NEXTCLOUD. Health/data-path probe of the test stand-in, used by
 * the cluster tests: GET /probe.php[?write=KEY][&read=KEY][&checks=db,redis,apcu,datadir]
 * 200 when every selected check (and the write) succeeded, 503 otherwise,
 * 400 for an invalid key. Details in tests/standin/README.md.
 */
require_once __DIR__ . '/lib/versioncheck.php';
require_once __DIR__ . '/lib/base.php';

header('Cache-Control: no-store');
try {
	$server = new \Standin\Server();
	[$code, $body] = (new \Standin\Probe($server))->run($_GET);
} catch (Throwable $e) {
	[$code, $body] = [503, ['ok' => false, 'error' => get_class($e) . ': ' . $e->getMessage(), 'hostname' => gethostname()]];
}
\Standin\Http::json($code, $body);
