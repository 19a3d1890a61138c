<?php
declare(strict_types=1);

namespace Standin;

/**
 * 'occ upgrade' when the code is newer than config.php's 'version': the
 * steps and messages of Nextcloud 32's updater. The "migration" records the
 * new version in the migrations table and bumps the enabled apps'
 * installed_version; 'version' in config.php is set last.
 */
final class Updater {
	/** @var callable(string): void */
	private $out;

	public function __construct(private Server $server, callable $out) {
		$this->out = $out;
	}

	public function upgrade(): bool {
		$config = $this->server->config;
		$say = $this->out;
		$logLevel = $config->getValue('loglevel', 2);
		$say('<info>Setting log level to debug</info>');
		$config->setValue('loglevel', 0);
		$wasMaintenance = (bool)$config->getValue('maintenance', false);
		if (!$wasMaintenance) {
			$config->setValue('maintenance', true);
			$say('<info>Turned on maintenance mode</info>');
		}
		if ($this->server->channel !== 'git' && is_file($this->server->configDir . 'CAN_INSTALL')) {
			@unlink($this->server->configDir . 'CAN_INSTALL');
		}
		$installed = (string)$config->getValue('version', '0.0.0');
		$current = $this->server->versionWithBuild();
		$success = true;
		try {
			$this->doUpgrade($current, $installed);
		} catch (\OCP\HintException $e) {
			$say('<error>' . $e->getMessage() . ': ' . $e->getHint() . '</error>');
			$success = false;
		} catch (\Exception $e) {
			$say('<error>' . get_class($e) . ': ' . $e->getMessage() . '</error>');
			$success = false;
		}
		$say($success ? '<info>Update successful</info>' : '<error>Update failed</error>');
		if (!$wasMaintenance && $success) {
			$config->setValue('maintenance', false);
			$say('<info>Turned off maintenance mode</info>');
		} else {
			$say('<info>Maintenance mode is kept active</info>');
		}
		$say('<info>Resetting log level</info>');
		$config->setValue('loglevel', $logLevel);
		$config->setValue('installed', true);
		return $success;
	}

	private function doUpgrade(string $current, string $installed): void {
		$say = $this->out;
		$db = $this->server->db();
		$parts = explode('.', $installed);
		$majorMinor = $parts[0] . '.' . ($parts[1] ?? '0');
		$vendor = (string)$db->getAppValue('core', 'vendor', '');
		$allowed = $this->server->canUpgradeFrom;
		$possible = $vendor === 'nextcloud'
			? isset($allowed['nextcloud'][$majorMinor]) && (version_compare($installed, $current, '<=') || $this->server->config->getValue('debug', false))
			: isset($allowed[$vendor][$majorMinor]) || isset($allowed[$vendor][$installed]);
		if (!$possible) {
			throw new \Exception('Updates between multiple major versions and downgrades are unsupported.');
		}
		$dataDir = $this->server->dataDir();
		Installer::protectDataDirectory($dataDir);
		file_put_contents($dataDir . '/.ncdata', "# Nextcloud data directory\n# Do not change this file");

		$say('<info>Updating database schema</info>');
		$db->createSchema();
		if ($db->one("SELECT version FROM {$db->table('migrations')} WHERE app = 'core' AND version = ?", [$current]) === null) {
			$db->run("INSERT INTO {$db->table('migrations')} (app, version) VALUES ('core', ?)", [$current]);
		}
		$say('<info>Updated database</info>');

		$apps = $this->server->apps();
		$apps->forget();
		$installedVersions = $apps->installedVersions();
		foreach ($apps->enabled() as $app) {
			if (!isset($apps->all()[$app])) {
				continue;
			}
			if (!$apps->isCompatible($app)) {
				$db->setAppValue($app, 'enabled', 'no');
				$say('<comment>Disabled incompatible app: ' . $app . '</comment>');
				continue;
			}
			$codeVersion = $apps->codeVersion($app);
			if (version_compare($codeVersion, $installedVersions[$app] ?? '0', '>')) {
				$say("<info>Updating <$app> ...</info>");
				$db->setAppValue($app, 'installed_version', $codeVersion);
				$say("<info>Updated <$app> to $codeVersion</info>");
			}
		}
		$apps->forget();
		$db->setAppValue('core', 'lastupdatedat', '0');
		if ($this->server->channel === 'stable' && !$this->server->config->getValue('integrity.check.disabled', false)) {
			$say('<info>Starting code integrity check...</info>');
			$say('<info>Finished code integrity check</info>');
		}
		$this->server->config->setValue('version', $current);
		$db->setAppValue('core', 'vendor', $this->server->vendor);
	}
}
