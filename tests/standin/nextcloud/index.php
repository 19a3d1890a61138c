<?php
declare(strict_types=1);
/*
 * Test stand-in for a Nextcloud release: index.php.
 * - not installed: the installer page (200);
 * - Host not trusted: 400 ("Access through untrusted domain");
 * - maintenance: 503 with X-Nextcloud-Maintenance-Mode; upgrade needed: 503;
 * - uses the distributed cache like a page view (Redis down: 503);
 * - "/" redirects to /index.php/login, "/login" is the login page (200),
 *   "/heartbeat" answers 204, anything else redirects to the login page.
 */
require_once __DIR__ . '/lib/versioncheck.php';

use Standin\Http;
use Standin\Server;

try {
	require_once __DIR__ . '/lib/base.php';
	$server = Server::boot('/index.php');
	$webroot = Http::webroot($server);
	if (!$server->installed()) {
		Http::page(200, 'Installation', '<p>Nextcloud is not installed yet. Run <code>occ maintenance:install</code>.</p>');
		exit();
	}
	$path = Http::pathInfo();
	if ($path === '/heartbeat') {
		http_response_code(204);
		exit();
	}
	if ($server->maintenance()) {
		Http::page(503, 'Maintenance mode', '<p>This Nextcloud instance is currently in maintenance mode, which may take a while.</p>',
			['X-Nextcloud-Maintenance-Mode: 1', 'Retry-After: 120']);
		exit();
	}
	if ($server->needUpgrade()) {
		Http::page(503, 'Update needed', '<p>Please use the command line updater because updating via browser is disabled in your config.php.</p>', ['Retry-After: 120']);
		exit();
	}
	$server->memcache()->touchDistributed();
	if ($path === '/login') {
		Http::page(200, 'Login', '<form method="post" name="login"><input name="user" autocomplete="username"><input type="password" name="password"><button type="submit">Log in</button></form>');
		exit();
	}
	$target = $webroot . '/index.php/login';
	if ($path !== '' && $path !== '/') {
		$target .= '?redirect_url=' . rawurlencode($webroot . '/index.php' . $path);
	}
	header('Location: ' . $target, true, 302);
} catch (\OCP\HintException $e) {
	Http::page(500, 'Error', '<p>' . htmlspecialchars($e->getHint()) . '</p>');
} catch (\RedisException $e) {
	if (isset($server)) {
		$server->logger->error('RedisException: ' . $e->getMessage());
	}
	Http::page(503, 'Service unavailable', '<p>RedisException: ' . htmlspecialchars($e->getMessage()) . '</p>');
} catch (Throwable $e) {
	if (isset($server)) {
		$server->logger->error(get_class($e) . ': ' . $e->getMessage());
	}
	Http::page(500, 'Internal Server Error', '<p>The server was unable to complete your request.</p>');
}
