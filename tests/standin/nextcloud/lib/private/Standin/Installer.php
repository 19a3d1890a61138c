<?php
declare(strict_types=1);

namespace Standin;

/**
 * What 'occ maintenance:install' does, in Nextcloud 32's order:
 * config values (passwordsalt, secret, trusted_domains, datadirectory,
 * dbtype, version, overwrite.cli.url unless already set), database values,
 * schema, admin account, shipped apps, data directory files, installed=true,
 * CAN_INSTALL removed, instanceid (kept when pre-seeded). Keys already in
 * config.php that the installer does not set (redis, memcache.*, objectstore,
 * instanceid, ...) are kept. Like Nextcloud, passwordsalt, secret,
 * trusted_domains, datadirectory and the db* keys are overwritten.
 */
final class Installer {
	public function __construct(private Server $server) {
	}

	/** @return list<string> PDO drivers Nextcloud may use, by installer name */
	public static function supportedDatabases(): array {
		$drivers = class_exists('PDO') ? \PDO::getAvailableDrivers() : [];
		return array_values(array_filter(['sqlite', 'mysql', 'pgsql'], fn ($db) => in_array($db, $drivers, true)));
	}

	/**
	 * @param array<string, mixed> $o dbtype, dbuser, dbpass, dbname, dbhost, adminlogin, adminpass, adminemail, admindisable, directory
	 * @return list<array{error: string, hint: string, exception?: \Throwable}|string>
	 */
	public function install(array $o): array {
		$config = $this->server->config;
		$errors = [];
		$disableAdmin = (bool)($o['admindisable'] ?? false);
		if (!$disableAdmin) {
			if (empty($o['adminlogin'])) {
				$errors[] = 'Set an admin Login.';
			}
			if (empty($o['adminpass'])) {
				$errors[] = 'Set an admin password.';
			}
		}
		$dbType = in_array($o['dbtype'], ['sqlite', 'mysql', 'pgsql'], true) ? $o['dbtype'] : 'sqlite';
		$pretty = ['sqlite' => 'Sqlite', 'mysql' => 'MySQL/MariaDB', 'pgsql' => 'PostgreSQL'][$dbType];
		if ($dbType !== 'sqlite') {
			if (empty($o['dbuser']) && empty($o['dbname'])) {
				$errors[] = "Enter the database Login and name for $pretty";
			} elseif (empty($o['dbuser'])) {
				$errors[] = "Enter the database Login for $pretty";
			} elseif (empty($o['dbname'])) {
				$errors[] = "Enter the database name for $pretty";
			}
			if (substr_count((string)$o['dbname'], '.') >= 1) {
				$errors[] = "You cannot use dots in the database name $pretty";
			}
		}
		$dataDir = (string)($o['directory'] ?: $this->server->root . '/data');
		if ((!is_dir($dataDir) && !@mkdir($dataDir)) || !is_writable($dataDir)) {
			$errors[] = sprintf('Cannot create or write into the data directory %s', $dataDir);
		}
		if ($errors !== []) {
			return $errors;
		}

		$config->setValues([
			'passwordsalt' => Server::random(30),
			'secret' => Server::random(48),
			'trusted_domains' => ['localhost'],
			'datadirectory' => $dataDir,
			'dbtype' => ($dbType === 'sqlite' && class_exists('SQLite3')) ? 'sqlite3' : $dbType,
			'version' => $this->server->versionWithBuild(),
		] + ($config->getValue('overwrite.cli.url') === null ? ['overwrite.cli.url' => 'http://localhost'] : []));

		try {
			if ($dbType === 'sqlite') {
				$name = empty($o['dbname']) ? Database::DEFAULT_NAME : (string)$o['dbname'];
				if ($name !== Database::DEFAULT_NAME) {
					$config->setValue('dbname', $name);
				}
				@unlink($dataDir . '/' . $name . '.db');
			} else {
				$host = !empty($o['dbhost']) ? (string)$o['dbhost'] : 'localhost';
				$config->setValues(['dbname' => (string)$o['dbname'], 'dbhost' => $host, 'dbtableprefix' => Database::DEFAULT_PREFIX]);
				$this->prepareServerDatabase($dbType, (string)$o['dbuser'], (string)$o['dbpass'], (string)$o['dbname'], $host, $pretty);
			}
			$this->server->resetDb();
			$db = $this->server->db();
		} catch (SetupException $e) {
			return [['error' => $e->getMessage(), 'hint' => $e->hint, 'exception' => $e]];
		} catch (\Exception $e) {
			return [['error' => 'Error while trying to create admin account: ' . $e->getMessage(), 'hint' => '', 'exception' => $e]];
		}

		try {
			$db->createSchema();
			$db->run("INSERT INTO {$db->table('migrations')} (app, version) VALUES (?, ?)", ['core', $this->server->versionWithBuild()]);
		} catch (\Exception $e) {
			return [['error' => 'Error while trying to initialise the database: ' . $e->getMessage(), 'hint' => '', 'exception' => $e]];
		}

		$login = (string)$o['adminlogin'];
		if (!$disableAdmin) {
			if ($db->one("SELECT uid FROM {$db->table('users')} WHERE LOWER(uid) = LOWER(?)", [$login]) !== null) {
				return ['The Login is already being used'];
			}
			$db->run("INSERT INTO {$db->table('users')} (uid, displayname, password, email) VALUES (?, ?, ?, ?)",
				[$login, $login, '3|' . password_hash((string)$o['adminpass'], PASSWORD_DEFAULT), $o['adminemail'] ?: null]);
		}
		$db->setAppValue('core', 'installedat', (string)microtime(true));
		$db->setAppValue('core', 'lastupdatedat', (string)time());
		$db->setAppValue('core', 'vendor', $this->server->vendor);
		if ($this->server->channel !== 'stable') {
			$config->setValue('updater.release.channel', $this->server->channel);
		}
		if ($db->one("SELECT gid FROM {$db->table('groups')} WHERE gid = 'admin'") === null) {
			$db->run("INSERT INTO {$db->table('groups')} (gid) VALUES ('admin')");
		}
		if (!$disableAdmin) {
			$db->run("INSERT INTO {$db->table('group_user')} (gid, uid) VALUES ('admin', ?)", [$login]);
		}
		$apps = $this->server->apps();
		foreach ($apps->shipped()['defaultEnabled'] as $app) {
			if (isset($apps->all()[$app])) {
				$apps->enable($app, [], true);
			}
		}

		file_put_contents($dataDir . '/.ncdata', "# Nextcloud data directory\n# Do not change this file");
		self::protectDataDirectory($dataDir);
		$this->server->checkDataDirPermissions($dataDir);
		$log = $this->server->logger->file();
		if (!file_exists($log) && @touch($log)) {
			@chmod($log, 0640);
		}

		$config->setValue('installed', true);
		if ($this->server->channel !== 'git' && is_file($this->server->configDir . 'CAN_INSTALL')) {
			@unlink($this->server->configDir . 'CAN_INSTALL');
		}
		$this->server->instanceId();
		if (!$disableAdmin) {
			if ($this->server->objectStore() === null) {
				@mkdir($dataDir . '/' . $login . '/files', 0770, true);
			}
			$this->copySkeleton($login, $dataDir);
			// that login is recorded: the admin is a "seen" and active user of the serverinfo API
			ServerInfo::recordLogin($db, $login);
		}
		return [];
	}

	/**
	 * Nextcloud logs the new admin in at the end of the install, and a first
	 * login copies the skeleton ('skeletondirectory', default core/skeleton;
	 * '' copies nothing) into the user's files: into the data directory, or
	 * with S3 primary storage as objects urn:oid:<fileid> in the bucket. The
	 * stand-in's skeleton holds files only (no folders).
	 */
	private function copySkeleton(string $uid, string $dataDir): void {
		$skeleton = (string)$this->server->config->getValue('skeletondirectory', $this->server->root . '/core/skeleton');
		if ($skeleton === '' || !is_dir($skeleton)) {
			return;
		}
		$db = $this->server->db();
		$store = $this->server->objectStore();
		foreach (scandir($skeleton) ?: [] as $name) {
			if (!is_file($skeleton . '/' . $name)) {
				continue;
			}
			$data = (string)file_get_contents($skeleton . '/' . $name);
			if ($store !== null) {
				$store->writeFile($db, ObjectStore::homeStorage($uid), 'files/' . $name, $data);
				continue;
			}
			$target = $dataDir . '/' . $uid . '/files/' . $name;
			file_put_contents($target, $data);
			$storage = crc32('home::' . $uid);
			$db->upsert('filecache', 'path_hash', ['path_hash' => md5($storage . ':files/' . $name), 'storage' => $storage,
				'path' => 'files/' . $name, 'name' => $name, 'size' => strlen($data), 'mtime' => (int)filemtime($target), 'etag' => uniqid()]);
		}
	}

	/** Denies web access to the data directory (.htaccess and an empty index.html). */
	public static function protectDataDirectory(string $dataDir): void {
		$htaccess = "# Written by the Nextcloud test stand-in\n"
			. "<IfModule mod_authz_core.c>\n  Require all denied\n</IfModule>\n"
			. "<IfModule !mod_authz_core.c>\n  Order Allow,Deny\n  Deny from all\n</IfModule>\n"
			. "<IfModule mod_autoindex.c>\n  IndexIgnore *\n</IfModule>\n";
		@file_put_contents($dataDir . '/.htaccess', $htaccess);
		if (!file_exists($dataDir . '/index.html')) {
			@touch($dataDir . '/index.html');
		}
	}

	/**
	 * PostgreSQL/MySQL: connect to the server, create the database when it is
	 * missing, keep the given login (a PostgreSQL login that may create roles
	 * gets an 'oc_admin' role created instead, as Nextcloud does, unless
	 * setup_create_db_user is false), then connect to the database itself.
	 */
	private function prepareServerDatabase(string $type, string $user, string $password, string $name, string $host, string $pretty): void {
		$config = $this->server->config;
		$createUserCfg = $config->getValue('setup_create_db_user', true);
		$tryCreateUser = $createUserCfg !== false && $createUserCfg !== 'false';
		$params = ['type' => $type, 'host' => $host, 'user' => $user, 'password' => $password, 'prefix' => Database::DEFAULT_PREFIX];
		try {
			$admin = Database::connect($params + ['name' => $type === 'pgsql' ? 'postgres' : 'information_schema']);
			if ($type === 'pgsql') {
				if ($tryCreateUser && $admin->one('SELECT rolname FROM pg_roles WHERE rolcreaterole = TRUE AND rolname = ?', [$user]) !== null) {
					$newUser = 'oc_admin';
					for ($i = 2; $admin->one('SELECT rolname FROM pg_roles WHERE rolname = ?', [$newUser]) !== null; $i++) {
						$newUser = 'oc_admin' . $i;
					}
					$user = $newUser;
					$password = Server::random(30, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789');
					try {
						$admin->run('CREATE USER "' . addslashes($user) . "\" CREATEDB PASSWORD '" . addslashes($password) . "'");
					} catch (DatabaseException $e) {
						$this->server->logger->error('Error while trying to create database user: ' . $e->getMessage());
					}
				}
				$createdUser = $user !== $params['user'];
				$config->setValues(['dbuser' => $user, 'dbpassword' => $password]);
				if ($admin->one('SELECT datname FROM pg_database WHERE datname = ?', [$name]) === null) {
					try {
						$admin->run('CREATE DATABASE ' . addslashes($name) . ' OWNER "' . addslashes($user) . '"');
					} catch (DatabaseException $e) {
						$this->server->logger->error('Error while trying to create database: ' . $e->getMessage());
					}
				} else {
					try {
						$admin->run('REVOKE ALL PRIVILEGES ON DATABASE ' . addslashes($name) . ' FROM PUBLIC');
					} catch (DatabaseException $e) {
						$this->server->logger->error('Error while trying to restrict database permissions: ' . $e->getMessage());
					}
				}
				if ($createdUser) {
					// PostgreSQL 15+: the new login needs CREATE on the public schema
					try {
						Database::connect($params + ['name' => $name])->run('GRANT CREATE ON SCHEMA public TO "' . addslashes($user) . '"');
					} catch (DatabaseException $e) {
						$this->server->logger->error('Error while trying to grant CREATE on schema public: ' . $e->getMessage());
					}
				}
			} else {
				$config->setValues(['dbuser' => $user, 'dbpassword' => $password]);
				$admin->run('CREATE DATABASE IF NOT EXISTS `' . str_replace('`', '', $name) . '` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin');
			}
		} catch (DatabaseException $e) {
			$this->server->logger->warning('Error trying to connect as "' . ($type === 'pgsql' ? 'postgres' : 'root') . '", assuming database is setup and tables need to be created: ' . $e->getMessage());
			$config->setValues(['dbuser' => $user, 'dbpassword' => $password]);
		}
		try {
			Database::connect(array_merge($params, ['name' => $name, 'user' => (string)$config->getValue('dbuser'), 'password' => (string)$config->getValue('dbpassword')]));
		} catch (DatabaseException $e) {
			throw new SetupException("$pretty Login and/or password not valid", 'You need to enter details of an existing account.', $e);
		}
	}
}

final class SetupException extends \Exception {
	public function __construct(string $message, public string $hint, ?\Throwable $previous = null) {
		parent::__construct($message, 0, $previous);
	}
}
