# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The s3_bucket_check module through ansible-playbook.

Against a small S3 endpoint on loopback that verifies every request's signature with the secret it knows and keeps
the buckets it is asked to create. The signature against the AWS test vector: tests/unit/plugins/modules.
"""

import hashlib
import threading

from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.modules import s3_bucket_check

from ansible_runner import run_tasks

KEY = 'AKIDLABTEST'
SECRET = 'lab/secret+key=1'


class FakeS3(BaseHTTPRequestHandler):
    buckets = set()
    requests = []

    def log_message(self, *args):
        pass

    def _verify(self, body):
        auth = self.headers.get('Authorization', '')
        amz_date = self.headers.get('x-amz-date', '')
        payload_hash = self.headers.get('x-amz-content-sha256', '')
        if hashlib.sha256(body).hexdigest() != payload_hash:
            return False
        try:
            signed = auth.split('SignedHeaders=')[1].split(',')[0].split(';')
            access_key = auth.split('Credential=')[1].split('/')[0]
        except IndexError:
            return False
        headers = {name: self.headers.get(name) for name in signed}
        expected = s3_bucket_check.sign_v4(self.command, headers['host'], self.path, [], headers, payload_hash,
                                           KEY, SECRET, 'us-east-1', amz_date)
        return access_key == KEY and auth == expected

    def _answer(self, status, body=b''):
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _handle(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        FakeS3.requests.append((self.command, self.path))
        if not self._verify(body):
            return self._answer(403, b'<Error><Code>SignatureDoesNotMatch</Code></Error>')
        bucket = self.path.strip('/')
        if self.command == 'GET' and not bucket:
            return self._answer(200, b'<ListAllMyBucketsResult/>')
        if self.command == 'HEAD':
            return self._answer(200 if bucket in FakeS3.buckets else 404)
        if self.command == 'PUT':
            FakeS3.buckets.add(bucket)
            return self._answer(200)
        return self._answer(400)

    do_GET = do_HEAD = do_PUT = _handle


@pytest.fixture
def fake_s3():
    FakeS3.buckets = {'existing'}
    FakeS3.requests = []
    server = HTTPServer(('127.0.0.1', 0), FakeS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _task(port, **kwargs):
    args = dict(hostname='127.0.0.1', port=port, use_ssl=False, use_path_style=True, access_key=KEY,
                secret_key=SECRET)
    args.update(kwargs)
    return {'nextcloud_ha.cluster.s3_bucket_check': args, 'ignore_errors': True}


def test_right_credentials_and_existing_bucket_pass(tmp_path, fake_s3):
    result, = run_tasks(tmp_path, [_task(fake_s3, bucket='existing')])
    assert not result.get('failed'), result
    assert result['exists'] is True and result['changed'] is False and result['status'] == 200
    assert FakeS3.requests == [('HEAD', '/existing')]


def test_wrong_secret_fails_and_says_so(tmp_path, fake_s3):
    result, = run_tasks(tmp_path, [_task(fake_s3, bucket='existing', secret_key='wrong')])
    assert result.get('failed') is True
    assert 'refused the credentials' in result['msg'] and result['status'] == 403
    assert 'wrong' not in str(result) and SECRET not in str(result)


def test_credentials_only_without_bucket(tmp_path, fake_s3):
    good, bad = run_tasks(tmp_path, [_task(fake_s3), _task(fake_s3, access_key='OTHER')])
    assert not good.get('failed') and good['status'] == 200
    assert bad.get('failed') is True and bad['status'] == 403


def test_unreachable_endpoint_fails(tmp_path, fake_s3):
    result, = run_tasks(tmp_path, [_task(1, bucket='existing', timeout=3)])
    assert result.get('failed') is True and 'does not answer' in result['msg']


def test_missing_bucket_fails_unless_create(tmp_path, fake_s3):
    missing, = run_tasks(tmp_path, [_task(fake_s3, bucket='newbucket')])
    assert missing.get('failed') is True and 'does not exist' in missing['msg']
    assert 'newbucket' not in FakeS3.buckets


def test_check_mode_reports_but_does_not_create(tmp_path, fake_s3):
    result, = run_tasks(tmp_path, [_task(fake_s3, bucket='newbucket', create=True)], check=True)
    assert result['changed'] is True and result['created'] is True
    assert 'newbucket' not in FakeS3.buckets
    assert [r[0] for r in FakeS3.requests] == ['HEAD']


def test_create_then_second_run_changes_nothing(tmp_path, fake_s3):
    first, second = run_tasks(tmp_path, [_task(fake_s3, bucket='newbucket', create=True),
                                         _task(fake_s3, bucket='newbucket', create=True)])
    assert first['changed'] is True and first['created'] is True and not first.get('failed')
    assert 'newbucket' in FakeS3.buckets
    assert second['changed'] is False and second['exists'] is True
