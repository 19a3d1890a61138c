<?php
declare(strict_types=1);

namespace Standin;

/**
 * JSON-lines log in <datadirectory>/nextcloud.log (or config 'logfile'),
 * created with mode 0640; honours 'loglevel' (0 debug .. 4 fatal, default 2).
 */
final class Logger {
	public function __construct(private SystemConfig $config, private string $serverRoot, private string $version) {
	}

	public function file(): string {
		$default = rtrim((string)$this->config->getValue('datadirectory', $this->serverRoot . '/data'), '/') . '/nextcloud.log';
		return (string)$this->config->getValue('logfile', $default);
	}

	public function log(int $level, string $message, string $app = 'core', bool $force = false): void {
		if (!$force && $level < (int)$this->config->getValue('loglevel', 2)) {
			return;
		}
		$file = $this->file();
		if (!is_dir(dirname($file))) {
			return;
		}
		$entry = [
			'reqId' => bin2hex(random_bytes(10)),
			'level' => $level,
			'time' => gmdate('Y-m-d\TH:i:s+00:00'),
			'remoteAddr' => $_SERVER['REMOTE_ADDR'] ?? '',
			'user' => '--',
			'app' => $app,
			'method' => $_SERVER['REQUEST_METHOD'] ?? '',
			'url' => $_SERVER['REQUEST_URI'] ?? '--',
			'message' => $message,
			'userAgent' => $_SERVER['HTTP_USER_AGENT'] ?? '--',
			'version' => $this->version,
		];
		$new = !file_exists($file);
		if (@file_put_contents($file, json_encode($entry, JSON_UNESCAPED_SLASHES) . "\n", FILE_APPEND | LOCK_EX) !== false && $new) {
			@chmod($file, 0640);
		}
	}

	public function warning(string $message, string $app = 'core'): void {
		$this->log(2, $message, $app);
	}

	public function error(string $message, string $app = 'core'): void {
		$this->log(3, $message, $app);
	}
}
