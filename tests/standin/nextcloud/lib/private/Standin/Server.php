<?php
declare(strict_types=1);

namespace Standin;

use OCP\HintException;

/**
 * Shared state of one request or command: paths, code version, system
 * config, and lazily the database, apps and caches. boot() performs the
 * start-up checks Nextcloud's lib/base.php performs, in the same order.
 */
final class Server {
	public const PRODUCT = 'Nextcloud';

	public string $root;
	public string $configDir;
	public bool $cli;
	/** @var list<int> */
	public array $version;
	public string $versionString;
	public string $channel;
	/** @var array<string, array<string, bool>> */
	public array $canUpgradeFrom;
	public string $vendor;
	public SystemConfig $config;
	public Logger $logger;
	private ?Database $db = null;
	private ?Apps $apps = null;
	private ?Memcache $memcache = null;
	private ObjectStore|false|null $objectStore = false;
	private ?bool $needUpgrade = null;

	public function __construct() {
		$this->root = dirname(__DIR__, 3);
		$this->cli = PHP_SAPI === 'cli';
		$dir = getenv('NEXTCLOUD_CONFIG_DIR');
		$this->configDir = ($dir !== false && $dir !== '') ? rtrim($dir, '/') . '/' : $this->root . '/config/';
		$this->loadVersion();
		$this->config = new SystemConfig($this->configDir);
		$this->logger = new Logger($this->config, $this->root, $this->versionWithBuild());
	}

	private function loadVersion(): void {
		$OC_Version = [0, 0, 0, 0];
		$OC_VersionString = '0.0.0';
		$OC_Channel = 'stable';
		$OC_VersionCanBeUpgradedFrom = [];
		$vendor = 'nextcloud';
		require $this->root . '/version.php';
		$this->version = array_map('intval', $OC_Version);
		$this->versionString = (string)$OC_VersionString;
		$this->channel = (string)$OC_Channel;
		$this->canUpgradeFrom = (array)$OC_VersionCanBeUpgradedFrom;
		$this->vendor = (string)$vendor;
	}

	public function versionWithBuild(): string {
		return implode('.', $this->version);
	}

	public function installed(): bool {
		return (bool)$this->config->getValue('installed', false);
	}

	public function maintenance(): bool {
		return (bool)$this->config->getValue('maintenance', false);
	}

	public function dataDir(): string {
		return rtrim((string)$this->config->getValue('datadirectory', $this->root . '/data'), '/');
	}

	public static function docsUrl(string $key, int $major): string {
		return 'https://docs.nextcloud.com/server/' . $major . '/go.php?to=' . $key;
	}

	public function docs(string $key): string {
		return self::docsUrl($key, $this->version[0]);
	}

	public function db(): Database {
		return $this->db ??= Database::connect(Database::paramsFromConfig($this->config, $this->root));
	}

	public function resetDb(): void {
		$this->db = null;
		$this->apps = null;
	}

	public function apps(): Apps {
		return $this->apps ??= new Apps($this);
	}

	/** S3 primary storage from config.php's 'objectstore', or null: files in the data directory. */
	public function objectStore(): ?ObjectStore {
		if ($this->objectStore === false) {
			$this->objectStore = ObjectStore::fromConfig($this->config);
		}
		return $this->objectStore;
	}

	public function memcache(): Memcache {
		return $this->memcache ??= new Memcache($this->config, $this->cli);
	}

	/**
	 * True when the code is newer than the installed version, or an enabled
	 * app's code is newer than its installed version. A downgrade throws.
	 */
	public function needUpgrade(): bool {
		if ($this->needUpgrade !== null) {
			return $this->needUpgrade;
		}
		if (!$this->installed()) {
			return $this->needUpgrade = false;
		}
		$installed = (string)$this->config->getValue('version', '0.0.0');
		$current = $this->versionWithBuild();
		$diff = version_compare($current, $installed);
		if ($diff > 0) {
			return $this->needUpgrade = true;
		}
		if ($diff < 0) {
			$sameMajorMinor = fn (string $v) => implode('.', array_slice(explode('.', $v), 0, 2));
			if ($this->config->getValue('debug', false) && $sameMajorMinor($installed) === $sameMajorMinor($current)) {
				return $this->needUpgrade = true;
			}
			throw new HintException('Downgrading is not supported and is likely to cause unpredictable issues (from ' . $installed . ' to ' . $current . ')');
		}
		return $this->needUpgrade = $this->apps()->needsUpgrade();
	}

	public function forgetUpgradeState(): void {
		$this->needUpgrade = null;
		$this->apps()->forget();
	}

	/**
	 * Start-up as in Nextcloud's base.php: create config.php when missing,
	 * refuse an unwritable config, load the 'session' apps from the database
	 * when installed (so an unreachable database fails every entry point),
	 * then, for web requests, the installed / server / trusted-domain checks.
	 */
	public static function boot(string $script): self {
		$server = new self();
		$server->checkConfig();
		if ($server->installed()) {
			$server->apps()->enabled();
		}
		$server->needUpgrade();
		if (!$server->cli) {
			$server->checkInstalled($script);
			$errors = $server->serverErrors();
			if ($errors !== []) {
				Http::errorPage(503, $errors);
				exit();
			}
			Http::checkTrustedDomain($server, $script);
		}
		return $server;
	}

	private function checkConfig(): void {
		$file = $this->config->file();
		if (!file_exists($file)) {
			@touch($file);
		}
		$writable = is_writable($file);
		$readOnly = (bool)$this->config->getValue('config_is_read_only', false);
		if ((!$writable && !$readOnly) || (!$writable && $this->installed() && $this->needUpgrade())) {
			$title = 'Cannot write into "config" directory!';
			$hint = 'This can usually be fixed by giving the web server write access to the config directory.';
			$readOnlyHint = 'But, if you prefer to keep config.php file read only, set the option "config_is_read_only" to true in it.';
			if ($this->cli) {
				echo $title . "\n" . $hint . "\n\n" . $readOnlyHint . "\n" . 'See ' . $this->docs('admin-config') . "\n";
				exit();
			}
			Http::errorPage(503, [['error' => $title, 'hint' => $hint . ' ' . $readOnlyHint . ' See ' . $this->docs('admin-config')]]);
			exit();
		}
	}

	private function checkInstalled(string $script): void {
		if (!$this->installed() && $script !== '/index.php' && $script !== '/status.php') {
			header('Location: ' . Http::webroot($this) . '/index.php');
			exit();
		}
	}

	/**
	 * The checks of Nextcloud's OC_Util::checkServer(): data directory
	 * (.ncdata, writable, mode), config directory, PHP modules Nextcloud
	 * requires, required secrets (web only).
	 *
	 * @return list<array{error: string, hint: string}>
	 */
	public function serverErrors(): array {
		$errors = [];
		$dataDir = $this->dataDir();
		$installed = $this->installed();
		if ($installed && !$this->needUpgrade()) {
			if (!str_starts_with($dataDir, '/')) {
				$errors[] = ['error' => 'Your data directory must be an absolute path.', 'hint' => 'Check the value of "datadirectory" in your configuration.'];
			}
			if (!file_exists($dataDir . '/.ncdata')) {
				$errors[] = ['error' => 'Your data directory is invalid.', 'hint' => 'Ensure there is a file called ".ncdata" in the root of the data directory. It should have the content: "# Nextcloud data directory"'];
			}
		}
		if (!extension_loaded('pdo_sqlite') && !extension_loaded('pdo_mysql') && !extension_loaded('pdo_pgsql')) {
			$errors[] = ['error' => 'No database drivers (sqlite, mysql, or postgresql) installed.', 'hint' => ''];
		}
		if (!$this->config->getValue('config_is_read_only', false) && (!is_writable($this->configDir) || !is_readable($this->configDir))) {
			$errors[] = [
				'error' => 'Cannot write into "config" directory.',
				'hint' => 'This can usually be fixed by giving the web server write access to the config directory. See ' . $this->docs('admin-dir_permissions')
					. '. Or, if you prefer to keep config.php file read only, set the option "config_is_read_only" to true in it. See ' . $this->docs('admin-config'),
			];
		}
		if ($installed) {
			if (!is_dir($dataDir)) {
				if (@mkdir($dataDir)) {
					$errors = array_merge($errors, $this->checkDataDirPermissions($dataDir));
				} else {
					$errors[] = ['error' => 'Cannot create "data" directory.', 'hint' => 'This can usually be fixed by giving the web server write access to the root directory. See ' . $this->docs('admin-dir_permissions')];
				}
			} elseif (!is_writable($dataDir) || !is_readable($dataDir)) {
				$errors[] = ['error' => 'Your data directory is not writable.', 'hint' => 'Permissions can usually be fixed by giving the web server write access to the root directory. See ' . $this->docs('admin-dir_permissions') . '.'];
			} else {
				$errors = array_merge($errors, $this->checkDataDirPermissions($dataDir));
			}
		}
		$modules = [
			'zip' => class_exists('ZipArchive'), 'dom' => class_exists('DOMDocument'),
			'XMLWriter' => class_exists('XMLWriter'), 'XMLReader' => class_exists('XMLReader'),
			'libxml' => function_exists('xml_parser_create'), 'mbstring' => function_exists('mb_strcut'),
			'ctype' => function_exists('ctype_digit'), 'JSON' => function_exists('json_encode'),
			'GD' => function_exists('gd_info'), 'zlib' => function_exists('gzencode'),
			'SimpleXML' => function_exists('simplexml_load_string'), 'HASH Message Digest Framework' => function_exists('hash'),
			'cURL' => function_exists('curl_init'), 'OpenSSL' => function_exists('openssl_verify'),
			'PDO' => defined('PDO::ATTR_DRIVER_NAME'),
		];
		$missing = false;
		foreach ($modules as $module => $present) {
			if (!$present) {
				$missing = true;
				$errors[] = ['error' => sprintf('PHP module %s not installed.', $module), 'hint' => 'Please ask your server administrator to install the module.'];
			}
		}
		if (strtolower((string)ini_get('default_charset')) !== 'utf-8') {
			$missing = true;
			$errors[] = ['error' => sprintf('PHP setting "%s" is not set to "%s".', 'default_charset', "'UTF-8'"), 'hint' => 'Adjusting this setting in php.ini will make Nextcloud run again'];
		}
		if (!$this->cli && $missing) {
			$errors[] = ['error' => 'PHP modules have been installed, but they are still listed as missing?', 'hint' => 'Please ask your server administrator to restart the web server.'];
		}
		if (!$this->cli && $installed) {
			foreach (['secret', 'instanceid', 'passwordsalt'] as $required) {
				if ($this->config->getValue($required, '') === '') {
					$errors[] = ['error' => sprintf('The required %s config variable is not configured in the config.php file.', $required), 'hint' => 'Please ask your server administrator to check the Nextcloud configuration.'];
				}
			}
		}
		return $errors;
	}

	/** @return list<array{error: string, hint: string}> */
	public function checkDataDirPermissions(string $dataDir): array {
		if (!$this->config->getValue('check_data_directory_permissions', true)) {
			return [];
		}
		$perms = substr(decoct((int)@fileperms($dataDir)), -3);
		if (substr($perms, -1) !== '0') {
			@chmod($dataDir, 0770);
			clearstatcache();
			$perms = substr(decoct((int)@fileperms($dataDir)), -3);
			if ($perms[2] !== '0') {
				return [['error' => 'Your data directory is readable by other people.', 'hint' => 'Please change the permissions to 0770 so that the directory cannot be listed by other people.']];
			}
		}
		return [];
	}

	/** Nextcloud's random strings: letters, digits, '+' and '/'. */
	public static function random(int $length, string $chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'): string {
		$out = '';
		$max = strlen($chars) - 1;
		for ($i = 0; $i < $length; $i++) {
			$out .= $chars[random_int(0, $max)];
		}
		return $out;
	}

	/** The instance id, generated on first use like Nextcloud ('oc' + 10 lower-case letters/digits). */
	public function instanceId(): string {
		$id = $this->config->getValue('instanceid');
		if ($id === null) {
			$id = 'oc' . self::random(10, 'abcdefghijklmnopqrstuvwxyz0123456789');
			$this->config->setValue('instanceid', $id);
		}
		return (string)$id;
	}
}
