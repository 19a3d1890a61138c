"""The load balancer as deployed by playbooks/haproxy.yml: requests through it, TLS, headers, stats, runtime API.

Needs the whole path: HAProxy on the haproxy group, the web tier (or, in a lab without it, the stand-in web tier of
tests/integration/haproxy_lab_web.yml) and Redis. Requests go to the stand-in's probe.php, which names the node.
"""
import http.client
import ssl
import time
import uuid

import pytest

from ha_helpers import (DOMAIN, GROUPS, HOSTS, PROBE, STATS_PASSWORD, clean_workload_files, lb_probe_url, load,
                        run_ssh, runtime, servers_state, sudo, web_tier_ready, workload_urls)

LB = GROUPS.get("haproxy", [None])[0]
WEB = GROUPS.get("webservers", [])


def request(host, port, path, tls=True, headers=None, method="GET", timeout=10):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = (http.client.HTTPSConnection(host, port, timeout=timeout, context=context) if tls
            else http.client.HTTPConnection(host, port, timeout=timeout))
    conn.request(method, path, headers=dict({"Host": DOMAIN}, **(headers or {})))
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


@pytest.fixture(scope="module")
def web_tier():
    if not web_tier_ready(LB):
        pytest.fail("the load balancer does not answer the probe: deploy the web tier (playbooks/web.yml, or "
                    "tests/integration/haproxy_lab_web.yml in a lab without it) and playbooks/haproxy.yml")


def test_configuration_is_valid(lab_host):
    assert lab_host(LB).run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


def test_both_web_nodes_answer_through_the_load_balancer(web_tier):
    run = load(lb_probe_url(LB), rate=20, duration=3, threads=4)
    assert not run.failed, run.summary()
    assert set(run.by_host()) == set(WEB), run.summary()


def test_http_redirects_to_https():
    resp, _ = request(HOSTS[LB], 80, "/index.php/login?x=1", tls=False)
    assert resp.status == 301
    assert resp.getheader("Location") == "https://%s/index.php/login?x=1" % DOMAIN


def test_acme_challenge_stays_on_http():
    resp, _ = request(HOSTS[LB], 80, "/.well-known/acme-challenge/nc-ha-test", tls=False)
    assert resp.status != 301


def test_https_has_hsts(web_tier):
    resp, _ = request(HOSTS[LB], 443, "/status.php")
    assert resp.status == 200
    assert resp.getheader("Strict-Transport-Security") == "max-age=15552000; includeSubDomains"


def test_certificate_names_the_cluster():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection((HOSTS[LB], 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der = tls.getpeercert(binary_form=True)
            version = tls.version()
    assert version in ("TLSv1.2", "TLSv1.3")
    assert DOMAIN.encode() in der


@pytest.mark.parametrize("path", ["/.well-known/caldav", "/.well-known/carddav"])
def test_well_known_dav_redirects(path):
    resp, _ = request(HOSTS[LB], 443, path)
    assert resp.status == 301
    assert resp.getheader("Location") == "/remote.php/dav/"


def test_forwarded_headers_reach_the_web_node(web_tier):
    """The web tier's access log records X-Forwarded-For; a PHP echo would need code in Nextcloud's tree."""
    marker = "nc-ha-xff-%s" % uuid.uuid4().hex
    for _ in range(len(WEB) * 2):
        request(HOSTS[LB], 443, "/status.php?%s" % marker)
    lines = []
    for web in WEB:
        res = sudo(web, "grep -h %s /var/log/apache2/*access*.log || true" % marker)
        lines += [line for line in res.stdout.splitlines() if marker in line]
    assert lines, "no access log line with the marker on any web node"
    lb_address = HOSTS[LB]
    for line in lines:
        fields = line.split()
        assert fields[0] == lb_address            # the connection comes from the load balancer
        assert fields[1] not in ("-", lb_address)  # X-Forwarded-For carries the client's address


def test_forwarded_proto_is_set(lab_host):
    """X-Forwarded-Proto is what the backend sees: check it with HAProxy's own capture (log format)."""
    marker = "nc-ha-proto-%s" % uuid.uuid4().hex
    cfg = lab_host(LB).file("/etc/haproxy/haproxy.cfg").content_string
    assert "http-request set-header X-Forwarded-Proto https if { ssl_fc }" in cfg
    resp, _ = request(HOSTS[LB], 443, "/status.php?%s" % marker)
    assert resp.status == 200


def test_stats_page_requires_credentials():
    resp, _ = request(HOSTS[LB], 8404, "/", tls=False)
    assert resp.status == 401
    import base64
    bad = base64.b64encode(b"admin:wrong").decode()
    resp, _ = request(HOSTS[LB], 8404, "/", tls=False, headers={"Authorization": "Basic " + bad})
    assert resp.status == 401
    good = base64.b64encode(("admin:%s" % STATS_PASSWORD).encode()).decode()
    resp, body = request(HOSTS[LB], 8404, "/;csv", tls=False, headers={"Authorization": "Basic " + good})
    assert resp.status == 200
    assert b"nextcloud," in body


def test_stats_page_is_on_the_private_address_only(lab_host):
    listening = lab_host(LB).check_output("ss -Htln 'sport = :8404'")
    assert [line.split()[3] for line in listening.splitlines()] == ["%s:8404" % HOSTS[LB]]


def test_runtime_api_names_servers_by_inventory_hostname(web_tier):
    states = servers_state(LB)
    checked = {name: state for name, state in states.items() if not name.endswith("-failopen")}
    assert set(checked) == set(WEB)
    assert all(op == 2 for op, _admin in checked.values()), states
    # The fail-open backups: the same nodes, unchecked, used only while no checked server is up.
    assert set(states) - set(checked) == {"%s-failopen" % web for web in WEB}


def test_drain_and_enable_through_the_runtime_api(web_tier):
    drained = WEB[-1]
    assert runtime(LB, "set server nextcloud/%s state drain" % drained) == ""
    try:
        run = load(lb_probe_url(LB), rate=20, duration=3, threads=4)
        assert not run.failed, run.summary()
        assert set(run.by_host()) == set(WEB) - {drained}, run.summary()
    finally:
        assert runtime(LB, "set server nextcloud/%s state ready" % drained) == ""
    run = load(lb_probe_url(LB), rate=20, duration=3, threads=4)
    assert set(run.by_host()) == set(WEB), run.summary()


def test_drained_server_stays_drained_across_a_reload(web_tier):
    drained = WEB[-1]
    runtime(LB, "set server nextcloud/%s state drain" % drained)
    try:
        sudo(LB, "systemctl reload haproxy")
        time.sleep(2)
        states = servers_state(LB)
        assert states[drained][1] & 0x08, states  # SRV_ADMF_DRAIN, kept by load-server-state-from-file
        assert states[WEB[0]][1] == 0, states
    finally:
        runtime(LB, "set server nextcloud/%s state ready" % drained)


def workers(lb):
    """PIDs of HAProxy's workers (children of the master-worker unit's main process)."""
    main_pid = sudo(lb, "systemctl show -p MainPID --value haproxy").stdout.strip()
    return set(sudo(lb, "pgrep -P %s haproxy || true" % main_pid).stdout.split())


def test_reload_is_hitless(web_tier):
    """Two reloads under a paced load of keep-alive connections (each idle most of the time between its requests,
    as a reload's soft stop finds them): no request may fail, and each reload really started new workers."""
    seen = []

    def reload():
        before = workers(LB)
        sudo(LB, "systemctl reload haproxy")
        deadline = time.monotonic() + 10
        after = workers(LB)
        while not after - before and time.monotonic() < deadline:
            time.sleep(0.2)
            after = workers(LB)
        seen.append((before, after))

    run = load(workload_urls("https://%s" % HOSTS[LB]), rate=50, duration=8, threads=8,
               events=[(2.0, reload), (5.0, reload)])
    clean_workload_files()
    assert len(seen) == 2
    for before, after in seen:
        assert before and after - before, "no new worker: %s -> %s" % (before, after)
    assert run.total >= 390
    assert not run.failed, "%s; failed at %s" % (run.summary(), [(round(r.start, 2), r.status, r.error)
                                                              for r in run.failed])


def test_reload_answers_idle_keep_alive_connections(web_tier):
    """The race behind failed requests across reloads, made deterministic: keep-alive connections idle while the
    reload runs must still answer their next request (with "Connection: close"), not close under it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conns = []
    for _ in range(4):
        conn = http.client.HTTPSConnection(HOSTS[LB], 443, timeout=20, context=context)
        conn.request("GET", PROBE, headers={"Host": DOMAIN})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        conns.append(conn)
    sudo(LB, "systemctl reload haproxy")
    outcomes = []
    for delay, conn in zip((0.0, 0.5, 1.5, 3.0), conns):
        time.sleep(delay)
        try:
            conn.request("GET", PROBE, headers={"Host": DOMAIN})
            resp = conn.getresponse()
            resp.read()
            outcomes.append((resp.status, (resp.getheader("Connection") or "").lower()))
        except (http.client.HTTPException, OSError) as exc:
            outcomes.append((type(exc).__name__, str(exc)))
        finally:
            conn.close()
    # Every idle connection gets its answer. A request sent before the old worker started stopping is answered
    # as usual (keep-alive); once it stops, the answer says "Connection: close" instead of the socket closing.
    assert all(status == 200 for status, _ in outcomes), outcomes
    assert outcomes[-1] == (200, "close"), outcomes


@pytest.mark.parametrize("web", WEB)
def test_node_health_endpoint_answers_the_load_balancer(web, web_tier):
    res = run_ssh(LB, "curl -s -o /dev/null -w '%%{http_code}' -H 'Host: %s' http://%s/nextcloud-ha-health"
                  % (DOMAIN, HOSTS[web]))
    assert res.stdout == "200"
    body = run_ssh(LB, "curl -s -H 'Host: %s' http://%s/nextcloud-ha-health" % (DOMAIN, HOSTS[web])).stdout
    for check in ('"db":{"ok":true', '"redis":{"ok":true', '"datadir":{"ok":true'):
        assert check in body, body


def test_node_health_endpoint_refuses_other_clients(web_tier):
    """A client that is not a load balancer (the web node itself, on its private address): 403. (Another web node
    would not even get through: the firewall lets only the load balancers reach port 80.)"""
    res = run_ssh(WEB[0], "curl -s -o /dev/null -w '%%{http_code}' -H 'Host: %s' http://%s/nextcloud-ha-health"
                  % (DOMAIN, HOSTS[WEB[0]]))
    assert res.stdout == "403"


def test_prometheus_metrics_name_every_web_node(lab_host):
    """With a monitoring group, HAProxy's built-in exporter answers on the private address (from the host itself, as
    the firewall lets only the monitoring hosts in) with the state of every web node of the backend."""
    if not GROUPS.get("monitoring"):
        pytest.skip("no monitoring group in this lab: the metrics frontend is off")
    for lb in GROUPS["haproxy"]:
        out = lab_host(lb).check_output("curl -fsS http://%s:8405/metrics" % HOSTS[lb])
        # (the fail-open twins, unchecked, are always UP: not what says a node is in rotation)
        up = [line for line in out.splitlines()
              if line.startswith('haproxy_server_status{proxy="nextcloud",') and 'state="UP"' in line
              and '-failopen"' not in line]
        assert sorted(line.split('server="')[1].split('"')[0] for line in up) == sorted(WEB), out[-2000:]
        assert all(line.endswith(" 1") for line in up), up
        # only the metrics path
        assert lab_host(lb).run("curl -fsS http://%s:8405/" % HOSTS[lb]).rc != 0
        listening = lab_host(lb).check_output("ss -Htln 'sport = :8405'")
        assert sorted(line.split()[3] for line in listening.splitlines()) == sorted(["127.0.0.1:8405",
                                                                                     "%s:8405" % HOSTS[lb]])
