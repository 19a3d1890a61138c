<?php
declare(strict_types=1);

namespace Standin;

/** Request helpers and the small HTML/JSON pages of the web entry points. */
final class Http {
	public static function webroot(Server $server): string {
		$overwrite = (string)$server->config->getValue('overwritewebroot', '');
		if ($overwrite !== '') {
			return rtrim($overwrite, '/');
		}
		$script = (string)($_SERVER['SCRIPT_NAME'] ?? '/index.php');
		$dir = str_replace('\\', '/', dirname($script));
		return ($dir === '/' || $dir === '.') ? '' : rtrim($dir, '/');
	}

	/** Whether REMOTE_ADDR is listed in 'trusted_proxies' (exact address or IPv4/IPv6 CIDR). */
	public static function fromTrustedProxy(Server $server): bool {
		$remote = (string)($_SERVER['REMOTE_ADDR'] ?? '');
		$proxies = $server->config->getValue('trusted_proxies', []);
		if ($remote === '' || !is_array($proxies)) {
			return false;
		}
		foreach ($proxies as $proxy) {
			$proxy = (string)$proxy;
			if ($proxy === $remote) {
				return true;
			}
			if (str_contains($proxy, '/')) {
				[$net, $bits] = explode('/', $proxy, 2);
				$a = @inet_pton($remote);
				$b = @inet_pton($net);
				if ($a === false || $b === false || strlen($a) !== strlen($b)) {
					continue;
				}
				$bits = (int)$bits;
				$bytes = intdiv($bits, 8);
				$rest = $bits % 8;
				if (substr($a, 0, $bytes) !== substr($b, 0, $bytes)) {
					continue;
				}
				if ($rest === 0 || ((ord($a[$bytes]) ^ ord($b[$bytes])) & (0xFF << (8 - $rest)) & 0xFF) === 0) {
					return true;
				}
			}
		}
		return false;
	}

	/** Host as Nextcloud sees it (X-Forwarded-Host only from a trusted proxy). */
	public static function host(Server $server): string {
		$trustedProxy = self::fromTrustedProxy($server);
		$overwriteHost = (string)$server->config->getValue('overwritehost', '');
		if ($trustedProxy && $overwriteHost !== '') {
			return $overwriteHost;
		}
		if ($trustedProxy && isset($_SERVER['HTTP_X_FORWARDED_HOST'])) {
			return trim(explode(',', (string)$_SERVER['HTTP_X_FORWARDED_HOST'])[0]);
		}
		return (string)($_SERVER['HTTP_HOST'] ?? $_SERVER['SERVER_NAME'] ?? 'localhost');
	}

	/** Nextcloud's rule: localhost/127.0.0.1/[::1] always, '*' wildcards, optional port. */
	public static function isTrustedDomain(Server $server, string $hostWithPort): bool {
		if ((string)$server->config->getValue('overwritehost', '') !== '') {
			return true;
		}
		$domain = $hostWithPort;
		$pos = strrpos($hostWithPort, ':');
		if ($pos !== false && is_numeric(substr($hostWithPort, $pos + 1))) {
			$domain = substr($hostWithPort, 0, $pos);
		}
		$trusted = $server->config->getValue('trusted_domains', []);
		if (!is_array($trusted)) {
			return false;
		}
		if (preg_match('/^(127\.0\.0\.1|localhost|\[::1\])$/', $domain) === 1) {
			return true;
		}
		if (str_starts_with($domain, '-') || str_contains($domain, '..')) {
			return false;
		}
		foreach ($trusted as $entry) {
			if (!is_string($entry)) {
				break;
			}
			$parts = array_map(fn ($p) => preg_quote($p, '/'), explode('*', $entry));
			$regex = '/^' . implode('[-\.a-zA-Z0-9]*', $parts) . '$/i';
			if (preg_match($regex, $domain) || preg_match($regex, $hostWithPort)) {
				return true;
			}
		}
		return false;
	}

	public static function checkTrustedDomain(Server $server, string $script): void {
		if (!$server->installed() || self::isTrustedDomain($server, self::host($server))) {
			return;
		}
		http_response_code(400);
		if ($script === '/status.php') {
			header('Content-Type: application/json');
			echo '{"error": "Trusted domain error.", "code": 15}';
			exit();
		}
		$server->logger->log(1, sprintf('Trusted domain error. "%s" tried to access using "%s" as host.', $_SERVER['REMOTE_ADDR'] ?? '', self::host($server)));
		self::page(400, 'Access through untrusted domain',
			'<p>Please contact your administrator. If you are an administrator, edit the "trusted_domains" setting in config/config.php like the example in config.sample.php.</p>'
			. '<p>Further information how to configure this can be found in the <a href="' . htmlspecialchars($server->docs('admin-trusted-domains')) . '">documentation</a>.</p>');
		exit();
	}

	public static function page(int $code, string $title, string $body, array $headers = []): void {
		http_response_code($code);
		header('Content-Type: text/html; charset=utf-8');
		foreach ($headers as $header) {
			header($header);
		}
		echo "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" . htmlspecialchars($title) . " - Nextcloud</title></head>\n"
			. '<body><main><h2>' . htmlspecialchars($title) . "</h2>\n" . $body . "</main></body></html>\n";
	}

	/** @param list<array{error: string, hint: string}> $errors */
	public static function errorPage(int $code, array $errors): void {
		$body = '<ul>';
		foreach ($errors as $e) {
			$body .= '<li class="error">' . htmlspecialchars($e['error']) . '<br><p class="hint">' . htmlspecialchars($e['hint']) . '</p></li>';
		}
		self::page($code, 'Error', $body . '</ul>');
	}

	public static function json(int $code, mixed $data): void {
		http_response_code($code);
		header('Content-Type: application/json');
		echo json_encode($data, JSON_UNESCAPED_SLASHES) . "\n";
	}

	/** Basic auth credentials, also when PHP-FPM only passes the Authorization header. @return array{0: string, 1: string}|null */
	public static function basicAuth(): ?array {
		if (isset($_SERVER['PHP_AUTH_USER'])) {
			return [(string)$_SERVER['PHP_AUTH_USER'], (string)($_SERVER['PHP_AUTH_PW'] ?? '')];
		}
		$header = (string)($_SERVER['HTTP_AUTHORIZATION'] ?? $_SERVER['REDIRECT_HTTP_AUTHORIZATION'] ?? '');
		if (stripos($header, 'basic ') === 0) {
			$decoded = base64_decode(substr($header, 6), true);
			if ($decoded !== false && str_contains($decoded, ':')) {
				[$user, $password] = explode(':', $decoded, 2);
				return [$user, $password];
			}
		}
		return null;
	}

	public static function pathInfo(): string {
		if (isset($_SERVER['PATH_INFO'])) {
			return (string)$_SERVER['PATH_INFO'];
		}
		// Without PATH_INFO: strip the script name from the request path
		$uri = rawurldecode((string)parse_url((string)($_SERVER['REQUEST_URI'] ?? ''), PHP_URL_PATH));
		$script = (string)($_SERVER['SCRIPT_NAME'] ?? '');
		return ($script !== '' && str_starts_with($uri, $script)) ? substr($uri, strlen($script)) : '';
	}
}
