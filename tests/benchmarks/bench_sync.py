#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of codebase replication between two lab web nodes (issue #7).

    LAB_NAME=mylab .venv/bin/python tests/benchmarks/bench_sync.py [--reps 3]

Needs only the base lab (`python -m lab up`): web1 plays the master, web2 the node being synced.
It sets up what the methods need (rsync, a root ssh key web2 -> web1 for the scripts, the restricted
`ncbench` export key for codebase_sync), generates a tree shaped like a Nextcloud release on web1
(default 22,000 files, about 250 MB, a realistic size mix) and measures, interleaved and repeated:

  cases    first sync to an empty node, incremental (an app of ~500 files / ~5 MB added and
           config.php changed on the master), no-op (not for the design script, which copies
           everything every time: its no-op is its first sync); then "removal": the app removed again, and
           "incremental again": the incremental case's change once more, on a node that has synced before
           (rsync and codebase_sync only). codebase_sync's incremental right after a node's first sync makes
           the node's second tree (a hard-linked copy) for its atomic swap; from then on it recycles its
           previous tree, as in the last two cases.
  methods  the design notes' script, rsync -a --delete over ssh (with the same excludes), the same rsync
           run the way an Ansible task runs it ("rsync task": from a kept AnsiballZ file of
           ansible.builtin.command, the lightest way to run rsync from a playbook; its own destination),
           codebase_sync (the real module, run from its kept AnsiballZ file so Ansible's controller
           overhead is not counted, but Python's and the AnsiballZ wrapper's start are), and the
           floor: a bare `ssh tar | tar` stream into an empty folder. rsync and the floor use the
           same ssh transport options as codebase_sync (cipher preference, no compression).

Times are taken on web2 around each command (only the command: not the ssh/sudo that starts it), after
an untimed `sync`, so that no method pays for the disk writeback of the one run before it (`--writeback`: each
command also pays for its own, a `sync` at its end). An untimed warm-up round of first syncs comes first, so that
every method's timed first sync starts right after its previous tree was deleted, as the others' do. `--node-root /tmp`
puts web2's trees on the container's tmpfs: the first sync's times on the host's disk spread by a factor of four
within one method (6-26 s), which hides any difference between methods. Every result is checked against the master's tree
(path, type, size, mtime, mode, owner) after the run. It prints the medians as a table with ratios.
This is a measurement, not a timed test: nothing fails on a slow result.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

# The lab's state paths come from the integration tests' one module for them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'integration'))
from lab_paths import INVENTORY, LAB_NAME, ROOT, SSH_CONFIG  # noqa: E402

# the export program the nc_sync role ships (generated from plugins/module_utils/codebase_sync/ by .ci/bundle-export)
EXPORT = os.path.join(ROOT, 'roles', 'nc_sync', 'files', 'nc_sync_export.py')

MASTER, NODE = 'web1', 'web2'
SRC = '/var/www/bench-src'
DEST_NAMES = {'design': 'html', 'rsync': 'bench-rsync', 'rsync task': 'bench-rsync-task', 'codebase_sync': 'bench-cs',
              'floor': 'bench-floor'}
# where the node's trees go (--node-root); DEST is filled in by set_node_root()
NODE_ROOT = {'path': '/var/www'}
DEST = {}


def set_node_root(root):
    NODE_ROOT['path'] = root
    DEST.update((m, os.path.join(root, name)) for m, name in DEST_NAMES.items())


set_node_root('/var/www')
KEY = '/root/.ssh/bench_id_ed25519'
SYNC_KEY = '/etc/nextcloud-sync/bench_id_ed25519'
SYNC_KNOWN = '/etc/nextcloud-sync/bench_known_hosts'
EXPORT_ON_MASTER = '/usr/local/lib/nextcloud-ha/bench/nc_sync_export.py'
EXCLUDE = ['data/', 'config/node.config.php']
# Its own export user, so that the benchmark and the nc_sync role can share a lab.
BENCH_USER = 'ncbench'

GENERATOR = r'''
import os, random, sys
root, nfiles, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if os.path.exists(os.path.join(root, '.generated-%d-%d' % (nfiles, mb))):
    print('exists'); sys.exit(0)
os.system('rm -rf ' + root)
rnd = random.Random(32)
# (share of files, median size, sigma) per kind, after the mix of a Nextcloud 32 release
kinds = [('php', 0.58, 2500, 1.1), ('json', 0.12, 6000, 1.0), ('svg', 0.08, 1500, 1.0), ('png', 0.04, 4000, 1.2),
         ('css', 0.03, 3000, 1.2), ('js', 0.10, 30000, 1.6), ('map', 0.03, 250000, 1.2), ('txt', 0.02, 2000, 1.0)]
sizes = []
for ext, share, med, sigma in kinds:
    for _ in range(int(nfiles * share)):
        sizes.append((ext, max(1, int(rnd.lognormvariate(0, sigma) * med))))
while len(sizes) < nfiles:
    sizes.append(('php', 2000))
total = sum(s for _e, s in sizes)
scale = mb * 1024 * 1024 / total
sizes = [(e, max(1, int(s * scale))) for e, s in sizes]
tops = ['apps/app%02d' % i for i in range(60)] + ['3rdparty/vendor%02d/pkg%d' % (i, j) for i in range(40) for j in range(4)]
tops += ['core/js', 'core/css', 'core/img', 'core/l10n', 'dist', 'lib/private', 'lib/public', 'resources', 'ocs']
subs = ['lib', 'lib/Controller', 'lib/Service', 'l10n', 'img', 'js', 'css', 'templates', 'src/Db', 'tests']
blob = rnd.randbytes(8 * 1024 * 1024)
for i, (ext, size) in enumerate(sizes):
    d = os.path.join(root, tops[i % len(tops)], subs[(i // len(tops)) % len(subs)])
    os.makedirs(d, exist_ok=True)
    off = rnd.randrange(0, len(blob) - min(size, len(blob) - 1))
    with open(os.path.join(d, 'f%05d.%s' % (i, ext)), 'wb') as f:
        left = size
        while left > 0:
            chunk = blob[off:off + min(left, len(blob) - off)]
            f.write(chunk); left -= len(chunk); off = 0
os.makedirs(os.path.join(root, 'config'), exist_ok=True)
with open(os.path.join(root, 'config', 'config.php'), 'w') as f:
    f.write("<?php\n$CONFIG = array (\n  'trusted_domains' => \n  array (\n    0 => 'web1',\n  ),\n  'version' => '32.0.2.2',\n);\n")
os.chmod(os.path.join(root, 'config', 'config.php'), 0o640)
os.system('chown -R www-data:www-data ' + root)
open(os.path.join(root, '.generated-%d-%d' % (nfiles, mb)), 'w').close()
print('generated')
'''

APP = r'''
import os, random, sys
root, action = sys.argv[1], sys.argv[2]
app = os.path.join(root, 'apps', 'benchapp')
cfg = os.path.join(root, 'config', 'config.php')
if action == 'add':
    rnd = random.Random(7)
    for i in range(500):
        d = os.path.join(app, ['lib', 'l10n', 'img', 'js', 'templates'][i % 5])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'g%03d.php' % i), 'wb') as f:
            f.write(rnd.randbytes(10 * 1024 + rnd.randrange(1024)))
    with open(cfg) as f:
        text = f.read()
    with open(cfg, 'w') as f:
        f.write(text.replace("  'version'", "  'ldapIgnoreNamingRules' => false,\n  'version'"))
else:
    os.system('rm -rf ' + app)
    with open(cfg) as f:
        text = f.read()
    with open(cfg, 'w') as f:
        f.write(text.replace("  'ldapIgnoreNamingRules' => false,\n", ''))
os.system('chown -R www-data:www-data ' + root)
'''

# The design notes' sync script, as written there (httpd is not installed on the base lab's web2, so
# stopping/starting it is a no-op here; everything else is the script, with its tarball in /tmp).
DESIGN = r'''
systemctl stop httpd 2>/dev/null || true
rm -rf {root}/html
ssh -i {key} root@{master} rm -v /tmp/moveinstallation.tar >/dev/null 2>&1 || true
ssh -i {key} root@{master} tar -cpf /tmp/moveinstallation.tar {src} 2>/dev/null
cd {root}/
scp -i {key} -q root@{master}:/tmp/moveinstallation.tar .
tar --same-owner -xvf moveinstallation.tar -C {root} >/dev/null
mv var/www/{srcname}/ html
rm -rf var
sed -i "s/    0 => '{master}',/    0 => '{node}',/" {root}/html/config/config.php
systemctl start httpd 2>/dev/null || true
'''


def ssh(host, command, check=True, input_=None, timeout=1800):
    p = subprocess.run(['ssh', '-F', SSH_CONFIG, host, 'sudo bash -c %s' % shlex.quote(command)],
                       input=input_, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError('%s: %s failed (%d): %s %s' % (host, command[:200], p.returncode, p.stdout, p.stderr))
    return p


# --writeback: every timed command ends with `sync`, so that each method pays for writing its own data to the disk
# (else how much of it the kernel writes back while the command runs is chance, and the first sync's times with it)
WRITEBACK = {'on': False}


def timed(host, command):
    """Run command on host, timing it there; return seconds.

    Dirty pages are written out first (``sync``, untimed; it is system-wide, so it covers the other
    containers too): no method pays for the writeback of the 320 MB the one before it wrote."""
    end_sync = ' sync;' if WRITEBACK['on'] else ''
    wrapper = ('sync; s=$(date +%%s.%%N); ( %s ) >/tmp/bench.out 2>&1; rc=$?;%s e=$(date +%%s.%%N); '
               'echo "$rc $s $e"' % (command, end_sync))
    out = ssh(host, wrapper).stdout.split()
    rc, start, end = int(out[0]), float(out[1]), float(out[2])
    if rc != 0:
        log = ssh(host, 'tail -20 /tmp/bench.out', check=False).stdout
        raise RuntimeError('timed command failed on %s (%d): %s\n%s' % (host, rc, command[:300], log))
    return end - start


def tree_digest(host, path, skip_config=False):
    """Digest of (path, type, size, file mtime, mode, owner) of a tree, as the manifest compares."""
    cmd = ("cd %s && find . -mindepth 1 \\( -path ./data -o -path ./.generated-\\* \\) -prune -o -printf '%%P %%y %%m %%U %%G "
           "%%s %%T@\\n' | awk '$2==\"d\"{$6=0;$7=0} $2!=\"d\"{split($7,a,\".\");$7=a[1]} {print}' ") % shlex.quote(path)
    if skip_config:
        cmd += "| grep -v '^config/config.php '"
    cmd += '| grep -v "^ " | sort | md5sum'
    return ssh(host, cmd).stdout.split()[0]


def setup(nfiles, mb):
    print('setting up web1 (master) and web2 (node) ...', flush=True)
    for h in (MASTER, NODE):
        ssh(h, 'command -v rsync >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive '
               'apt-get install -y -qq rsync >/dev/null)')
    # root key web2 -> web1 for the design notes' script, rsync and the bare stream
    pub = ssh(NODE, 'test -f {k} || ssh-keygen -q -t ed25519 -N "" -f {k}; cat {k}.pub'.format(k=KEY)).stdout.strip()
    ssh(MASTER, 'mkdir -p /root/.ssh && chmod 700 /root/.ssh && touch /root/.ssh/authorized_keys && '
                'grep -qF %s /root/.ssh/authorized_keys || echo %s >> /root/.ssh/authorized_keys'
        % (shlex.quote(pub), shlex.quote(pub)))
    hostkeys = ssh(MASTER, 'cat /etc/ssh/ssh_host_ed25519_key.pub').stdout.split()
    known = '%s %s %s' % (MASTER, hostkeys[0], hostkeys[1])
    ssh(NODE, 'mkdir -p /root/.ssh /etc/nextcloud-sync %s && echo %s > /root/.ssh/known_hosts && echo %s > %s'
        % (NODE_ROOT['path'], shlex.quote(known), shlex.quote(known), SYNC_KNOWN))
    # the restricted export for codebase_sync: its own user, forced command, from= web2 only
    with open(EXPORT) as f:
        ssh(MASTER, 'mkdir -p %s && cat > %s' % (os.path.dirname(EXPORT_ON_MASTER), EXPORT_ON_MASTER), input_=f.read())
    spub = ssh(NODE, 'test -f {k} || ssh-keygen -q -t ed25519 -N "" -f {k}; cat {k}.pub'.format(k=SYNC_KEY)).stdout.strip()
    node_ip = ssh(NODE, "hostname -I | awk '{print $1}'").stdout.strip()
    line = ('restrict,from="%s",command="/usr/bin/python3 %s --allow-root /var/www" %s'
            % (node_ip, EXPORT_ON_MASTER, spub))
    ssh(MASTER, 'id {u} >/dev/null 2>&1 || useradd --system --create-home --shell /bin/sh {u}; '
                'usermod -aG www-data {u}; install -d -o {u} -m 700 ~{u}/.ssh; '
                'echo {line} > ~{u}/.ssh/authorized_keys; chown {u} ~{u}/.ssh/authorized_keys'.format(
                    u=BENCH_USER, line=shlex.quote(line)))
    print('generating the tree on web1 ...', flush=True)
    print('  ' + ssh(MASTER, 'python3 - %s %d %d' % (SRC, nfiles, mb), input_=GENERATOR).stdout.strip())
    stats = ssh(MASTER, 'find %s -type f | wc -l; du -sm %s | cut -f1' % (SRC, SRC)).stdout.split()
    print('  tree: %s files, %s MB' % (stats[0], stats[1]), flush=True)
    ssh(MASTER, 'python3 - %s remove' % SRC, input_=APP)
    return int(stats[0]), int(stats[1])


def module_args(dest):
    return dict(src_host=MASTER, src_path=SRC, dest_path=dest, ssh_user=BENCH_USER, ssh_key=SYNC_KEY,
                known_hosts=SYNC_KNOWN, exclude=EXCLUDE, keep_previous=True)


def keep_ansiballz(module='nextcloud_ha.cluster.codebase_sync', args=None):
    """Run a module once through Ansible, keeping its AnsiballZ file on web2; return its path."""
    env = dict(os.environ, ANSIBLE_KEEP_REMOTE_FILES='1', ANSIBLE_PIPELINING='0', ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    ssh(NODE, 'rm -rf ~ansible/.ansible/tmp/ansible-tmp-* %s %s.previous' % (DEST['codebase_sync'], DEST['codebase_sync']))
    argv = [os.path.join(ROOT, '.venv', 'bin', 'ansible'), '-i', INVENTORY, NODE, '-b', '-m', module]
    if args is not None:
        argv += ['-a', json.dumps(args)]
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError('%s through Ansible failed: %s %s' % (module, p.stdout, p.stderr))
    name = 'AnsiballZ_%s.py' % module.split('.')[-1]
    path = ssh(NODE, 'ls -t ~ansible/.ansible/tmp/ansible-tmp-*/%s | head -1' % name).stdout.strip()
    ssh(NODE, 'cp %s /root/%s' % (path, name))
    return '/root/' + name


def ansible_overhead():
    """Controller-side cost of one Ansible task on web2 (the ping module), for reference."""
    start = time.time()
    subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible'), '-i', INVENTORY, NODE, '-b', '-m', 'ansible.builtin.ping'],
                   cwd=ROOT, capture_output=True, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg')))
    return time.time() - start


# rsync and the floor travel over the same ssh transport as codebase_sync (its cipher preference, no
# compression), so that the comparison measures the methods, not ssh settings. The design notes' script
# runs as written there (ssh and scp with their defaults).
SSH_TRANSPORT = '-o Compression=no -o Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com'


def rsync_argv(dest):
    """rsync -a --delete from the master over ssh, with the module's excludes (a leading / anchors at the root)."""
    return (['rsync', '-a', '--delete'] + ['--exclude=/%s' % p for p in EXCLUDE]
            + ['-e', 'ssh -i %s %s' % (KEY, SSH_TRANSPORT), 'root@%s:%s/' % (MASTER, SRC), dest + '/'])


def commands(ansiballz, rsync_task):
    d = dict(key=KEY, master=MASTER, node=NODE, src=SRC, srcname=os.path.basename(SRC), transport=SSH_TRANSPORT,
             root=NODE_ROOT['path'])
    return {
        'design': DESIGN.format(**d),
        'rsync': 'mkdir -p %s && %s' % (DEST['rsync'], ' '.join(shlex.quote(a) for a in rsync_argv(DEST['rsync']))),
        # the same rsync inside an Ansible module process (ansible.builtin.command, its argv given as a list)
        'rsync task': 'python3 %s > /tmp/bench.rt.json' % rsync_task,
        # only the module's process is timed; a failed run exits non-zero (checked by timed())
        'codebase_sync': 'python3 %s > /tmp/bench.cs.json' % ansiballz,
        'floor': 'mkdir {dst} && ssh -i {key} {transport} root@{master} tar -C {src} -cf - . | '
                 'tar -C {dst} -xf -'.format(dst=DEST['floor'], **d),
    }


def reset_empty(method):
    dst = DEST[method]
    root = NODE_ROOT['path']
    ssh(NODE, 'rm -rf %s %s.previous %s/.%s.codebase_sync-* %s/moveinstallation.tar'
        % (dst, dst, root, os.path.basename(dst), root))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--files', type=int, default=22000)
    ap.add_argument('--mb', type=int, default=250)
    ap.add_argument('--writeback', action='store_true',
                    help='time each command with a `sync` at its end: every method pays for writing its data to disk')
    ap.add_argument('--node-root', default='/var/www',
                    help="the folder on web2 that gets every method's tree (default /var/www, a volume on the host's "
                         "disk); /tmp, the containers' tmpfs, takes the host disk's noise out of the first sync")
    args = ap.parse_args()
    set_node_root(args.node_root.rstrip('/') or '/')
    WRITEBACK['on'] = args.writeback
    if not os.path.exists(SSH_CONFIG):
        sys.exit('the lab %r is not up: run `LAB_NAME=%s python -m lab up`' % (LAB_NAME, LAB_NAME))
    nfiles, mb = setup(args.files, args.mb)
    ping = keep_ansiballz('ansible.builtin.ping')
    reset_empty('rsync task')
    rsync_task = keep_ansiballz('ansible.builtin.command', args={'argv': rsync_argv(DEST['rsync task'])})
    # last: its run's temporary folder (the module's tmpdir when the kept file runs) must stay
    ansiballz = keep_ansiballz(args=module_args(DEST['codebase_sync']))
    cmds = commands(ansiballz, rsync_task)
    src_digest = tree_digest(MASTER, SRC, skip_config=True)
    times = {}
    inner = {}      # codebase_sync: the module's own 'seconds' (after Python and AnsiballZ started)

    master_digests = {}     # the master's digests of its current state (emptied whenever it changes)

    def master_digest(skip_config):
        if skip_config not in master_digests:
            master_digests[skip_config] = tree_digest(MASTER, SRC, skip_config=skip_config)
        return master_digests[skip_config]

    def record(case, method, seconds, dest):
        ok = tree_digest(NODE, dest, skip_config=(method == 'design')) == master_digest(method == 'design')
        times.setdefault((case, method), []).append(seconds)
        phases = ''
        if method == 'codebase_sync':
            try:
                res = json.loads(ssh(NODE, 'cat /tmp/bench.cs.json').stdout)
                inner.setdefault(case, []).append(res['seconds'])
                phases = '  module %.2f s, %s%s' % (res['seconds'], res.get('staging_from') or res['method'], ''.join(
                    ' %s=%.2f' % kv for kv in sorted(res.get('timings', {}).items())))
            except (ValueError, KeyError, RuntimeError):
                pass
        print('  %-17s %-13s %7.2f s  %s%s' % (case, method, seconds, 'tree ok' if ok else 'TREE DIFFERS', phases),
              flush=True)
        if not ok:
            raise RuntimeError('%s left a tree that differs from the master after %s' % (method, case))

    # Warm-up, untimed: one first sync by every method, so that each method's timed first sync starts as the
    # others' do, right after its previous tree was deleted (codebase_sync's AnsiballZ run above made one already;
    # writing right after deleting a 22,000-file tree is slower on the lab's disk than writing into a fresh one).
    for m in ('design', 'rsync', 'rsync task', 'floor'):
        reset_empty(m)
        ssh(NODE, cmds[m])
    for rep in range(args.reps):
        print('repetition %d/%d' % (rep + 1, args.reps), flush=True)
        order = ['design', 'rsync', 'codebase_sync', 'floor', 'rsync task']
        order = order[rep % 5:] + order[:rep % 5]      # rotate so no method always runs first
        # (1) first sync to an empty node
        for m in order:
            reset_empty(m)
            record('first', m, timed(NODE, cmds[m]), DEST[m])
        # (2) incremental: app added and config.php changed on the master
        ssh(MASTER, 'python3 - %s add' % SRC, input_=APP)
        master_digests.clear()
        for m in order:
            if m == 'floor':
                continue
            record('incremental', m, timed(NODE, cmds[m]), DEST[m])
        # (3) no-op (the design script is left out: it copies everything every time, its no-op is its first sync)
        for m in order:
            if m in ('floor', 'design'):
                continue
            record('no-op', m, timed(NODE, cmds[m]), DEST[m])
        # (4) the app removed again, then (5) the incremental case's change once more: codebase_sync recycles
        # its previous tree (a node that has synced before; the design script is left out, it copies
        # everything every time: its time is the incremental case's)
        for case, action in (('removal', 'remove'), ('incremental again', 'add')):
            ssh(MASTER, 'python3 - %s %s' % (SRC, action), input_=APP)
            master_digests.clear()
            for m in order:
                if m in ('rsync', 'rsync task', 'codebase_sync'):
                    record(case, m, timed(NODE, cmds[m]), DEST[m])
        ssh(MASTER, 'python3 - %s remove' % SRC, input_=APP)
        master_digests.clear()
    assert src_digest == tree_digest(MASTER, SRC, skip_config=True)
    # what starting any module costs on web2 (Python, the AnsiballZ wrapper, AnsibleModule): ansible.builtin.ping
    start_cost = statistics.median(timed(NODE, 'python3 %s >/dev/null' % ping) for _i in range(3))
    overhead = ansible_overhead()
    report(times, inner, nfiles, mb, args.reps, overhead, start_cost)


CASES = ('first', 'incremental', 'no-op', 'removal', 'incremental again')


def design_case(case):
    """The design script's row a case is compared with (it copies everything every time)."""
    return 'incremental' if case == 'incremental again' else case


def verdict(value, limit):
    return 'met' if value <= limit else 'NOT met'


def report(times, inner, nfiles, mb, reps, overhead, start_cost):
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med[('first', 'floor')]
    print()
    print('Tree: %d files, %d MB, web1 -> web2 (lab containers; web2\'s trees in %s), medians of %d interleaved '
          'runs; times taken on web2%s; load average at the end: %s.'
          % (nfiles, mb, NODE_ROOT['path'], reps,
             ', each with its writeback (sync at its end)' if WRITEBACK['on'] else '', os.getloadavg()[0]))
    print()
    print('| case | method | median s | min-max s | in-module s | vs floor | vs design script | vs rsync '
          '| vs rsync task |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|')
    for case in CASES:
        for m in ('floor', 'design', 'rsync', 'rsync task', 'codebase_sync'):
            if (case, m) not in med:
                continue
            v = med[(case, m)]
            lo, hi = min(times[(case, m)]), max(times[(case, m)])
            print('| %s | %s | %.2f | %.2f-%.2f | %s | %s | %s | %s | %s |' % (
                case, m, v, lo, hi,
                '%.2f' % statistics.median(inner[case]) if m == 'codebase_sync' and inner.get(case) else '',
                '%.2fx' % (v / floor) if case == 'first' else '',
                '%.3fx' % (v / med[(design_case(case), 'design')])
                if m != 'design' and (design_case(case), 'design') in med else '',
                '%.2fx' % (v / med[(case, 'rsync')]) if m in ('rsync task', 'codebase_sync') and (case, 'rsync') in med
                else '',
                '%.2fx' % (v / med[(case, 'rsync task')]) if m == 'codebase_sync' and (case, 'rsync task') in med
                else ''))
    print()
    cs = {c: med[(c, 'codebase_sync')] for c in CASES}
    design = med[('incremental', 'design')]

    def vs_rsync(case):
        return 'rsync: %.2fx %s, rsync task: %.2fx %s' % (
            cs[case] / med[(case, 'rsync')], verdict(cs[case], med[(case, 'rsync')]),
            cs[case] / med[(case, 'rsync task')], verdict(cs[case], med[(case, 'rsync task')]))
    print('Targets: first <= 1.1x floor: %.2fx %s' % (cs['first'] / floor, verdict(cs['first'], 1.1 * floor)))
    print('  no-op <= %s' % vs_rsync('no-op'))
    for case in ('incremental', 'incremental again', 'removal'):
        print('  %s: <= 0.1x design script: %.3fx %s; <= %s' % (
            case, cs[case] / design, verdict(cs[case], 0.1 * design), vs_rsync(case)))
    print('codebase_sync times are its whole module process on web2 (python3 AnsiballZ_codebase_sync.py); '
          '"in-module" is the part after Python, the AnsiballZ wrapper and AnsibleModule started. Starting any '
          'module that way (ansible.builtin.ping) takes %.2f s here; "rsync task" is rsync inside such a module '
          'process (ansible.builtin.command). One Ansible task adds about %.1f s of controller overhead on top '
          '(ansible ping, measured now), counted for no method.' % (start_cost, overhead))
    print('"incremental" is the node\'s first sync after its first one (codebase_sync makes its second tree, a '
          'hard-linked copy, then); "incremental again" is the same change on a node that has synced before '
          '(its previous tree recycled), the state of every node of a running cluster.')


if __name__ == '__main__':
    main()
