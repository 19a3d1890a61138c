"""Failure tests of the load balancer under a bounded load (disruptive: they stop services and a container, and
restore them). Each scenario sends at least 2,000 requests over 20 s or more through HAProxy to the stand-in's
probe (database through PgBouncer, Redis through the local proxy) and stops one thing on one web node meanwhile.
The figures are written to lab/.state/<lab>/haproxy_failures.json for the benchmark's table.
"""
import json
import os

import pytest

from conftest import RELIABILITY
from ha_helpers import (GROUPS, STATE, container, fpm_service, scenario, servers_state, sudo, wait_ssh,
                        web_tier_ready)

LB = GROUPS.get("haproxy", [None])[0]
WEB = GROUPS.get("webservers", [])
# The check interval: fall 2 x inter 2 s, plus the 2 s check timeout of a node that no longer answers, plus 1 s
# for HAProxy's log and clock granularity.
LEAVE_WITHIN_S = 7.0
RESULTS = os.path.join(STATE, "haproxy_failures.json")


def record(figures):
    """Keep the figures for bench_haproxy.py's table, and add the scenario to the session's reliability table."""
    RELIABILITY.append({
        "fault": figures["scenario"], "requests": figures["requests"], "failed": figures["failed"],
        "disruption_s": figures["failure_window_s"], "data_lost": figures.get("data_lost", "-"),
        "recovery": figures.get("recovery", "self (HAProxy health checks)"),
    })
    data = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            data = json.load(f)
    data[figures["scenario"]] = figures
    with open(RESULTS, "w") as f:
        json.dump(data, f, indent=2)


@pytest.fixture(scope="module", autouse=True)
def web_tier():
    if not web_tier_ready(LB):
        pytest.fail("the load balancer does not answer the probe: deploy the web tier and playbooks/haproxy.yml")


def check(figures):
    record(figures)
    assert figures["requests"] >= 2000 and figures["duration_s"] >= 20, figures
    assert figures["failed"] == 0, figures
    assert figures["left_rotation_s"] is not None and figures["left_rotation_s"] <= LEAVE_WITHIN_S, figures
    assert figures["returned_s"] is not None, figures


@pytest.mark.disruptive
def test_php_fpm_stopped_on_one_node():
    web = WEB[-1]
    fpm = fpm_service(web)
    try:
        figures = scenario("php-fpm stopped on %s" % web, LB, web,
                           stop=lambda: sudo(web, "systemctl stop %s" % fpm),
                           start=lambda: sudo(web, "systemctl start %s" % fpm))
    finally:
        sudo(web, "systemctl start %s" % fpm)
    check(figures)


@pytest.mark.disruptive
def test_pgbouncer_stopped_on_one_node():
    web = WEB[-1]
    if sudo(web, "systemctl cat pgbouncer.service", check=False).returncode != 0:
        pytest.fail("no PgBouncer on %s: deploy playbooks/postgres.yml" % web)
    try:
        figures = scenario("PgBouncer stopped on %s" % web, LB, web,
                           stop=lambda: sudo(web, "systemctl stop pgbouncer"),
                           start=lambda: sudo(web, "systemctl start pgbouncer"))
    finally:
        sudo(web, "systemctl start pgbouncer")
    check(figures)


@pytest.mark.disruptive
def test_maintenance_mode_takes_a_node_out():
    web = WEB[-1]
    occ = "cd /var/www/nextcloud && sudo -u www-data php occ maintenance:mode"
    try:
        figures = scenario("maintenance mode on %s" % web, LB, web,
                           stop=lambda: sudo(web, occ + " --on"),
                           start=lambda: sudo(web, occ + " --off"))
    finally:
        sudo(web, occ + " --off")
    check(figures)


@pytest.mark.disruptive
def test_whole_web_container_stopped():
    web = WEB[0]
    try:
        figures = scenario("container %s stopped" % web, LB, web,
                           stop=lambda: container("stop", web),
                           start=lambda: container("start", web),
                           duration=30, stop_at=5.0, start_at=14.0, return_timeout=180)
    finally:
        container("start", web)
        wait_ssh(web)
    check(figures)
    assert servers_state(LB)[web][0] == 2
