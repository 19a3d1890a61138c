"""Stand-in for pip's get-pip.py, which ansible-test downloads from a host this machine cannot reach.

ansible-test runs the script inside a fresh venv with pip's own arguments (for example
`pip==24.2 --no-setuptools --no-wheel`). This bootstraps pip from the interpreter's bundled wheel
(ensurepip) and then lets pip install what was asked from PyPI.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
