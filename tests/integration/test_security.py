"""The local security check (issue #9): playbooks/security_check.yml against the deployed lab.

The check itself is what an operator runs; here it must pass on the lab's cluster, and it must fail, naming the
finding, against an endpoint that lacks what it checks (a web node's plain HTTP answer has no HSTS and no TLS).
"""
import os
import subprocess

from conftest import ROOT, STATE
from test_web import domain


def security_check(*extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(STATE, "inventory"),
           os.path.join(ROOT, "playbooks", "security_check.yml"), "-e", "security_check_validate_certs=false",
           "-e", "security_check_host_header=%s" % domain(), *extra]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return res.returncode, res.stdout + res.stderr


def test_the_cluster_passes_the_security_check(inventory):
    lb = inventory.address(inventory.group("haproxy")[0])
    rc, out = security_check("-e", "security_check_url=https://%s" % lb)
    assert rc == 0, out[-4000:]
    assert "TLS 1.0/1.1 refused, 1.2 accepted" in " ".join(out.split())
    for host in inventory.group("webservers") + inventory.group("postgres_primary") + inventory.group("redis"):
        assert "%s " % host in out.split("PLAY RECAP")[-1], host


def test_the_security_check_fails_without_hsts_and_tls(inventory):
    web = inventory.address(inventory.group("webservers")[0])
    # A web node answers plain HTTP on port 80: pretend it is the public HTTPS endpoint.
    rc, out = security_check("-e", "security_check_url=http://%s:80" % web)
    assert rc != 0, out[-3000:]
    assert "Strict-Transport-Security missing" in out or "TLS 1.2 refused" in out, out[-3000:]
