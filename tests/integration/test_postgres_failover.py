"""The operational playbooks on the Patroni cluster (issue #21): switchover.yml, failover.yml and reinit.yml.

Disruptive, in this order, in synchronous mode (Patroni's dynamic configuration, set back afterwards); every check is
on the servers: who leads as Patroni says it (GET /primary on every member), pg_is_in_recovery() on each member, the
rows themselves on the new leader and on the replica, the WAL receiver of the replica.

1. bad input is refused with a clear message and nothing changes (same leader, same timeline); check mode only checks;
   scale.yml refuses an inventory without the current leader;
2. switchover.yml to the replica while a writer commits rows through PgBouncer on a web node (the path Nextcloud
   uses: PgBouncer -> local HAProxy -> GET /primary): at most 5 s without a successful write, no committed row
   lost, the old leader streams from the new one, the timeline moved on;
3. failover.yml -e failover_target=<the first leader> under the same writer: it leads again, no committed row lost
   (synchronous mode), the other member streams from it;
4. reinit.yml of the replica: its data directory is rebuilt (a file planted in it is gone, PostgreSQL restarted), it
   streams from the leader again and holds the rows written before and after.
The cluster ends with the leader it started with and every member streaming. The figures are printed and written to
tests/output/postgres_failover.json.
"""
import json
import os
import re
import time

import pytest

from lab_paths import ROOT
from pg_helpers import (POSTGRES, WEBSERVERS, address, bouncer_sql, data_directory, ensure_probe_table, healthy,
                        inventory_edited, leader, leaders, longest_write_gap, missing_tokens, playbook, run_ssh, set_synchronous_mode,
                        sql, start_writer, sync_standbys, system_identifier, timeline, wait_for, writer_results)

pytestmark = pytest.mark.disruptive

MAX_SWITCHOVER_GAP = 5.0
FIGURES = {}
STATE = {}


def flat(output):
    """Ansible's output with every run of white space made one space (debug messages are wrapped)."""
    return re.sub(r"\s+", " ", output)


def replica_of(lead):
    others = [h for h in POSTGRES if h != lead]
    assert others, "the lab needs two PostgreSQL hosts"
    return others[0]


def receiver(host):
    """'<status>|<sender address>' of the host's WAL receiver ('' when it has none)."""
    return sql(host, "SELECT status || '|' || sender_host FROM pg_stat_wal_receiver")


def count_rows(host, prefix):
    return int(sql(host, "SELECT count(*) FROM ha_probe WHERE token LIKE '%s-%%'" % prefix, db="nextcloud"))


def writes_around(name, run, seconds_after=8):
    """Run `run()` (a playbook) while a writer commits one row per transaction through PgBouncer on a web node;
    the writer stops `seconds_after` seconds after the playbook. Returns (playbook result, figures, committed)."""
    ensure_probe_table()
    prefix = "%s-%d" % (name, os.getpid())
    lead = leader()
    writer = start_writer(WEBSERVERS[0], prefix, seconds=300)
    try:
        assert wait_for(lambda: count_rows(lead, prefix) >= 20, timeout=60), "the writer wrote nothing before the run"
        started = time.time()
        res = run()
        finished = time.time()
        time.sleep(seconds_after)
    finally:
        writer.terminate()  # the remote loop ends at its next line (bounded by its 300 s anyway)
    committed, events = writer_results(writer, timeout=60)
    during = [(at, ok) for at, ok in events if started - 1 <= at <= finished + seconds_after]
    figures = {
        "playbook_s": round(finished - started, 1),
        "longest_write_gap_s": round(longest_write_gap(events), 2),
        "writes_during": len(during),
        "failed_writes": sum(1 for _, ok in events if not ok),
        "committed_rows": len(committed),
    }
    assert events and events[-1][0] > finished, "the writer stopped before the playbook ended: %s" % figures
    assert any(ok for at, ok in events if at > finished), "no successful write after the playbook: %s" % figures
    return res, figures, committed


def reported_seconds(output, pattern):
    found = re.search(pattern, flat(output))
    return float(found.group(1)) if found else None


def save_figures():
    if not FIGURES:  # a run of the refusals only keeps the last figures
        return
    os.makedirs(os.path.join(ROOT, "tests", "output"), exist_ok=True)
    with open(os.path.join(ROOT, "tests", "output", "postgres_failover.json"), "w") as f:
        json.dump(FIGURES, f, indent=2, sort_keys=True)


@pytest.fixture(scope="module", autouse=True)
def synchronous_cluster():
    """Synchronous mode for the module (every commit on a replica before it is acknowledged), set back afterwards."""
    healthy()
    STATE["first_leader"] = leader()
    before = set_synchronous_mode(True)
    yield
    set_synchronous_mode(before)
    healthy()
    save_figures()
    print("\nOperational playbooks on Patroni (lab %s):" % os.environ.get("LAB_NAME", "nchalab"))
    for step, figures in FIGURES.items():
        print("  %-11s %s" % (step, ", ".join("%s=%s" % kv for kv in sorted(figures.items()))))


def test_bad_input_is_refused_and_nothing_changes():
    lead, tl = leader(), timeline()
    other = replica_of(lead)
    cases = [
        ("switchover.yml", ["-e", "switchover_target=%s" % WEBSERVERS[0]], "is not a member of the cluster"),
        ("switchover.yml", ["-e", "switchover_target=%s" % lead], "leads already"),
        ("failover.yml", [], "failover_target is required"),
        ("failover.yml", ["-e", "failover_target=%s" % lead], "leads already"),
        ("reinit.yml", ["-e", "reinit_member=%s" % lead], "is the leader"),
        ("reinit.yml", ["-e", "reinit_member=nosuchhost"], "is not a member of the cluster"),
    ]
    for name, extra, message in cases:
        res = playbook(name, *extra)
        out = flat(res.stdout)
        assert res.returncode != 0, (name, extra, res.stdout[-2000:])
        assert "REFUSED:" in out and message in out and "Nothing was changed" in out, (name, extra, res.stdout[-2000:])
        assert "patronictl switchover" not in out and "Switched over" not in out
    # Check mode says what it would do and does nothing.
    res = playbook("switchover.yml", "--check", "-e", "switchover_target=%s" % other)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Check mode: would run patronictl switchover --leader %s --candidate %s" % (lead, other) in flat(res.stdout)
    assert leaders() == [lead] and timeline() == tl
    assert sql(lead, "SELECT pg_is_in_recovery()") == "f" and sql(other, "SELECT pg_is_in_recovery()") == "t"


def test_scale_refuses_an_inventory_without_the_leader():
    """site.yml's scale step asks Patroni who leads: removing that host from the inventory is refused first."""
    lead, tl = leader(), timeline()
    rest = [h for h in POSTGRES if h != lead]
    inv = inventory_edited(groups={"postgres_primary": rest[:1], "postgres_standby": rest[1:]})
    res = playbook("scale.yml", inventory=inv)
    out = flat(res.stdout)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "REFUSED: %s leads the PostgreSQL cluster (Patroni) but is no longer in the postgres group" % lead in out
    assert "Nothing was changed" in out
    assert leaders() == [lead] and timeline() == tl


def test_switchover_under_writes_loses_no_row_and_stops_writes_at_most_5_s():
    lead = leader()
    target = replica_of(lead)
    tl = timeline()
    # In synchronous mode only the synchronous standby may take over (the playbook refuses another target).
    assert wait_for(lambda: sync_standbys() == [target], timeout=60), sync_standbys()
    res, figures, committed = writes_around(
        "switchover", lambda: playbook("switchover.yml", "-e", "switchover_target=%s" % target))
    out = flat(res.stdout)
    assert res.returncode == 0, res.stdout[-5000:]
    assert "Switched over from %s to %s" % (lead, target) in out, res.stdout[-3000:]
    # The cluster is printed before and after (Patroni's table and the readable lines).
    assert "Before the switchover (Patroni scope" in out and "After the switchover (Patroni scope" in out
    figures["reported_primary_s"] = reported_seconds(res.stdout, r"answered GET /primary within ([0-9.]+) s of")
    figures["reported_rejoin_s"] = reported_seconds(res.stdout, r"streamed again within ([0-9.]+) s")
    figures["rows_lost"] = len(missing_tokens(target, committed))
    FIGURES["switchover"] = figures
    print("switchover %s -> %s: %s" % (lead, target, figures))
    assert figures["rows_lost"] == 0, "committed rows lost in the switchover: %s" % figures
    assert figures["longest_write_gap_s"] <= MAX_SWITCHOVER_GAP, figures
    # Real state: the target leads and takes writes, the old leader is its streaming replica with every row.
    assert leaders() == [target]
    assert sql(target, "SELECT pg_is_in_recovery()") == "f"
    assert sql(lead, "SELECT pg_is_in_recovery()") == "t"
    assert timeline() > tl
    assert wait_for(lambda: receiver(lead) == "streaming|%s" % address(target), timeout=30), receiver(lead)
    token = bouncer_sql(WEBSERVERS[-1], "INSERT INTO ha_probe (token) VALUES ('after-switchover-%d') RETURNING token"
                        % os.getpid())
    assert wait_for(lambda: missing_tokens(lead, committed + [token]) == [], timeout=10, interval=0.5)


def test_failover_playbook_to_a_named_member_keeps_every_committed_row():
    lead = leader()
    target = STATE["first_leader"] if STATE["first_leader"] != lead else replica_of(lead)
    # With a running leader in synchronous mode Patroni hands over only to the synchronous standby.
    assert wait_for(lambda: sync_standbys() == [target], timeout=60), sync_standbys()
    res, figures, committed = writes_around(
        "failover", lambda: playbook("failover.yml", "-e", "failover_target=%s" % target))
    out = flat(res.stdout)
    assert res.returncode == 0, res.stdout[-5000:]
    assert "Failed over to %s" % target in out and "%s streams from %s as a replica" % (lead, target) in out, \
        res.stdout[-3000:]
    figures["reported_primary_s"] = reported_seconds(res.stdout, r"answered GET /primary within ([0-9.]+) s of")
    figures["rows_lost"] = len(missing_tokens(target, committed))
    FIGURES["failover"] = figures
    print("failover.yml %s -> %s: %s" % (lead, target, figures))
    assert figures["rows_lost"] == 0, "committed rows lost in synchronous mode: %s" % figures
    assert leaders() == [target]
    assert sql(target, "SELECT pg_is_in_recovery()") == "f"
    assert sql(lead, "SELECT pg_is_in_recovery()") == "t"
    assert wait_for(lambda: receiver(lead) == "streaming|%s" % address(target), timeout=30), receiver(lead)
    assert missing_tokens(lead, committed) == []


def test_reinit_rebuilds_the_replica_which_streams_again_with_every_row():
    lead = leader()
    member = replica_of(lead)
    datadir = data_directory(member)
    marker = "%s/reinit-test-%d" % (datadir, os.getpid())
    assert sql(member, "SELECT 1") == "1"
    assert run_ssh(member, "sudo -u postgres touch %s" % marker).returncode == 0
    started_before = sql(member, "SELECT pg_postmaster_start_time()")
    ensure_probe_table()
    before = bouncer_sql(WEBSERVERS[0], "INSERT INTO ha_probe (token) VALUES ('before-reinit-%d') RETURNING token"
                         % os.getpid())
    started = time.time()
    res = playbook("reinit.yml", "-e", "reinit_member=%s" % member)
    took = time.time() - started
    out = flat(res.stdout)
    assert res.returncode == 0, res.stdout[-5000:]
    assert "Rebuilt %s from %s" % (member, lead) in out, res.stdout[-3000:]
    FIGURES["reinit"] = {"playbook_s": round(took, 1), "reported_s": reported_seconds(res.stdout, r"Took ([0-9.]+) s")}
    print("reinit.yml of %s: %s" % (member, FIGURES["reinit"]))
    # The data directory was made again: the planted file is gone and PostgreSQL started anew.
    assert run_ssh(member, "sudo test -e %s" % marker).returncode == 1, "the data directory was not rebuilt"
    assert sql(member, "SELECT pg_postmaster_start_time()") != started_before
    assert system_identifier(member) == system_identifier(lead)
    # A replica again that streams from the leader, with the rows written before and after.
    assert leaders() == [lead]
    assert sql(member, "SELECT pg_is_in_recovery()") == "t"
    assert receiver(member) == "streaming|%s" % address(lead)
    after = bouncer_sql(WEBSERVERS[-1], "INSERT INTO ha_probe (token) VALUES ('after-reinit-%d') RETURNING token"
                        % os.getpid())
    assert wait_for(lambda: missing_tokens(member, [before, after]) == [], timeout=10, interval=0.5)
    assert wait_for(lambda: sql(member, "SELECT count(*) FROM ha_probe", db="nextcloud")
                    == sql(lead, "SELECT count(*) FROM ha_probe", db="nextcloud"), timeout=10, interval=0.5)
