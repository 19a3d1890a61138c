"""A small S3 server for the stand-in's object-store tests: path-style buckets, PUT/GET/HEAD/DELETE of objects and
ListObjectsV2, on loopback only, every request checked against AWS Signature V4 (an independent implementation of
the signing rules, so a wrong signature from the stand-in is refused as a real S3 would: 403 SignatureDoesNotMatch).

Set STANDIN_MOTO_SERVER to a `moto_server` executable to run the same tests against moto's server mode instead.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "collections"))
# The collection's own signer (Python), so the stand-in's PHP client is checked against another implementation.
from ansible_collections.nextcloud_ha.cluster.plugins.modules.s3_bucket_check import sign_v4  # noqa: E402

AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
                  r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def s3_request(port: int, key: str, secret: str, method: str, path: str, query: list | None = None,
               region: str = "us-east-1", body: bytes = b"") -> tuple[int, bytes]:
    """One signed path-style request to 127.0.0.1:port (path unencoded, e.g. '/bucket/urn:oid:3')."""
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": "127.0.0.1:%d" % port, "x-amz-date": amz_date, "x-amz-content-sha256": payload}
    auth = sign_v4(method, headers["host"], path, query or [], headers, payload, key, secret, region, amz_date)
    url = "http://127.0.0.1:%d%s" % (port, urllib.parse.quote(path, safe="/-_.~"))
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body or None, method=method, headers={**headers, "Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def canonical_signature(secret: str, method: str, path: str, query: str, headers: dict[str, str], signed: list[str],
                        payload: str, region: str) -> str:
    """The Signature V4 of a request as an S3 server checks it: the canonical path is the path as received (S3
    encodes it once), the query sorted; moto's server does the same with the decoded path."""
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    canonical = "\n".join([method, path, canonical_query, "".join("%s:%s\n" % (h, headers[h].strip()) for h in signed),
                           ";".join(signed), payload])
    amz_date = headers.get("x-amz-date", "")
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def list_objects(port: int, key: str, secret: str, bucket: str) -> dict[str, int]:
    """ListObjectsV2 of the bucket: {object name: size}."""
    code, body = s3_request(port, key, secret, "GET", "/" + bucket, [("list-type", "2")])
    assert code == 200, body
    return {k: int(n) for k, n in re.findall(rb"<Key>([^<]+)</Key>.*?<Size>(\d+)</Size>", body, re.S)
            for k in [k.decode()]}


class FakeS3:
    def __init__(self, key: str, secret: str, buckets: tuple[str, ...] = ("nextcloud",)):
        self.key, self.secret = key, secret
        self.buckets: dict[str, dict[str, bytes]] = {b: {} for b in buckets}
        self.requests: list[tuple[str, str, int]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, body: bytes = b"", error: str | None = None):
                if error:
                    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code></Error>" % error).encode()
                fake.requests.append((self.command, self.path, code))
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, _, query = self.path.partition("?")
                match = AUTH.match(self.headers.get("Authorization", ""))
                if not match:
                    return self._reply(403, error="AccessDenied")
                key, _, region, signed, sig = match.groups()
                if key != fake.key:
                    return self._reply(403, error="InvalidAccessKeyId")
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload = headers.get("x-amz-content-sha256", "")
                signed_list = signed.split(";")
                if ("host" not in signed_list or payload != hashlib.sha256(body).hexdigest()
                        or any(h not in headers for h in signed_list)):
                    return self._reply(400, error="XAmzContentSHA256Mismatch")
                if not hmac.compare_digest(canonical_signature(fake.secret, self.command, path, query, headers,
                                                               signed_list, payload, region), sig):
                    return self._reply(403, error="SignatureDoesNotMatch")
                bucket, _, name = path.lstrip("/").partition("/")
                bucket, name = urllib.parse.unquote(bucket), urllib.parse.unquote(name)
                if bucket not in fake.buckets:
                    return self._reply(404, error="NoSuchBucket")
                objects = fake.buckets[bucket]
                if not name:
                    keys = "".join("<Contents><Key>%s</Key><Size>%d</Size></Contents>" % (escape(k), len(v))
                                   for k, v in sorted(objects.items()))
                    return self._reply(200, ("<ListBucketResult>%s</ListBucketResult>" % keys).encode())
                if self.command == "PUT":
                    objects[name] = body
                    return self._reply(200)
                if self.command == "DELETE":
                    objects.pop(name, None)
                    return self._reply(204)
                if name not in objects:
                    return self._reply(404, error="NoSuchKey")
                return self._reply(200, objects[name])

            do_GET = do_PUT = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeS3:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
