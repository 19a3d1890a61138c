"""Where the lab under test keeps its state, and the lab's inventory variables (shared by tests and benchmarks)."""
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_NAME = os.environ.get("LAB_NAME", "nchalab")
STATE = os.path.join(ROOT, "lab", ".state", LAB_NAME)
SSH_CONFIG = os.path.join(STATE, "ssh_config")
INVENTORY = os.path.join(STATE, "inventory")
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")

with open(os.path.join(ROOT, "lab", "inventory", "group_vars", "all", "lab.yml")) as _f:
    LAB_VARS = yaml.safe_load(_f)
