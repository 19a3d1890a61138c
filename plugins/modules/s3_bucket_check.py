#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_bucket_check
short_description: Check an S3 endpoint, credentials and bucket before Nextcloud uses it as primary storage
version_added: 0.2.0
description:
  - Sends one signed (AWS Signature Version 4) request to an S3-compatible endpoint and tells apart an
    unreachable endpoint, refused credentials, a missing bucket and a usable bucket.
  - With O(bucket), sends C(HEAD /bucket); without it, C(GET /) (ListBuckets), which checks the credentials only.
  - With O(create=true), creates a missing bucket (C(PUT /bucket)); the only change the module can make.
  - Uses only Python's standard library on the managed host; needs neither boto3 nor botocore.
options:
  hostname:
    description: Host name or address of the S3 endpoint.
    type: str
    required: true
  port:
    description: Port of the endpoint.
    type: int
    default: 443
  use_ssl:
    description: Use HTTPS.
    type: bool
    default: true
  validate_certs:
    description: Verify the TLS certificate of the endpoint (with O(use_ssl=true)).
    type: bool
    default: true
  region:
    description: Region the requests are signed for.
    type: str
    default: us-east-1
  use_path_style:
    description:
      - Address the bucket as C(host/bucket) (path style) instead of C(bucket.host) (virtual-hosted style).
    type: bool
    default: false
  access_key:
    description: Access key id.
    type: str
    required: true
  secret_key:
    description: Secret access key.
    type: str
    required: true
  bucket:
    description: Bucket to look for. Without it only the endpoint and the credentials are checked.
    type: str
  create:
    description: Create the bucket when it does not exist. Otherwise a missing bucket fails.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the endpoint.
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode a missing bucket is reported as changed (it would be created) and not created.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The secret never leaves the module; only the signature is sent.
author:
  - nextcloud_ha.cluster developers (@nextcloud-ha)
'''

EXAMPLES = r'''
- name: Check the bucket Nextcloud will use, create it when missing
  nextcloud_ha.cluster.s3_bucket_check:
    hostname: s3.example.org
    access_key: "{{ nextcloud_ha_s3_key }}"
    secret_key: "{{ nextcloud_ha_s3_secret }}"
    bucket: nextcloud
    create: true

- name: Check only endpoint and credentials of an S3-compatible server (path style, plain HTTP)
  nextcloud_ha.cluster.s3_bucket_check:
    hostname: 10.0.0.50
    port: 9000
    use_ssl: false
    use_path_style: true
    access_key: "{{ nextcloud_ha_s3_key }}"
    secret_key: "{{ nextcloud_ha_s3_secret }}"
'''

RETURN = r'''
status:
  description: HTTP status of the last request.
  returned: always
  type: int
  sample: 200
exists:
  description: Whether the bucket exists now (or would, in check mode). Not returned without O(bucket).
  returned: when bucket is given
  type: bool
  sample: true
created:
  description: Whether the bucket was (or, in check mode, would be) created.
  returned: always
  type: bool
  sample: false
url:
  description: The URL that was checked.
  returned: always
  type: str
  sample: https://s3.example.org:443/nextcloud
'''

import datetime
import hashlib
import hmac
import socket
import ssl

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode('utf-8'), hashlib.sha256).digest()


def sign_v4(method, host, path, query, headers, payload_hash, access_key, secret_key, region, amz_date,
            service='s3'):
    """Return the Authorization header value of an AWS Signature Version 4 request.

    headers: dict of the headers to sign (lower-case names; host included); amz_date: YYYYMMDD'T'HHMMSS'Z'.
    """
    signed = sorted(headers)
    canonical_headers = ''.join('%s:%s\n' % (name, ' '.join(str(headers[name]).split())) for name in signed)
    signed_headers = ';'.join(signed)
    canonical_query = '&'.join('%s=%s' % (quote(k, safe='-_.~'), quote(v, safe='-_.~')) for k, v in sorted(query))
    canonical_request = '\n'.join([method, quote(path, safe='/-_.~'), canonical_query, canonical_headers,
                                   signed_headers, payload_hash])
    scope = '%s/%s/%s/aws4_request' % (amz_date[:8], region, service)
    string_to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope,
                                hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()])
    key = _hmac(('AWS4' + secret_key).encode('utf-8'), amz_date[:8])
    for part in (region, service, 'aws4_request'):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode('utf-8'), hashlib.sha256).hexdigest()
    return 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' % (
        access_key, scope, signed_headers, signature)


class S3Endpoint(object):
    def __init__(self, params, now=None):
        self.p = params
        self.now = now

    def host_header(self, bucket):
        host = self.p['hostname']
        if bucket and not self.p['use_path_style']:
            host = '%s.%s' % (bucket, host)
        default_port = 443 if self.p['use_ssl'] else 80
        if self.p['port'] != default_port:
            host = '%s:%d' % (host, self.p['port'])
        return host

    def path(self, bucket):
        if bucket and self.p['use_path_style']:
            return '/%s' % bucket
        return '/'

    def url(self, bucket):
        return '%s://%s%s' % ('https' if self.p['use_ssl'] else 'http', self.host_header(bucket), self.path(bucket))

    def request(self, method, bucket, body=b''):
        now = self.now or datetime.datetime.utcnow()
        amz_date = now.strftime('%Y%m%dT%H%M%SZ')
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {'host': self.host_header(bucket), 'x-amz-date': amz_date, 'x-amz-content-sha256': payload_hash}
        path = self.path(bucket)
        auth = sign_v4(method, headers['host'], path, [], headers, payload_hash, self.p['access_key'],
                       self.p['secret_key'], self.p['region'], amz_date)
        connect_host = ('%s.%s' % (bucket, self.p['hostname'])) if bucket and not self.p['use_path_style'] \
            else self.p['hostname']
        if self.p['use_ssl']:
            context = ssl.create_default_context()
            if not self.p['validate_certs']:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            conn = http_client.HTTPSConnection(connect_host, self.p['port'], timeout=self.p['timeout'],
                                               context=context)
        else:
            conn = http_client.HTTPConnection(connect_host, self.p['port'], timeout=self.p['timeout'])
        send = dict(headers)
        send['Authorization'] = auth
        if body:
            send['Content-Length'] = str(len(body))
        try:
            conn.request(method, path, body=body or None, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data
        finally:
            conn.close()


def create_body(region):
    if region == 'us-east-1':
        return b''
    return ('<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            '<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>' % region).encode('utf-8')


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            hostname=dict(type='str', required=True),
            port=dict(type='int', default=443),
            use_ssl=dict(type='bool', default=True),
            validate_certs=dict(type='bool', default=True),
            region=dict(type='str', default='us-east-1'),
            use_path_style=dict(type='bool', default=False),
            access_key=dict(type='str', required=True, no_log=True),
            secret_key=dict(type='str', required=True, no_log=True),
            bucket=dict(type='str'),
            create=dict(type='bool', default=False),
            timeout=dict(type='int', default=10),
        ),
        supports_check_mode=True,
    )
    p = module.params
    endpoint = S3Endpoint(p)
    bucket = p['bucket']
    result = dict(changed=False, created=False, url=endpoint.url(bucket))
    try:
        status, data = endpoint.request('HEAD' if bucket else 'GET', bucket)
    except (socket.error, ssl.SSLError, http_client.HTTPException) as e:
        module.fail_json(msg='The S3 endpoint %s does not answer: %s' % (result['url'], e), status=0, **result)
    result['status'] = status
    if status in (401, 403):
        module.fail_json(msg='The S3 endpoint %s refused the credentials (HTTP %d): check the access key and the '
                             'secret (and the region, %s, the request is signed for).' % (result['url'], status,
                                                                                          p['region']), **result)
    if not bucket:
        if status != 200:
            module.fail_json(msg='The S3 endpoint %s answered HTTP %d to ListBuckets.' % (result['url'], status),
                             **result)
        module.exit_json(**result)
    if status == 200:
        result['exists'] = True
        module.exit_json(**result)
    if status != 404:
        module.fail_json(msg='The S3 endpoint answered HTTP %d for bucket %s (%s).' % (status, bucket, result['url']),
                         **result)
    if not p['create']:
        module.fail_json(msg='The bucket %s does not exist at %s; create it, or let the preflight create it '
                             '(nextcloud_s3_create_bucket: true).' % (bucket, result['url']), exists=False, **result)
    result.update(changed=True, created=True, exists=True)
    if module.check_mode:
        module.exit_json(**result)
    try:
        status, data = endpoint.request('PUT', bucket, create_body(p['region']))
    except (socket.error, ssl.SSLError, http_client.HTTPException) as e:
        module.fail_json(msg='Creating the bucket %s failed: %s' % (bucket, e), **result)
    result['status'] = status
    if status != 200:
        module.fail_json(msg='Creating the bucket %s at %s failed with HTTP %d: %s' % (
            bucket, result['url'], status, data[:300].decode('utf-8', 'replace')), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == '__main__':
    main()
