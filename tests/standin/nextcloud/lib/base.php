<?php
declare(strict_types=1);
/*
 * Test stand-in for a Nextcloud release. Loads the shared code; every entry
 * point (occ, status.php, index.php, remote.php, cron.php, probe.php) starts here.
 */
require_once __DIR__ . '/public/HintException.php';
foreach (['SystemConfig', 'Logger', 'Database', 'Memcache', 'Apps', 'Server', 'Http', 'Installer', 'Updater', 'ObjectStore', 'Probe', 'SetupChecks', 'ServerInfo'] as $standinClass) {
	require_once __DIR__ . '/private/Standin/' . $standinClass . '.php';
}
foreach (['Input', 'Output', 'Command', 'Commands', 'Application'] as $standinClass) {
	require_once __DIR__ . '/private/Standin/Console/' . $standinClass . '.php';
}
unset($standinClass);
