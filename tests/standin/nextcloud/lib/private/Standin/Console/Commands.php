<?php
declare(strict_types=1);

namespace Standin\Console;

use Standin\Installer;
use Standin\Server;
use Standin\SetupChecks;
use Standin\Updater;

/*
 * The occ commands the collection uses, with Nextcloud 32's option names,
 * messages and exit codes.
 */

final class StatusCommand extends Command {
	protected function configure(): void {
		$this->name = 'status';
		$this->description = 'show some status information';
		$this->outputOption();
		$this->opt('exit-code', 'e', Opt::NONE, 'exit with 0 if running in normal mode, 1 when in maintenance mode, 2 when `./occ upgrade` is needed. Does not write any output to STDOUT.');
	}

	public function execute(Input $in, Output $out): int {
		$maintenance = $this->server->maintenance();
		$needUpgrade = $this->server->needUpgrade();
		$values = [
			'installed' => $this->server->installed(),
			'version' => $this->server->versionWithBuild(),
			'versionstring' => $this->server->versionString,
			'edition' => '',
			'maintenance' => $maintenance,
			'needsDbUpgrade' => $needUpgrade,
			'productname' => Server::PRODUCT,
			'extendedSupport' => false,
		];
		if ($in->getOption('verbose') || !$in->getOption('exit-code')) {
			$this->writeArray($in, $out, $values);
		}
		if ($in->getOption('exit-code')) {
			if ($maintenance) {
				return 1;
			}
			if ($needUpgrade) {
				return 2;
			}
		}
		return 0;
	}
}

final class CheckCommand extends Command {
	protected function configure(): void {
		$this->name = 'check';
		$this->description = 'check dependencies of the server environment';
		$this->outputOption();
	}

	public function execute(Input $in, Output $out): int {
		$errors = $this->server->serverErrors();
		if ($errors !== []) {
			$this->writeArray($in, $out, $errors);
			return 1;
		}
		return 0;
	}
}

final class InstallCommand extends Command {
	protected function configure(): void {
		$this->name = 'maintenance:install';
		$this->description = 'install Nextcloud';
		$this->opt('database', null, Opt::REQUIRED, 'Supported database type', 'sqlite')
			->opt('database-name', null, Opt::REQUIRED, 'Name of the database')
			->opt('database-host', null, Opt::REQUIRED, 'Hostname of the database', 'localhost')
			->opt('database-port', null, Opt::REQUIRED, 'Port the database is listening on')
			->opt('database-user', null, Opt::REQUIRED, 'Login to connect to the database')
			->opt('database-pass', null, Opt::OPTIONAL, 'Password of the database user')
			->opt('database-table-space', null, Opt::OPTIONAL, 'Table space of the database (oci only)')
			->opt('disable-admin-user', null, Opt::NONE, 'Disable the creation of an admin user')
			->opt('admin-user', null, Opt::REQUIRED, 'Login of the admin account', 'admin')
			->opt('admin-pass', null, Opt::REQUIRED, 'Password of the admin account')
			->opt('admin-email', null, Opt::OPTIONAL, 'E-Mail of the admin account')
			->opt('data-dir', null, Opt::REQUIRED, 'Path to data directory', $this->server->root . '/data');
	}

	private function ask(Input $in, string $question): ?string {
		if ($in->getOption('no-interaction') || !function_exists('posix_isatty') || !posix_isatty(STDIN)) {
			return null;
		}
		fwrite(STDOUT, $question . ' ');
		$line = fgets(STDIN);
		return $line === false ? null : rtrim($line, "\r\n");
	}

	public function execute(Input $in, Output $out): int {
		$supported = Installer::supportedDatabases();
		$db = strtolower((string)$in->getOption('database'));
		if (!in_array($db, $supported, true)) {
			throw new \InvalidArgumentException("Database <$db> is not supported. " . implode(', ', $supported) . ' are supported.');
		}
		$dbUser = $in->getOption('database-user');
		$dbPass = $in->getOption('database-pass');
		$dbName = $in->getOption('database-name');
		$dbPort = $in->getOption('database-port');
		$dbHost = (string)$in->getOption('database-host');
		if ($dbPort) {
			// like Nextcloud: there is no dbport config, the port goes into dbhost
			$dbHost .= ':' . $dbPort;
		}
		if ($in->hasParameterOption('--database-pass')) {
			$dbPass = (string)$in->getOption('database-pass');
		}
		$disableAdmin = (bool)$in->getOption('disable-admin-user');
		$adminLogin = (string)$in->getOption('admin-user');
		$adminPass = $in->getOption('admin-pass');
		$adminEmail = $in->getOption('admin-email');
		if ($db !== 'sqlite') {
			if ($dbUser === null) {
				throw new \InvalidArgumentException('Database account not provided.');
			}
			if ($dbName === null) {
				throw new \InvalidArgumentException('Database name not provided.');
			}
			if ($dbPass === null) {
				$dbPass = $this->ask($in, 'What is the password to access the database with user <' . $dbUser . '>?');
			}
		}
		if (!$disableAdmin && $adminPass === null) {
			$adminPass = $this->ask($in, 'What is the password you like to use for the admin account <' . $adminLogin . '>?');
		}
		if (!$disableAdmin && $adminEmail !== null && !filter_var($adminEmail, FILTER_VALIDATE_EMAIL)) {
			throw new \InvalidArgumentException('Invalid e-mail-address <' . $adminEmail . '> for <' . $adminLogin . '>.');
		}
		$errors = (new Installer($this->server))->install([
			'dbtype' => $db, 'dbuser' => $dbUser, 'dbpass' => $dbPass, 'dbname' => $dbName, 'dbhost' => $dbHost,
			'admindisable' => $disableAdmin, 'adminlogin' => $adminLogin, 'adminpass' => $adminPass,
			'adminemail' => $adminEmail, 'directory' => $in->getOption('data-dir'),
		]);
		if ($errors !== []) {
			foreach ($errors as $error) {
				if (is_array($error)) {
					$out->writeln('<error>' . $error['error'] . '</error>');
					if (!empty($error['hint'])) {
						$out->writeln('<info> -> ' . $error['hint'] . '</info>');
					}
					if (isset($error['exception'])) {
						$out->writeln('<info>Trace: ' . $error['exception']->getTraceAsString() . '</info>');
					}
				} else {
					$out->writeln('<error>' . $error . '</error>');
				}
			}
			return 1;
		}
		if ($this->server->channel !== 'git' && is_file($this->server->configDir . 'CAN_INSTALL')) {
			$out->writeln('<warn>Could not remove CAN_INSTALL from the config folder. Please remove this file manually.</warn>');
		}
		$out->writeln('Nextcloud was successfully installed');
		return 0;
	}
}

final class MaintenanceModeCommand extends Command {
	protected function configure(): void {
		$this->name = 'maintenance:mode';
		$this->description = 'Show or toggle maintenance mode status';
		$this->opt('on', null, Opt::NONE, 'enable maintenance mode')->opt('off', null, Opt::NONE, 'disable maintenance mode');
	}

	public function execute(Input $in, Output $out): int {
		$mode = (bool)$this->server->config->getValue('maintenance', false);
		if ($in->getOption('on')) {
			if (!$mode) {
				$this->server->config->setValue('maintenance', true);
				$out->writeln('Maintenance mode enabled');
			} else {
				$out->writeln('Maintenance mode already enabled');
			}
		} elseif ($in->getOption('off')) {
			if ($mode) {
				$this->server->config->setValue('maintenance', false);
				$out->writeln('Maintenance mode disabled');
			} else {
				$out->writeln('Maintenance mode already disabled');
			}
		} else {
			$out->writeln($mode ? 'Maintenance mode is currently enabled' : 'Maintenance mode is currently disabled');
		}
		return 0;
	}
}

final class DataFingerprintCommand extends Command {
	protected function configure(): void {
		$this->name = 'maintenance:data-fingerprint';
		$this->description = 'update the systems data-fingerprint after a backup is restored';
	}

	public function execute(Input $in, Output $out): int {
		$fingerprint = md5((string)time());
		$this->server->config->setValue('data-fingerprint', $fingerprint);
		$out->writeln('<info>Updated data-fingerprint to ' . $fingerprint . '</info>');
		return 0;
	}
}

final class SystemGetCommand extends Command {
	protected function configure(): void {
		$this->name = 'config:system:get';
		$this->description = 'Get a system config value';
		$this->outputOption();
		$this->arg('name', Arg::REQUIRED | Arg::IS_ARRAY, 'Name of the config to get, specify multiple for array parameter');
		$this->opt('default-value', null, Opt::OPTIONAL, 'If no default value is set and the config does not exist, the command will exit with 1');
	}

	public function execute(Input $in, Output $out): int {
		$names = $in->getArgument('name');
		$name = array_shift($names);
		$default = $in->getOption('default-value');
		$config = $this->server->config;
		$hasDefault = $in->hasParameterOption('--default-value');
		if (!in_array($name, $config->getKeys()) && !$hasDefault) {
			return 1;
		}
		if (!in_array($name, $config->getKeys())) {
			$value = $default;
		} else {
			$value = $config->getValue($name);
			foreach ($names as $sub) {
				if (isset($value[$sub])) {
					$value = $value[$sub];
				} elseif (!$hasDefault) {
					return 1;
				} else {
					$value = $default;
					break;
				}
			}
		}
		$this->writeMixed($in, $out, $value);
		return 0;
	}
}

final class AppGetCommand extends Command {
	protected function configure(): void {
		$this->name = 'config:app:get';
		$this->description = 'Get an app config value';
		$this->outputOption();
		$this->arg('app', Arg::REQUIRED, 'Name of the app');
		$this->arg('name', Arg::REQUIRED, 'Name of the config to get');
		$this->opt('default-value', null, Opt::OPTIONAL, 'If no default value is set and the config does not exist, the command will exit with 1');
	}

	public function execute(Input $in, Output $out): int {
		$value = $this->server->db()->getAppValue((string)$in->getArgument('app'), (string)$in->getArgument('name'));
		if ($value === null) {
			if (!$in->hasParameterOption('--default-value')) {
				return 1;
			}
			$value = $in->getOption('default-value');
		}
		$this->writeMixed($in, $out, $value);
		return 0;
	}
}

/**
 * config:app:set as Nextcloud 32 prints it: "Config value 'K' for app 'A' is now set to 'V', stored as mixed in fast
 * cache" (the value itself: a key set without --sensitive is not sensitive, even serverinfo's token), "Config value
 * were not updated" when the value is the same, exit 0; --update-only on a missing key: exit 1. The stand-in keeps
 * no value types: a key is "mixed" unless --type names another, and --sensitive only masks this output.
 */
final class AppSetCommand extends Command {
	private const TYPES = ['string', 'integer', 'float', 'boolean', 'array'];

	protected function configure(): void {
		$this->name = 'config:app:set';
		$this->description = 'Set an app config value';
		$this->outputOption();
		$this->arg('app', Arg::REQUIRED, 'Name of the app');
		$this->arg('name', Arg::REQUIRED, 'Name of the config to set');
		$this->opt('value', null, Opt::REQUIRED, 'The new value of the config')
			->opt('type', null, Opt::REQUIRED, 'Value type [string, integer, float, boolean, array]', 'string')
			->opt('lazy', null, Opt::NONE, 'Set value as lazy loaded')
			->opt('no-lazy', null, Opt::NONE, 'Negate the "--lazy" option')
			->opt('sensitive', null, Opt::NONE, 'Set value as sensitive')
			->opt('no-sensitive', null, Opt::NONE, 'Negate the "--sensitive" option')
			->opt('update-only', null, Opt::NONE, 'Only updates the value, if it is not set before, it is not being added');
	}

	public function execute(Input $in, Output $out): int {
		$app = (string)$in->getArgument('app');
		$key = (string)$in->getArgument('name');
		$db = $this->server->db();
		$current = $db->getAppValue($app, $key);
		if ($in->hasParameterOption('--update-only') && $current === null) {
			$out->writeln('<comment>Config value ' . $key . ' for app ' . $app . ' not updated, as it has not been set before.</comment>');
			return 1;
		}
		$type = 'mixed';
		if ($in->hasParameterOption('--type')) {
			$type = (string)$in->getOption('type');
			if (!in_array($type, self::TYPES, true)) {
				throw new \Exception('unknown type');
			}
		}
		if (!$in->hasParameterOption('--value')) {
			$out->writeln('<info>Config value were not updated</info>');
			return 0;
		}
		$value = (string)$in->getOption('value');
		if ($current === $value) {
			$out->writeln('<info>Config value were not updated</info>');
			return 0;
		}
		$db->setAppValue($app, $key, $value);
		$out->writeln(sprintf("<info>Config value '%s' for app '%s' is now set to '%s', stored as %s in %s</info>",
			$key, $app, $in->getOption('sensitive') ? '<sensitive>' : $value, $type, $in->getOption('lazy') ? 'lazy cache' : 'fast cache'));
		return 0;
	}
}

final class SystemSetCommand extends Command {
	protected function configure(): void {
		$this->name = 'config:system:set';
		$this->description = 'Set a system config value';
		$this->outputOption();
		$this->arg('name', Arg::REQUIRED | Arg::IS_ARRAY, 'Name of the config parameter, specify multiple for array parameter');
		$this->opt('type', null, Opt::REQUIRED, 'Value type [string, integer, double, boolean]', 'string')
			->opt('value', null, Opt::REQUIRED, 'The new value of the config')
			->opt('update-only', null, Opt::NONE, 'Only updates the value, if it is not set before, it is not being added');
	}

	/** @return array{0: mixed, 1: string} value and its readable form */
	public static function cast(?string $value, string $type): array {
		switch ($type) {
			case 'integer':
			case 'int':
				if (!is_numeric($value)) {
					throw new \InvalidArgumentException('Non-numeric value specified');
				}
				return [(int)$value, 'integer ' . (int)$value];
			case 'double':
			case 'float':
				if (!is_numeric($value)) {
					throw new \InvalidArgumentException('Non-numeric value specified');
				}
				return [(float)$value, 'double ' . (float)$value];
			case 'boolean':
			case 'bool':
				$value = strtolower((string)$value);
				if ($value === 'true' || $value === 'false') {
					return [$value === 'true', 'boolean ' . $value];
				}
				throw new \InvalidArgumentException('Unable to parse value as boolean');
			case 'null':
				return [null, 'null'];
			case 'string':
				$value = (string)$value;
				return [$value, $value === '' ? 'empty string' : 'string ' . $value];
			case 'json':
				$decoded = json_decode((string)$value, true);
				return [$decoded, 'json ' . json_encode($decoded)];
			default:
				throw new \InvalidArgumentException('Invalid type');
		}
	}

	public function execute(Input $in, Output $out): int {
		$names = $in->getArgument('name');
		$name = $names[0];
		[$value, $readable] = self::cast($in->getOption('value'), (string)$in->getOption('type'));
		$updateOnly = (bool)$in->getOption('update-only');
		$config = $this->server->config;
		if (count($names) > 1) {
			$config->setValue($name, $this->merge(array_slice($names, 1), $config->getValue($name), $value, $updateOnly));
		} else {
			if ($updateOnly && !in_array($name, $config->getKeys(), true)) {
				throw new \UnexpectedValueException('Config parameter does not exist');
			}
			$config->setValue($name, $value);
		}
		$out->writeln('<info>System config value ' . implode(' => ', $names) . ' set to ' . $readable . '</info>');
		return 0;
	}

	/** @param list<string> $names */
	private function merge(array $names, mixed $existing, mixed $value, bool $updateOnly): array {
		$name = array_shift($names);
		if (!is_array($existing)) {
			$existing = [];
		}
		if ($names !== []) {
			$existing[$name] = $this->merge($names, $existing[$name] ?? [], $value, $updateOnly);
		} else {
			if (!isset($existing[$name]) && $updateOnly) {
				throw new \UnexpectedValueException('Config parameter does not exist');
			}
			$existing[$name] = $value;
		}
		return $existing;
	}
}

final class SystemDeleteCommand extends Command {
	protected function configure(): void {
		$this->name = 'config:system:delete';
		$this->description = 'Delete a system config value';
		$this->outputOption();
		$this->arg('name', Arg::REQUIRED | Arg::IS_ARRAY, 'Name of the config to delete, specify multiple for array parameter');
		$this->opt('error-if-not-exists', null, Opt::NONE, 'Checks whether the config exists before deleting it');
	}

	public function execute(Input $in, Output $out): int {
		$names = $in->getArgument('name');
		$name = $names[0];
		$config = $this->server->config;
		$strict = $in->hasParameterOption('--error-if-not-exists');
		if ($strict && !in_array($name, $config->getKeys())) {
			$out->writeln('<error>System config ' . implode(' => ', $names) . ' could not be deleted because it did not exist</error>');
			return 1;
		}
		if (count($names) > 1) {
			try {
				$value = $this->remove(array_slice($names, 1), $config->getValue($name), $strict);
			} catch (\UnexpectedValueException) {
				$out->writeln('<error>System config ' . implode(' => ', $names) . ' could not be deleted because it did not exist</error>');
				return 1;
			}
			$config->setValue($name, $value);
		} else {
			$config->deleteValue($name);
		}
		$out->writeln('<info>System config value ' . implode(' => ', $names) . ' deleted</info>');
		return 0;
	}

	/** @param list<string> $keys */
	private function remove(array $keys, mixed $current, bool $strict): mixed {
		$next = array_shift($keys);
		if (is_array($current) && isset($current[$next])) {
			if ($keys === []) {
				unset($current[$next]);
			} else {
				$current[$next] = $this->remove($keys, $current[$next], $strict);
			}
		} elseif ($strict) {
			throw new \UnexpectedValueException('Config parameter does not exist');
		}
		return $current;
	}
}

final class AppEnableCommand extends Command {
	private int $exitCode = 0;

	protected function configure(): void {
		$this->name = 'app:enable';
		$this->description = 'enable an app';
		$this->arg('app-id', Arg::REQUIRED | Arg::IS_ARRAY, 'enable the specified app');
		$this->opt('groups', 'g', Opt::REQUIRED | Opt::IS_ARRAY, 'enable the app only for a list of groups')
			->opt('force', 'f', Opt::NONE, 'enable the app regardless of the Nextcloud version requirement');
	}

	public function execute(Input $in, Output $out): int {
		$apps = $this->server->apps();
		$db = $this->server->db();
		$groups = [];
		foreach ($in->getOption('groups') as $gid) {
			if ($db->one("SELECT gid FROM {$db->table('groups')} WHERE gid = ?", [$gid]) !== null) {
				$groups[] = (string)$gid;
			}
		}
		foreach ($in->getArgument('app-id') as $app) {
			if ($apps->isEnabled($app) && $groups === []) {
				$out->writeln($app . ' already enabled');
				continue;
			}
			if (!isset($apps->all()[$app])) {
				$out->writeln($app . ' not found');
				$this->exitCode = 1;
				continue;
			}
			try {
				$apps->enable($app, $groups, (bool)$in->getOption('force'));
				$version = $apps->codeVersion($app);
				$out->writeln($groups === [] ? "$app $version enabled" : "$app $version enabled for groups: " . implode(', ', $groups));
			} catch (\Exception $e) {
				$out->writeln($e->getMessage());
				$this->exitCode = 1;
			}
		}
		return $this->exitCode;
	}
}

final class AppDisableCommand extends Command {
	private int $exitCode = 0;

	protected function configure(): void {
		$this->name = 'app:disable';
		$this->description = 'disable an app';
		$this->arg('app-id', Arg::REQUIRED | Arg::IS_ARRAY, 'disable the specified app');
	}

	public function execute(Input $in, Output $out): int {
		$apps = $this->server->apps();
		foreach ($in->getArgument('app-id') as $app) {
			if (!$apps->isEnabled($app)) {
				$out->writeln('No such app enabled: ' . $app);
				continue;
			}
			try {
				$apps->disable($app);
				$out->writeln($app . ' ' . $apps->codeVersion($app) . ' disabled');
			} catch (\Exception $e) {
				$out->writeln($e->getMessage());
				$this->exitCode = 2;
			}
		}
		return $this->exitCode;
	}
}

/** An app password (what WebDAV and the clients log in with when two-factor authentication is enforced). */
final class AuthTokenAddCommand extends Command {
	protected function configure(): void {
		$this->name = 'user:auth-tokens:add';
		$this->description = 'Add app password for the named account';
		$this->arg('user', Arg::REQUIRED, 'Login to add app password for');
		$this->opt('password-from-env', null, Opt::NONE, 'Read password from environment variable NC_PASS/OC_PASS. Alternatively it will be asked for interactively or an app password without the login password will be created.');
	}

	public function execute(Input $in, Output $out): int {
		$db = $this->server->db();
		$uid = $db->one("SELECT uid FROM {$db->table('users')} WHERE LOWER(uid) = LOWER(?)", [(string)$in->getArgument('user')]);
		if ($uid === null) {
			$out->writeln('<error>Account does not exist</error>');
			return 1;
		}
		if ($in->getOption('password-from-env')) {
			if (!(getenv('NC_PASS') ?: getenv('OC_PASS'))) {
				$out->writeln('<error>--password-from-env given, but NC_PASS/OC_PASS is empty!</error>');
				return 1;
			}
		} else {
			$out->writeln('<info>No password provided. The generated app password will therefore have limited capabilities. Any operation that requires the login password will fail.</info>');
		}
		$alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
		$token = '';
		for ($i = 0; $i < 72; $i++) {
			$token .= $alphabet[random_int(0, strlen($alphabet) - 1)];
		}
		$db->run("INSERT INTO {$db->table('authtoken')} (uid, name, token) VALUES (?, ?, ?)", [(string)$uid, 'cli', password_hash($token, PASSWORD_DEFAULT)]);
		$out->writeln('app password:');
		$out->writeln($token);
		return 0;
	}
}

final class AppListCommand extends Command {
	protected function configure(): void {
		$this->name = 'app:list';
		$this->description = 'List all available apps';
		$this->outputOption();
		$this->opt('shipped', null, Opt::REQUIRED, 'true - limit to shipped apps only, false - limit to non-shipped apps only')
			->opt('enabled', null, Opt::NONE, 'shows only enabled apps')
			->opt('disabled', null, Opt::NONE, 'shows only disabled apps');
	}

	public function execute(Input $in, Output $out): int {
		$appsManager = $this->server->apps();
		$shippedOpt = $in->getOption('shipped');
		$shippedFilter = ($shippedOpt === 'true' || $shippedOpt === 'false') ? $shippedOpt === 'true' : null;
		$showEnabled = $in->getOption('enabled') || !$in->getOption('disabled');
		$showDisabled = $in->getOption('disabled') || !$in->getOption('enabled');
		$shipped = $appsManager->shipped()['shippedApps'];
		$versions = $appsManager->installedVersions();
		$enabled = $disabled = [];
		foreach (array_keys($appsManager->all()) as $app) {
			if ($shippedFilter !== null && in_array($app, $shipped, true) !== $shippedFilter) {
				continue;
			}
			if ($appsManager->isEnabled($app)) {
				$enabled[] = $app;
			} else {
				$disabled[] = $app;
			}
		}
		$list = [];
		if ($showEnabled) {
			$list['enabled'] = [];
			sort($enabled);
			foreach ($enabled as $app) {
				$list['enabled'][$app] = $versions[$app] ?? true;
			}
		}
		if ($showDisabled) {
			$list['disabled'] = [];
			sort($disabled);
			foreach ($disabled as $app) {
				$list['disabled'][$app] = $appsManager->codeVersion($app) . (isset($versions[$app]) ? ' (installed ' . $versions[$app] . ')' : '');
			}
		}
		if ($in->getOption('output') === 'plain') {
			if (isset($list['enabled'])) {
				$out->writeln('Enabled:');
				$this->writeArray($in, $out, $list['enabled']);
			}
			if (isset($list['disabled'])) {
				$out->writeln('Disabled:');
				$this->writeArray($in, $out, $list['disabled']);
			}
		} else {
			$this->writeArray($in, $out, $list);
		}
		return 0;
	}
}

final class TwoFactorEnforceCommand extends Command {
	protected function configure(): void {
		$this->name = 'twofactorauth:enforce';
		$this->description = 'Enabled/disable enforced two-factor authentication';
		$this->opt('on', null, Opt::NONE, 'enforce two-factor authentication')
			->opt('off', null, Opt::NONE, 'don\'t enforce two-factor authenticaton')
			->opt('group', null, Opt::OPTIONAL | Opt::IS_ARRAY, 'enforce only for the given group(s)')
			->opt('exclude', null, Opt::OPTIONAL | Opt::IS_ARRAY, 'exclude mandatory two-factor auth for the given group(s)');
	}

	public function execute(Input $in, Output $out): int {
		$config = $this->server->config;
		if ($in->getOption('on')) {
			$config->setValue('twofactor_enforced', 'true');
			$config->setValue('twofactor_enforced_groups', $in->getOption('group'));
			$config->setValue('twofactor_enforced_excluded_groups', $in->getOption('exclude'));
		} elseif ($in->getOption('off')) {
			$config->setValue('twofactor_enforced', 'false');
			$config->setValue('twofactor_enforced_groups', []);
			$config->setValue('twofactor_enforced_excluded_groups', []);
		}
		if ($config->getValue('twofactor_enforced', 'false') === 'true') {
			$groups = (array)$config->getValue('twofactor_enforced_groups', []);
			$excluded = (array)$config->getValue('twofactor_enforced_excluded_groups', []);
			$message = $groups === []
				? 'Two-factor authentication is enforced for all users'
				: 'Two-factor authentication is enforced for members of the group(s) ' . implode(', ', $groups);
			if ($excluded !== []) {
				$message .= ', except members of ' . implode(', ', $excluded);
			}
			$out->writeln($message);
		} else {
			$out->writeln('Two-factor authentication is not enforced');
		}
		return 0;
	}
}

final class BackgroundModeCommand extends Command {
	protected function configure(): void {
		$this->name = 'background:cron';
		$this->aliases = ['background:ajax', 'background:webcron'];
		$this->description = 'Use cron, ajax or webcron to run background jobs';
	}

	public function execute(Input $in, Output $out): int {
		$mode = substr($this->calledAs ?: $this->name, strlen('background:'));
		$this->server->db()->setAppValue('core', 'backgroundjobs_mode', $mode);
		$out->writeln("Set mode for background jobs to '" . $mode . "'");
		return 0;
	}
}

final class UpgradeCommand extends Command {
	protected function configure(): void {
		$this->name = 'upgrade';
		$this->description = 'run upgrade routines after installation of a new release. The release has to be installed before.';
	}

	public function execute(Input $in, Output $out): int {
		if ($this->server->needUpgrade()) {
			$success = (new Updater($this->server, fn (string $line) => $out->writeln($line)))->upgrade();
			if (empty($this->server->config->getValue('trusted_domains', []))) {
				$out->write('<warning>The setting "trusted_domains" could not be set automatically by the upgrade script, please set it manually</warning>');
			}
			return $success ? 0 : 5;
		}
		if ($this->server->config->getValue('maintenance', false)) {
			$out->writeln('<comment>Nextcloud is in maintenance mode</comment>');
			$out->writeln('<comment>Maybe an upgrade is already in process. Please check the logfile (data/nextcloud.log). If you want to re-run the upgrade procedure, remove the "maintenance mode" from config.php and call this script again.</comment>');
			return 2;
		}
		$out->writeln('<info>No upgrade required.</info>');
		$out->writeln('');
		$out->writeln('Note: This command triggers the upgrade actions associated with a new version. The new version\'s updated source files must be deployed in advance.');
		$out->writeln('See the upgrade documentation: ' . $this->server->docs('admin-update') . ' for more information.');
		return 0;
	}
}

final class AddMissingIndicesCommand extends Command {
	protected function configure(): void {
		$this->name = 'db:add-missing-indices';
		$this->description = 'Add missing indices to the database tables';
		$this->opt('dry-run', null, Opt::NONE, 'Output the SQL queries instead of running them.');
	}

	public function execute(Input $in, Output $out): int {
		$db = $this->server->db();
		$table = $db->table('filecache');
		$sql = [];
		foreach (SetupChecks::optionalIndices($this->server->version[0]) as $index => $columns) {
			if ($db->hasIndex('filecache', $index)) {
				continue;
			}
			$out->writeln('<info>Adding additional ' . $index . ' index to the ' . $table . ' table, this can take some time...</info>');
			$statement = "CREATE INDEX $index ON $table (" . implode(', ', $columns) . ')';
			if ($in->getOption('dry-run')) {
				$sql[] = $statement . ';';
			} else {
				$db->run($statement);
			}
			$out->writeln('<info>' . $table . ' table updated successfully.</info>');
		}
		if ($sql !== []) {
			$out->writeln(implode("\n", $sql));
		}
		return 0;
	}
}

final class AddMissingColumnsCommand extends Command {
	protected function configure(): void {
		$this->name = 'db:add-missing-columns';
		$this->description = 'Add missing optional columns to the database tables';
		$this->opt('dry-run', null, Opt::NONE, 'Output the SQL queries instead of running them.');
	}

	public function execute(Input $in, Output $out): int {
		$this->server->db();
		$out->writeln('<info>Done.</info>');
		return 0;
	}
}

final class AddMissingPrimaryKeysCommand extends Command {
	protected function configure(): void {
		$this->name = 'db:add-missing-primary-keys';
		$this->description = 'Add missing primary keys to the database tables';
		$this->opt('dry-run', null, Opt::NONE, 'Output the SQL queries instead of running them.');
	}

	public function execute(Input $in, Output $out): int {
		$this->server->db();
		$out->writeln('<info>Done.</info>');
		return 0;
	}
}

final class RepairCommand extends Command {
	protected function configure(): void {
		$this->name = 'maintenance:repair';
		$this->description = 'repair this installation';
		$this->opt('include-expensive', null, Opt::NONE, 'Use this option when you want to include resource and load expensive tasks');
	}

	/**
	 * Like Nextcloud's: maintenance mode on while the steps run, then back to
	 * what it was (two config writes, so config.php gets the merged config).
	 * The expensive steps include the mimetype migrations.
	 */
	public function execute(Input $in, Output $out): int {
		$config = $this->server->config;
		$maintenance = (bool)$config->getValue('maintenance', false);
		$config->setValue('maintenance', true);
		$db = $this->server->db();
		$out->writeln(' - Repair MySQL collation');
		$out->writeln('     - ' . ($db->driver === 'mysql' ? 'All tables already have the correct collation -> nothing to do' : 'Not a mysql database -> nothing to do'));
		$out->writeln(' - Clean tags and favorites');
		$out->writeln('     - 0 tags of deleted users have been removed.');
		if ($in->getOption('include-expensive')) {
			// Like Nextcloud's RepairMimeTypes: the migrations of every release up to this one, then the release is
			// recorded as the one the mimetypes are migrated for.
			$out->writeln(' - Repair mime types');
			$db->setAppValue('files', 'mimetype_version', $this->server->versionWithBuild());
		}
		$config->setValue('maintenance', $maintenance);
		return 0;
	}
}

final class SetupChecksCommand extends Command {
	protected function configure(): void {
		$this->name = 'setupchecks';
		$this->description = 'Run setup checks and output the results';
		// Nextcloud 32's takes no argument: every check runs (`No arguments expected for "setupchecks" command`).
		$this->outputOption();
	}

	/** Exit code 1 as soon as one check is not a success, like Nextcloud's. */
	public function execute(Input $in, Output $out): int {
		$results = (new SetupChecks($this->server))->run();
		$format = $in->getOption('output');
		if ($format === 'json' || $format === 'json_pretty') {
			$out->writeln(json_encode($results, $format === 'json_pretty' ? JSON_PRETTY_PRINT : 0));
		} else {
			foreach ($results as $category => $checks) {
				$out->writeln("\t{$category}:");
				foreach ($checks as $check) {
					$emoji = ['success' => '✓', 'error' => '✗', 'warning' => '⚠'][$check['severity']] ?? 'ℹ';
					$out->writeln("\t\t{$emoji} " . $check['name'] . ($check['description'] !== null ? ': ' . $check['description'] : ''));
				}
			}
		}
		foreach ($results as $checks) {
			foreach ($checks as $check) {
				if ($check['severity'] !== 'success') {
					return 1;
				}
			}
		}
		return 0;
	}
}
