# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's side of the ssh session with the export program: ssh and tar argv, the session itself."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import shlex
import subprocess

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.manifest import parse_manifest_header
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    EXPORT_FORBIDDEN,
    EXPORT_NAME,
    EXPORT_NO_SOURCE,
    EXPORT_USAGE,
    SyncError,
)


_TOTALS_RE = re.compile(r'Total bytes read: (\d+)')


# Preferred first, the rest of ssh's defaults kept after it (the '^' form): AES-GCM runs on the
# CPU's AES instructions and costs about half of chacha20-poly1305 per byte, which shows when a
# whole tree goes through on a busy node.
SSH_CIPHERS = '^aes128-gcm@openssh.com,aes256-gcm@openssh.com'


def ssh_options(key, user, port=22, known_hosts=None, connect_timeout=10):
    """ssh options: key only, batch mode, pinned host keys (never StrictHostKeyChecking=no)."""
    argv = ['-i', key,
            '-p', str(int(port)),
            '-l', user,
            '-o', 'BatchMode=yes',
            '-o', 'IdentitiesOnly=yes',
            '-o', 'PasswordAuthentication=no',
            '-o', 'KbdInteractiveAuthentication=no',
            '-o', 'StrictHostKeyChecking=yes',
            '-o', 'ConnectTimeout=%d' % int(connect_timeout),
            '-o', 'ServerAliveInterval=15',
            '-o', 'ServerAliveCountMax=4',
            '-o', 'Compression=no',          # a LAN is faster than zlib; the archive is mostly compressed files
            '-o', 'Ciphers=%s' % SSH_CIPHERS,
            '-o', 'ControlMaster=no',        # one session per sync: nothing to share
            '-o', 'ControlPath=none',
            '-o', 'LogLevel=ERROR']
    if known_hosts:
        argv += ['-o', 'UserKnownHostsFile=%s' % known_hosts, '-o', 'GlobalKnownHostsFile=/dev/null']
    return argv


def ssh_argv(ssh_bin, host, user, key, remote_argv, port=22, known_hosts=None, connect_timeout=10):
    """argv of ssh running ``remote_argv`` on the master.

    ssh sends the remote command as one string to the server, where it is split again (by the
    export program when it is a forced command, by the login shell otherwise): every element is
    quoted with shlex.quote so that both give back exactly ``remote_argv``.
    """
    argv = [ssh_bin, '-T', '-x', '-a'] + ssh_options(key, user, port, known_hosts, connect_timeout)
    argv += ['--', host, ' '.join(shlex.quote(a) for a in remote_argv)]
    return argv


def extract_argv(tar_bin, staging, index_file=None):
    """argv of the extracting tar on the target: owners, groups, modes and mtimes preserved.

    With ``index_file``, tar lists the extracted names in that file (not on stdout, which the caller
    would have to buffer).
    """
    argv = [tar_bin, '-x', '-f', '-', '-C', staging,
            '--numeric-owner', '--same-owner', '--same-permissions', '--totals']
    if index_file:
        argv += ['-v', '--index-file=%s' % index_file]
    return argv


def parse_tar_totals(stderr):
    m = _TOTALS_RE.search(stderr or '')
    return int(m.group(1)) if m else 0


class ExportSession(object):
    """One ssh session with the export program on the master; every sync uses exactly one.

    ``sync`` request: the master sends its manifest (a header line with its length, then the
    manifest), this side answers with the paths it needs (NUL-separated, then end of input) and the
    master streams them as a tar archive. ``tar`` request: the whole tree as a tar archive.
    The archive goes from ssh's stdout straight into the extracting tar (the file descriptor is
    handed over; no byte of it passes through Python).

    Two processes talking to each other is what run_command cannot do, hence subprocess here. Every
    value travels as an argv element; no shell is involved.
    """

    def __init__(self, ssh_args, workdir, host, user, send=True):
        self.host, self.user = host, user
        self.workdir = workdir
        self.bytes = 0
        self._err = open(os.path.join(workdir, 'ssh.err'), 'w+b')
        self.proc = subprocess.Popen(ssh_args, stdin=subprocess.PIPE if send else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._err, bufsize=0)

    def _ssh_error(self):
        self._err.seek(0)
        return self._err.read().decode('utf-8', 'replace')

    def _failed(self, what):
        """The session ended early: explain why (ssh's or the export's exit status and message)."""
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if rc == 0:
            return SyncError('the master %s ended the session %s' % (self.host, what))
        return SyncError(explain_ssh_failure(rc, self._ssh_error(), self.host, self.user))

    def _read_exactly(self, n):
        fd = self.proc.stdout.fileno()
        chunks = []
        while n > 0:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise self._failed('in the middle of the manifest')
            chunks.append(chunk)
            n -= len(chunk)
        return b''.join(chunks)

    def read_manifest(self):
        """The master's manifest (bytes, for decode_manifest)."""
        fd = self.proc.stdout.fileno()
        head = b''
        while not head.endswith(b'\n'):
            byte = os.read(fd, 1)   # byte by byte: never read past the header into what follows
            if not byte:
                raise self._failed('before sending its manifest')
            head += byte
            if len(head) > 200:
                raise SyncError('the master %s answered %r instead of a manifest' % (self.host, head[:80]))
        data = self._read_exactly(parse_manifest_header(head))
        self.bytes += len(head) + len(data)
        return data

    def request(self, names):
        """Ask for ``names`` (relative paths; none = end the session without a transfer)."""
        try:
            if names:
                self.proc.stdin.write(b''.join(os.fsencode(n) + b'\0' for n in names))
            self.proc.stdin.close()
        except OSError:
            pass    # the master went away: extract()/end() report why

    def end(self):
        """Wait for a session that transfers nothing to end cleanly."""
        self.request([])
        rest = self.proc.stdout.read()
        rc = self.proc.wait()
        if rc != 0 or rest:
            raise SyncError(explain_ssh_failure(rc, self._ssh_error(), self.host, self.user) if rc
                            else 'the master %s sent %d unexpected bytes' % (self.host, len(rest)))

    def extract(self, tar_argv):
        """Let ``tar_argv`` (tar -x) read the archive from ssh; return the bytes it read."""
        tar_err_path = os.path.join(self.workdir, 'tar.err')
        with open(tar_err_path, 'w+b') as tar_err:
            try:
                tar = subprocess.Popen(tar_argv, stdin=self.proc.stdout, stdout=subprocess.DEVNULL, stderr=tar_err)
            finally:
                self.proc.stdout.close()    # tar has it now; ssh sees EPIPE if tar dies
            tar_rc = tar.wait()
            ssh_rc = self.proc.wait()
            tar_err.seek(0)
            tar_msg = tar_err.read().decode('utf-8', 'replace')
        if ssh_rc != 0:
            raise SyncError(explain_ssh_failure(ssh_rc, self._ssh_error(), self.host, self.user))
        if tar_rc != 0:
            raise SyncError('extracting the tree on this node failed (tar exit %d): %s' % (tar_rc, tar_msg.strip()))
        read = parse_tar_totals(tar_msg)
        self.bytes += read
        return read

    def close(self):
        """Stop the session if it still runs (after a failure); idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass


def explain_ssh_failure(rc, stderr, host, user):
    """Turn an ssh/export failure into a clear message."""
    err = (stderr or '').strip()
    low = err.lower()
    if rc == 255:
        if 'permission denied' in low:
            return ('the master %s rejected the sync key for user %s (Permission denied): is the key authorized '
                    'there, and is this node in its from= list? ssh said: %s' % (host, user, err))
        if 'host key verification failed' in low or 'no matching host key' in low or 'remote host identification' in low:
            return ('the host key of the master %s is not pinned or does not match the pinned key; refusing to '
                    'connect. ssh said: %s' % (host, err))
        if 'identity file' in low or 'no such identity' in low:
            return 'the sync key cannot be read: %s' % err
        return 'cannot reach the master %s over ssh: %s' % (host, err or 'ssh exited with 255')
    if rc == EXPORT_NO_SOURCE:
        return 'src_path does not exist on the master %s: %s' % (host, err)
    if rc == EXPORT_FORBIDDEN:
        return 'the master %s refused the request: %s' % (host, err)
    if rc == EXPORT_USAGE:
        return 'the export program on the master %s did not understand the request: %s' % (host, err)
    if rc == 127:
        return ('the export program %s is not installed on the master %s (or the key has no forced command): %s'
                % (EXPORT_NAME, host, err))
    return 'exporting the tree from the master %s failed (exit %s): %s' % (host, rc, err)
