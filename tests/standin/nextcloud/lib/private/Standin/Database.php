<?php
declare(strict_types=1);

namespace Standin;

/** Raised when the database cannot be reached or a statement fails. */
class DatabaseException extends \RuntimeException {
}

/**
 * A PDO connection built from the system config the way Nextcloud reads it:
 * dbtype (sqlite/sqlite3, pgsql, mysql), dbhost ("host", "host:port",
 * "host:/socket", "[::1]:5432"), dbname (default "owncloud"), dbuser,
 * dbpassword, dbtableprefix (default "oc_"), datadirectory for SQLite
 * (<datadirectory>/<dbname>.db). Like Nextcloud 32 there is no 'dbport' key:
 * a port belongs in dbhost.
 */
final class Database {
	public const DEFAULT_NAME = 'owncloud';
	public const DEFAULT_PREFIX = 'oc_';

	private function __construct(public \PDO $pdo, public string $driver, public string $prefix) {
	}

	/** @param array<string, mixed> $p keys: type, host, user, password, name, path, prefix */
	public static function connect(array $p): self {
		$type = $p['type'] === 'sqlite3' ? 'sqlite' : (string)$p['type'];
		$prefix = (string)($p['prefix'] ?? self::DEFAULT_PREFIX);
		$options = [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION, \PDO::ATTR_TIMEOUT => 10];
		try {
			switch ($type) {
				case 'sqlite':
					$pdo = new \PDO('sqlite:' . $p['path'], null, null, $options);
					$pdo->exec('PRAGMA busy_timeout = 5000');
					$pdo->exec('PRAGMA journal_mode = ' . preg_replace('/[^A-Za-z]/', '', (string)($p['journal_mode'] ?? 'WAL')));
					break;
				case 'pgsql':
					$dsn = 'pgsql:' . self::hostDsn((string)($p['host'] ?? ''), 'host', 'host') . 'dbname=' . $p['name'] . ';connect_timeout=10';
					foreach (['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslcrl'] as $ssl) {
						if (!empty($p[$ssl])) {
							$dsn .= ';' . $ssl . '=' . $p[$ssl];
						}
					}
					$pdo = new \PDO($dsn, (string)$p['user'], (string)$p['password'], $options);
					break;
				case 'mysql':
					$dsn = 'mysql:' . self::hostDsn((string)($p['host'] ?? ''), 'host', 'unix_socket') . 'dbname=' . $p['name'] . ';charset=utf8mb4';
					$pdo = new \PDO($dsn, (string)$p['user'], (string)$p['password'], $options);
					break;
				default:
					throw new DatabaseException('Database type ' . $type . ' is not supported');
			}
		} catch (\PDOException $e) {
			throw new DatabaseException('Failed to connect to the database: An exception occurred in the driver: ' . $e->getMessage(), 0, $e);
		}
		return new self($pdo, $type, $prefix);
	}

	/** Host part of a DSN; a non-numeric part after the last colon is a socket. */
	private static function hostDsn(string $dbhost, string $hostKey, string $socketKey): string {
		if ($dbhost === '') {
			return '';
		}
		$host = $dbhost;
		$port = null;
		$socket = null;
		if (preg_match('/^(.*):([^\]:]+)$/', $dbhost, $m)) {
			$host = $m[1];
			if (is_numeric($m[2])) {
				$port = (int)$m[2];
			} else {
				$socket = $m[2];
			}
		}
		$host = trim($host, '[]');
		if ($socket !== null) {
			// PostgreSQL takes the socket directory as host
			return $socketKey === 'host' ? 'host=' . (is_dir($socket) ? $socket : dirname($socket)) . ';' : 'unix_socket=' . $socket . ';';
		}
		return $hostKey . '=' . $host . ';' . ($port !== null ? 'port=' . $port . ';' : '');
	}

	/** Connection parameters from the system config. */
	public static function paramsFromConfig(SystemConfig $config, string $serverRoot): array {
		$type = (string)$config->getValue('dbtype', 'sqlite');
		$name = (string)$config->getValue('dbname', self::DEFAULT_NAME);
		$p = [
			'type' => $type,
			'user' => (string)$config->getValue('dbuser', ''),
			'password' => (string)$config->getValue('dbpassword', ''),
			'name' => $name,
			'host' => (string)$config->getValue('dbhost', ''),
			'prefix' => (string)$config->getValue('dbtableprefix', self::DEFAULT_PREFIX),
			'journal_mode' => (string)$config->getValue('sqlite.journal_mode', 'WAL'),
			'path' => rtrim((string)$config->getValue('datadirectory', $serverRoot . '/data'), '/') . '/' . $name . '.db',
		];
		$ssl = $config->getValue('pgsql_ssl', false);
		if ($type === 'pgsql' && is_array($ssl)) {
			foreach (['mode' => 'sslmode', 'rootcert' => 'sslrootcert', 'cert' => 'sslcert', 'key' => 'sslkey', 'crl' => 'sslcrl'] as $k => $v) {
				$p[$v] = $ssl[$k] ?? '';
			}
		}
		return $p;
	}

	public function table(string $name): string {
		return $this->prefix . $name;
	}

	/** @param list<mixed> $params */
	public function run(string $sql, array $params = []): \PDOStatement {
		try {
			$stmt = $this->pdo->prepare($sql);
			$stmt->execute($params);
			return $stmt;
		} catch (\PDOException $e) {
			throw new DatabaseException('An exception occurred while executing a query: ' . $e->getMessage(), 0, $e);
		}
	}

	/** @param list<mixed> $params */
	public function one(string $sql, array $params = []): mixed {
		$value = $this->run($sql, $params)->fetchColumn();
		return $value === false ? null : $value;
	}

	private function autoId(): string {
		return match ($this->driver) {
			'sqlite' => 'INTEGER PRIMARY KEY AUTOINCREMENT',
			'pgsql' => 'BIGSERIAL PRIMARY KEY',
			default => 'BIGINT AUTO_INCREMENT PRIMARY KEY',
		};
	}

	/** The schema of a fresh install (the two filecache indices come with db:add-missing-indices). */
	public function createSchema(): void {
		$t = fn (string $n) => $this->table($n);
		$statements = [
			"CREATE TABLE IF NOT EXISTS {$t('appconfig')} (appid VARCHAR(32) NOT NULL, configkey VARCHAR(64) NOT NULL, configvalue TEXT, PRIMARY KEY (appid, configkey))",
			"CREATE TABLE IF NOT EXISTS {$t('users')} (uid VARCHAR(64) NOT NULL PRIMARY KEY, displayname VARCHAR(64), password VARCHAR(255) NOT NULL, email VARCHAR(255))",
			"CREATE TABLE IF NOT EXISTS {$t('groups')} (gid VARCHAR(64) NOT NULL PRIMARY KEY)",
			"CREATE TABLE IF NOT EXISTS {$t('group_user')} (gid VARCHAR(64) NOT NULL, uid VARCHAR(64) NOT NULL, PRIMARY KEY (gid, uid))",
			"CREATE TABLE IF NOT EXISTS {$t('filecache')} (fileid {$this->autoId()}, storage BIGINT NOT NULL DEFAULT 0, path VARCHAR(4000), path_hash VARCHAR(32) NOT NULL, name VARCHAR(250), size BIGINT NOT NULL DEFAULT 0, mtime BIGINT NOT NULL DEFAULT 0, etag VARCHAR(40))",
			"CREATE TABLE IF NOT EXISTS {$t('authtoken')} (id {$this->autoId()}, uid VARCHAR(64) NOT NULL, name VARCHAR(255) NOT NULL, token VARCHAR(255) NOT NULL)",
			"CREATE TABLE IF NOT EXISTS {$t('preferences')} (userid VARCHAR(64) NOT NULL, appid VARCHAR(32) NOT NULL, configkey VARCHAR(64) NOT NULL, configvalue TEXT, PRIMARY KEY (userid, appid, configkey))",
			"CREATE TABLE IF NOT EXISTS {$t('migrations')} (app VARCHAR(255) NOT NULL, version VARCHAR(255) NOT NULL, PRIMARY KEY (app, version))",
			"CREATE TABLE IF NOT EXISTS {$t('standin_probe')} (probe_key VARCHAR(128) NOT NULL PRIMARY KEY, hostname VARCHAR(255), created BIGINT NOT NULL DEFAULT 0, payload VARCHAR(255))",
		];
		foreach ($statements as $sql) {
			$this->run($sql);
		}
		if (!$this->hasIndex('filecache', 'fs_storage_path_hash')) {
			$this->run("CREATE UNIQUE INDEX fs_storage_path_hash ON {$t('filecache')} (storage, path_hash)");
		}
	}

	public function hasIndex(string $table, string $index): bool {
		$sql = match ($this->driver) {
			'sqlite' => "SELECT name FROM sqlite_master WHERE type = 'index' AND name = ? AND tbl_name = ?",
			'pgsql' => 'SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ? AND tablename = ?',
			default => 'SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = ? AND table_name = ?',
		};
		return $this->one($sql, [$index, $this->table($table)]) !== null;
	}

	public function hasTable(string $table): bool {
		$sql = match ($this->driver) {
			'sqlite' => "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
			'pgsql' => 'SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?',
			default => 'SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?',
		};
		return $this->one($sql, [$this->table($table)]) !== null;
	}

	public function getAppValue(string $app, string $key, ?string $default = null): ?string {
		$value = $this->one("SELECT configvalue FROM {$this->table('appconfig')} WHERE appid = ? AND configkey = ?", [$app, $key]);
		return $value === null ? $default : (string)$value;
	}

	public function setAppValue(string $app, string $key, string $value): void {
		$exists = $this->one("SELECT COUNT(*) FROM {$this->table('appconfig')} WHERE appid = ? AND configkey = ?", [$app, $key]);
		if ((int)$exists > 0) {
			$this->run("UPDATE {$this->table('appconfig')} SET configvalue = ? WHERE appid = ? AND configkey = ?", [$value, $app, $key]);
		} else {
			$this->run("INSERT INTO {$this->table('appconfig')} (appid, configkey, configvalue) VALUES (?, ?, ?)", [$app, $key, $value]);
		}
	}

	/** @return array<string, array<string, string>> app => key => value */
	public function getAllAppValues(): array {
		$all = [];
		foreach ($this->run("SELECT appid, configkey, configvalue FROM {$this->table('appconfig')}")->fetchAll(\PDO::FETCH_NUM) as [$app, $key, $value]) {
			$all[$app][$key] = (string)$value;
		}
		return $all;
	}

	/** Insert or replace a row keyed by $keyColumn. @param array<string, mixed> $row */
	public function upsert(string $table, string $keyColumn, array $row): void {
		$name = $this->table($table);
		$key = $row[$keyColumn];
		$this->pdo->beginTransaction();
		try {
			if ((int)$this->one("SELECT COUNT(*) FROM $name WHERE $keyColumn = ?", [$key]) > 0) {
				$set = implode(', ', array_map(fn ($c) => "$c = ?", array_keys($row)));
				$this->run("UPDATE $name SET $set WHERE $keyColumn = ?", [...array_values($row), $key]);
			} else {
				$cols = implode(', ', array_keys($row));
				$marks = implode(', ', array_fill(0, count($row), '?'));
				$this->run("INSERT INTO $name ($cols) VALUES ($marks)", array_values($row));
			}
			$this->pdo->commit();
		} catch (\Throwable $e) {
			if ($this->pdo->inTransaction()) {
				$this->pdo->rollBack();
			}
			throw $e;
		}
	}
}
