<?php
declare(strict_types=1);
/*
 * Test stand-in for a Nextcloud release: remote.php, a WebDAV subset.
 *   /remote.php/dav/files/<user>/<path>   and   /remote.php/webdav/<path>
 * PUT (201 created, 204 overwritten, 409 missing parent), GET/HEAD (200,
 * 404), DELETE (204, 404), MKCOL (201, 405, 409), PROPFIND (207), OPTIONS.
 * HTTP basic auth against the accounts created by occ maintenance:install.
 * Files live in <datadirectory>/<user>/files/<path>; each write updates the
 * filecache table. With S3 primary storage (config.php 'objectstore') files
 * are objects urn:oid:<fileid> instead: see serveObjects().
 *
 * Like Nextcloud 32 with Redis down (see the stand-in README): Redis as
 * distributed cache -> 503, Redis only as file-locking backend -> 500.
 * Maintenance mode or pending upgrade -> 503.
 */
require_once __DIR__ . '/lib/versioncheck.php';

use Standin\Http;
use Standin\Server;

final class DavError extends Exception {
}

function davError(int $code, string $exception, string $message, array $headers = []): void {
	http_response_code($code);
	header('Content-Type: application/xml; charset=utf-8');
	foreach ($headers as $header) {
		header($header);
	}
	echo "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:error xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\">\n"
		. '  <s:exception>' . htmlspecialchars($exception, ENT_XML1) . "</s:exception>\n"
		. '  <s:message>' . htmlspecialchars($message, ENT_XML1) . "</s:message>\n</d:error>\n";
}

/** A PROPFIND answer: the multistatus document around the responses in $body. */
function davMultistatus(string $body): void {
	http_response_code(207);
	header('Content-Type: application/xml; charset=utf-8');
	echo "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\">" . $body . "</d:multistatus>\n";
}

function davOptions(bool $mkcol): void {
	header('DAV: 1, 3');
	header('Allow: OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT' . ($mkcol ? ', MKCOL' : ''));
	http_response_code(200);
}

function davNotImplemented(string $method): void {
	davError(501, 'Sabre\\DAV\\Exception\\NotImplemented', 'There was no plugin in the system that was willing to handle this ' . $method . ' method.');
}

/** @return list<string> path segments, refusing '.' and '..' */
function segments(string $path): array {
	$parts = array_values(array_filter(explode('/', $path), fn ($p) => $p !== ''));
	foreach ($parts as $p) {
		if ($p === '.' || $p === '..' || str_contains($p, "\0")) {
			throw new DavError('Sabre\\DAV\\Exception\\Forbidden', 403);
		}
	}
	return $parts;
}

function propResponse(string $href, string $file): string {
	$isDir = is_dir($file);
	$props = '<d:getlastmodified>' . gmdate('D, d M Y H:i:s \G\M\T', (int)filemtime($file)) . '</d:getlastmodified>'
		. ($isDir ? '<d:resourcetype><d:collection/></d:resourcetype>'
			: '<d:resourcetype/><d:getcontentlength>' . filesize($file) . '</d:getcontentlength><d:getetag>"' . md5_file($file) . '"</d:getetag>');
	return '<d:response><d:href>' . htmlspecialchars($href, ENT_XML1) . '</d:href><d:propstat><d:prop>' . $props
		. '</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>';
}

/**
 * S3 primary storage: a file is the object urn:oid:<fileid> and its filecache
 * row (storage 'object::user:<uid>'). The stand-in serves files in the home
 * folder only: folders (MKCOL, paths with a '/') are not implemented there.
 */
function serveObjects(Standin\ObjectStore $store, Standin\Database $db, string $uid, string $relPath, string $method, string $hrefBase): void {
	$storage = Standin\ObjectStore::homeStorage($uid);
	$path = 'files/' . $relPath;
	$row = fn (string $p) => $db->run("SELECT name, size, mtime, etag FROM {$db->table('filecache')} WHERE storage = ? AND path = ?", [$storage, $p])->fetch(PDO::FETCH_ASSOC);
	$prop = fn (string $href, ?array $r) => '<d:response><d:href>' . htmlspecialchars($href, ENT_XML1) . '</d:href><d:propstat><d:prop>'
		. ($r === null ? '<d:resourcetype><d:collection/></d:resourcetype>'
			: '<d:getlastmodified>' . gmdate('D, d M Y H:i:s \G\M\T', (int)$r['mtime']) . '</d:getlastmodified><d:resourcetype/><d:getcontentlength>'
			. (int)$r['size'] . '</d:getcontentlength><d:getetag>"' . htmlspecialchars((string)$r['etag'], ENT_XML1) . '"</d:getetag>')
		. '</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>';
	if (str_contains($relPath, '/') || ($method === 'MKCOL')) {
		davError(501, 'Sabre\\DAV\\Exception\\NotImplemented', 'Folders are not implemented by the test stand-in with S3 primary storage');
		return;
	}
	switch ($method) {
		case 'PUT':
			if ($relPath === '') {
				davError(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'PUT is not allowed on non-files.');
				break;
			}
			$existed = Standin\ObjectStore::fileId($db, $storage, $path) !== null;
			$data = (string)file_get_contents('php://input');
			$store->writeFile($db, $storage, $path, $data);
			header('ETag: "' . md5($data) . '"');
			header('OC-ETag: "' . md5($data) . '"');
			http_response_code($existed ? 204 : 201);
			break;
		case 'GET':
		case 'HEAD':
			$data = $relPath === '' ? null : $store->readFile($db, $storage, $path);
			if ($relPath === '') {
				davError(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'GET is not allowed on collections.');
			} elseif ($data === null) {
				davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File with name ' . $relPath . ' could not be located');
			} else {
				header('Content-Type: application/octet-stream');
				header('Content-Length: ' . strlen($data));
				header('ETag: "' . md5($data) . '"');
				if ($method === 'GET') {
					echo $data;
				}
			}
			break;
		case 'DELETE':
			if ($relPath === '' || !$store->deleteFile($db, $storage, $path)) {
				davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File with name ' . $relPath . ' could not be located');
				break;
			}
			http_response_code(204);
			break;
		case 'PROPFIND':
			if ($relPath !== '') {
				$r = $row($path);
				if ($r === false) {
					davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File with name ' . $relPath . ' could not be located');
					break;
				}
				$body = $prop($hrefBase . '/' . rawurlencode($relPath), $r);
			} else {
				$body = $prop($hrefBase . '/', null);
				if (($_SERVER['HTTP_DEPTH'] ?? '1') !== '0') {
					$rows = $db->run("SELECT name, size, mtime, etag FROM {$db->table('filecache')} WHERE storage = ? AND path LIKE 'files/%' ORDER BY name", [$storage]);
					foreach ($rows->fetchAll(PDO::FETCH_ASSOC) as $r) {
						$body .= $prop($hrefBase . '/' . rawurlencode((string)$r['name']), $r);
					}
				}
			}
			davMultistatus($body);
			break;
		case 'OPTIONS':
			davOptions(false);
			break;
		default:
			davNotImplemented($method);
	}
}

$lockingInUse = false;
try {
	require_once __DIR__ . '/lib/base.php';
	$server = Server::boot('/remote.php');
	header("Content-Security-Policy: default-src 'none';");
	if ($server->needUpgrade()) {
		Http::page(503, 'Service unavailable', '<p>Service unavailable</p>');
		exit();
	}
	$parts = segments(Http::pathInfo());
	$service = array_shift($parts);
	if (!in_array($service, ['dav', 'webdav', 'files'], true)) {
		Http::page(404, 'Not found', '<p>Path not found</p>');
		exit();
	}
	if ($server->maintenance()) {
		davError(503, 'Sabre\\DAV\\Exception\\ServiceUnavailable', 'System in maintenance mode.');
		exit();
	}
	$memcache = $server->memcache();
	$memcache->touchDistributed();

	$db = $server->db();
	$credentials = Http::basicAuth();
	$uid = null;
	if ($credentials !== null) {
		// the password, or an app password (occ user:auth-tokens:add); a login is recorded as Nextcloud does
		$uid = Standin\ServerInfo::checkPassword($db, $credentials[0], $credentials[1]);
		if ($uid !== null) {
			Standin\ServerInfo::recordLogin($db, $uid);
		}
	}
	if ($uid === null) {
		davError(401, 'Sabre\\DAV\\Exception\\NotAuthenticated', 'No public access to this resource., Username or password was incorrect, No \'Authorization: Bearer\' header found. Either the client didn\'t send one, or the server didn\'t receive it., Username or password was incorrect',
			['WWW-Authenticate: Basic realm="Nextcloud", charset="UTF-8"']);
		exit();
	}
	if ($service === 'dav') {
		if (($parts[0] ?? '') !== 'files' || !isset($parts[1])) {
			davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File not found in any of the collections');
			exit();
		}
		if ($parts[1] !== $uid) {
			davError(403, 'Sabre\\DAV\\Exception\\Forbidden', 'Access to this resource is not allowed');
			exit();
		}
		$relative = array_slice($parts, 2);
		$base = $server->dataDir() . '/' . $uid . '/files';
		$hrefBase = Http::webroot($server) . '/remote.php/dav/files/' . rawurlencode($uid);
	} else {
		$relative = $parts;
		$base = $server->dataDir() . '/' . $uid . '/files';
		$hrefBase = Http::webroot($server) . '/remote.php/' . $service;
	}
	$store = $server->objectStore();
	if ($store === null && !is_dir($base)) {
		@mkdir($base, 0770, true);
	}
	$relPath = implode('/', $relative);
	$target = $base . ($relPath === '' ? '' : '/' . $relPath);
	$method = strtoupper((string)($_SERVER['REQUEST_METHOD'] ?? 'GET'));
	$exclusive = in_array($method, ['PUT', 'DELETE', 'MKCOL'], true);

	$lockingInUse = true;
	if (!$memcache->lock($uid . '/files/' . $relPath, $exclusive)) {
		davError(423, 'OCA\\DAV\\Connector\\Sabre\\Exception\\FileLocked', '"' . $relPath . '" is locked');
		exit();
	}
	$lockingInUse = false;
	if ($store !== null) {
		serveObjects($store, $db, $uid, $relPath, $method, $hrefBase);
		$memcache->releaseLocks();
		exit();
	}

	$storage = crc32('home::' . $uid);
	$cacheRow = function (string $path, string $file) use ($db, $storage): void {
		$db->upsert('filecache', 'path_hash', [
			'path_hash' => md5($storage . ':files/' . $path),
			'storage' => $storage,
			'path' => 'files/' . $path,
			'name' => basename($path),
			'size' => is_file($file) ? filesize($file) : 0,
			'mtime' => (int)filemtime($file),
			'etag' => uniqid(),
		]);
	};

	switch ($method) {
		case 'PUT':
			if ($relPath === '' || is_dir($target)) {
				davError(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'PUT is not allowed on non-files.');
				break;
			}
			if (!is_dir(dirname($target))) {
				davError(409, 'Sabre\\DAV\\Exception\\Conflict', 'Files cannot be created in non-existent collections');
				break;
			}
			$existed = is_file($target);
			$tmp = dirname($target) . '/.' . basename($target) . '.ocTransferId' . random_int(1000000, 9999999) . '.part';
			$in = fopen('php://input', 'rb');
			$outFile = fopen($tmp, 'wb');
			stream_copy_to_stream($in, $outFile);
			fclose($in);
			fclose($outFile);
			rename($tmp, $target);
			$cacheRow($relPath, $target);
			$etag = md5_file($target);
			header('ETag: "' . $etag . '"');
			header('OC-ETag: "' . $etag . '"');
			http_response_code($existed ? 204 : 201);
			break;
		case 'GET':
		case 'HEAD':
			if (is_dir($target)) {
				davError(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'GET is not allowed on collections.');
			} elseif (!is_file($target)) {
				davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File with name ' . $relPath . ' could not be located');
			} else {
				header('Content-Type: application/octet-stream');
				header('Content-Length: ' . filesize($target));
				header('ETag: "' . md5_file($target) . '"');
				header('Last-Modified: ' . gmdate('D, d M Y H:i:s \G\M\T', (int)filemtime($target)));
				if ($method === 'GET') {
					readfile($target);
				}
			}
			break;
		case 'DELETE':
			if ($relPath === '' || !file_exists($target)) {
				davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File with name ' . $relPath . ' could not be located');
				break;
			}
			if (is_dir($target)) {
				$items = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($target, FilesystemIterator::SKIP_DOTS), RecursiveIteratorIterator::CHILD_FIRST);
				foreach ($items as $item) {
					$item->isDir() ? rmdir($item->getPathname()) : unlink($item->getPathname());
				}
				rmdir($target);
			} else {
				unlink($target);
			}
			$db->run("DELETE FROM {$db->table('filecache')} WHERE storage = ? AND (path = ? OR path LIKE ?)", [$storage, 'files/' . $relPath, 'files/' . $relPath . '/%']);
			http_response_code(204);
			break;
		case 'MKCOL':
			if (file_exists($target)) {
				davError(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'The resource you tried to create already exists');
			} elseif (!is_dir(dirname($target))) {
				davError(409, 'Sabre\\DAV\\Exception\\Conflict', 'Parent node does not exist');
			} else {
				mkdir($target, 0770);
				$cacheRow($relPath, $target);
				http_response_code(201);
			}
			break;
		case 'PROPFIND':
			if (!file_exists($target)) {
				davError(404, 'Sabre\\DAV\\Exception\\NotFound', 'File with name ' . $relPath . ' could not be located');
				break;
			}
			$href = $hrefBase . ($relPath === '' ? '/' : '/' . implode('/', array_map('rawurlencode', $relative)) . (is_dir($target) ? '/' : ''));
			$body = propResponse($href, $target);
			if (is_dir($target) && ($_SERVER['HTTP_DEPTH'] ?? '1') !== '0') {
				foreach (scandir($target) ?: [] as $name) {
					if ($name === '.' || $name === '..' || str_ends_with($name, '.part')) {
						continue;
					}
					$body .= propResponse(rtrim($href, '/') . '/' . rawurlencode($name) . (is_dir("$target/$name") ? '/' : ''), "$target/$name");
				}
			}
			davMultistatus($body);
			break;
		case 'OPTIONS':
			davOptions(true);
			break;
		default:
			davNotImplemented($method);
	}
	$memcache->releaseLocks();
} catch (DavError $e) {
	davError($e->getCode(), $e->getMessage(), 'Forbidden');
} catch (\OCP\HintException $e) {
	Http::page(500, 'Error', '<p>' . htmlspecialchars($e->getHint()) . '</p>');
} catch (RedisException $e) {
	// Redis as distributed cache: 503 like Nextcloud 32; Redis only for locking: 500
	if (isset($server)) {
		$server->logger->error('RedisException: ' . $e->getMessage(), 'remote');
	}
	if ($lockingInUse && isset($memcache) && $memcache->distributed !== \Standin\Memcache::REDIS) {
		davError(500, 'RedisException', $e->getMessage());
	} else {
		davError(503, 'Sabre\\DAV\\Exception\\ServiceUnavailable', 'RedisException: ' . $e->getMessage());
	}
} catch (Throwable $e) {
	if (isset($server)) {
		$server->logger->error(get_class($e) . ': ' . $e->getMessage(), 'remote');
	}
	davError(500, get_class($e), $e->getMessage());
}
