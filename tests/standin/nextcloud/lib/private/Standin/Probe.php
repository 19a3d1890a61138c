<?php
declare(strict_types=1);

namespace Standin;

/**
 * probe.php (stand-in only, not part of Nextcloud): exercises the real data
 * paths with the configured settings and reports each one as
 * {ok, ms, error}. See tests/standin/README.md for the interface.
 */
final class Probe {
	public const CHECKS = ['db', 'redis', 'apcu', 'datadir'];
	private string $host;
	/** The object the last write stored (S3 primary storage), else null. */
	private ?string $object = null;

	public function __construct(private Server $server) {
		$this->host = (string)gethostname();
	}

	public static function validKey(string $key): bool {
		return preg_match('/^[A-Za-z0-9_.-]{1,128}$/', $key) === 1 && $key !== '.' && $key !== '..';
	}

	/** @return array{ok: bool, ms: float, error: ?string} */
	private function timed(callable $check): array {
		$start = hrtime(true);
		try {
			$check();
			$error = null;
		} catch (\Throwable $e) {
			$error = get_class($e) . ': ' . $e->getMessage();
		}
		return ['ok' => $error === null, 'ms' => round((hrtime(true) - $start) / 1e6, 3), 'error' => $error];
	}

	private function requireInstalled(): void {
		if (!$this->server->installed()) {
			throw new \RuntimeException('Nextcloud is not installed');
		}
	}

	private function checkDb(): void {
		$this->requireInstalled();
		$db = $this->server->db();
		$token = bin2hex(random_bytes(8));
		$key = '_check.' . substr($this->host, 0, 100);
		$db->upsert('standin_probe', 'probe_key', ['probe_key' => $key, 'hostname' => $this->host, 'created' => time(), 'payload' => $token]);
		$read = $db->one("SELECT payload FROM {$db->table('standin_probe')} WHERE probe_key = ?", [$key]);
		if ($read !== $token) {
			throw new \RuntimeException('row read back does not match what was written');
		}
	}

	private function checkRedis(): void {
		$this->requireInstalled();
		$keys = $this->server->config->getKeys();
		if (!in_array('redis', $keys, true) && !in_array('redis.cluster', $keys, true)) {
			throw new \RuntimeException('redis is not configured (no "redis" or "redis.cluster" in config)');
		}
		$memcache = $this->server->memcache();
		$redis = $memcache->redis();
		$prefix = md5((string)$this->server->config->getValue('instanceid', '')) . '/standin-probe/';
		$lockKey = $prefix . 'lock/' . $this->host . '/' . getmypid();
		if ($redis->set($lockKey, 'exclusive', ['nx', 'ex' => 30]) !== true) {
			throw new \RuntimeException('could not take the lock ' . $lockKey);
		}
		$token = bin2hex(random_bytes(8));
		$redis->set($prefix . 'cache/' . $this->host, $token, ['ex' => 60]);
		$read = $redis->get($prefix . 'cache/' . $this->host);
		$redis->del($lockKey);
		if ($read !== $token) {
			throw new \RuntimeException('cache value read back does not match what was written');
		}
	}

	private function checkApcu(): void {
		if (!function_exists('apcu_enabled') || !apcu_enabled()) {
			throw new \RuntimeException('APCu is not enabled' . (PHP_SAPI === 'cli' ? ' (apc.enable_cli)' : ''));
		}
		$token = bin2hex(random_bytes(8));
		if (!apcu_store('standin-probe', $token, 60) || apcu_fetch('standin-probe') !== $token) {
			throw new \RuntimeException('apcu_store/apcu_fetch failed');
		}
	}

	private function checkDataDir(): void {
		$this->requireInstalled();
		$dir = $this->server->dataDir() . '/.probe';
		if (!is_dir($dir) && !@mkdir($dir, 0770) && !is_dir($dir)) {
			throw new \RuntimeException('cannot create ' . $dir);
		}
		$file = $dir . '/' . $this->host . '-' . getmypid() . '-' . bin2hex(random_bytes(4));
		$token = bin2hex(random_bytes(8));
		if (@file_put_contents($file, $token) === false) {
			throw new \RuntimeException('cannot write ' . $file);
		}
		$read = @file_get_contents($file);
		@unlink($file);
		if ($read !== $token) {
			throw new \RuntimeException('file read back does not match what was written');
		}
	}

	/** @return array{0: int, 1: array<string, mixed>} HTTP status and body */
	public function run(array $query): array {
		$write = isset($query['write']) ? (string)$query['write'] : null;
		$read = isset($query['read']) ? (string)$query['read'] : null;
		foreach ([$write, $read] as $key) {
			if ($key !== null && !self::validKey($key)) {
				return [400, ['ok' => false, 'error' => 'invalid key: only [A-Za-z0-9_.-] (1-128 characters) are accepted']];
			}
		}
		$selected = self::CHECKS;
		if (isset($query['checks']) && (string)$query['checks'] !== '') {
			$selected = array_values(array_intersect(self::CHECKS, explode(',', (string)$query['checks'])));
		}
		$config = $this->server->config;
		$body = [
			'ok' => true,
			'hostname' => $this->host,
			'instanceid' => $config->getValue('instanceid'),
			'version' => $this->server->versionWithBuild(),
			'versionstring' => $this->server->versionString,
			'installed' => $this->server->installed(),
			'maintenance' => $this->server->maintenance(),
			'trusted_domain' => Http::isTrustedDomain($this->server, Http::host($this->server)),
			'memcache' => [
				'local' => $config->getValue('memcache.local'),
				'distributed' => $config->getValue('memcache.distributed'),
				'locking' => $config->getValue('memcache.locking'),
			],
		];
		$methods = ['db' => 'checkDb', 'redis' => 'checkRedis', 'apcu' => 'checkApcu', 'datadir' => 'checkDataDir'];
		foreach ($selected as $check) {
			$body[$check] = $this->timed([$this, $methods[$check]]);
			$body['ok'] = $body['ok'] && $body[$check]['ok'];
		}
		if ($write !== null) {
			$body['write'] = ['key' => $write] + $this->timed(fn () => $this->write($write));
			if ($this->object !== null) {
				$body['write']['object'] = $this->object;
			}
			$body['ok'] = $body['ok'] && $body['write']['ok'];
		}
		if ($read !== null) {
			$body['read'] = $this->read($read);
		}
		return [$body['ok'] ? 200 : 503, $body];
	}

	private function write(string $key): void {
		$this->requireInstalled();
		$now = time();
		$db = $this->server->db();
		$db->upsert('standin_probe', 'probe_key', ['probe_key' => $key, 'hostname' => $this->host, 'created' => $now, 'payload' => 'written']);
		$content = json_encode(['key' => $key, 'hostname' => $this->host, 'created' => $now]) . "\n";
		$store = $this->server->objectStore();
		if ($store !== null) { // S3 primary storage: the object urn:oid:<fileid of probe/KEY>
			$this->object = ObjectStore::urn($store->writeFile($db, $store->rootStorage(), 'probe/' . $key, $content));
			return;
		}
		$dir = $this->server->dataDir() . '/probe';
		if (!is_dir($dir) && !@mkdir($dir, 0770) && !is_dir($dir)) {
			throw new \RuntimeException('cannot create ' . $dir);
		}
		$tmp = $dir . '/.' . $key . '.' . bin2hex(random_bytes(4));
		if (@file_put_contents($tmp, $content) === false || !@rename($tmp, $dir . '/' . $key)) {
			@unlink($tmp);
			throw new \RuntimeException('cannot write ' . $dir . '/' . $key);
		}
	}

	/** @return array<string, mixed> */
	private function read(string $key): array {
		$result = ['key' => $key, 'found_row' => false, 'found_file' => false, 'row' => null, 'file' => null, 'error' => null];
		try {
			$this->requireInstalled();
			$db = $this->server->db();
			$row = $db->run("SELECT hostname, created FROM {$db->table('standin_probe')} WHERE probe_key = ?", [$key])->fetch(\PDO::FETCH_ASSOC);
			if ($row) {
				$result['found_row'] = true;
				$result['row'] = ['hostname' => $row['hostname'], 'created' => (int)$row['created']];
			}
		} catch (\Throwable $e) {
			$result['error'] = get_class($e) . ': ' . $e->getMessage();
		}
		try {
			$store = $this->server->objectStore();
			if ($store !== null) {
				$content = $store->readFile($this->server->db(), $store->rootStorage(), 'probe/' . $key);
			} else {
				$file = $this->server->dataDir() . '/probe/' . $key;
				$content = is_file($file) ? (string)@file_get_contents($file) : null;
			}
			if ($content !== null) {
				$result['found_file'] = true;
				$result['file'] = json_decode($content, true);
			}
		} catch (\Throwable $e) {
			$result['error'] ??= get_class($e) . ': ' . $e->getMessage();
		}
		return $result;
	}
}
