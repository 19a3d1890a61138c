# -*- coding: utf-8 -*-
# Copyright: contributors to nextcloud_ha.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: changes
type: aggregate
short_description: Say at the end of a run what changed, host by host
description:
  - At the end of a playbook run, prints a C(WHAT CHANGED) section after the play recap. It lists, for every host,
    the names of the tasks and handlers that reported a change (in check mode, that would have changed), in the
    order they ran, with a count when a task changed several items of a loop. Hosts where nothing changed are
    listed together.
  - Only task names are printed, never results, so secrets behind C(no_log) stay hidden.
  - Works next to any stdout callback. Enable it with C(callbacks_enabled = nextcloud_ha.cluster.changes) in
    C(ansible.cfg), or with the environment variable E(ANSIBLE_CALLBACKS_ENABLED) (for example in an AWX job
    template's environment).
author:
  - nextcloud_ha.cluster developers (@nextcloud-ha)
requirements:
  - enable in configuration
options:
  max_tasks:
    description: At most this many task names per host; the rest are counted.
    type: int
    default: 40
    env:
      - name: NEXTCLOUD_HA_CHANGES_MAX_TASKS
    ini:
      - section: callback_changes
        key: max_tasks
"""

import re

from ansible import context
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nextcloud_ha.cluster.changes"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._changes = {}     # host -> {task label: number of changed results}, in the order they first changed
        self._hosts = []       # every host that ran a task (the report sorts them by name, web2 before web10)
        self._check_mode = bool(context.CLIARGS.get("check", False))

    def _seen(self, host):
        if host not in self._hosts:
            self._hosts.append(host)

    def _record(self, result):
        host = result._host.get_name()
        self._seen(host)
        if not result._result.get("changed", False):
            return
        label = result._task.get_name().strip() or result._task.action
        tasks = self._changes.setdefault(host, {})
        tasks[label] = tasks.get(label, 0) + 1

    def v2_runner_on_ok(self, result):
        if result._result.get("results") is not None:
            # A loop: its items arrive through v2_runner_item_on_ok and are counted there.
            self._seen(result._host.get_name())
            return
        self._record(result)

    def v2_runner_item_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._seen(result._host.get_name())

    def v2_runner_on_skipped(self, result):
        self._seen(result._host.get_name())

    def v2_runner_on_unreachable(self, result):
        self._seen(result._host.get_name())

    def report(self):
        """The lines of the WHAT CHANGED section."""
        limit = int(self.get_option("max_tasks"))
        verb = "would change" if self._check_mode else "changed"
        lines = []
        hosts = sorted(self._hosts, key=lambda name: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)])
        for host in hosts:
            tasks = self._changes.get(host)
            if not tasks:
                continue
            lines.append("%s, tasks that %s something:" % (host, "would change" if self._check_mode else "changed"))
            for label, count in list(tasks.items())[:limit]:
                lines.append("  - %s%s" % (label, " (%d items)" % count if count > 1 else ""))
            if len(tasks) > limit:
                lines.append("  ... and %d more tasks" % (len(tasks) - limit))
        quiet = [host for host in hosts if not self._changes.get(host)]
        if quiet:
            lines.append("nothing %s on: %s" % (verb, ", ".join(quiet)))
        return lines

    def v2_playbook_on_stats(self, stats):
        self._display.banner("WHAT CHANGED")
        for line in self.report():
            self._display.display(line)
