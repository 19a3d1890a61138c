<?php
declare(strict_types=1);
/*
 * Test stand-in for a Nextcloud release: status.php, same keys, order and
 * HTTP behaviour as Nextcloud 32 (200 also in maintenance; 400 JSON for an
 * untrusted Host once installed; 503 when the server checks fail; 500 when
 * start-up fails, e.g. the database is unreachable).
 */
require_once __DIR__ . '/lib/versioncheck.php';

try {
	require_once __DIR__ . '/lib/base.php';
	$server = \Standin\Server::boot('/status.php');
	$values = [
		'installed' => $server->installed(),
		'maintenance' => $server->maintenance(),
		'needsDbUpgrade' => $server->needUpgrade(),
		'version' => $server->versionWithBuild(),
		'versionstring' => $server->versionString,
		'edition' => '',
		'productname' => \Standin\Server::PRODUCT,
		'extendedSupport' => false,
	];
	if (PHP_SAPI === 'cli') {
		print_r($values);
	} else {
		header('Access-Control-Allow-Origin: *');
		header('Content-Type: application/json');
		echo json_encode($values);
	}
} catch (Exception $ex) {
	http_response_code(500);
	if (isset($server)) {
		$server->logger->error(get_class($ex) . ': ' . $ex->getMessage(), 'remote');
	}
}
