<?php
declare(strict_types=1);
/*
 * Test stand-in for a Nextcloud release: cron.php. Run on the command line
 * as the owner of config.php; records core/lastcron and switches the
 * background job mode to 'cron', as Nextcloud does when called from cron.
 */
require_once __DIR__ . '/lib/versioncheck.php';

try {
	require_once __DIR__ . '/lib/base.php';
	$server = \Standin\Server::boot('/cron.php');
	if (!$server->installed()) {
		throw new Exception('Not installed');
	}
	if (isset($argv[1]) && ($argv[1] === '-h' || $argv[1] === '--help')) {
		echo "Description:\n  Run the background job routine\n\nUsage:\n  php -f cron.php -- [-h] [--verbose] [<job-classes>...]\n";
		exit(0);
	}
	if ($server->needUpgrade() || $server->maintenance()) {
		exit();
	}
	$db = $server->db();
	$mode = $db->getAppValue('core', 'backgroundjobs_mode', 'ajax');
	if ($mode === 'none') {
		echo PHP_SAPI === 'cli' ? 'Background Jobs are disabled!' . PHP_EOL : '{"data":{"message":"Background jobs disabled!"},"status":"error"}';
		exit(1);
	}
	if (PHP_SAPI === 'cli') {
		$user = posix_getuid();
		$configUser = fileowner($server->configDir . 'config.php');
		if ($user !== $configUser) {
			echo 'Console has to be executed with the user that owns the file config/config.php' . PHP_EOL;
			echo 'Current user id: ' . $user . PHP_EOL;
			echo 'Owner id of config.php: ' . $configUser . PHP_EOL;
			exit(1);
		}
		if ($mode !== 'cron') {
			$db->setAppValue('core', 'backgroundjobs_mode', 'cron');
		}
	} else {
		// webcron / ajax request
		header('Content-Type: application/json');
		echo '{"status":"success"}';
	}
	$db->setAppValue('core', 'lastcron', (string)time());
	exit(0);
} catch (Exception $ex) {
	echo $ex . PHP_EOL;
	exit(1);
} catch (Error $ex) {
	echo $ex . PHP_EOL;
	exit(1);
}
