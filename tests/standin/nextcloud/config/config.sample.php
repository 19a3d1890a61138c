<?php
/*
 * Test stand-in for a Nextcloud release -- a short sample, not Nextcloud's.
 * Copy the keys you need into config/config.php, or into an extra
 * config/<name>.config.php (merged over config.php, later names win).
 * 'occ maintenance:install' writes the rest.
 */
$CONFIG = [
	'trusted_domains' => ['localhost', 'cloud.example.com'],
	'trusted_proxies' => ['10.0.0.10', '10.0.1.0/24'],
	'overwrite.cli.url' => 'https://cloud.example.com',
	'overwriteprotocol' => 'https',
	'datadirectory' => '/srv/nextcloud/data',
	'dbtype' => 'pgsql',
	'dbhost' => 'db.example.com:6432',   // a port goes here; there is no 'dbport' key
	'dbname' => 'nextcloud',
	'dbuser' => 'nextcloud',
	'dbpassword' => 'secret',
	'dbtableprefix' => 'oc_',
	'memcache.local' => '\\OC\\Memcache\\APCu',
	'memcache.distributed' => '\\OC\\Memcache\\Redis',
	'memcache.locking' => '\\OC\\Memcache\\Redis',
	'redis' => [
		'host' => 'redis.example.com',   // or a unix socket path such as '/run/redis/redis.sock' with 'port' => 0
		'port' => 6379,
		'user' => 'nextcloud',           // ACL user (optional)
		'password' => 'secret',
		'timeout' => 1.5,
		'read_timeout' => 1.5,
		'dbindex' => 0,
	],
	'filelocking.enabled' => true,
	'maintenance' => false,
	'loglevel' => 2,
];
