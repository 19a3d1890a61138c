<?php
declare(strict_types=1);

namespace Standin;

/**
 * The serverinfo app's API (apps/serverinfo, "Monitoring", shipped and enabled by default in Nextcloud 32):
 * GET /ocs/v2.php/apps/serverinfo/api/v1/info, for the header NC-Token equal to the app value serverinfo/token
 * (occ config:app:set serverinfo token --value=...) or an administrator's basic auth; else 401.
 *
 * The document has Nextcloud 32's keys and types, filled from what the stand-in has: its users, the filecache rows
 * and their storages, the system config, PHP and the database it runs on, and the last logins it records
 * (login/lastLogin in the preferences table: installation, WebDAV). It has no shares: every share count is 0.
 * Unlike Nextcloud, num_files and num_storages are counted on each request (Nextcloud caches them in a background
 * job), and a wrong token is not slowed down by brute-force protection.
 */
final class ServerInfo {
	public const ROUTE = '/apps/serverinfo/api/v1/info';
	// OCSController::RESPOND_UNAUTHORISED and RESPOND_NOT_FOUND: the OCS status codes of those answers
	public const RESPOND_UNAUTHORISED = 997;
	public const RESPOND_NOT_FOUND = 998;

	public function __construct(private Server $server) {
	}

	/** Nextcloud's checkAuthorized(): the token (hash_equals with the stored one), else an administrator. */
	public function authorized(): bool {
		$token = (string)($_SERVER['HTTP_NC_TOKEN'] ?? '');
		if ($token !== '') {
			$stored = (string)$this->server->db()->getAppValue('serverinfo', 'token', '');
			if (hash_equals($stored, $token)) {
				return true;
			}
		}
		$credentials = Http::basicAuth();
		if ($credentials === null) {
			return false;
		}
		$uid = self::checkPassword($this->server->db(), $credentials[0], $credentials[1]);
		return $uid !== null && $this->server->db()->one(
			"SELECT uid FROM {$this->server->db()->table('group_user')} WHERE gid = 'admin' AND uid = ?", [$uid]) !== null;
	}

	/** The account a login name and a password or app password belong to (as remote.php checks them), or null. */
	public static function checkPassword(Database $db, string $login, string $password): ?string {
		$row = $db->run("SELECT uid, password FROM {$db->table('users')} WHERE LOWER(uid) = LOWER(?)", [$login])->fetch(\PDO::FETCH_ASSOC);
		if (!$row) {
			return null;
		}
		if (password_verify($password, preg_replace('/^\d+\|/', '', (string)$row['password']))) {
			return (string)$row['uid'];
		}
		if ($db->hasTable('authtoken')) {
			foreach ($db->run("SELECT token FROM {$db->table('authtoken')} WHERE uid = ?", [$row['uid']])->fetchAll(\PDO::FETCH_COLUMN) as $hash) {
				if (password_verify($password, (string)$hash)) {
					return (string)$row['uid'];
				}
			}
		}
		return null;
	}

	/** Records a login as Nextcloud does (preferences login/lastLogin), at most once a minute per account. */
	public static function recordLogin(Database $db, string $uid): void {
		if (!$db->hasTable('preferences')) {
			return; // installed by an older stand-in: its upgrade creates the table
		}
		$now = time();
		$table = $db->table('preferences');
		$last = $db->one("SELECT configvalue FROM $table WHERE userid = ? AND appid = 'login' AND configkey = 'lastLogin'", [$uid]);
		if ($last === null) {
			$db->run("INSERT INTO $table (userid, appid, configkey, configvalue) VALUES (?, 'login', 'lastLogin', ?)", [$uid, (string)$now]);
		} elseif ((int)$last < $now - 60) {
			$db->run("UPDATE $table SET configvalue = ? WHERE userid = ? AND appid = 'login' AND configkey = 'lastLogin'", [(string)$now, $uid]);
		}
	}

	/** @return array<string, mixed> the "data" of the answer, with Nextcloud 32's keys in its order */
	public function info(bool $skipApps = true, bool $skipUpdate = true): array {
		return [
			'nextcloud' => [
				'system' => $this->system($skipApps, $skipUpdate),
				'storage' => $this->storage(),
				'shares' => $this->shares(),
			],
			'server' => [
				'webserver' => (string)($_SERVER['SERVER_SOFTWARE'] ?? 'unknown'),
				'php' => $this->php(),
				'fpm' => $this->fpm(),
				'database' => $this->database(),
			],
			'activeUsers' => $this->activeUsers(),
		];
	}

	private function system(bool $skipApps, bool $skipUpdate): array {
		$config = $this->server->config;
		$free = @disk_free_space($this->server->dataDir());
		$load = function_exists('sys_getloadavg') ? sys_getloadavg() : false;
		$memory = self::meminfo();
		$data = [
			'version' => $config->getValue('version'),
			'theme' => $config->getValue('theme', 'none'),
			'enable_avatars' => $config->getValue('enable_avatars', true) ? 'yes' : 'no',
			'enable_previews' => $config->getValue('enable_previews', true) ? 'yes' : 'no',
			'memcache.local' => $config->getValue('memcache.local', 'none'),
			'memcache.distributed' => $config->getValue('memcache.distributed', 'none'),
			'filelocking.enabled' => $config->getValue('filelocking.enabled', true) ? 'yes' : 'no',
			'memcache.locking' => $config->getValue('memcache.locking', 'none'),
			'debug' => $config->getValue('debug', false) ? 'yes' : 'no',
			'freespace' => $free === false ? null : (int)$free,
			'cpuload' => $load === false ? false : $load,
			'cpunum' => self::cpus(),
			'mem_total' => ($memory['MemTotal'] ?? 0) * 1024,
			'mem_free' => ($memory['MemAvailable'] ?? 0) * 1024,
			'swap_total' => ($memory['SwapTotal'] ?? 0) * 1024,
			'swap_free' => ($memory['SwapFree'] ?? 0) * 1024,
		];
		if (!$skipApps) {
			// the stand-in never finds updates: there is no app store
			$data['apps'] = ['num_installed' => count($this->server->apps()->installedVersions()), 'num_updates_available' => 0, 'app_updates' => []];
		}
		if (!$skipUpdate) {
			$data['update'] = ['lastupdatedat' => (int)$this->server->db()->getAppValue('core', 'lastupdatedat', '0'), 'available' => false];
		}
		return $data;
	}

	private function storage(): array {
		$db = $this->server->db();
		$filecache = $db->table('filecache');
		// Storage ids as the stand-in writes them: crc32('home::<uid>') with local files, 'object::user:<uid>' with
		// S3; both are home storages.
		$storages = (int)$db->one("SELECT COUNT(DISTINCT storage) FROM $filecache");
		return [
			'num_users' => $this->seenUsers(),
			'num_disabled_users' => 0,
			'num_files' => (int)$db->one("SELECT COUNT(*) FROM $filecache"),
			'num_storages' => $storages,
			'num_storages_local' => 0,
			'num_storages_home' => $storages,
			'num_storages_other' => 0,
			'size_appdata_storage' => 0.0,
			'num_files_appdata' => 0,
		];
	}

	/** Nextcloud counts the accounts that logged in once; an install of an older stand-in has no record of that. */
	private function seenUsers(): int {
		$db = $this->server->db();
		if ($db->hasTable('preferences')) {
			return (int)$db->one("SELECT COUNT(DISTINCT userid) FROM {$db->table('preferences')} WHERE appid = 'login' AND configkey = 'lastLogin'");
		}
		return (int)$db->one("SELECT COUNT(*) FROM {$db->table('users')}");
	}

	private function shares(): array {
		return [
			'num_shares' => 0, 'num_shares_user' => 0, 'num_shares_groups' => 0, 'num_shares_link' => 0,
			'num_shares_mail' => 0, 'num_shares_room' => 0, 'num_shares_link_no_password' => 0,
			'num_fed_shares_sent' => 0, 'num_fed_shares_received' => 0,
		];
	}

	private function php(): array {
		$opcache = [];
		if (extension_loaded('Zend OPcache') && function_exists('opcache_get_status')) {
			$opcache = @opcache_get_status(false) ?: [];
		}
		$apcu = [];
		if (extension_loaded('apcu') && function_exists('apcu_cache_info')) {
			$cache = @apcu_cache_info(true);
			$sma = @apcu_sma_info(true);
			$apcu = ['cache' => $cache === false ? 'N/A' : $cache, 'sma' => $sma === false ? 'N/A' : $sma];
		}
		return [
			'version' => PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION . '.' . PHP_RELEASE_VERSION,
			'memory_limit' => Console\Application::bytes((string)ini_get('memory_limit')),
			'max_execution_time' => (int)ini_get('max_execution_time'),
			'upload_max_filesize' => Console\Application::bytes((string)ini_get('upload_max_filesize')),
			'opcache_revalidate_freq' => (int)ini_get('opcache.revalidate_freq'),
			'opcache' => $opcache,
			'apcu' => $apcu,
			'extensions' => get_loaded_extensions(),
		];
	}

	private function fpm(): array|false {
		if (!function_exists('fpm_get_status')) {
			return false;
		}
		$status = fpm_get_status();
		if (!is_array($status)) {
			return false;
		}
		$status['start-time'] = gmdate('F j, Y \a\t g:i:s A \G\M\T', (int)($status['start-time'] ?? 0));
		unset($status['procs']);
		return $status;
	}

	/** type, version (cleaned as Nextcloud does: "15.14" stays the server's whole string) and size, as strings. */
	private function database(): array {
		$type = (string)$this->server->config->getValue('dbtype', 'sqlite');
		$db = $this->server->db();
		$version = 'N/A';
		try {
			$raw = $db->one(in_array($type, ['sqlite', 'sqlite3'], true) ? 'SELECT sqlite_version() AS version' : 'SELECT VERSION() AS version');
			if ($raw) {
				$version = preg_match('/^(\d+)(\.\d+)(\.\d+)/', (string)$raw, $m) ? $m[0] : (string)$raw;
			}
		} catch (DatabaseException) {
		}
		$size = false;
		try {
			if (in_array($type, ['sqlite', 'sqlite3'], true)) {
				$path = Database::paramsFromConfig($this->server->config, $this->server->root)['path'];
				$size = file_exists($path) ? filesize($path) : false;
			} elseif ($type === 'pgsql') {
				$size = $db->one('SELECT pg_database_size(current_database())');
			} elseif ($type === 'mysql') {
				$size = $db->one('SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()');
			}
		} catch (DatabaseException) {
			$size = false;
		}
		return ['type' => $type, 'version' => $version, 'size' => ($size === false || $size === null) ? 'N/A' : (string)$size];
	}

	private function activeUsers(): array {
		$spans = ['last5minutes' => 300, 'last1hour' => 3600, 'last24hours' => 86400, 'last7days' => 604800,
			'last1month' => 2592000, 'last3months' => 7776000, 'last6months' => 15552000, 'lastyear' => 31536000];
		$db = $this->server->db();
		$counts = [];
		$now = time();
		$int = $db->driver === 'mysql' ? 'SIGNED' : 'BIGINT';
		foreach ($spans as $name => $seconds) {
			$counts[$name] = $db->hasTable('preferences')
				? (int)$db->one("SELECT COUNT(userid) FROM {$db->table('preferences')} WHERE appid = 'login' AND configkey = 'lastLogin' AND CAST(configvalue AS $int) >= ?", [$now - $seconds])
				: 0;
		}
		return $counts;
	}

	/** @return array<string, int> /proc/meminfo in kB */
	private static function meminfo(): array {
		$values = [];
		foreach (@file('/proc/meminfo') ?: [] as $line) {
			if (preg_match('/^(\w+):\s+(\d+)/', $line, $m)) {
				$values[$m[1]] = (int)$m[2];
			}
		}
		return $values;
	}

	private static function cpus(): int {
		$count = preg_match_all('/^processor\s*:/m', (string)@file_get_contents('/proc/cpuinfo'));
		return $count > 0 ? $count : 1;
	}

	/** The answer's format as Nextcloud's IRequest::getFormat() picks it (format=, else Accept), json or xml. */
	public static function format(): string {
		$format = $_GET['format'] ?? null;
		if ($format === null) {
			foreach (explode(',', (string)($_SERVER['HTTP_ACCEPT'] ?? '')) as $accept) {
				$accept = strtolower(trim($accept));
				if (str_starts_with($accept, 'application/')) {
					$format = substr($accept, strlen('application/'));
					break;
				}
			}
		}
		return $format === 'json' ? 'json' : 'xml';
	}

	/**
	 * An OCS v2 answer: HTTP status (997 -> 401, 998 -> 404, other codes outside 200-600 -> 400) and the body
	 * {"ocs": {"meta": {status, statuscode, message}, "data": ...}}.
	 *
	 * @param array<string> $headers
	 */
	public static function respond(int $code, mixed $data, ?string $message = null, array $headers = []): void {
		$http = match (true) {
			$code === self::RESPOND_UNAUTHORISED => 401,
			$code === self::RESPOND_NOT_FOUND => 404,
			$code === 996 || $code === 999 => 500,
			$code < 200 || $code > 600 => 400,
			default => $code,
		};
		$ok = $code >= 200 && $code < 300;
		$body = ['ocs' => ['meta' => ['status' => $ok ? 'ok' : 'failure', 'statuscode' => $code, 'message' => $ok ? 'OK' : ($message ?? '')], 'data' => $data]];
		$format = self::format();
		http_response_code($http);
		foreach ($headers as $header) {
			header($header);
		}
		if ($format === 'json') {
			header('Content-Type: application/json; charset=utf-8');
			echo json_encode($body, JSON_HEX_TAG);
			return;
		}
		header('Content-Type: application/xml; charset=utf-8');
		$writer = new \XMLWriter();
		$writer->openMemory();
		$writer->setIndent(true);
		$writer->startDocument();
		self::toXml($body, $writer);
		$writer->endDocument();
		echo $writer->outputMemory(true);
	}

	private static function toXml(array $array, \XMLWriter $writer): void {
		foreach ($array as $key => $value) {
			if (is_numeric($key)) {
				$key = 'element';
			}
			if (is_array($value)) {
				$writer->startElement((string)$key);
				self::toXml($value, $writer);
				$writer->endElement();
			} elseif ($value === null) {
				$writer->writeElement((string)$key);
			} else {
				$writer->writeElement((string)$key, is_bool($value) ? ($value ? '1' : '') : (string)$value);
			}
		}
	}
}
