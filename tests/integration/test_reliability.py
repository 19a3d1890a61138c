"""Reliability suite (issues #11, #21): the failure scenarios, one at a time, under a bounded load through HAProxy.

Every request of the load goes through the load balancer to the stand-in: the login page (distributed cache in
Redis through the local proxy) and the probe, which writes a row through PgBouncer and a file into the data
directory under a key of its own and names the node that answered. After each fault the suite looks for every
row and file the probe confirmed (HTTP 200) and counts what is missing.

    make test-reliability                          # full load, on the lab that `make lab` deployed
    NCHA_RELIABILITY_LOAD=reduced ...              # the lighter load CI runs (see the Makefile)

It prints one table (and tests/output/reliability.json, see conftest.py) with, for each fault: requests, failed
requests, seconds from the first to the last failed request, data lost, and how the cluster recovered. A fault the
design absorbs (web node down, PHP-FPM killed, one etcd member down, GlusterFS peer down, sync killed, HAProxy
reload) fails its test when it loses a request or data; Redis and PostgreSQL failures fail it when committed data
is lost, and PostgreSQL's also when writes fail for more than 30 s (issue #21).

PostgreSQL runs on Patroni with etcd (docs/postgres.md): no playbook runs in its scenarios. The leader's container
killed, the leader cut off from the network (nftables), one and then two etcd members stopped; each scenario
leaves the cluster healthy with the leader it found (a planned switchover back), and the sync scenario re-syncs.
"""
import contextlib
import os
import re
import subprocess
import threading
import time

import pytest

import loadgen
from conftest import RELIABILITY
from ha_helpers import (DOMAIN, ENTRANCE, GROUPS, HOSTS, INVENTORY, PLAYBOOK, ROOT, SSH_CONFIG, VIP,
                        allowed_addresses, container, vip_holders,
                        current_master, fpm_service, kill_export_tar, playbook, redis_role, servers_state, sudo,
                        wait_ssh, web_tier_ready, workload_urls)
from pg_helpers import (DB_NAME, ETCD, NFT_TABLE, POSTGRES, LeaderWatch, bouncer_sql, cut_off, data_directory,
                        dynamic_config, ensure_probe_table, etcd, etcd_healthy, heal, healthy, leader, leaders,
                        local_writer_results, set_synchronous_mode, sql, start_local_writer, switchover,
                        system_identifier, timeline, wait_for, writer_overlaps)

pytestmark = [pytest.mark.disruptive, pytest.mark.reliability]

LB = (GROUPS.get("haproxy") or [None])[0]
WEB = GROUPS.get("webservers", [])
REDIS = GROUPS.get("redis", [])
# Requests per second of the load; CI runs the reduced one (2 cores shared with the whole lab).
RATE = {"full": 60, "reduced": 25}[os.environ.get("NCHA_RELIABILITY_LOAD", "full")]
ABSORB = "no failed request, no data lost"
KEEP_DATA = "no committed data lost"


class Load:
    """The load in a background thread for as long as the `with` block runs (bounded by loadgen's limits)."""

    def __init__(self, rate=RATE):
        self.rate = rate
        self.stop = threading.Event()
        self.run = None
        self.t0 = None

    def __enter__(self):
        def body():
            self.run = loadgen.run(workload_urls("https://%s" % ENTRANCE), rate=self.rate, duration=0,
                                   allowed=allowed_addresses(), host_header=DOMAIN, threads=12, until=self.stop)
        self.thread = threading.Thread(target=body, daemon=True)
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def seconds(self):
        return time.monotonic() - self.t0

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(loadgen.MAX_DURATION + 120)
        return False


def data_dir(web):
    return sudo(web, "php -r 'include \"/var/www/nextcloud/config/config.php\"; echo $CONFIG[\"datadirectory\"];'"
                ).stdout.strip()


def data_lost(run, primary=None):
    """Keys the probe confirmed during `run` whose row (on the primary) or file (on the node that wrote it) is
    missing now; the files are removed afterwards."""
    written = run.written()
    prefix = "lt-%s-" % run.run_id
    rows = set(sql(primary or leader(), "SELECT probe_key FROM oc_standin_probe WHERE probe_key LIKE '%s%%'" % prefix,
                   db=DB_NAME).split())
    files = set()
    # Every node is listed before any file is removed: on shared storage (GlusterFS) the nodes see the same folder,
    # and a removal on the first node would hide the files the second one wrote.
    for web in WEB:
        folder = data_dir(web) + "/probe"
        files |= {(web, name) for name in sudo(web, "ls %s | grep '^%s' || true" % (folder, prefix)).stdout.split()}
    for web in WEB:
        sudo(web, "find %s -maxdepth 1 -name '%s*' -type f -delete" % (data_dir(web) + "/probe", prefix), check=False)
    return sorted(k for k, node in written.items() if k not in rows or (node, k) not in files)


def seconds_without_writes(run):
    """The longest time between two successful writes of the load (their answers), from the load's start to its
    end: a fault that makes writes wait (a connection queued in the local proxy until a leader is there) rather
    than fail shows here, not in the failed requests."""
    done = sorted(r.start + r.latency for r in run.results if r.ok and r.key)
    edges = [0.0] + done + [run.duration]
    return round(max(b - a for a, b in zip(edges, edges[1:])), 2)


def record(fault, load, lost, recovery, promise):
    figures = load.run.summary()
    row = {"fault": fault, "requests": figures["requests"], "failed": figures["failed"],
           "disruption_s": figures["failure_window_s"], "no_write_s": seconds_without_writes(load.run),
           "data_lost": len(lost), "recovery": recovery, "promise": promise, "errors": figures["errors"]}
    RELIABILITY.append(row)
    return row


def judge(row, lost):
    assert row["requests"] > 0, row
    assert not lost, "%s: data written before the fault is missing: %s" % (row["fault"], lost[:10])
    if row["promise"] == ABSORB:
        assert row["failed"] == 0, row


def back_in_rotation(web, timeout=180):
    """HAProxy lists `web` UP again by itself (health checks) within `timeout` seconds."""
    return wait_for(lambda: servers_state(LB).get(web, (0, 0))[0] == 2, timeout, interval=1)


@pytest.fixture(scope="module", autouse=True)
def cluster_ready():
    if not LB or not WEB:
        pytest.skip("no load balancer or web nodes in the lab's inventory")
    if not web_tier_ready(LB):
        pytest.fail("the load balancer does not answer the probe: deploy the lab (make lab)")


def test_1_web_node_container_stopped_and_started():
    web = WEB[-1]
    try:
        with Load() as load:
            time.sleep(4)
            container("stop", web)
            time.sleep(8)
            container("start", web)
            wait_ssh(web)
            returned = back_in_rotation(web)
            time.sleep(3)
    finally:
        container("start", web)
    lost = data_lost(load.run)
    row = record("web node container %s stopped, started" % web, load, lost,
                 "self (HAProxy health checks)" if returned else "not back in rotation", ABSORB)
    judge(row, lost)
    assert returned, "%s did not return to the rotation" % web


def test_2_php_fpm_killed_on_one_node():
    web = WEB[0]
    fpm = fpm_service(web)
    with Load() as load:
        time.sleep(4)
        sudo(web, "systemctl kill --signal=SIGKILL %s" % fpm)
        # systemd restarts it (the webserver role's Restart=on-failure drop-in); nobody else does here.
        restarted = wait_for(lambda: sudo(web, "systemctl is-active %s" % fpm, check=False).stdout.strip()
                             == "active", 60, interval=1)
        returned = back_in_rotation(web, 60)
        time.sleep(3)
    if not restarted:
        sudo(web, "systemctl start %s" % fpm)
    lost = data_lost(load.run)
    row = record("PHP-FPM killed on %s" % web, load, lost,
                 "self (systemd restart, HAProxy checks)" if restarted and returned else "needed systemctl start",
                 ABSORB)
    judge(row, lost)
    assert restarted and returned, "PHP-FPM on %s did not come back by itself" % web


def test_3_redis_master_stopped_for_30_s():
    if len(REDIS) < 2:
        pytest.skip("one Redis host: Redis is a single point of failure in this inventory (docs/redis.md)")
    masters = current_master(REDIS)
    assert len(masters) == 1, masters
    old = masters[0]
    try:
        with Load() as load:
            time.sleep(4)
            container("stop", old)
            time.sleep(30)
            container("start", old)
            wait_ssh(old)
            rejoined = wait_for(lambda: redis_role(old) == "slave", 90, interval=1)
            time.sleep(3)
    finally:
        container("start", old)
    lost = data_lost(load.run)
    row = record("Redis master %s stopped 30 s" % old, load, lost,
                 "self (Sentinel; old master rejoined as replica)" if rejoined else "old master did not rejoin",
                 KEEP_DATA)
    judge(row, lost)
    assert rejoined, "%s did not rejoin as a replica" % old


# --- PostgreSQL on Patroni + etcd (issue #21) ----------------------------------------------------------------------
# Patroni elects the leader through etcd and the web nodes' local HAProxy routes PgBouncer to the member whose
# GET /primary answers 200: no playbook runs in these scenarios. The load's writes must be back within
# PG_OUTAGE_LIMIT_S seconds of the fault: both from the first to the last failed request and as the longest time
# between two successful writes (requests that wait for the new leader fail nothing but write nothing either). In
# synchronous mode no write the probe confirmed may be missing on the new leader.
PG_OUTAGE_LIMIT_S = 30.0
# Bounded waits: a stopped container boots, Patroni starts PostgreSQL, rewinds it and it streams again.
REJOIN_TIMEOUT_S = 180
NEW_LEADER_TIMEOUT_S = 60


@contextlib.contextmanager
def synchronous_mode():
    """Patroni's synchronous_mode on for the block (as production runs the zero-loss promise), then as it was."""
    before = set_synchronous_mode(True)
    try:
        yield
    finally:
        set_synchronous_mode(before)


def leader_state(host):
    """What proves a rejoin was no re-clone: the system identifier and the data directory's inode."""
    directory = data_directory(host)
    return {"system_identifier": system_identifier(host),
            "inode": sudo(host, "stat -c %%i %s" % directory).stdout.strip(), "data_directory": directory}


def patroni_log(host, since):
    return sudo(host, "journalctl -u patroni --no-pager -o cat --since @%d" % int(since), check=False).stdout


def patroni_events(host, since):
    """The lines of Patroni's own log (INFO, WARNING, ERROR) on `host` since `since`, without PostgreSQL's."""
    return [line for line in patroni_log(host, since).splitlines()
            if re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ (INFO|WARNING|ERROR): ", line)
            and "Exception happened" not in line]


def etcd_elections(since):
    """Raft elections on the etcd members since `since`: their `became candidate` lines (with pre-vote, a member
    that hears no leader is a pre-candidate first and becomes a candidate only if a quorum would vote for it)."""
    found = {}
    for host in ETCD:
        lines = [line for line in sudo(host, "journalctl -u etcd --no-pager -o cat --since @%d" % int(since),
                                       check=False).stdout.splitlines() if "became candidate" in line]
        if lines:
            found[host] = lines[-3:]
    return found


def rejoined_as_replica(host, token):
    """`host` is a replica that streams and has replayed the row `token` written after the failover."""
    res = sql(host, "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver), "
                    "(SELECT count(*) FROM ha_probe WHERE token = '%s')" % token, db=DB_NAME, check=False)
    return res.returncode == 0 and res.stdout.strip() == "t|streaming|1"


def check_rejoin(old, before, since, token):
    """The old leader, back on its own, follows the new one without a re-clone; returns (seconds, how)."""
    began = time.time()
    led_again = []

    def rejoined():
        if rejoined_as_replica(old, token):
            return True
        if leaders(timeout=1) == [old]:
            led_again.append(time.time() - began)
            return True
        return False
    ok = wait_for(rejoined, REJOIN_TIMEOUT_S, interval=2)
    took = round(time.time() - began, 1)
    log = patroni_log(old, since)
    assert not led_again, "%s leads again %.0f s after the heal (a second leader change, not a rejoin); its " \
        "Patroni log:\n%s\nthe others':\n%s" % (old, led_again[0], log[-2000:], "\n".join(
            "%s: %s" % (h, "\n".join(patroni_events(h, since)[-15:])) for h in POSTGRES if h != old))
    assert ok, "%s did not rejoin as a streaming replica with the new rows within %ss:\n%s" % (
        old, REJOIN_TIMEOUT_S, log[-3000:])
    after = leader_state(old)
    assert after["system_identifier"] == before["system_identifier"], (before, after)
    assert after["inode"] == before["inode"], "the data directory of %s was made anew (a re-clone): %s %s" % (
        old, before, after)
    assert "bootstrap from leader" not in log and "created using basebackup" not in log, log[-3000:]
    return took, "pg_rewind" if "pg_rewind" in log else "no rewind needed"


def attempt(check, *args):
    """check(*args), or the message of its AssertionError (so that the scenario's row is recorded first)."""
    try:
        return check(*args)
    except AssertionError as err:
        return str(err)


def rejoin_text(old, rejoin):
    if isinstance(rejoin, str):
        return "%s did NOT rejoin as a replica by itself" % old
    return "%s rejoined as replica in %.0f s (%s)" % (old, rejoin[0], rejoin[1])


def written_after(prefix):
    """A row through PgBouncer on a web node (the path Nextcloud takes), retried while routing settles."""
    ensure_probe_table(WEB[0])
    token = "%s-%d" % (prefix, int(time.time()))
    done = wait_for(lambda: bouncer_sql(WEB[0], "INSERT INTO ha_probe (token) VALUES ('%s') RETURNING token" % token,
                                        check=False).stdout.strip() == token, 30, interval=1)
    assert done, "no write through PgBouncer on %s after the fault" % WEB[0]
    return token


def restore_leader(host):
    """Leadership back to `host` (a planned switchover), so that the next scenario starts as the lab was made."""
    healthy(REJOIN_TIMEOUT_S)
    if leader() != host:
        switchover(host)
    healthy(REJOIN_TIMEOUT_S)


def judge_postgres(row, lost):
    judge(row, lost)
    outage = max(row["disruption_s"], row["no_write_s"])
    assert outage <= PG_OUTAGE_LIMIT_S, "%s: %.1f s without a successful write (failed from first to last: %.1f s), " \
        "more than %.0f s" % (row["fault"], row["no_write_s"], row["disruption_s"], PG_OUTAGE_LIMIT_S)


def new_leader(old):
    """The one member other than `old` whose GET /primary answers 200 now, else None."""
    found = leaders(timeout=1)
    return found[0] if len(found) == 1 and found[0] != old else None


def require_patroni():
    if len(POSTGRES) < 2:
        pytest.skip("one PostgreSQL host: no failover in this inventory")
    healthy(REJOIN_TIMEOUT_S)


def test_4_postgres_leader_stopped():
    """The leader's container is killed (no clean shutdown: Patroni cannot hand its lock over, it must expire)."""
    require_patroni()
    old = leader()
    before = leader_state(old)
    try:
        with synchronous_mode():
            with LeaderWatch() as watch:
                with Load() as load:
                    time.sleep(4)
                    stopped = time.time()
                    container("kill", old)
                    new = wait_for(lambda: new_leader(old), NEW_LEADER_TIMEOUT_S, interval=0.5)
                    elected = time.time()
                    time.sleep(8)
            lost = data_lost(load.run, primary=new or leader())
            promoted = watch.first_leading(new, after=stopped) or elected if new else None
            token = written_after("after-kill")
            container("start", old)
            wait_ssh(old)
            rejoin = attempt(check_rejoin, old, before, stopped, token)
        recovery = "self (Patroni): %s leads %.1f s after the kill; %s" % (
            new, promoted - stopped, rejoin_text(old, rejoin)) if new and promoted else "no new leader"
    finally:
        container("start", old)
    row = record("PostgreSQL leader %s container killed (synchronous mode)" % old, load, lost, recovery, KEEP_DATA)
    assert new, "no other member became the leader within %ss" % NEW_LEADER_TIMEOUT_S
    judge_postgres(row, lost)
    assert not isinstance(rejoin, str), rejoin
    restore_leader(old)


def test_5_postgres_leader_cut_off_from_the_network():
    """nftables drops everything between the leader and the other cluster hosts (the controller keeps its access).
    A writer on each database server itself (unix socket, synchronous_commit=local) shows when each one accepts
    writes: the old leader must stop before the new one starts."""
    require_patroni()
    old = leader()
    before = leader_state(old)
    peers = [h for h in HOSTS if h != old]
    prefix = "cut%d" % int(time.time())
    ensure_probe_table(WEB[0])
    writers = {}
    try:
        with synchronous_mode():
            with LeaderWatch() as watch:
                with Load() as load:
                    writers = {h: start_local_writer(h, "%s-%s" % (prefix, h), seconds=150) for h in POSTGRES}
                    time.sleep(4)
                    cut = cut_off(old, peers)
                    try:
                        new = wait_for(lambda: new_leader(old), NEW_LEADER_TIMEOUT_S, interval=0.5)
                        elected = time.time()
                        time.sleep(8)
                    finally:
                        for proc in writers.values():
                            proc.terminate()
                        results = {h: local_writer_results(p, timeout=30) for h, p in writers.items()}
                        healed = heal(old)
                        healed_at = time.time()
            lost = data_lost(load.run, primary=new or leader())
            assert healed.returncode == 0, "the nftables table %s is still on %s" % (NFT_TABLE, old)
            token = written_after("after-cut")
            rejoin = attempt(check_rejoin, old, before, cut, token)
    finally:
        for proc in writers.values():
            if proc.poll() is None:
                proc.kill()
        heal(old)
    successes = [s for ok, _ in results.values() for s in ok]
    overlaps = writer_overlaps(successes)
    last_old = max((t_after for h, _, _, t_after in successes if h == old), default=None)
    first_new = min((t_ins for h, _, t_ins, _ in successes if h == new), default=None)
    promoted = watch.first_leading(new, after=cut) or elected if new else None
    recovery = ("self (Patroni): %s stopped writing %.1f s after the cut, %s took writes %.1f s after it; %s" % (
        old, (last_old or cut) - cut, new, (first_new or promoted or cut) - cut, rejoin_text(old, rejoin))
        if new else "no new leader")
    row = record("PostgreSQL leader %s cut off from the network (synchronous mode)" % old, load, lost, recovery,
                 KEEP_DATA)
    row.update({"direct_writes": {h: len(ok) for h, (ok, _) in results.items()}, "overlaps": overlaps})
    assert new, "no other member became the leader within %ss" % NEW_LEADER_TIMEOUT_S
    assert first_new is not None, "the direct writer on %s never wrote after the cut: %s" % (new, results[new][1])
    assert not overlaps, "two servers accepted writes at the same moment: %s" % overlaps
    judge_postgres(row, lost)
    assert not isinstance(rejoin, str), rejoin
    elections = etcd_elections(healed_at - 1)
    assert not elections, "the cut-off member's return forced an etcd election (pre-vote off?): %s" % elections
    restore_leader(old)


def etcd_victims(count):
    """`count` etcd members to stop, the one on the leader's host first (its Patroni must use another member)."""
    lead = leader()
    return sorted(ETCD, key=lambda h: (h != lead, ETCD.index(h)))[:count]


def test_6_one_etcd_member_stopped():
    require_patroni()
    if len(ETCD) < 3:
        pytest.skip("fewer than three etcd members")
    lead, tl = leader(), timeline()
    (victim,) = etcd_victims(1)
    try:
        with LeaderWatch() as watch:
            with Load() as load:
                time.sleep(4)
                began = time.time()
                etcd(victim, "stop")
                # Longer than the leader lock's ttl: a lock that could not be renewed would have expired.
                time.sleep(max(20, int(dynamic_config().get("ttl", 30)) + 5))
                etcd(victim, "start")
                time.sleep(3)
    finally:
        etcd(victim, "start")
    assert etcd_healthy(60), "etcd is not healthy again within 60 s"
    lost = data_lost(load.run, primary=leader())
    seen = watch.leaders_seen(after=began)
    row = record("etcd member %s stopped (of %d)" % (victim, len(ETCD)), load, lost,
                 "none needed (quorum kept; leader %s throughout)" % lead if seen == [lead]
                 else "leaders seen: %s" % seen, ABSORB)
    judge(row, lost)
    assert seen == [lead] and leader() == lead and timeline() == tl, "the leader changed: %s" % seen


def test_7_two_etcd_members_stopped():
    """etcd loses its quorum. With failsafe_mode Patroni keeps the leader while it reaches every other member;
    what happened (writes failed or not, leader changed or not) is recorded; nothing may be lost."""
    require_patroni()
    if len(ETCD) < 3:
        pytest.skip("fewer than three etcd members")
    failsafe = bool(dynamic_config().get("failsafe_mode", False))
    lead, tl = leader(), timeline()
    victims = etcd_victims(2)
    try:
        with LeaderWatch() as watch:
            with Load() as load:
                time.sleep(4)
                began = time.time()
                for host in victims:
                    etcd(host, "stop")
                time.sleep(max(30, 2 * int(dynamic_config(hosts=[lead]).get("ttl", 30))))
                in_quorum_loss = leaders(timeout=1)
                for host in victims:
                    etcd(host, "start")
                assert etcd_healthy(90), "etcd is not healthy again within 90 s"
                time.sleep(5)
    finally:
        for host in victims:
            etcd(host, "start")
    lost = data_lost(load.run, primary=leader())
    seen = watch.leaders_seen(after=began)
    figures = load.run.summary()
    row = record("etcd members %s stopped (quorum lost, failsafe_mode %s)" % (", ".join(victims),
                                                                              "on" if failsafe else "off"),
                 load, lost, "self (etcd restarted): leader during the loss %s, leaders seen %s, %s" % (
                     in_quorum_loss or "none", seen,
                     "writes kept working" if not figures["failed"] else "%d requests failed" % figures["failed"]),
                 KEEP_DATA)
    judge(row, lost)
    healthy(REJOIN_TIMEOUT_S)
    if failsafe:
        assert in_quorum_loss == [lead] and seen == [lead] and timeline() == tl, (
            "failsafe_mode is on but the leader did not stay: %s %s" % (in_quorum_loss, seen))


def pending_heals():
    """Entries waiting for self-heal on every brick of the volume, or None while a brick does not answer."""
    out = sudo(WEB[0], "gluster volume heal nextcloud info summary", check=False).stdout
    counts = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Total Number of entries:" in line]
    if len(counts) < len(WEB) or not all(c.isdigit() for c in counts):
        return None
    return sum(int(c) for c in counts)


def test_8_glusterfs_peer_stopped():
    res = sudo(WEB[0], "findmnt -n -o FSTYPE --target \"$(php -r 'include \"/var/www/nextcloud/config/config.php\";"
                       " echo $CONFIG[\"datadirectory\"];')\"", check=False)
    if "fuse.glusterfs" not in res.stdout:
        pytest.skip("the lab's data directory is not on GlusterFS (NCHA_STORAGE=glusterfs python -m lab up)")
    peer = WEB[-1]
    try:
        with Load() as load:
            time.sleep(4)
            # The peer's brick and management daemons stop; its FUSE client (and web node) keep running.
            sudo(peer, "systemctl stop glusterd; pkill -KILL glusterfsd; true")
            time.sleep(12)
            sudo(peer, "systemctl start glusterd")
            time.sleep(3)
    finally:
        sudo(peer, "systemctl start glusterd", check=False)
    healed = wait_for(lambda: pending_heals() == 0, 180, interval=3)
    lost = data_lost(load.run)
    row = record("GlusterFS peer %s stopped" % peer, load, lost,
                 "self (self-heal)" if healed else "heal pending", ABSORB)
    judge(row, lost)
    assert healed, "self-heal did not finish within 180 s"


def sync_playbook():
    """playbooks/sync.yml as a process (the lab's known_hosts pins the hosts' keys, see test_sync.py)."""
    args = [PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", "sync.yml"),
            "-e", "ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'"
            % os.path.join(os.path.dirname(INVENTORY), "known_hosts")]
    return subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def tree_of(web):
    """A digest of the codebase's files (name, size, mtime in whole seconds as tar keeps it, mode, owner)."""
    return sudo(web, "cd /var/www/nextcloud/ && find . -path ./data -prune -o -path ./config/node.config.php -prune"
                     " -o -type f -printf '%P %s %Ts %m %U\\n' | sort | sha256sum").stdout.split()[0]


def test_9_codebase_sync_killed_half_way_then_run_again():
    master, node = WEB[0], WEB[-1]
    if master == node:
        pytest.skip("one web node: nothing to sync")
    folder = "/var/www/nextcloud/apps/reliability%d" % os.getpid()
    # A large new app, so that the stream lasts long enough to be cut.
    sudo(master, "mkdir -p %s && head -c 150000000 /dev/urandom > %s/big.js && chown -R www-data:www-data %s"
         % (folder, folder, folder), timeout=300)
    before = tree_of(node)
    killed = False
    try:
        with Load() as load:
            time.sleep(3)
            proc = sync_playbook()
            killed = kill_export_tar(master, 40000000, timeout=300) is not None    # 40 of the 150 MB read
            first, _ = proc.communicate(timeout=600)
            kept_old_tree = tree_of(node) == before
            again = sync_playbook()
            second, _ = again.communicate(timeout=900)
            time.sleep(3)
        assert killed, "the transfer ended before it could be killed:\n" + first[-3000:]
        assert proc.returncode != 0, "the killed sync reported success:\n" + first[-3000:]
        assert kept_old_tree, "%s's tree changed after the killed sync" % node
        assert again.returncode == 0, second[-4000:]
        assert tree_of(node) == tree_of(master)
    finally:
        sudo(master, "rm -rf %s" % folder)
        sync_playbook().communicate(timeout=900)
    lost = data_lost(load.run)
    row = record("codebase sync to %s killed half way, run again" % node, load, lost,
                 "playbook (sync.yml again)", ABSORB)
    judge(row, lost)


def haproxy_workers(lb):
    return sudo(lb, "pgrep -f '^/usr/sbin/haproxy' | sort").stdout.split()


def test_10_haproxy_reloaded_with_a_config_change_during_load():
    """haproxy.yml with a changed check, then as it was: every load balancer reloads (one at a time), twice."""
    lbs = GROUPS.get("haproxy", [])
    before = {lb: haproxy_workers(lb) for lb in lbs}
    with Load() as load:
        time.sleep(3)
        changed = playbook("haproxy.yml", extra=["-e", "haproxy_check_rise=3"])
        middle = {lb: haproxy_workers(lb) for lb in lbs}
        restored = playbook("haproxy.yml")
        time.sleep(3)
    assert changed.returncode == 0 and restored.returncode == 0, (changed.stdout[-3000:], restored.stdout[-3000:])
    for lb in lbs:
        assert "rise 3" not in sudo(lb, "cat /etc/haproxy/haproxy.cfg").stdout, lb
        assert set(middle[lb]) != set(before[lb]), "the config change did not reload HAProxy on %s" % lb
    lost = data_lost(load.run)
    row = record("HAProxy on %s reloaded twice with a config change" % ", ".join(lbs), load, lost,
                 "self (hitless reload)", ABSORB)
    judge(row, lost)


# ---- the load balancer pair (issue #22): the floating address moves when its holder fails

LB_WINDOW_S = 3.0  # the longest failure window allowed when the address moves


def require_pair():
    """(holder, other): the load balancer holding the floating address and another one."""
    lbs = GROUPS.get("haproxy", [])
    if len(lbs) < 2 or not VIP:
        pytest.skip("one load balancer, no floating address in this inventory")
    holders = vip_holders()
    assert len(holders) == 1, "the floating address is on %s" % holders
    return holders[0], next(lb for lb in lbs if lb != holders[0])


def watch_address(host, timeout=60):
    """Start watching, on `host` itself every 50 ms, for the floating address; arrival(proc) gives the time."""
    script = ("for i in $(seq %d); do ip -4 -o addr show | grep -qF ' %s/' && { date +%%s.%%N; exit 0; }; "
              "sleep 0.05; done; exit 1" % (timeout * 20, VIP))
    return subprocess.Popen(["ssh", "-F", SSH_CONFIG, host, script], stdout=subprocess.PIPE, text=True)


def arrival(proc, timeout=90):
    out, _ = proc.communicate(timeout=timeout)
    return float(out.split()[-1]) if proc.returncode == 0 and out.split() else None


def failures_since(load, since):
    """Failed requests of the load that started `since` (time.time()) or later."""
    offset = since - (time.time() - load.seconds())
    return [r for r in (load.run.results if load.run else []) if not r.ok and r.start >= offset - 0.2]


def lb_ready(lb):
    return (sudo(lb, "systemctl is-active keepalived haproxy", check=False).stdout.split() == ["active", "active"]
            and web_tier_ready(lb))


def judge_lb(row, lost):
    judge(row, lost)
    assert row["disruption_s"] <= LB_WINDOW_S, "%s: requests failed over %.1f s, more than %.0f s" % (
        row["fault"], row["disruption_s"], LB_WINDOW_S)


def test_11_load_balancer_container_stopped():
    """The holder's container stops (its keepalived says goodbye or goes silent): the other takes the address. Then
    it starts again: does the address move back, and at what cost (nopreempt: it stays)."""
    holder, other = require_pair()
    with Load() as load:
        time.sleep(4)
        watcher = watch_address(other)
        stopped = time.time()
        container("stop", holder)
        moved = arrival(watcher)
        time.sleep(6)
        container("start", holder)
        wait_ssh(holder)
        restarted = time.time()
        ready = wait_for(lambda: lb_ready(holder), 120, interval=2)
        time.sleep(10)
        holders = vip_holders()
    lost = data_lost(load.run)
    later = failures_since(load, restarted)
    moved_s = (moved - stopped) if moved else None
    recovery = ("self (keepalived): the address on %s %s after the stop; %s back: address %s, %d failed after" % (
        other, "%.1f s" % moved_s if moved_s is not None else "NEVER", holder,
        "moved back to it" if holders == [holder] else "stayed on %s" % ", ".join(holders), len(later)))
    row = record("load balancer %s container stopped, started" % holder, load, lost, recovery, KEEP_DATA)
    assert moved, "the floating address never reached %s" % other
    assert ready, "%s did not come back (keepalived, HAProxy)" % holder
    assert len(holders) == 1, "the floating address is on %s" % holders
    assert not later, "the return of %s cost %d failed requests: %s" % (holder, len(later), later[:3])
    judge_lb(row, lost)


def test_12_haproxy_killed_on_the_address_holder():
    """HAProxy dies on the holder, whose host lives on (kept dead: no systemd restart): keepalived's check fails,
    the address moves to the other load balancer."""
    holder, other = require_pair()
    dropin = "/run/systemd/system/haproxy.service.d/ncha-test-no-restart.conf"
    try:
        with Load() as load:
            time.sleep(4)
            sudo(holder, "mkdir -p %s && printf '[Service]\\nRestart=no\\n' > %s && systemctl daemon-reload"
                 % (os.path.dirname(dropin), dropin))
            watcher = watch_address(other)
            killed = time.time()
            sudo(holder, "systemctl kill --signal=SIGKILL haproxy")
            moved = arrival(watcher)
            time.sleep(8)
            holders = vip_holders()
    finally:
        sudo(holder, "rm -f %s; systemctl daemon-reload; systemctl reset-failed haproxy; systemctl start haproxy"
             % dropin, check=False)
    lost = data_lost(load.run)
    moved_s = (moved - killed) if moved else None
    row = record("HAProxy killed on load balancer %s (host alive)" % holder, load, lost,
                 "self (keepalived check): the address on %s %s after the kill" % (
                     other, "%.1f s" % moved_s if moved_s is not None else "NEVER"), KEEP_DATA)
    assert moved, "the floating address never reached %s" % other
    assert holders == [other], "the floating address is on %s" % holders
    assert wait_for(lambda: lb_ready(holder), 60, interval=2), "HAProxy on %s did not start again" % holder
    judge_lb(row, lost)
