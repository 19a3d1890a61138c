<?php
/*
 * Installed by nextcloud_ha.cluster (role nextcloud). Runs Nextcloud's occ with its command line read from
 * standard input as JSON, {"webroot": "/var/www/nextcloud", "args": ["maintenance:install", "--database-pass=..."]},
 * so that passwords given as occ options never appear in the argv of any process (ps, /proc/PID/cmdline,
 * audit logs). Nothing else differs from `php occ ARGS...`: the arguments reach occ's console unchanged.
 */
if (PHP_SAPI !== 'cli') {
	exit(1);
}
$input = json_decode((string)stream_get_contents(STDIN), true);
if (!is_array($input) || !is_string($input['webroot'] ?? null) || !is_array($input['args'] ?? null)) {
	fwrite(STDERR, "occ-stdin: expected a JSON object with 'webroot' (string) and 'args' (list) on standard input\n");
	exit(64);
}
$webroot = rtrim($input['webroot'], '/');
if (!is_file($webroot . '/console.php')) {
	fwrite(STDERR, "occ-stdin: no Nextcloud console.php in $webroot\n");
	exit(66);
}
$argv = array_merge([$webroot . '/occ'], array_map('strval', $input['args']));
$argc = count($argv);
unset($input);
$_SERVER['argv'] = $argv;
$_SERVER['argc'] = $argc;
$_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = $_SERVER['SCRIPT_FILENAME'] = $webroot . '/occ';
chdir($webroot);
require $webroot . '/console.php';
