<?php
declare(strict_types=1);
/*
 * Test stand-in for a Nextcloud release: ocs/v2.php, the OCS API entry point, with the one route the stand-in
 * serves, the serverinfo app's GET /ocs/v2.php/apps/serverinfo/api/v1/info (while the app is enabled).
 * As Nextcloud 32: untrusted Host 400 (base.php), maintenance or upgrade needed 503, unknown route 404 (OCS status
 * 998), another method 405, no or a wrong NC-Token 401 (OCS status 997, empty data), the document with 200;
 * JSON with format=json or "Accept: application/json", XML otherwise.
 */
require_once __DIR__ . '/../lib/versioncheck.php';

use Standin\Http;
use Standin\Server;
use Standin\ServerInfo;

try {
	require_once __DIR__ . '/../lib/base.php';
	$server = Server::boot('/ocs/v2.php');
	if ($server->needUpgrade() || $server->maintenance()) {
		ServerInfo::respond(503, [], 'Service unavailable', ['X-Nextcloud-Maintenance-Mode: 1']);
		exit();
	}
	$path = Http::pathInfo();
	if (rtrim($path, '/') !== ServerInfo::ROUTE || !$server->apps()->isEnabled('serverinfo')) {
		ServerInfo::respond(ServerInfo::RESPOND_NOT_FOUND, [], 'Invalid query, please check the syntax. API specifications are here:'
			. ' http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.' . "\n");
		exit();
	}
	if (strtoupper((string)($_SERVER['REQUEST_METHOD'] ?? 'GET')) !== 'GET') {
		header('Content-Type: ' . (ServerInfo::format() === 'json' ? 'application/json; charset=utf-8' : 'text/xml; charset=UTF-8'));
		http_response_code(405);
		exit();
	}
	$serverInfo = new ServerInfo($server);
	if (!$serverInfo->authorized()) {
		ServerInfo::respond(ServerInfo::RESPOND_UNAUTHORISED, []);
		exit();
	}
	$flag = fn (string $name) => filter_var($_GET[$name] ?? true, FILTER_VALIDATE_BOOLEAN, FILTER_NULL_ON_FAILURE) ?? true;
	ServerInfo::respond(200, $serverInfo->info($flag('skipApps'), $flag('skipUpdate')));
} catch (Throwable $ex) {
	if (isset($server)) {
		$server->logger->error(get_class($ex) . ': ' . $ex->getMessage(), 'ocs');
	}
	ServerInfo::respond(996, [], 'Internal Server Error' . "\n");
}
