<?php
declare(strict_types=1);

namespace Standin;

/**
 * Apps found in the apps folders (config 'apps_paths' or <root>/apps), their
 * appinfo/info.xml, and their state in the appconfig table ('enabled' =
 * yes/no/JSON group list, 'installed_version'), as Nextcloud keeps them.
 */
final class Apps {
	/** @var array<string, array{id: string, version: string, name: string, min: string, max: string, path: string}>|null */
	private ?array $all = null;
	/** @var array<string, array<string, string>>|null */
	private ?array $state = null;

	public function __construct(private Server $server) {
	}

	/** @return list<string> */
	private function folders(): array {
		$paths = $this->server->config->getValue('apps_paths');
		if (is_array($paths) && $paths !== []) {
			return array_values(array_filter(array_map(fn ($p) => is_array($p) ? (string)($p['path'] ?? '') : '', $paths)));
		}
		return [$this->server->root . '/apps'];
	}

	/** @return array<string, array{id: string, version: string, name: string, min: string, max: string, path: string}> */
	public function all(): array {
		if ($this->all !== null) {
			return $this->all;
		}
		$this->all = [];
		foreach ($this->folders() as $folder) {
			foreach (glob($folder . '/*/appinfo/info.xml') ?: [] as $file) {
				$xml = @simplexml_load_file($file);
				if ($xml === false) {
					continue;
				}
				$id = basename(dirname($file, 2));
				$nc = $xml->dependencies->nextcloud ?? null;
				$this->all[$id] ??= [
					'id' => $id,
					'version' => trim((string)$xml->version),
					'name' => trim((string)$xml->name),
					'min' => $nc !== null ? (string)$nc['min-version'] : '',
					'max' => $nc !== null ? (string)$nc['max-version'] : '',
					'path' => dirname($file, 2),
				];
			}
		}
		ksort($this->all);
		return $this->all;
	}

	/** @return array{shippedApps: list<string>, defaultEnabled: list<string>, alwaysEnabled: list<string>} */
	public function shipped(): array {
		$data = json_decode((string)@file_get_contents($this->server->root . '/core/shipped.json'), true);
		return [
			'shippedApps' => $data['shippedApps'] ?? [],
			'defaultEnabled' => $data['defaultEnabled'] ?? [],
			'alwaysEnabled' => $data['alwaysEnabled'] ?? [],
		];
	}

	public function codeVersion(string $app): string {
		return $this->all()[$app]['version'] ?? '0';
	}

	/** @return array<string, array<string, string>> */
	private function state(): array {
		if ($this->state === null) {
			$this->state = $this->server->db()->getAllAppValues();
		}
		return $this->state;
	}

	public function forget(): void {
		$this->state = null;
	}

	/** @return list<string> ids enabled for anyone (also group-limited) */
	public function enabled(): array {
		$ids = [];
		foreach ($this->state() as $app => $values) {
			if ($app !== 'core' && isset($values['enabled']) && $values['enabled'] !== 'no') {
				$ids[] = $app;
			}
		}
		sort($ids);
		return $ids;
	}

	public function isEnabled(string $app): bool {
		return in_array($app, $this->enabled(), true);
	}

	/** @return array<string, string> */
	public function installedVersions(): array {
		$versions = [];
		foreach ($this->state() as $app => $values) {
			if ($app !== 'core' && isset($values['installed_version'])) {
				$versions[$app] = $values['installed_version'];
			}
		}
		return $versions;
	}

	public function isCompatible(string $app): bool {
		$info = $this->all()[$app];
		$major = (string)$this->server->version[0];
		return ($info['min'] === '' || version_compare($major, $info['min'], '>='))
			&& ($info['max'] === '' || version_compare($major, $info['max'], '<='));
	}

	/** @param list<string> $groups */
	public function enable(string $app, array $groups = [], bool $force = false): void {
		if (!isset($this->all()[$app])) {
			throw new \InvalidArgumentException("$app not found");
		}
		if (!$force && !$this->isCompatible($app)) {
			throw new \Exception(sprintf('App "%s" cannot be installed because it is not compatible with this version of the server.', $this->all()[$app]['name'] ?: $app));
		}
		$db = $this->server->db();
		$db->setAppValue($app, 'installed_version', $this->codeVersion($app));
		$db->setAppValue($app, 'enabled', $groups === [] ? 'yes' : json_encode($groups));
		$this->forget();
	}

	public function disable(string $app): void {
		if (in_array($app, $this->shipped()['alwaysEnabled'], true)) {
			throw new \Exception("$app can't be disabled.");
		}
		$this->server->db()->setAppValue($app, 'enabled', 'no');
		$this->forget();
	}

	/** An enabled app whose code is newer than what is recorded as installed. */
	public function needsUpgrade(): bool {
		$installed = $this->installedVersions();
		foreach ($this->enabled() as $app) {
			if (isset($this->all()[$app], $installed[$app]) && version_compare($this->codeVersion($app), $installed[$app], '>')) {
				return true;
			}
		}
		return false;
	}
}
