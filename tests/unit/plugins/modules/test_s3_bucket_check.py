# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the s3_bucket_check module's signing and addressing, in process.

The signature is checked against the published AWS Signature Version 4 test vector (get-vanilla). The module's
behaviour through ansible-playbook is in tests/playbook/plugins/modules/test_s3_bucket_check.py.
"""

import datetime
import hashlib

from ansible_collections.nextcloud_ha.cluster.plugins.modules import s3_bucket_check


def test_signature_matches_the_aws_test_vector_get_vanilla():
    headers = {'host': 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z'}
    auth = s3_bucket_check.sign_v4('GET', 'example.amazonaws.com', '/', [], headers, hashlib.sha256(b'').hexdigest(),
                                   'AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'us-east-1',
                                   '20150830T123600Z', service='service')
    assert auth == ('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, '
                    'SignedHeaders=host;x-amz-date, '
                    'Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31')


def test_signature_depends_on_the_secret():
    args = ('HEAD', 'h', '/b', [], {'host': 'h', 'x-amz-date': '20250101T000000Z'}, 'e3', 'K')
    assert s3_bucket_check.sign_v4(*args, secret_key='a', region='r', amz_date='20250101T000000Z') != \
        s3_bucket_check.sign_v4(*args, secret_key='b', region='r', amz_date='20250101T000000Z')


def test_virtual_hosted_and_path_style_urls():
    base = dict(hostname='s3.example.org', port=443, use_ssl=True, use_path_style=False)
    assert s3_bucket_check.S3Endpoint(base).url('nc') == 'https://nc.s3.example.org/'
    assert s3_bucket_check.S3Endpoint(dict(base, use_path_style=True, port=9000, use_ssl=False)).url('nc') == \
        'http://s3.example.org:9000/nc'


def test_fixed_clock_gives_fixed_header():
    p = dict(hostname='h', port=80, use_ssl=False, use_path_style=True, access_key='K', secret_key='S',
             region='us-east-1')
    endpoint = s3_bucket_check.S3Endpoint(p, now=datetime.datetime(2025, 1, 2, 3, 4, 5))
    assert endpoint.host_header('b') == 'h' and endpoint.path('b') == '/b'
