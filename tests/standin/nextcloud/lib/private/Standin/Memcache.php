<?php
declare(strict_types=1);

namespace Standin;

use OCP\HintException;

/**
 * memcache.local / memcache.distributed / memcache.locking as Nextcloud 32
 * resolves them, and the Redis connection built from the 'redis' (or
 * 'redis.cluster') config: host (name, IP or unix socket path), port,
 * password, user (ACL user), timeout, read_timeout, dbindex, ssl_context;
 * 'redis.persistent' (default true).
 *
 * - a local/distributed class that is not available throws a HintException,
 *   except APCu on the command line, which falls back to no cache;
 * - an unavailable locking class silently falls back to no Redis locking;
 * - an unreachable Redis server throws \RedisException when it is used.
 */
final class Memcache {
	public const APCU = 'OC\\Memcache\\APCu';
	public const REDIS = 'OC\\Memcache\\Redis';
	public const MEMCACHED = 'OC\\Memcache\\Memcached';
	public const ARRAY = 'OC\\Memcache\\ArrayCache';
	public const NULL = 'OC\\Memcache\\NullCache';

	public string $local;
	public string $distributed;
	public string $locking;
	private \Redis|\RedisCluster|null $redis = null;
	/** @var list<string> */
	private array $heldLocks = [];

	public function __construct(private SystemConfig $config, bool $cli) {
		if (!$config->getValue('installed', false)) {
			$this->local = $this->distributed = $this->locking = self::ARRAY;
			return;
		}
		$local = ltrim((string)$config->getValue('memcache.local', ''), '\\') ?: self::NULL;
		$distributed = ltrim((string)$config->getValue('memcache.distributed', ''), '\\') ?: $local;
		$locking = ltrim((string)$config->getValue('memcache.locking', ''), '\\');

		foreach (['local' => &$local, 'distributed' => &$distributed] as $use => &$class) {
			if (!self::isAvailable($class, $cli)) {
				if ($cli && $class === self::APCU) {
					$class = self::NULL;
				} else {
					throw new HintException("Memcache $class not available for $use cache", 'Is the matching PHP module installed and enabled?');
				}
			}
		}
		unset($class);
		if ($locking === '' || !self::isAvailable($locking, $cli)) {
			$locking = self::NULL;
		}
		$this->local = $local;
		$this->distributed = $distributed;
		$this->locking = $locking;
	}

	public static function isAvailable(string $class, bool $cli): bool {
		return match ($class) {
			self::APCU => extension_loaded('apcu') && (bool)ini_get('apc.enabled') && (!$cli || (bool)ini_get('apc.enable_cli')),
			self::REDIS => extension_loaded('redis') && version_compare((string)phpversion('redis'), '4.0.0', '>='),
			self::MEMCACHED => extension_loaded('memcached'),
			self::ARRAY, self::NULL => true,
			default => false,
		};
	}

	/** Connects on first use, like Nextcloud's RedisFactory. */
	public function redis(): \Redis|\RedisCluster {
		if ($this->redis !== null) {
			return $this->redis;
		}
		if (!extension_loaded('redis')) {
			throw new \Exception('Redis support is not available');
		}
		$isCluster = in_array('redis.cluster', $this->config->getKeys(), true);
		$c = (array)($isCluster ? $this->config->getValue('redis.cluster', []) : $this->config->getValue('redis', []));
		$timeout = (float)($c['timeout'] ?? 0.0);
		$readTimeout = (float)($c['read_timeout'] ?? 0.0);
		$auth = null;
		if (isset($c['password']) && (string)$c['password'] !== '') {
			$auth = (isset($c['user']) && (string)$c['user'] !== '') ? [(string)$c['user'], (string)$c['password']] : (string)$c['password'];
		}
		$persistent = (bool)$this->config->getValue('redis.persistent', true);
		if ($isCluster) {
			if (!class_exists('RedisCluster')) {
				throw new \Exception('Redis Cluster support is not available');
			}
			if (!isset($c['seeds'])) {
				throw new \Exception('Redis cluster config is missing the "seeds" attribute');
			}
			$args = [null, $c['seeds'], $timeout, $readTimeout, $persistent, $auth];
			if (isset($c['ssl_context'])) {
				$args[] = $c['ssl_context'];
			}
			$redis = new \RedisCluster(...$args);
			if (isset($c['failover_mode'])) {
				$redis->setOption(\RedisCluster::OPT_SLAVE_FAILOVER, $c['failover_mode']);
			}
		} else {
			$redis = new \Redis();
			$host = (string)($c['host'] ?? '127.0.0.1');
			$port = (int)($c['port'] ?? ($host !== '' && $host[0] === '/' ? 0 : 6379));
			$context = isset($c['ssl_context']) ? ['stream' => $c['ssl_context']] : null;
			$args = [$host, $port, $timeout, null, 0, $readTimeout];
			if ($context !== null) {
				$args[] = $context;
			}
			$persistent ? $redis->pconnect(...$args) : $redis->connect(...$args);
			if ($auth !== null) {
				$redis->auth($auth);
			}
			if (isset($c['dbindex'])) {
				$redis->select((int)$c['dbindex']);
			}
		}
		return $this->redis = $redis;
	}

	private function prefix(): string {
		return md5((string)$this->config->getValue('instanceid', '')) . '/';
	}

	/** What a page view does with the distributed cache: one read and one write. */
	public function touchDistributed(): void {
		if ($this->distributed === self::REDIS) {
			$key = $this->prefix() . 'standin/last-request';
			$this->redis()->get($key);
			$this->redis()->set($key, (string)time(), ['ex' => 300]);
		}
	}

	/** Redis-backed file lock (SET NX EX); without Redis locking this is a no-op. */
	public function lock(string $path, bool $exclusive): bool {
		if ($this->locking !== self::REDIS) {
			return true;
		}
		$key = $this->prefix() . 'lock/' . md5($path);
		$ttl = (int)$this->config->getValue('filelocking.ttl', 3600);
		$r = $this->redis();
		if ($exclusive) {
			$ok = $r->set($key, 'exclusive', ['nx', 'ex' => $ttl]) === true;
		} else {
			$current = $r->get($key);
			$ok = $current !== 'exclusive';
			if ($ok) {
				$r->incr($key);
				$r->expire($key, $ttl);
			}
		}
		if ($ok) {
			$this->heldLocks[] = $key;
		}
		return $ok;
	}

	public function releaseLocks(): void {
		foreach ($this->heldLocks as $key) {
			try {
				$r = $this->redis();
				if ($r->get($key) === 'exclusive' || (int)$r->decr($key) <= 0) {
					$r->del($key);
				}
			} catch (\Throwable) {
				// expires by itself
			}
		}
		$this->heldLocks = [];
	}
}
