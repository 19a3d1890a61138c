"""Two load balancers behind one floating address (issue #22, docs/keepalived.md): keepalived holds haproxy_vip on
exactly one of them, both present the same certificate, the cloud answers through the address, VRRP is let in
from the other load balancer only; bad input is refused before anything changes.

The faults (the holder's container stopped, its HAProxy killed) run under load in test_reliability.py (11, 12).
"""
import hashlib
import socket
import ssl

import pytest

from ha_helpers import DOMAIN, GROUPS, HOSTS, VIP, run_ssh, sudo, vip_holders, web_tier_ready
from pg_helpers import failure_messages, files_and_services, inventory_edited, playbook, recap

LBS = GROUPS.get("haproxy", [])
FILES = ["/etc/keepalived/keepalived.conf", "/etc/haproxy/haproxy.cfg", "/etc/haproxy/tls/nextcloud.pem",
         "/etc/haproxy/tls/nextcloud.pem.key", "/etc/nextcloud-ha/firewall/firewall.nft"]
SERVICES = ["keepalived", "haproxy", "nextcloud-ha-firewall"]


@pytest.fixture(scope="module", autouse=True)
def lab_has_a_pair():
    assert len(LBS) >= 2 and VIP, "the lab has no load balancer pair with a floating address (make lab)"


def test_exactly_one_load_balancer_holds_the_address():
    assert len(vip_holders()) == 1, vip_holders()


def test_the_cloud_answers_through_the_floating_address():
    assert web_tier_ready(VIP), "no answer from the probe through %s" % VIP


def served_certificate(address):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def test_every_load_balancer_presents_the_same_certificate():
    served = {lb: served_certificate(HOSTS[lb]) for lb in LBS}
    assert len(set(served.values())) == 1, served
    assert served_certificate(VIP) == served[LBS[0]]


def test_the_certificate_names_the_floating_address():
    text = sudo(LBS[0], "openssl x509 -noout -ext subjectAltName -in /etc/haproxy/tls/nextcloud.pem").stdout
    assert "IP Address:%s" % VIP in text, text
    for lb in LBS:
        assert "IP Address:%s" % HOSTS[lb] in text, text


def test_vrrp_is_let_in_from_the_other_load_balancers_only():
    for lb in LBS:
        rules = [line for line in sudo(lb, "nft list table inet nextcloud_ha").stdout.splitlines() if "vrrp" in line]
        assert len(rules) == 1, (lb, rules)
        others = sorted(HOSTS[o] for o in LBS if o != lb)
        # `ip saddr 10.0.0.2 ip protocol vrrp accept`, or `ip saddr { a, b } ...` for two or more.
        source = rules[0].split("saddr", 1)[1].split("ip protocol")[0]
        allowed = sorted(a.strip() for a in source.strip().strip("{}").split(","))
        assert allowed == others, (lb, rules)
    cluster = {h for group in ("webservers", "redis", "postgres_primary", "postgres_standby", "etcd")
               for h in GROUPS.get(group, [])}
    for host in sorted(cluster - set(LBS)):
        assert "vrrp" not in sudo(host, "nft list ruleset").stdout, host


def test_keepalived_tracks_haproxy_and_never_preempts():
    for lb in LBS:
        conf = sudo(lb, "cat /etc/keepalived/keepalived.conf").stdout
        assert "nopreempt" in conf and "unicast_peer" in conf and "track_script" in conf, (lb, conf)
        assert sudo(lb, "systemctl is-active keepalived haproxy").stdout.split() == ["active", "active"], lb
        # The check keepalived runs: HAProxy's own answer on loopback.
        assert run_ssh(lb, "curl -fsS -o /dev/null http://127.0.0.1:8405/haproxy-health").returncode == 0, lb


def test_the_summary_names_the_holder():
    res = playbook("summary.yml", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    holders = vip_holders()
    assert "floating address %s on %s" % (VIP, ", ".join(holders)) in " ".join(res.stdout.split()), res.stdout[-3000:]


def test_keepalived_only_on_the_load_balancers():
    for host in set(HOSTS) - set(LBS):
        res = run_ssh(host, "dpkg-query -W -f='${Status}' keepalived 2>/dev/null")
        assert "install ok installed" not in res.stdout, host


# ---- bad input

def fingerprint(host):
    """The files a run would rewrite on a load balancer, its services' start times and its IPv4 addresses."""
    return files_and_services(host, FILES, SERVICES, "ip -4 -o addr show | awk '{print $4}' | sort")


PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CASES = {
    "floating address outside the load balancers' network": dict(
        extra=["-e", "haproxy_vip=192.0.2.10"], expect=["haproxy_vip", "192.0.2.10"]),
    "floating address with one load balancer": dict(
        groups=lambda: {"haproxy": LBS[:1]}, expect=["haproxy_vip", "two"]),
    "different certificates given to the load balancers": dict(
        host_vars=lambda: {LBS[1]: {"haproxy_tls_certificate": PEM, "haproxy_tls_private_key": "key"}},
        expect=["haproxy_tls_certificate", "same certificate"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_before_anything_changes(case):
    spec = CASES[case]
    inventory = None
    if "groups" in spec or "host_vars" in spec:
        inventory = inventory_edited(groups=spec["groups"]() if "groups" in spec else None,
                                     host_vars=spec["host_vars"]() if "host_vars" in spec else None)
    before = {lb: fingerprint(lb) for lb in LBS}
    res = playbook("site.yml", *spec.get("extra", []), inventory=inventory, timeout=900)
    output = res.stdout + res.stderr
    assert res.returncode != 0, "%s: site.yml did not refuse it:\n%s" % (case, output[-3000:])
    messages = [m for m in failure_messages(output) if all(word in m for word in spec["expect"])]
    assert messages, "%s: no failure names %s:\n%s" % (case, spec["expect"], output[-3000:])
    changed = {h: c["changed"] for h, c in recap(output).items() if c.get("changed")}
    assert not changed, "%s: hosts changed before the refusal: %s\n%s" % (case, changed, output[-3000:])
    after = {lb: fingerprint(lb) for lb in LBS}
    assert after == before, "%s: %s" % (case, {h: (before[h], after[h]) for h in before if before[h] != after[h]})
