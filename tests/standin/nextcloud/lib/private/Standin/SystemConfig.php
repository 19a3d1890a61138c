<?php
declare(strict_types=1);

namespace Standin;

use OCP\HintException;

/**
 * config/config.php plus every config/*.config.php, merged at the top level
 * (later files win), plus NC_<key> environment variables (read only).
 *
 * Writes behave like Nextcloud 32: the merged values are written back into
 * config/config.php (Nextcloud does the same, see nextcloud/server#37049), the
 * extra *.config.php files are never touched. The file is replaced atomically
 * and gets mode 0640.
 */
final class SystemConfig {
	/** @var array<string, mixed> */
	private array $cache = [];
	/** @var array<string, string> */
	private array $env = [];
	private string $file;

	public function __construct(private string $dir) {
		$this->file = $dir . 'config.php';
		$this->read();
	}

	public function dir(): string {
		return $this->dir;
	}

	public function file(): string {
		return $this->file;
	}

	private function read(): void {
		$files = [$this->file];
		$extra = glob($this->dir . '*.config.php');
		if (is_array($extra)) {
			natsort($extra);
			$files = array_merge($files, $extra);
		}
		foreach ($files as $file) {
			if (function_exists('opcache_invalidate')) {
				@opcache_invalidate($file, false);
			}
			$handle = file_exists($file) ? @fopen($file, 'r') : false;
			if ($handle === false) {
				if ($file === $this->file) {
					continue; // not there yet (fresh install) or not readable
				}
				http_response_code(500);
				die(sprintf('FATAL: Could not open the config file %s', $file));
			}
			flock($handle, LOCK_SH);
			try {
				$values = self::includeFile($file);
			} finally {
				flock($handle, LOCK_UN);
				fclose($handle);
			}
			if (is_array($values)) {
				$this->cache = array_merge($this->cache, $values);
			}
		}
		foreach (getenv() as $name => $value) {
			if (str_starts_with((string)$name, 'NC_')) {
				$this->env[substr((string)$name, 3)] = $value;
			}
		}
	}

	private static function includeFile(string $file): mixed {
		$CONFIG = null;
		include $file;
		return $CONFIG;
	}

	/** @return list<string> */
	public function getKeys(): array {
		return array_merge(array_keys($this->cache), array_keys($this->env));
	}

	public function getValue(string $key, mixed $default = null): mixed {
		if (isset($this->env[$key])) {
			return $this->env[$key];
		}
		if (isset($this->cache[$key])) {
			return $this->cache[$key];
		}
		return $default;
	}

	public function getBool(string $key, bool $default = false): bool {
		return (bool)$this->getValue($key, $default);
	}

	public function setValue(string $key, mixed $value): void {
		if ($this->set($key, $value)) {
			$this->write();
		}
	}

	/** @param array<string, mixed> $values null deletes the key */
	public function setValues(array $values): void {
		$changed = false;
		foreach ($values as $key => $value) {
			$changed = ($value === null ? $this->delete($key) : $this->set($key, $value)) || $changed;
		}
		if ($changed) {
			$this->write();
		}
	}

	public function deleteValue(string $key): void {
		if ($this->delete($key)) {
			$this->write();
		}
	}

	private function set(string $key, mixed $value): bool {
		if (!isset($this->cache[$key]) || $this->cache[$key] !== $value) {
			$this->cache[$key] = $value;
			return true;
		}
		return false;
	}

	private function delete(string $key): bool {
		if (isset($this->cache[$key])) {
			unset($this->cache[$key]);
			return true;
		}
		return false;
	}

	private function write(): void {
		if ($this->getValue('config_is_read_only', false)) {
			throw new HintException('Config is set to be read-only via option "config_is_read_only".',
				'Unset "config_is_read_only" to allow changes to the config file.');
		}
		if (!is_file($this->dir . 'CAN_INSTALL') && !isset($this->cache['version'])) {
			throw new HintException(sprintf('Configuration was not read or initialized correctly, not overwriting %s', $this->file));
		}
		$content = "<?php\n\$CONFIG = " . var_export($this->cache, true) . ";\n";

		$old = @stat($this->file);
		$tmp = $this->dir . 'config.php.tmp.' . bin2hex(random_bytes(6));
		if (@file_put_contents($tmp, $content, LOCK_EX) !== strlen($content)) {
			@unlink($tmp);
			throw new HintException("Can't write into config directory!",
				'This can usually be fixed by giving the webserver write access to the config directory.');
		}
		chmod($tmp, 0640);
		// root editing a file that belongs to someone else keeps the owner, as an in-place write would
		if ($old !== false && function_exists('posix_geteuid') && posix_geteuid() === 0) {
			@chown($tmp, $old['uid']);
			@chgrp($tmp, $old['gid']);
		}
		if (!rename($tmp, $this->file)) {
			@unlink($tmp);
			throw new HintException("Can't write into config directory!",
				'This can usually be fixed by giving the webserver write access to the config directory.');
		}
		if (function_exists('opcache_invalidate')) {
			@opcache_invalidate($this->file, true);
		}
	}
}
