"""The web nodes' local proxy (role local_proxy, issue #21): PgBouncer reaches the current Patroni leader through it.

On every web node the HAProxy instance nextcloud-ha-local-proxy listens on loopback; its `postgres` listener lists
every Patroni member and keeps in rotation only the one whose GET /primary answers 200. Who leads is asked of
Patroni (REST API and patronictl), never of the inventory groups. The Redis listener's tests are in test_redis.py.

Needs the lab deployed with site.yml (Patroni, PgBouncer, the local proxy). The restart, reload and switchover tests
are marked disruptive (they cut the proxy's sessions or move the leader) and leave one healthy leader behind.
"""
import shlex

import pytest

from ha_helpers import PROXY_SOCKET, servers_state, sudo
from pg_helpers import (DB_NAME, DB_PASSWORD, DB_USER, LAB_VARS, POSTGRES, WEBSERVERS, address, bouncer_sql,
                        healthy, leader, leaders, patronictl_list, run_ssh, sql, switchover, wait_for)

SERVICE = "nextcloud-ha-local-proxy"
CONFIG = "/etc/haproxy/nextcloud-ha-local-proxy.cfg"
PORT = int(LAB_VARS.get("nextcloud_ha_local_proxy_postgres_port", 5433))
UP = 2  # srv_op_state of `show servers state`: 2 = running

pytestmark = pytest.mark.skipif(not POSTGRES or not WEBSERVERS, reason="no postgres or web hosts in the inventory")


@pytest.fixture(scope="module")
def lead():
    """The leader, as Patroni's REST API and patronictl both name it (they must agree)."""
    rest_leader = leader()
    listed = [m["Member"] for m in patronictl_list() if m.get("Role") == "Leader"]
    assert listed == [rest_leader], "patronictl names %s, GET /primary answers 200 on %s" % (listed, rest_leader)
    return rest_leader


def up_servers(web):
    return sorted(name for name, (op, _admin) in servers_state(web, backend="postgres", socket=PROXY_SOCKET).items()
                  if op == UP)


def proxy_follows(leader_host):
    """Every web node's postgres listener has exactly `leader_host` up."""
    return all(up_servers(web) == [leader_host] for web in WEBSERVERS)


def workers(web):
    """The number of worker processes of the local proxy (more than one while old ones finish after a reload)."""
    main = sudo(web, "systemctl show -p MainPID --value %s" % SERVICE).stdout.strip()
    return len(sudo(web, "pgrep -P %s haproxy || true" % main).stdout.split())


def single_worker(web):
    """Wait until no old worker from an earlier reload is left (they would hold sessions no check governs)."""
    assert wait_for(lambda: workers(web) == 1, 45, interval=1), "old workers of %s still run" % SERVICE


def direct_sql(web, query, check=True):
    """SQL as the Nextcloud role straight through the local proxy (127.0.0.1:PORT), bypassing PgBouncer."""
    return bouncer_sql(web, query, check=check, port=PORT)


def burst(web, seconds, after=""):
    """On `web`: run `after` (a shell command), then connect through the proxy as often as possible for `seconds`;
    returns the answers of `SELECT pg_is_in_recovery(), inet_server_addr()`, one per attempt ('' for a refused one)."""
    script = ("%s\nend=$(( $(date +%%s%%N) + %d000000000 ))\n"
              "while [ $(date +%%s%%N) -lt $end ]; do\n"
              "  r=$(PGPASSWORD=%s PGCONNECT_TIMEOUT=2 timeout 5 psql -XAtq -h 127.0.0.1 -p %d -U %s -d %s "
              "-c 'SELECT pg_is_in_recovery(), host(inet_server_addr())' 2>/dev/null)\n"
              "  echo \"=${r}\"\ndone\n" % (after, seconds, shlex.quote(DB_PASSWORD), PORT, DB_USER, DB_NAME))
    res = sudo(web, script, timeout=seconds + 60)
    return [line[1:] for line in res.stdout.splitlines() if line.startswith("=")]


@pytest.mark.parametrize("web", WEBSERVERS)
def test_local_proxy_runs_and_listens_on_loopback_only(lab_host, web):
    host = lab_host(web)
    assert host.service(SERVICE).is_running and host.service(SERVICE).is_enabled
    assert host.run("haproxy -c -q -f %s" % CONFIG).rc == 0
    listening = host.check_output("ss -Htlnp 'sport = :%d'" % PORT)
    assert [line.split()[3] for line in listening.splitlines()] == ["127.0.0.1:%d" % PORT], listening
    # The Redis-only proxy of earlier releases is gone (the role removes it on upgrade).
    assert not host.file("/etc/systemd/system/nextcloud-ha-redis-proxy.service").exists
    assert not host.file("/etc/haproxy/nextcloud-ha-redis-proxy.cfg").exists


@pytest.mark.parametrize("web", WEBSERVERS)
def test_postgres_listener_lists_every_member_and_has_only_the_leader_up(web, lead):
    states = servers_state(web, backend="postgres", socket=PROXY_SOCKET)
    assert set(states) == set(POSTGRES), states
    assert up_servers(web) == [lead], states


@pytest.mark.parametrize("web", WEBSERVERS)
def test_pgbouncer_forwards_to_the_local_proxy(lab_host, web):
    ini = lab_host(web).file("/etc/pgbouncer/pgbouncer.ini").content_string
    entries = [line.split("=", 1)[1].split() for line in ini.splitlines() if line.startswith(DB_NAME + " =")]
    assert entries == [["host=127.0.0.1", "port=%d" % PORT, "dbname=%s" % DB_NAME]], entries


@pytest.mark.parametrize("web", WEBSERVERS)
def test_queries_through_pgbouncer_and_the_proxy_land_on_the_leader(web, lead):
    expected = "f|%s" % address(lead)
    assert bouncer_sql(web, "SELECT pg_is_in_recovery(), host(inet_server_addr())") == expected
    assert direct_sql(web, "SELECT pg_is_in_recovery(), host(inet_server_addr())") == expected


@pytest.mark.disruptive
def test_no_connection_reaches_a_replica_right_after_a_restart(lead):
    """HAProxy counts every server up until its first check: the listener must let nothing through to a replica."""
    web = WEBSERVERS[0]
    answers = burst(web, 4, after="systemctl restart %s" % SERVICE)
    assert answers, "no connection attempt was made"
    wrong = [a for a in answers if a and a != "f|%s" % address(lead)]
    assert wrong == [], "connections after the restart reached another member: %s" % wrong
    assert answers[-1] == "f|%s" % address(lead), answers[-5:]


HELD = "ncha-test-held-session"
HELD_OUT = "/run/ncha-test-held-session.out"
CHECK_BLOCK = "ncha_test_check_block"


def hold_session(web):
    """A session through PgBouncer (and so through the proxy) that asks every half second which backend, server and
    role answer it (lines `pid|address|in recovery`), into HELD_OUT. Returns the first answer (pid, address)."""
    psql = "PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p 6432 -U %s -d %s" % (shlex.quote(DB_PASSWORD), DB_USER, DB_NAME)
    query = "SELECT pg_backend_pid(), host(inet_server_addr()), pg_is_in_recovery();"
    # (`|| exit`: a systemd unit ignores SIGPIPE, so the loop must end by itself once psql is gone.)
    loop = "(while sleep 0.5; do echo %s || exit; done) | %s > %s 2>&1" % (shlex.quote(query), psql, HELD_OUT)
    release_session(web)
    sudo(web, "systemd-run --quiet --unit %s --collect -p RuntimeMaxSec=120 bash -c %s" % (HELD, shlex.quote(loop)))
    first = wait_for(lambda: held_answers(web)[:1], 10)
    assert first, "the held session answers nothing: %s" % held_output(web)
    return first[0][0], first[0][1]


def held_output(web):
    return sudo(web, "cat %s 2>/dev/null" % HELD_OUT, check=False).stdout.splitlines()


def held_answers(web):
    """[(pid, address, in recovery)] the held session got so far."""
    return [tuple(line.split("|")) for line in held_output(web) if line.count("|") == 2]


def release_session(web):
    sudo(web, "systemctl stop %s 2>/dev/null; systemctl reset-failed %s 2>/dev/null; rm -f %s" % (HELD, HELD, HELD_OUT),
         check=False)


def backend_gone(host, pid):
    """True once PostgreSQL on `host` has no backend `pid` (its client connection was closed)."""
    res = sql(host, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s" % pid, check=False, timeout=10)
    return res.returncode == 0 and res.stdout.strip() == "0"


@pytest.mark.disruptive
def test_a_member_marked_down_loses_its_sessions_and_pgbouncer_comes_back(lead):
    """on-marked-down shutdown-sessions and PgBouncer's server_login_retry, on one web node: its checks of the
    leader's REST API are dropped (nftables, output to port 8008 of the leader only), so the proxy marks a healthy
    leader down; the leader's backend of the session held through PgBouncer must be gone within seconds (the proxy
    closed the connection), and once the checks pass again a new query through PgBouncer must reach the leader
    within seconds."""
    import time
    web = WEBSERVERS[0]
    if sudo(web, "command -v nft", check=False).returncode != 0:
        pytest.skip("no nft on %s" % web)
    ruleset = ("table inet %s {\n  chain output { type filter hook output priority -10; policy accept;"
               " ip daddr %s tcp dport 8008 drop; }\n}\n" % (CHECK_BLOCK, address(lead)))
    single_worker(web)
    pid, server = hold_session(web)
    assert server == address(lead)
    try:
        blocked = time.time()
        sudo(web, "systemd-run --quiet --unit=ncha-test-unblock --collect --on-active=120 "
                  "/usr/sbin/nft delete table inet %s; printf %%s %s | nft -f -" % (CHECK_BLOCK, shlex.quote(ruleset)))
        assert wait_for(lambda: backend_gone(lead, pid), 20, interval=0.2), \
            "the session to a member marked down is still open on it after 20 s"
        cut_after = time.time() - blocked
        assert up_servers(web) == []
        # Without a leader PgBouncer holds the query (query_wait_timeout) or fails it; it must not answer.
        assert run_ssh(web, "PGPASSWORD=%s timeout 5 psql -XAtq -h 127.0.0.1 -p 6432 -U %s -d %s -c 'SELECT 1'"
                       % (shlex.quote(DB_PASSWORD), DB_USER, DB_NAME), timeout=30).returncode != 0, \
            "a query was answered without a leader"
    except BaseException:
        release_session(web)
        raise
    finally:
        sudo(web, "systemctl stop ncha-test-unblock.timer 2>/dev/null; nft delete table inet %s 2>/dev/null; true"
             % CHECK_BLOCK, check=False)
    unblocked = time.time()
    try:
        back = wait_for(lambda: bouncer_sql(web, "SELECT pg_is_in_recovery(), host(inet_server_addr())",
                                            check=False, timeout=30).stdout.strip() == "f|%s" % address(lead),
                        20, interval=0.2)
        back_after = time.time() - unblocked
        answers = held_answers(web)
    finally:
        release_session(web)
    print("leader's backend gone %.1f s after its checks failed; PgBouncer reached the leader again %.1f s after they"
          " passed; the held session got %d answers, %d from another backend after the cut"
          % (cut_after, back_after, len(answers), len([a for a in answers if a[0] != pid])))
    assert back, "PgBouncer does not reach the leader 20 s after the checks pass again"
    assert cut_after < 8 and back_after < 6, (cut_after, back_after)
    assert all(a[1:] == (address(lead), "f") for a in answers), answers


@pytest.mark.disruptive
def test_switchover_moves_every_proxy_with_no_playbook(lead):
    """A planned switchover through Patroni: no playbook runs, every web node's proxy follows, the session held
    through PgBouncer never gets an answer from a replica, and new queries reach the new leader. Switched back at
    the end."""
    candidates = sorted(h for h in POSTGRES if h != lead)
    if not candidates:
        pytest.skip("a single member cannot switch over")
    healthy()
    web = WEBSERVERS[0]
    single_worker(web)
    pid, server = hold_session(web)
    assert server == address(lead)
    try:
        switchover(candidates[0])
        assert leaders() == [candidates[0]]
        assert wait_for(lambda: proxy_follows(candidates[0]), 15), {w: up_servers(w) for w in WEBSERVERS}
        for w in WEBSERVERS:
            assert wait_for(lambda: bouncer_sql(w, "SELECT pg_is_in_recovery(), host(inet_server_addr())",
                                                check=False).stdout.strip() == "f|%s" % address(candidates[0]),
                            15), w
        answers = held_answers(web)
        assert [a for a in answers if a[2] != "f"] == [], "the held session was answered by a replica: %s" % answers
    finally:
        release_session(web)
        healthy()
        if leaders() != [lead]:
            switchover(lead)
        healthy()
    assert wait_for(lambda: proxy_follows(lead), 15), {w: up_servers(w) for w in WEBSERVERS}


@pytest.mark.disruptive
def test_reload_keeps_the_leader_in_rotation_without_a_gap_and_ends_the_old_workers(lead):
    """A reload hands the servers' state to the new workers: every connection right after it reaches the leader.
    The old workers, which check no server any more, are gone within hard-stop-after (30 s) plus a margin."""
    web = WEBSERVERS[0]
    assert wait_for(lambda: up_servers(web) == [lead], 10), up_servers(web)
    answers = burst(web, 3, after="systemctl reload %s" % SERVICE)
    assert answers and all(a == "f|%s" % address(lead) for a in answers), answers
    assert up_servers(web) == [lead]
    assert wait_for(lambda: workers(web) == 1, 45, interval=1), "old workers still run 45 s after the reload"
