<?php
declare(strict_types=1);

namespace Standin;

/**
 * S3 primary storage, as Nextcloud's \OC\Files\ObjectStore\S3 does it: with an
 * 'objectstore' block in config.php every file is an object named
 * 'urn:oid:<fileid>' (the file's filecache id) in one bucket, directories
 * exist only in the filecache, and the data directory keeps only the log,
 * .ncdata and the SQLite database. The client is a small AWS Signature V4
 * client over PHP's curl (PUT, GET, DELETE of one object; no multipart).
 * Arguments read as Nextcloud reads them: bucket, key, secret, hostname
 * (default s3.amazonaws.com), port (default by scheme), use_ssl (default
 * true), region (default eu-west-1), use_path_style (default false).
 * 'objectstore_multibucket' is not implemented and is refused.
 */
final class ObjectStore {
	public const S3_CLASS = '\OC\Files\ObjectStore\S3';

	private string $bucket;
	private string $key;
	private string $secret;
	private string $hostname;
	private ?int $port;
	private bool $ssl;
	private string $region;
	private bool $pathStyle;

	/** @param array<string, mixed> $a the 'arguments' of the objectstore block */
	public function __construct(array $a) {
		$this->bucket = (string)($a['bucket'] ?? '');
		$this->key = (string)($a['key'] ?? '');
		$this->secret = (string)($a['secret'] ?? '');
		$this->hostname = (string)($a['hostname'] ?? '') ?: 's3.amazonaws.com';
		$this->port = isset($a['port']) && (int)$a['port'] > 0 ? (int)$a['port'] : null;
		$this->ssl = filter_var($a['use_ssl'] ?? true, FILTER_VALIDATE_BOOLEAN);
		$this->region = (string)($a['region'] ?? '') ?: 'eu-west-1';
		$this->pathStyle = filter_var($a['use_path_style'] ?? false, FILTER_VALIDATE_BOOLEAN);
		if ($this->bucket === '') {
			throw new \RuntimeException('objectstore: no bucket configured');
		}
	}

	/** The object store of config.php, or null when files live in the data directory. */
	public static function fromConfig(SystemConfig $config): ?self {
		if ($config->getValue('objectstore_multibucket') !== null) {
			throw new \RuntimeException('objectstore_multibucket is not implemented by the test stand-in');
		}
		$store = $config->getValue('objectstore');
		if (!is_array($store)) {
			return null;
		}
		$class = '\\' . ltrim((string)($store['class'] ?? ''), '\\');
		if ($class !== self::S3_CLASS) {
			throw new \RuntimeException('objectstore class ' . $class . ' is not implemented by the test stand-in');
		}
		return new self((array)($store['arguments'] ?? []));
	}

	public static function urn(int $fileId): string {
		return 'urn:oid:' . $fileId;
	}

	/** Numeric storage id of the bucket's root storage (Nextcloud: 'object::store:amazon::<bucket>'). */
	public function rootStorage(): int {
		return crc32('object::store:amazon::' . $this->bucket);
	}

	/** Numeric storage id of a user's home (Nextcloud: 'object::user:<uid>'). */
	public static function homeStorage(string $uid): int {
		return crc32('object::user:' . $uid);
	}

	/**
	 * Writes the file $path of $storage as Nextcloud does: the filecache row
	 * first (its fileid names the object), then the object. Returns the fileid.
	 */
	public function writeFile(Database $db, int $storage, string $path, string $data): int {
		$hash = md5($storage . ':' . $path);
		$db->upsert('filecache', 'path_hash', ['path_hash' => $hash, 'storage' => $storage, 'path' => $path,
			'name' => basename($path), 'size' => strlen($data), 'mtime' => time(), 'etag' => uniqid()]);
		$id = (int)$db->one("SELECT fileid FROM {$db->table('filecache')} WHERE path_hash = ?", [$hash]);
		$this->put(self::urn($id), $data);
		return $id;
	}

	public static function fileId(Database $db, int $storage, string $path): ?int {
		$id = $db->one("SELECT fileid FROM {$db->table('filecache')} WHERE path_hash = ?", [md5($storage . ':' . $path)]);
		return $id === null ? null : (int)$id;
	}

	/** The file's bytes, or null when the filecache has no such file. */
	public function readFile(Database $db, int $storage, string $path): ?string {
		$id = self::fileId($db, $storage, $path);
		return $id === null ? null : $this->get(self::urn($id));
	}

	/** Removes the object and the filecache row; false when there was no such file. */
	public function deleteFile(Database $db, int $storage, string $path): bool {
		$id = self::fileId($db, $storage, $path);
		if ($id === null) {
			return false;
		}
		$this->delete(self::urn($id));
		$db->run("DELETE FROM {$db->table('filecache')} WHERE fileid = ?", [$id]);
		return true;
	}

	public function put(string $urn, string $data): void {
		$this->request('PUT', $urn, $data);
	}

	/** The object's bytes, or null when the bucket has no such object. */
	public function get(string $urn): ?string {
		[$status, $body] = $this->request('GET', $urn, '', [404]);
		return $status === 404 ? null : $body;
	}

	public function delete(string $urn): void {
		$this->request('DELETE', $urn, '', [404]);
	}

	/**
	 * One signed request (AWS Signature V4, payload hash signed).
	 * @param list<int> $accept non-2xx statuses that are answers, not errors
	 * @return array{0: int, 1: string}
	 */
	private function request(string $method, string $object, string $body = '', array $accept = []): array {
		$host = ($this->pathStyle ? '' : $this->bucket . '.') . $this->hostname
			. ($this->port !== null && $this->port !== ($this->ssl ? 443 : 80) ? ':' . $this->port : '');
		// ':' stays as it is (RFC 3986 allows it in a path) and the path is signed as sent: moto's server checks
		// the signature against the decoded path, so 'urn%3Aoid%3A1' would fail there.
		$path = str_replace('%3A', ':', ($this->pathStyle ? '/' . rawurlencode($this->bucket) : '') . '/' . rawurlencode($object));
		$now = gmdate('Ymd\THis\Z');
		$day = substr($now, 0, 8);
		$payloadHash = hash('sha256', $body);
		$headers = ['host' => $host, 'x-amz-content-sha256' => $payloadHash, 'x-amz-date' => $now];
		$canonicalHeaders = '';
		foreach ($headers as $name => $value) {
			$canonicalHeaders .= $name . ':' . $value . "\n";
		}
		$signed = implode(';', array_keys($headers));
		$canonical = implode("\n", [$method, $path, '', $canonicalHeaders, $signed, $payloadHash]);
		$scope = $day . '/' . $this->region . '/s3/aws4_request';
		$toSign = implode("\n", ['AWS4-HMAC-SHA256', $now, $scope, hash('sha256', $canonical)]);
		$signingKey = 'AWS4' . $this->secret;
		foreach ([$day, $this->region, 's3', 'aws4_request'] as $part) {
			$signingKey = hash_hmac('sha256', $part, $signingKey, true);
		}
		$signature = hash_hmac('sha256', $toSign, $signingKey);

		$curl = curl_init(($this->ssl ? 'https://' : 'http://') . $host . $path);
		curl_setopt_array($curl, [
			CURLOPT_CUSTOMREQUEST => $method,
			CURLOPT_RETURNTRANSFER => true,
			CURLOPT_CONNECTTIMEOUT => 5,
			CURLOPT_TIMEOUT => 60,
			CURLOPT_HTTPHEADER => [
				'x-amz-content-sha256: ' . $payloadHash,
				'x-amz-date: ' . $now,
				'Authorization: AWS4-HMAC-SHA256 Credential=' . $this->key . '/' . $scope
					. ', SignedHeaders=' . $signed . ', Signature=' . $signature,
				'Expect:',
				'Content-Type: application/octet-stream',
			],
		]);
		if ($method === 'PUT') {
			curl_setopt($curl, CURLOPT_POSTFIELDS, $body);
		}
		$response = curl_exec($curl);
		$status = (int)curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
		$error = curl_error($curl);
		curl_close($curl);
		if ($response === false) {
			throw new \RuntimeException(sprintf('S3 %s %s failed: %s', $method, $object, $error));
		}
		if (($status < 200 || $status > 299) && !in_array($status, $accept, true)) {
			$code = preg_match('#<Code>([^<]*)</Code>#', (string)$response, $m) === 1 ? $m[1] : 'no error code';
			throw new \RuntimeException(sprintf('S3 %s %s: HTTP %d %s', $method, $object, $status, $code));
		}
		return [$status, (string)$response];
	}
}
