"""Monitoring on the lab (issue #24): Prometheus scrapes every exporter of every tier, the web UIs ask for the
password and only the monitoring hosts reach the exporters; the pgBackRest host's backups are fresh and no backup
or WAL archive alert fires; a stopped web node, a moved Redis master and a stopped
PostgreSQL replica each make their alert fire in Alertmanager's API and resolve after the repair (seconds reported
in the summary table); Prometheus and the exporters come back by themselves after their hosts restart."""
import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

import ha_helpers as ha
import pg_helpers as pg
from conftest import require

MONITORING = ha.GROUPS.get("monitoring") or []
PASSWORD = ha.LAB_VARS.get("nextcloud_ha_monitoring_password", "")
RULES = os.path.join(ha.ROOT, "roles", "monitoring", "files", "rules")
# Every job and the inventory groups whose hosts it scrapes (the blackbox job probes the entrance's URL).
JOBS = {"node": None, "haproxy": ["haproxy"], "nextcloud": ["webservers"], "pgbouncer": ["webservers"],
        "redis": ["redis"], "postgres": ["postgres_primary", "postgres_standby"],
        "patroni": ["postgres_primary", "postgres_standby"], "prometheus": ["monitoring"],
        "alertmanager": ["monitoring"], "sentinel": None, "blackbox": None}
FIRE_WITHIN = 120


def _hosts_of(groups):
    return sorted({h for g in groups for h in ha.GROUPS.get(g) or []})


def _request(path, port=9090, password=PASSWORD, host=None, timeout=10):
    """GET from Prometheus (9090) or Alertmanager (9093) on the monitoring host, with basic auth; (status, body)."""
    request = urllib.request.Request("http://%s:%d%s" % (ha.HOSTS[host or MONITORING[0]], port, path))
    if password is not None:
        token = base64.b64encode(("admin:%s" % password).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _query(expr):
    status, body = _request("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def _targets():
    """{(job, instance): up} as Prometheus last scraped them."""
    return {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in _query("up")}


def _wait_all_up(timeout=150, since=None):
    """Every target up; with ``since``, each scraped up after that time (Prometheus writes no stale marker when its
    host stops: the samples from before would still read up=1 for five minutes)."""
    deadline = time.time() + timeout
    while True:
        targets = _targets()
        if since is not None:
            fresh = {(r["metric"]["job"], r["metric"]["instance"]) for r in _query("timestamp(up) > %f" % since)}
            targets = {k: (v if k in fresh else "not scraped since") for k, v in targets.items()}
        down = sorted(k for k, v in targets.items() if v != "1")
        if targets and not down:
            return targets
        if time.time() > deadline:
            raise AssertionError("targets not up after %ss: %s" % (timeout, down))
        time.sleep(3)


def _firing(alertname, host):
    """The alerts named ``alertname`` Alertmanager holds active now whose labels name ``host``."""
    status, body = _request("/api/v2/alerts?active=true&silenced=false&inhibited=false", port=9093)
    assert status == 200, body
    return [a for a in json.loads(body) if a["labels"].get("alertname") == alertname
            and host in (a["labels"].get("instance"), a["labels"].get("server"))]


def _wait_alert(alertname, host, since, firing=True, timeout=FIRE_WITHIN + 60):
    """Seconds from ``since`` (the fault or the repair) until the alert is firing (or resolved) in Alertmanager."""
    while time.time() - since < timeout:
        if bool(_firing(alertname, host)) == firing:
            return round(time.time() - since, 1)
        time.sleep(2)
    raise AssertionError("%s for %s not %s within %ss" % (alertname, host, "firing" if firing else "resolved",
                                                           timeout))


@pytest.fixture(scope="module", autouse=True)
def monitoring_lab(inventory):
    require(MONITORING, "the lab has no monitoring host (lab/topology.yml: mon1)")
    require(_request("/-/ready")[0] == 200, "Prometheus on %s does not answer: is the cluster deployed?" % MONITORING)


def test_every_target_of_every_tier_is_up_by_inventory_hostname():
    targets = _wait_all_up()
    jobs = {job for job, _ in targets}
    assert jobs >= set(JOBS), sorted(set(JOBS) - jobs)
    for job, groups in JOBS.items():
        if groups:
            assert sorted(i for j, i in targets if j == job) == _hosts_of(groups), job
    every = _hosts_of(["haproxy", "webservers", "redis", "postgres_primary", "postgres_standby", "etcd",
                       "monitoring", "backup"])
    assert sorted(i for j, i in targets if j == "node") == every
    # The probe of status.php through the entrance, and the certificate it saw.
    assert _query('probe_success{job="blackbox"}')[0]["value"][1] == "1"
    assert float(_query("probe_ssl_earliest_cert_expiry")[0]["value"][1]) > time.time()


def test_the_collections_rules_are_loaded_and_evaluate_without_errors():
    names = set()
    for name in os.listdir(RULES):
        with open(os.path.join(RULES, name)) as f:
            names |= {r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r}
    status, body = _request("/api/v1/rules?type=alert")
    assert status == 200, body
    loaded = {r["name"] for g in json.loads(body)["data"]["groups"] for r in g["rules"]}
    assert loaded == names
    # Every rule evaluates (a bad expression or a label clash would show as health err).
    health = {r["name"]: r["health"] for g in json.loads(body)["data"]["groups"] for r in g["rules"]}
    assert set(health.values()) == {"ok"}, {n: h for n, h in health.items() if h != "ok"}


BACKUP = (ha.GROUPS.get("backup") or [None])[0]


def test_the_backups_are_fresh_and_their_archive_healthy_in_prometheus():
    """The pgBackRest host's collector (role exporters) reports, through its node exporter, a stanza that is ok and a
    newest backup under a day old; the leader archives WAL; no alert of pgbackrest.rules.yml fires. Read-only."""
    require(BACKUP, "the lab has no backup group (lab/topology.yml: mon1)")
    selector = '{job="node", instance="%s"}' % BACKUP
    # The collector runs every 5 minutes (and once when the role installs it): wait for a run after the backup.
    assert pg.wait_for(lambda: _query("pgbackrest_info_success%s == 1" % selector), 360, interval=10), \
        _query("pgbackrest_info_success%s" % selector)
    assert [r["value"][1] for r in _query("pgbackrest_collector_configured%s" % selector)] == ["1"]
    assert [r["value"][1] for r in _query("pgbackrest_stanza_status%s" % selector)] == ["0"]
    completed = _query("pgbackrest_backup_last_completion_timestamp_seconds%s" % selector)
    assert completed, "no backup in the repository of %s" % BACKUP
    assert {r["metric"]["type"] for r in completed} <= {"full", "diff", "incr"}, completed
    age = time.time() - max(float(r["value"][1]) for r in completed)
    assert 0 <= age < 86400, "the newest backup is %.0f s old" % age
    assert [r["value"][1] for r in _query('pgbackrest_backups{job="node", instance="%s", type="full"} > 0'
                                          % BACKUP)], "no full backup"
    assert [r["value"][1] for r in _query("pgbackrest_archive_max_wal_present%s" % selector)] == ["1"]
    fresh = time.time() - float(_query("pgbackrest_collector_last_run_timestamp_seconds%s" % selector)[0]["value"][1])
    assert fresh < 1200, fresh
    # The leader's archiver: it has archived WAL (the backups needed it), and it is not failing now.
    leader = pg.leader()
    archived = _query('pg_stat_archiver_archived_count{job="postgres", instance="%s"}' % leader)
    assert archived and float(archived[0]["value"][1]) > 0, archived
    # Every rule of the file evaluates and none fires.
    with open(os.path.join(RULES, "pgbackrest.rules.yml")) as f:
        names = {r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
    status, body = _request("/api/v1/alerts")
    assert status == 200, body
    ours = [a for a in json.loads(body)["data"]["alerts"] if a["labels"]["alertname"] in names]
    assert [a for a in ours if a["state"] == "firing"] == [], ours


def test_the_web_uis_ask_for_the_password():
    for port in (9090, 9093):
        assert _request("/api/v1/status/buildinfo" if port == 9090 else "/api/v2/status", port=port,
                        password=None)[0] == 401
        assert _request("/-/ready", port=port, password="wrong-password")[0] == 401
        assert _request("/-/ready", port=port)[0] == 200


def test_only_the_monitoring_hosts_reach_the_exporters():
    """From the monitoring host the PostgreSQL exporter answers; from a web node (no monitoring host) the firewall
    drops it."""
    db = ha.GROUPS["postgres_primary"][0]
    url = "http://%s:9187/metrics" % ha.HOSTS[db]
    mon = ha.run_ssh(MONITORING[0], "curl -s -m 5 -o /dev/null -w '%%{http_code}' %s" % url)
    assert mon.stdout.strip() == "200", mon.stdout + mon.stderr
    web = ha.run_ssh(ha.GROUPS["webservers"][0], "curl -s -m 5 -o /dev/null -w '%%{http_code}' %s" % url)
    assert web.stdout.strip() == "000", web.stdout + web.stderr


def test_a_rule_file_promtool_rejects_stops_the_run_and_changes_no_rule(tmp_path):
    """An extra rule file with a broken expression: the run stops with promtool's message, and the rules Prometheus
    evaluates (its API) and the files it reads are the ones it had."""
    before = _request("/api/v1/rules")[1]
    broken = tmp_path / "broken.rules.yml"
    broken.write_text("groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: up ==\n")
    res = ha.playbook("monitoring.yml", ["--limit", ",".join(MONITORING), "-e",
                                         json.dumps({"monitoring_extra_rule_files": [str(broken)]})])
    out = " ".join((res.stdout + res.stderr).split())
    try:
        assert res.returncode != 0, out[-3000:]
        assert "promtool check rules rejects the alert rules" in out, out[-3000:]
        # The controller's promtool refuses it first where there is one; else the monitoring host's, before any rule
        # file is replaced.
        assert "Nothing was changed" in out or "No rule file Prometheus reads was changed" in out
        live = ha.sudo(MONITORING[0], "ls /etc/prometheus/rules").stdout.split()
        assert "broken.rules.yml" not in live and live, live
        after = _request("/api/v1/rules")[1]
        assert {g["name"] for g in json.loads(after)["data"]["groups"]} == \
            {g["name"] for g in json.loads(before)["data"]["groups"]}
    finally:
        ha.sudo(MONITORING[0], "rm -f /etc/prometheus/rules.staging/broken.rules.yml")


# The ports of each tier's exporters (cluster_facts_metrics_ports' defaults), by inventory group.
LISTENERS = {"webservers": [9100, 9205, 9127], "redis": [9100, 9121, 9355], "postgres_primary": [9100, 9187, 8008],
             "postgres_standby": [9100, 9187, 8008], "haproxy": [9100, 8405], "monitoring": [9100, 9090, 9093]}


def test_every_exporter_listens_on_its_hosts_cluster_address_only():
    for group, ports in LISTENERS.items():
        for host in ha.GROUPS.get(group) or []:
            listening = ha.run_ssh(host, "ss -Htln").stdout.split("\n")
            for port in ports:
                local = [line.split()[3] for line in listening if line.split() and
                         line.split()[3].rsplit(":", 1)[-1] == str(port)]
                # HAProxy's keepalived check listens on 127.0.0.1:8405 too (roles/keepalived).
                local = [a for a in local if not (port == 8405 and a.startswith("127.0.0.1:"))]
                assert local == ["%s:%d" % (ha.HOSTS[host], port)], (host, port, local)
    blackbox = ha.run_ssh(MONITORING[0], "ss -Htln").stdout
    assert "127.0.0.1:9115" in blackbox and "*:9115" not in blackbox and "0.0.0.0:9115" not in blackbox


@pytest.mark.disruptive
@pytest.mark.alerts
def test_a_stopped_web_node_fires_its_alert_and_resolves_after_it_is_back(alert_timings):
    web = [w for w in ha.GROUPS["webservers"] if w != ha.GROUPS["webservers"][0]][0]
    assert not _firing("HAProxyWebNodeOutOfRotation", web)
    stopped = time.time()
    ha.container("stop", web)
    try:
        fired = _wait_alert("HAProxyWebNodeOutOfRotation", web, stopped)
        down = _wait_alert("TargetDown", web, stopped)
    finally:
        ha.container("start", web)
    repaired = time.time()
    ha.wait_ssh(web)
    resolved = _wait_alert("HAProxyWebNodeOutOfRotation", web, repaired, firing=False, timeout=240)
    fault = "web node %s stopped (container)" % web
    alert_timings.append({"fault": fault, "alert": "HAProxyWebNodeOutOfRotation", "fired_s": fired,
                          "resolved_s": resolved})
    alert_timings.append({"fault": fault, "alert": "TargetDown", "fired_s": down, "resolved_s": ""})
    assert fired <= FIRE_WITHIN, fired
    # The host's exporters came back with it (enabled at boot): scraped up since it started again.
    _wait_all_up(since=repaired)


@pytest.mark.disruptive
@pytest.mark.alerts
@pytest.mark.skipif(len(ha.GROUPS.get("redis") or []) < 2, reason="needs two Redis hosts")
def test_a_moved_redis_master_fires_its_alerts(alert_timings):
    old = ha.current_master(ha.GROUPS["redis"])
    assert len(old) == 1, old
    old = old[0]
    stopped = time.time()
    ha.sudo(old, "systemctl stop redis-server")
    try:
        new = pg.wait_for(lambda: [m for m in ha.current_master(ha.GROUPS["redis"]) if m != old], 60)
        assert new, "Sentinel promoted no replica of %s within 60 s" % old
        changed = _wait_alert("RedisMasterChanged", new[0], stopped)
        alone = _wait_alert("RedisMasterWithoutReplica", new[0], stopped)
    finally:
        ha.sudo(old, "systemctl start redis-server")
    repaired = time.time()
    resolved = _wait_alert("RedisMasterWithoutReplica", new[0], repaired, firing=False, timeout=240)
    fault = "Redis master %s stopped, %s promoted" % (old, new[0])
    alert_timings.append({"fault": fault, "alert": "RedisMasterChanged", "fired_s": changed,
                          "resolved_s": "after its 5 min window"})
    alert_timings.append({"fault": fault, "alert": "RedisMasterWithoutReplica", "fired_s": alone,
                          "resolved_s": resolved})
    assert changed <= FIRE_WITHIN and alone <= FIRE_WITHIN, (changed, alone)


@pytest.mark.disruptive
@pytest.mark.alerts
def test_a_stopped_postgres_replica_fires_its_alert_and_resolves(alert_timings):
    """The replica's host stopped (container): PostgreSQLReplicaMissing fires; started again, Patroni rejoins it,
    the alert resolves and its exporters (PostgreSQL, Patroni, node) are scraped up again."""
    leader = pg.leader()
    replica = sorted(name for name in pg.members() if name != leader)[0]
    stopped = time.time()
    ha.container("stop", replica)
    try:
        fired = _wait_alert("PostgreSQLReplicaMissing", replica, stopped)
    finally:
        ha.container("start", replica)
    repaired = time.time()
    ha.wait_ssh(replica)
    resolved = _wait_alert("PostgreSQLReplicaMissing", replica, repaired, firing=False, timeout=240)
    alert_timings.append({"fault": "PostgreSQL replica %s stopped (container)" % replica,
                          "alert": "PostgreSQLReplicaMissing", "fired_s": fired, "resolved_s": resolved})
    assert fired <= FIRE_WITHIN, fired
    pg.healthy()
    _wait_all_up(since=repaired)


@pytest.mark.disruptive
@pytest.mark.alerts
def test_prometheus_and_alertmanager_survive_a_restart_of_their_host():
    mon = MONITORING[0]
    ha.container("stop", mon)
    ha.container("start", mon)
    started = time.time()
    ha.wait_ssh(mon)
    assert pg.wait_for(lambda: _ready(9090) == 200 and _ready(9093) == 200, 90, interval=2)
    _wait_all_up(since=started)


def _ready(port):
    try:
        return _request("/-/ready", port=port, timeout=3)[0]
    except OSError:
        return None
