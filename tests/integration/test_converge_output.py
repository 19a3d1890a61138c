"""No secret in the output of the first converge (issues #5 and #9).

`make test` runs molecule with `-v` and keeps its whole output in the file NCHA_CONVERGE_LOG. By the time the
verifier runs, that file holds the converge from blank hosts and the idempotence run. This test collects every
secret of the cluster, the ones the inventory sets and the ones the install generated on the web nodes, and
looks for each of them in that output.
"""
import json
import os
import re

import pytest

from conftest import require
from test_web import CONFIG, PHP_DUMP, _quote, lab_vars

LOG = os.environ.get("NCHA_CONVERGE_LOG", "")
# Generated at install time on the master and carried to every node.
GENERATED = ("instanceid", "passwordsalt", "secret", "dbpassword")


@pytest.fixture(scope="module")
def converge_output():
    require(LOG, "NCHA_CONVERGE_LOG is set by `make molecule`; it names the file holding the converge output")
    with open(LOG, errors="replace") as f:
        text = f.read()
    # The file must hold a verbose converge, or finding nothing in it proves nothing.
    assert text.count("PLAY RECAP") >= 2, "no converge and idempotence run in %s" % LOG
    # -v prints every task's result (as YAML with this project's ansible.cfg, as JSON with others).
    assert re.search(r'^\s+changed: true$|"changed": true', text, re.M), "the converge output is not verbose (-v)"
    return text


@pytest.fixture(scope="module")
def secrets(lab_host, inventory):
    found = {k: str(v) for k, v in lab_vars().items() if re.search(r"password|secret|token|cipher_pass", k)}
    web = inventory.group("webservers")[0]
    out = lab_host(web).check_output("sudo -u www-data php -r %s %s" % (_quote(PHP_DUMP), CONFIG))
    config = json.loads(out)
    for key in GENERATED:
        if config.get(key):
            found["config.php " + key] = str(config[key])
    redis = config.get("redis") or {}
    if redis.get("password"):
        found["config.php redis password"] = str(redis["password"])
    assert len(found) >= 8, sorted(found)
    return found


def test_no_secret_in_the_converge_output(converge_output, secrets):
    leaked = sorted(name for name, value in secrets.items() if len(value) >= 6 and value in converge_output)
    assert not leaked, "secrets printed in the converge output: %s" % leaked


def test_no_password_hash_in_the_converge_output(converge_output):
    # PostgreSQL SCRAM verifiers (pgbouncer's auth file, pg_authid) are password equivalents for replay.
    assert "SCRAM-SHA-256$" not in converge_output


def what_changed_sections(text):
    """The WHAT CHANGED sections (callback nextcloud_ha.cluster.changes) of every run in the output, as lists of lines."""
    sections = []
    for part in text.split("WHAT CHANGED ***")[1:]:
        lines = []
        for line in part.splitlines()[1:]:
            if re.match(r"^(\S+, tasks that .*:|  - .*|  \.\.\. .*|nothing (would change|changed) on: .*)$", line):
                lines.append(line)
            elif line.strip() or lines:
                break
        sections.append(lines)
    return sections


def test_every_run_ends_saying_what_changed(converge_output):
    """check (would change), converge (what changed, host by host), idempotence (nothing changed anywhere)."""
    sections = what_changed_sections(converge_output)
    assert len(sections) >= 3, sections
    check, converge, idempotence = sections[-3:]
    # From blank hosts, check mode would install packages everywhere.
    for host in ("lb1", "web1", "db1"):
        assert "%s, tasks that would change something:" % host in check, check
        assert "%s, tasks that changed something:" % host in converge, converge
    assert len([line for line in converge if line.startswith("  - ")]) >= 20, converge
    assert len(idempotence) == 1 and idempotence[0].startswith("nothing changed on: "), idempotence
    # Every host the converge changed is quiet the second time (the lab's mirror host is outside site.yml).
    quiet = idempotence[0].split(": ", 1)[1].split(", ")
    converged = [line.split(",")[0] for line in converge if line.endswith(", tasks that changed something:")]
    assert len(converged) >= 6 and set(converged) <= set(quiet), (converged, quiet)
