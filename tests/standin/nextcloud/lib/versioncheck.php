<?php
/*
 * Test stand-in for a Nextcloud release (nextcloud_ha.cluster CI only).
 * Same supported PHP range as Nextcloud 32: 8.1 up to 8.4.
 */
if (PHP_VERSION_ID < 80100) {
	http_response_code(500);
	echo 'This version of Nextcloud requires at least PHP 8.1<br/>';
	echo 'You are currently running ' . PHP_VERSION . '. Please update your PHP version.';
	exit(1);
}
if (PHP_VERSION_ID >= 80500) {
	http_response_code(500);
	echo 'This version of Nextcloud is not compatible with PHP>=8.5.<br/>';
	echo 'You are currently running ' . PHP_VERSION . '.';
	exit(1);
}
