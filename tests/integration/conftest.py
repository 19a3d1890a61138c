"""Fixtures for tests that check real state on the lab's hosts.

The lab must be up (`python -m lab up`, or molecule's create step). Hosts are reached over the
ssh configuration the lab wrote, with sudo, exactly like Ansible reaches them.

Where the lab (its inventory), the deployed cluster or molecule's converge log is missing, a test is
skipped on a developer's machine but fails in CI (CI=true) and under `make molecule`
(NCHA_REQUIRE_LAB=1): see require(). Skips that describe the inventory (one Redis host, one load
balancer, ...) stay skips everywhere.
"""
import json
import os
import subprocess

import pytest
import testinfra
import yaml

from lab_paths import LAB_NAME, ROOT, SSH_CONFIG, STATE  # noqa: F401 (re-exported to the tests)

LAB_INVENTORY = os.path.join(STATE, "inventory", "hosts.yml")


def lab_required():
    """True in CI (CI=true, as `make blank` and CI machines set it) and under `make molecule` (NCHA_REQUIRE_LAB=1)."""
    return os.environ.get("CI") == "true" or os.environ.get("NCHA_REQUIRE_LAB") == "1"


def require(condition, reason):
    """Go on if condition holds; else skip the test, or fail it where the lab is required (lab_required()).

    For what a test needs from the lab (the lab up, the cluster deployed, the converge log), never for what an
    inventory may legitimately lack (a second Redis host, a load balancer pair): those stay pytest.skip.
    """
    if condition:
        return
    if lab_required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class Inventory:
    """The lab's generated inventory: hosts, their addresses and groups."""

    def __init__(self, path):
        with open(path) as f:
            data = yaml.safe_load(f)["all"]
        self.hostvars = data["hosts"]
        self.groups = {name: list((g or {}).get("hosts") or {}) for name, g in data.get("children", {}).items()}

    @property
    def hosts(self):
        return list(self.hostvars)

    def address(self, host):
        return self.hostvars[host]["ansible_host"]

    def group(self, name):
        return self.groups.get(name, [])


@pytest.fixture(scope="session")
def inventory():
    require(os.path.exists(LAB_INVENTORY), _NO_LAB)
    return Inventory(LAB_INVENTORY)


_NO_LAB = "the lab %r is not up (no %s): run `LAB_NAME=%s python -m lab up` first" % (LAB_NAME, LAB_INVENTORY,
                                                                                       LAB_NAME)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """No lab inventory at all: every test is skipped, or fails where the lab is required, before its skip marks.

    Without an inventory the helpers see no hosts in any group, so a topology mark ("needs two Redis hosts") would
    otherwise skip the test as if the inventory lacked that feature. Runs before pytest's own skipif evaluation (a
    conftest's tryfirst hook is called before the built-in plugin's).
    """
    require(os.path.exists(LAB_INVENTORY), _NO_LAB)


@pytest.fixture(scope="session")
def lab_host(inventory):
    """lab_host(name) -> a testinfra host reached over ssh with sudo."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = testinfra.get_host("ssh://%s" % name, ssh_config=SSH_CONFIG, sudo=True)
        return cache[name]

    return get


def ssh(host, command, timeout=60):
    """Run a command on a lab host as the ssh user (no sudo); returns CompletedProcess."""
    return subprocess.run(["ssh", "-F", SSH_CONFIG, host, command], capture_output=True, text=True,
                          timeout=timeout)


def pytest_configure(config):
    config.addinivalue_line("markers", "disruptive: stops or breaks servers; runs after every other test")
    config.addinivalue_line("markers", "reliability: the failure scenarios of test_reliability.py (issue #11)")
    config.addinivalue_line("markers", "alerts: faults whose alerts must fire and resolve (test_monitoring.py, issue #24)")
    config.addinivalue_line(
        "markers", "known_failing(reason): fails in the combined-cluster run; excluded from `make test` until fixed")


def pytest_collection_modifyitems(session, config, items):
    """Disruptive tests (failover, killed services, stopped containers) run last, in file order."""
    items.sort(key=lambda item: 1 if item.get_closest_marker("disruptive") else 0)


# The failure scenarios' figures (issue #11): each disruptive test adds one row; the session prints them as one
# table and writes them to tests/output/reliability.json.
RELIABILITY = []
RELIABILITY_COLUMNS = ("fault", "requests", "failed", "disruption_s", "no_write_s", "data_lost", "recovery",
                       "promise")


@pytest.fixture(scope="session")
def reliability():
    """Append dict(fault=..., requests=..., failed=..., disruption_s=..., data_lost=..., recovery=...); no_write_s
    (the longest time without a successful write) where the scenario measures it."""
    return RELIABILITY


# The monitoring's alert scenarios (issue #24): each adds fault, alert, seconds from the fault to firing in
# Alertmanager, seconds from the repair to resolved.
ALERTS = []
ALERT_COLUMNS = ("fault", "alert", "fired_s", "resolved_s")


@pytest.fixture(scope="session")
def alert_timings():
    """Append dict(fault=..., alert=..., fired_s=..., resolved_s=...)."""
    return ALERTS


def _table(terminalreporter, title, rows, columns, filename):
    rows = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in rows)) for i, col in enumerate(columns)]
    terminalreporter.section(title)
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        terminalreporter.write_line("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    out = os.path.join(ROOT, "tests", "output")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, filename), "w") as f:
        json.dump([dict(zip(columns, r)) for r in rows], f, indent=2)
    terminalreporter.write_line("written to tests/output/%s" % filename)


def pytest_terminal_summary(terminalreporter):
    if ALERTS:
        _table(terminalreporter, "monitoring: seconds from fault to alert firing, from repair to resolved", ALERTS,
               ALERT_COLUMNS, "monitoring-alerts.json")
    if not RELIABILITY:
        return
    rows = [[str(row.get(col, "")) for col in RELIABILITY_COLUMNS] for row in RELIABILITY]
    widths = [max(len(col), *(len(r[i]) for r in rows)) for i, col in enumerate(RELIABILITY_COLUMNS)]
    terminalreporter.section("reliability: failure scenarios under load")
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(RELIABILITY_COLUMNS, widths)))
    for r in rows:
        terminalreporter.write_line("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    out = os.path.join(ROOT, "tests", "output")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "reliability.json"), "w") as f:
        json.dump(RELIABILITY, f, indent=2)
    terminalreporter.write_line("written to tests/output/reliability.json")
