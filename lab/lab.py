#!/usr/bin/env python3
"""The multi-host lab: Debian systemd containers under rootful podman, reachable over ssh.

Commands (run from the repository root with the project's venv):
  python -m lab up [--fresh]   build images if needed, start the topology, write the inventory
  python -m lab deploy         run site.yml against the lab (after `up`)
  python -m lab status         show the lab's containers and whether ssh answers
  python -m lab down           remove the lab's containers, volumes and network (only what the lab labelled)
  python -m lab images         build the Debian 12 and 13 base images (cached by recipe hash)
  python -m lab ssh HOST [CMD] open a shell or run a command on a lab host
  python -m lab blank [CMD]    run CMD (default: make deps venv unit playbook standin lint sanity) in a throw-away
                               container of the base image with nothing in it but this checkout (tracked and new
                               files)

Environment:
  LAB_NAME    name of this lab instance (default nchalab); containers are <name>-<host>,
              the network is <name>, state lives in lab/.state/<name>/
  LAB_DISTRO  bookworm (default, from topology.yml) or trixie
  LAB_SUBNET  the /24 of the lab network (default derived from LAB_NAME in 10.213.0.0/16)
  LAB_NEXTCLOUD  `standin` (always use the test stand-in, as the tests do), `auto` (default: the
              official release when download.nextcloud.com answers, else the stand-in, said loudly), or the path
              of a release archive on the controller, nextcloud-X.Y.Z.tar.bz2, with its .sha256 and .asc beside it
              and the signing key as nextcloud.asc in the same folder (or LAB_NEXTCLOUD_SHA256, LAB_NEXTCLOUD_ASC,
              LAB_NEXTCLOUD_KEY, LAB_NEXTCLOUD_VERSION, LAB_NEXTCLOUD_FINGERPRINT): deployed through the role's
              air-gapped path, verified on every node
  LAB_EXTRA_HOSTS  comma-separated hosts of topology.yml's extra_hosts to add to the lab (`web3`: a third web
              node, for the scale-out test); `up` without them removes their containers and writes the default
              inventory again
  NCHA_STORAGE  shared storage backend written into the inventory as nextcloud_storage_backend
              (`glusterfs`, `s3`, `nfs`, `local`; unset = `glusterfs` on the web nodes); see docs/storage.md.
              `local` is for one web node: with two or more, site.yml's preflight refuses it
  NCHA_S3     `moto`: run moto's S3 server (an S3 emulator, from PyPI wheels the host downloads) on the mirror
              host with authentication on, and write its endpoint and a throw-away key into the inventory
              (implied by NCHA_STORAGE=s3)
"""

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_DIR = os.path.join(ROOT, "lab")
LABEL = "io.nextcloud-ha.lab"
IMAGE_REPO = "localhost/nchalab-debian"
DISTROS = ("bookworm", "trixie")
MIRROR = "http://deb.debian.org/debian"
SSH_USER = "ansible"
MIRROR_HOST = "mirror"
STANDIN_VERSIONS = ("32.0.2", "33.0.0", "34.0.0")
STANDIN_DEFAULT = "32.0.2"
OFFICIAL_RELEASES = "https://download.nextcloud.com/server/releases/"
MIRROR_UNIT = """\
[Unit]
Description=Lab mirror of Nextcloud release archives (test stand-in)
After=network.target
[Service]
ExecStart=/usr/bin/python3 -m http.server 80 --directory /srv/mirror
[Install]
WantedBy=multi-user.target
"""

# The lab's S3 emulator (NCHA_S3=moto): moto's server mode. Authentication is on after the first three requests,
# which create the one IAM user whose key the inventory gets.
MOTO_REQUIREMENT = "moto[server]==5.1.*"
MOTO_PORT = 5000
MOTO_UNIT = """\
[Unit]
Description=Lab S3 emulator (moto server)
After=network.target
[Service]
Environment=INITIAL_NO_AUTH_ACTION_COUNT=3
ExecStart=/opt/moto/bin/moto_server -H 0.0.0.0 -p %d
[Install]
WantedBy=multi-user.target
""" % MOTO_PORT
MOTO_SETUP = r"""
set -eu
cat > /etc/systemd/system/lab-s3.service
if [ ! -x /opt/moto/bin/moto_server ]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv </dev/null >/dev/null
  python3 -m venv /opt/moto
  /opt/moto/bin/pip install -q --no-index --find-links /srv/moto-wheels 'moto[server]'
fi
systemctl daemon-reload && systemctl enable -q lab-s3.service && systemctl restart lab-s3.service
for i in $(seq 60); do nc -z 127.0.0.1 %d && break; sleep 1; done
""" % MOTO_PORT
MOTO_BOOTSTRAP = """
import json, boto3, moto
iam = boto3.client("iam", endpoint_url="http://127.0.0.1:%d", region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="nextcloud")
key = iam.create_access_key(UserName="nextcloud")["AccessKey"]
iam.put_user_policy(UserName="nextcloud", PolicyName="s3", PolicyDocument=json.dumps({"Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
print(json.dumps({"key": key["AccessKeyId"], "secret": key["SecretAccessKey"], "version": moto.__version__}))
""" % MOTO_PORT

# The base image recipe. Changing anything here changes the image tag, so images rebuild.
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "openssh-server", "sudo",
    "iproute2", "iputils-ping", "ca-certificates", "curl", "gnupg", "procps", "less",
    "netcat-openbsd", "locales",
]
IMAGE_SETUP = r"""
set -eu
SUITE="$1"
cat > /etc/apt/sources.list <<EOF
deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
echo 'en_US.UTF-8 UTF-8' > /etc/locale.gen && locale-gen >/dev/null && update-locale LANG=en_US.UTF-8
useradd --create-home --shell /bin/bash ansible
echo 'ansible ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/ansible && chmod 0440 /etc/sudoers.d/ansible
# Host keys are made on each container's first boot, never shared through the image.
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/ssh-hostkeys.service <<'EOF'
[Unit]
Description=Generate this host's ssh host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
EOF
systemctl enable ssh-hostkeys.service ssh.service >/dev/null 2>&1
# Units that make no sense in a container.
systemctl mask getty@tty1.service serial-getty@console.service console-getty.service \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-logind.service sys-kernel-config.mount >/dev/null 2>&1 || true
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
"""
PODMAN_CONF = """\
# Written by the nextcloud_ha.cluster lab (see shared LAB.md): crun fails on this kernel's
# hybrid cgroups, and containers may not raise rlimits above the host's.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""
LOCAL_CA_DIR = "/usr/local/share/ca-certificates"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PODMAN_CONF_PATH = "/etc/containers/containers.conf.d/50-nextcloud-ha-lab.conf"
INOTIFY_MINIMUMS = {"max_user_instances": 1024, "max_user_watches": 524288}
# What the host needs, as Debian packages. Podman's network backend netavark calls iptables (netavark 1.4, Debian
# 12) or nft (Debian 13's netavark); without them every `podman run` on a network fails with "netavark: No such
# file or directory".
HOST_PACKAGES = ["podman", "runc", "debootstrap", "uidmap", "fuse-overlayfs", "slirp4netns",
                 "netavark", "aardvark-dns", "iptables", "nftables", "openssh-client", "rsync"]
# What `up` checks before it creates anything: a file each package puts in place, and the package to name when the
# file is missing (an install that failed, or a host where apt could not run).
HOST_PREREQUISITES = [
    ("/usr/bin/podman", "podman"), ("/usr/sbin/runc", "runc"), ("/usr/sbin/debootstrap", "debootstrap"),
    ("/usr/bin/newuidmap", "uidmap"), ("/usr/bin/fuse-overlayfs", "fuse-overlayfs"),
    ("/usr/bin/slirp4netns", "slirp4netns"), ("/usr/lib/podman/netavark", "netavark"),
    ("/usr/lib/podman/aardvark-dns", "aardvark-dns"), ("/usr/sbin/iptables", "iptables"),
    ("/usr/sbin/nft", "nftables"), ("/usr/bin/ssh-keygen", "openssh-client"), ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/rsync", "rsync"),
]


def log(msg):
    print("lab: " + msg, flush=True)


def run(cmd, check=True, capture=False, input_=None, quiet=False):
    if not quiet:
        log("$ " + " ".join(cmd))
    res = subprocess.run(cmd, input=input_, text=True,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None)
    if check and res.returncode != 0:
        err = (res.stderr or "").strip() if capture else ""
        raise SystemExit("lab: command failed (%d): %s\n%s" % (res.returncode, " ".join(cmd), err))
    return res


class Lab:
    def __init__(self, name=None, distro=None):
        with open(os.path.join(LAB_DIR, "topology.yml")) as f:
            self.topology = yaml.safe_load(f)
        self.name = name or os.environ.get("LAB_NAME", "nchalab")
        self.distro = distro or os.environ.get("LAB_DISTRO") or self.topology.get("distro", "bookworm")
        if self.distro not in DISTROS:
            raise SystemExit("lab: unknown distro %r (choose from %s)" % (self.distro, ", ".join(DISTROS)))
        self.state = os.path.join(LAB_DIR, ".state", self.name)
        octet = 20 + int(hashlib.sha256(self.name.encode()).hexdigest(), 16) % 200
        self.subnet = os.environ.get("LAB_SUBNET", "10.213.%d.0/24" % octet)
        self.prefix = self.subnet.rsplit(".", 1)[0]
        extra = self.topology.get("extra_hosts") or {}
        wanted = [h for h in os.environ.get("LAB_EXTRA_HOSTS", "").replace(" ", "").split(",") if h]
        unknown = sorted(set(wanted) - set(extra))
        if unknown:
            raise SystemExit("lab: LAB_EXTRA_HOSTS names hosts that topology.yml's extra_hosts does not have: %s"
                             % ", ".join(unknown))
        self.hosts = dict(self.topology["hosts"])
        self.hosts.update((h, extra[h]) for h in extra if h in wanted)
        # Addresses follow the order of hosts then extra_hosts, whichever extra hosts are in this lab.
        self.address_order = list(self.topology["hosts"]) + list(extra)

    # ---- paths
    @property
    def key(self):
        return os.path.join(self.state, "id_ed25519")

    @property
    def inventory_dir(self):
        """A complete inventory: the generated hosts plus links to lab/inventory's groups and group_vars."""
        return os.path.join(self.state, "inventory")

    @property
    def inventory(self):
        return os.path.join(self.inventory_dir, "hosts.yml")

    @property
    def ssh_config(self):
        return os.path.join(self.state, "ssh_config")

    @property
    def known_hosts(self):
        return os.path.join(self.state, "known_hosts")

    def container(self, host):
        return "%s-%s" % (self.name, host)

    def address(self, host):
        return "%s.%d" % (self.prefix, 10 + self.address_order.index(host))

    # ---- host machine preparation
    @staticmethod
    def missing_prerequisites(exists=os.path.exists):
        """The packages whose files `up` needs and does not find, in HOST_PREREQUISITES' order, each once."""
        missing = []
        for path, package in HOST_PREREQUISITES:
            if not exists(path) and package not in missing:
                missing.append(package)
        return missing

    def ensure_host_tools(self):
        if os.geteuid() != 0:
            raise SystemExit("lab: run as root: the lab uses rootful podman and installs its host packages with apt")
        missing = [p for p in HOST_PACKAGES
                   if run(["dpkg-query", "-W", "-f=${Status}", p], check=False, capture=True, quiet=True)
                   .stdout.strip() != "install ok installed"]
        if missing:
            log("installing host packages: " + " ".join(missing))
            run(["apt-get", "update", "-qq"])
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing)
        absent = self.missing_prerequisites()
        if absent:
            raise SystemExit("lab: the host lacks what the lab needs; install the Debian package(s): %s"
                             " (`apt-get install %s`)" % (", ".join(absent), " ".join(absent)))
        # Every systemd container takes inotify instances; the kernel default (128) lets only a few labs boot.
        for key, minimum in INOTIFY_MINIMUMS.items():
            path = "/proc/sys/fs/inotify/" + key
            with open(path) as f:
                if int(f.read()) < minimum:
                    log("raising fs.inotify.%s to %d" % (key, minimum))
                    with open(path, "w") as w:
                        w.write(str(minimum))
        os.makedirs(os.path.dirname(PODMAN_CONF_PATH), exist_ok=True)
        current = open(PODMAN_CONF_PATH).read() if os.path.exists(PODMAN_CONF_PATH) else None
        if current != PODMAN_CONF:
            log("writing " + PODMAN_CONF_PATH)
            with open(PODMAN_CONF_PATH, "w") as f:
                f.write(PODMAN_CONF)

    # ---- images
    @staticmethod
    def recipe_hash(distro):
        h = hashlib.sha256()
        h.update(("%s|%s|%s" % (distro, ",".join(BASE_PACKAGES), IMAGE_SETUP)).encode())
        return h.hexdigest()[:12]

    def image(self, distro=None):
        distro = distro or self.distro
        return "%s:%s-%s" % (IMAGE_REPO, distro, self.recipe_hash(distro))

    def build_images(self, distros):
        # One builder at a time on this machine: two labs coming up together would debootstrap into one folder.
        work = os.path.join(ROOT, ".cache", "lab-images")
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "build.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._build_images(distros)

    def _build_images(self, distros):
        pending = [d for d in distros
                   if run(["podman", "image", "exists", self.image(d)], check=False, quiet=True).returncode]
        for d in distros:
            if d not in pending:
                log("image %s is cached" % self.image(d))
        procs = []
        for d in pending:
            procs.append((d, self._start_debootstrap(d)))
        for d, (proc, rootfs, logf) in procs:
            if proc.wait() != 0:
                raise SystemExit("lab: debootstrap of %s failed, see %s" % (d, logf))
            self._finish_image(d, rootfs)

    def _start_debootstrap(self, distro):
        work = os.path.join(ROOT, ".cache", "lab-images")
        os.makedirs(work, exist_ok=True)
        rootfs = os.path.join(work, "rootfs-" + distro)
        if os.path.exists(rootfs):
            shutil.rmtree(rootfs)
        logf = os.path.join(work, "debootstrap-%s.log" % distro)
        log("building %s (debootstrap, about a minute; log in %s)" % (self.image(distro), logf))
        cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), distro, rootfs, MIRROR]
        return subprocess.Popen(cmd, stdout=open(logf, "w"), stderr=subprocess.STDOUT), rootfs, logf

    def _finish_image(self, distro, rootfs):
        log("configuring the %s root file system" % distro)
        run(["chroot", rootfs, "/bin/bash", "-c", IMAGE_SETUP, "setup", distro], quiet=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["podman", "import", "--change", 'CMD ["/sbin/init"]',
                              "--change", "LABEL %s=image" % LABEL, "-", self.image(distro)],
                             stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            raise SystemExit("lab: importing the %s image failed" % distro)
        shutil.rmtree(rootfs)
        # Drop older builds of this distro's image that the lab made.
        out = run(["podman", "images", "--filter", "label=%s=image" % LABEL, "--format", "{{.Repository}}:{{.Tag}}"],
                  capture=True, quiet=True).stdout.split()
        for ref in out:
            if ref.startswith("%s:%s-" % (IMAGE_REPO, distro)) and ref != self.image(distro):
                run(["podman", "rmi", "-f", ref], check=False)

    # ---- network and containers
    def labelled(self, kind):
        fmt = "{{.Names}}" if kind == "container" else "{{.Name}}"
        cmd = ["podman", "ps", "-a"] if kind == "container" else ["podman", kind, "ls"]
        out = run(cmd + ["--filter", "label=%s=%s" % (LABEL, self.name), "--format", fmt],
                  capture=True, quiet=True).stdout.split()
        return out

    def ensure_network(self):
        if self.name in self.labelled("network"):
            info = json.loads(run(["podman", "network", "inspect", self.name], capture=True, quiet=True).stdout)[0]
            subnets = [s["subnet"] for s in info.get("subnets", [])]
            if self.subnet in subnets:
                return
            run(["podman", "network", "rm", "-f", self.name])
        elif run(["podman", "network", "exists", self.name], check=False, quiet=True).returncode == 0:
            raise SystemExit("lab: a podman network %r exists that the lab did not create; "
                             "set LAB_NAME to another name" % self.name)
        run(["podman", "network", "create", "--subnet", self.subnet, "--label", "%s=%s" % (LABEL, self.name),
             self.name])

    def container_state(self, host):
        res = run(["podman", "inspect", "--type", "container", "--format",
                   "{{.State.Status}} {{.ImageName}} {{index .Config.Labels \"%s\"}} "
                   "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}" % LABEL,
                   self.container(host)], check=False, capture=True, quiet=True)
        if res.returncode != 0:
            return None
        return res.stdout.split()

    def volumes(self, host):
        """{volume name: path in the container} of a host's `volumes` in topology.yml."""
        spec = self.hosts[host] or {}
        return {"%s-%s%s" % (self.name, host, path.replace("/", "-")): path for path in spec.get("volumes", [])}

    def mounted_volumes(self, host):
        res = run(["podman", "inspect", "--type", "container", "--format",
                   "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}}={{.Destination}} {{end}}{{end}}",
                   self.container(host)], check=False, capture=True, quiet=True)
        return dict(pair.split("=", 1) for pair in res.stdout.split())

    def new_volumes(self, host):
        """The host's volumes, empty: a new container starts as blank as a new host."""
        labelled = set(self.labelled("volume"))
        for vol in self.volumes(host):
            if vol in labelled:
                run(["podman", "volume", "rm", "-f", vol], capture=True)
            elif run(["podman", "volume", "exists", vol], check=False, quiet=True).returncode == 0:
                raise SystemExit("lab: a podman volume %r exists that the lab did not create; "
                                 "set LAB_NAME to another name" % vol)
            run(["podman", "volume", "create", "--label", "%s=%s" % (LABEL, self.name), vol], capture=True)

    def start_host(self, host, fresh):
        spec = self.hosts[host] or {}
        name = self.container(host)
        state = self.container_state(host)
        if state is not None:
            if len(state) < 3 or state[2] != self.name:
                raise SystemExit("lab: container %s exists but was not made by this lab" % name)
            current = (state[0] == "running" and state[1] == self.image() and state[3:] == [self.address(host)]
                       and self.mounted_volumes(host) == self.volumes(host))
            if not fresh and current:
                return False
            run(["podman", "rm", "-f", "-t", "2", name], capture=True)
        self.new_volumes(host)
        cmd = ["podman", "run", "-d", "--name", name, "--hostname", host,
               "--label", "%s=%s" % (LABEL, self.name),
               "--network", self.name, "--ip", self.address(host), "--network-alias", host,
               "--systemd=always", "--stop-signal", "SIGRTMIN+3", "--tmpfs", "/tmp:exec,mode=1777",
               "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--cap-add", "SYS_PTRACE",
               # The public name resolves to the entrance on every host, as a DNS record would: Nextcloud's own
               # checks (Administration > Overview) request it through the load balancer.
               "--add-host", "%s:%s" % (self.public_name(), self.entrance())]
        if spec.get("privileged"):
            # A privileged container passes systemd-modules-load's capability condition, but there are no kernel
            # modules to load in a container (Debian 13's fails and leaves the host "degraded"): mask it.
            cmd += ["--privileged", "--device", "/dev/fuse",
                    "-v", "/dev/null:/etc/systemd/system/systemd-modules-load.service:ro"]
        for vol, path in self.volumes(host).items():
            cmd += ["-v", "%s:%s" % (vol, path)]
        cmd += [self.image(), "/sbin/init"]
        run(cmd, capture=True)
        return True

    def ensure_key(self):
        os.makedirs(self.state, mode=0o700, exist_ok=True)
        if not os.path.exists(self.key):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nchalab-%s" % self.name, "-f", self.key])
        return open(self.key + ".pub").read()

    def podman_exec(self, host, script, input_=None, check=True):
        return run(["podman", "exec", "-i", self.container(host), "/bin/sh", "-c", script],
                   input_=input_, capture=True, check=check, quiet=True)

    def wait_booted(self, host, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            res = self.podman_exec(host, "systemctl is-system-running 2>/dev/null; "
                                         "test -s /etc/ssh/ssh_host_ed25519_key.pub && systemctl is-active ssh",
                                   check=False)
            words = res.stdout.split()
            if words and words[0] in ("running", "degraded") and words[-1] == "active":
                return words[0]
            time.sleep(1)
        raise SystemExit("lab: %s did not finish booting within %d s" % (host, timeout))

    def authorize(self, host, pubkey):
        self.podman_exec(host, "install -d -m 0700 -o %s -g %s /home/%s/.ssh && "
                               "cat > /home/%s/.ssh/authorized_keys && "
                               "chown %s: /home/%s/.ssh/authorized_keys && chmod 0600 /home/%s/.ssh/authorized_keys"
                         % ((SSH_USER,) * 7), input_=pubkey)
        return self.podman_exec(host, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]

    def write_access(self, hostkeys, extra_vars):
        with open(self.known_hosts, "w") as f:
            for host, key in hostkeys.items():
                f.write("%s,%s %s %s\n" % (host, self.address(host), key[0], key[1]))
        lines = []
        for host in self.hosts:
            lines += ["Host %s %s" % (host, self.container(host)),
                      "  HostName %s" % self.address(host),
                      "  User %s" % SSH_USER,
                      "  IdentityFile %s" % self.key,
                      "  IdentitiesOnly yes",
                      "  UserKnownHostsFile %s" % self.known_hosts,
                      "  StrictHostKeyChecking yes",
                      "  HostKeyAlias %s" % host,
                      "  ControlMaster auto",
                      "  ControlPath /tmp/%s-ssh-%%C" % self.name,
                      "  ControlPersist 120s",
                      "  LogLevel ERROR", ""]
        with open(self.ssh_config, "w") as f:
            f.write("\n".join(lines))
        groups = {}
        for host, spec in self.hosts.items():
            for g in (spec or {}).get("groups", []):
                groups.setdefault(g, {"hosts": {}})["hosts"][host] = {}
        # The parent groups of groups.yml (postgres: postgres_primary and postgres_standby) in hosts.yml too, so that
        # an inventory of hosts.yml alone (molecule links only it) has them.
        with open(os.path.join(LAB_DIR, "inventory", "groups.yml")) as f:
            structure = ((yaml.safe_load(f) or {}).get("all") or {}).get("children") or {}
        for name, spec in structure.items():
            if (spec or {}).get("children"):
                groups.setdefault(name, {})["children"] = {child: {} for child in spec["children"]}
        inventory = {
            "all": {
                "hosts": {h: {"ansible_host": self.address(h)} for h in self.hosts},
                "vars": {
                    "ansible_user": SSH_USER,
                    "ansible_become": True,
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_ssh_private_key_file": self.key,
                    # known_hosts lists every host by name and address, so delegated tasks verify too.
                    "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes"
                                               % self.known_hosts,
                    "lab_name": self.name,
                    "lab_distro": self.distro,
                    "lab_subnet": self.subnet,
                    # The controller reaches the containers from the network's gateway address.
                    "lab_gateway": str(ipaddress.ip_network(self.subnet)[1]),
                    **({"haproxy_vip": self.vip()} if self.vip() else {}),
                    **extra_vars,
                    **self.storage_vars(),
                },
                "children": groups,
            }
        }
        os.makedirs(self.inventory_dir, exist_ok=True)
        for entry in ("groups.yml", "group_vars"):
            link = os.path.join(self.inventory_dir, entry)
            if not os.path.islink(link):
                os.symlink(os.path.relpath(os.path.join(LAB_DIR, "inventory", entry), self.inventory_dir), link)
        with open(self.inventory, "w") as f:
            f.write("# Written by `python -m lab up` for lab %r; do not edit.\n" % self.name)
            yaml.safe_dump(inventory, f, default_flow_style=False, sort_keys=False)

    def storage_vars(self):
        """The lab's shared storage backend (docs/storage.md): NCHA_STORAGE=glusterfs|s3|nfs|local, by default
        GlusterFS on the web nodes, so that the lab is a cluster whose web nodes see the same files."""
        backend = os.environ.get("NCHA_STORAGE", "") or "glusterfs"
        if backend not in ("local", "glusterfs", "s3", "nfs"):
            raise SystemExit("lab: NCHA_STORAGE must be glusterfs, s3, nfs or local, not %r" % backend)
        web = [h for h, spec in self.hosts.items() if "webservers" in (spec or {}).get("groups", [])]
        if backend == "local" and len(web) > 1:
            log("NCHA_STORAGE=local with %d web nodes (%s): site.yml's preflight will refuse it, since each node "
                "would keep its own files; local storage is for one web node" % (len(web), ", ".join(web)))
        return {"nextcloud_storage_backend": backend}

    def wait_ssh(self, host, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            res = run(["ssh", "-F", self.ssh_config, "-o", "ConnectTimeout=3", host, "sudo", "-n", "true"],
                      check=False, capture=True, quiet=True)
            if res.returncode == 0:
                return
            time.sleep(1)
        raise SystemExit("lab: ssh to %s did not answer within %d s: %s" % (host, timeout, res.stderr.strip()))

    # ---- the Nextcloud release: official when reachable, else the test stand-in on the lab mirror
    @staticmethod
    def official_release_reachable():
        try:
            urllib.request.urlopen(urllib.request.Request(OFFICIAL_RELEASES, method="HEAD"), timeout=5)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable from here"
            return False

    def publish_standin(self):
        """Build the stand-in releases, serve them from the mirror host; return the inventory vars."""
        out = os.path.join(self.state, "mirror")
        builder = os.path.join(ROOT, "tests", "standin", "build.py")
        for version in STANDIN_VERSIONS:
            run([sys.executable, builder, "--version", version, "--out", out], capture=True, quiet=True)
        for variant in ("corrupt-checksum", "bad-signature"):
            run([sys.executable, builder, "--version", STANDIN_DEFAULT, "--out", os.path.join(out, variant),
                 "--key-dir", out, "--" + variant], capture=True, quiet=True)
        name = self.container(MIRROR_HOST)
        self.podman_exec(MIRROR_HOST, "rm -rf /srv/mirror && mkdir -p /srv/mirror")
        run(["podman", "cp", out + "/.", "%s:/srv/mirror/" % name], capture=True, quiet=True)
        self.podman_exec(MIRROR_HOST, "rm -rf /srv/mirror/.gnupg /srv/mirror/*/.gnupg && "
                                      "cat > /etc/systemd/system/lab-mirror.service && systemctl daemon-reload && "
                                      "systemctl enable --now lab-mirror.service && systemctl restart lab-mirror.service",
                         input_=MIRROR_UNIT)
        mode = os.environ.get("LAB_NEXTCLOUD", "auto")
        if mode not in ("auto", "standin"):
            return self.release_archive_vars(mode)
        if mode == "auto" and self.official_release_reachable():
            log("the official Nextcloud download answers: the lab deploys the real release")
            return {}
        if mode == "auto":
            log("!" * 78)
            log("download.nextcloud.com is NOT reachable from here: the lab deploys the TEST STAND-IN")
            log("release %s from http://%s/ (tests/standin), signed with a throw-away test key." % (
                STANDIN_DEFAULT, MIRROR_HOST))
            log("!" * 78)
        with open(os.path.join(out, "test-signing-key.fingerprint")) as f:
            fingerprint = f.read().strip()
        return {
            "lab_standin_versions": list(STANDIN_VERSIONS),
            "lab_standin_mirror": "http://%s" % MIRROR_HOST,
            "nextcloud_version": STANDIN_DEFAULT,
            "nextcloud_archive_url": "http://%s/nextcloud-{{ nextcloud_version }}.tar.bz2" % MIRROR_HOST,
            "nextcloud_gpg_key_url": "http://%s/test-signing-key.asc" % MIRROR_HOST,
            "nextcloud_gpg_fingerprint": fingerprint,
        }

    @staticmethod
    def release_archive_vars(archive, environ=os.environ):
        """LAB_NEXTCLOUD=PATH: a Nextcloud release archive on the controller (downloaded, or carried into an air-gapped
        site), deployed through the role's own air-gapped path: the nodes get the files copied from the controller
        and verify the sha256 and the GPG signature as they would after a download."""
        archive = os.path.abspath(archive)
        here = os.path.dirname(archive)
        files = {
            "archive": archive,
            "checksum (LAB_NEXTCLOUD_SHA256)": os.path.abspath(environ.get("LAB_NEXTCLOUD_SHA256", archive + ".sha256")),
            "signature (LAB_NEXTCLOUD_ASC)": os.path.abspath(environ.get("LAB_NEXTCLOUD_ASC", archive + ".asc")),
            "signing key (LAB_NEXTCLOUD_KEY)": os.path.abspath(environ.get("LAB_NEXTCLOUD_KEY",
                                                                            os.path.join(here, "nextcloud.asc"))),
        }
        absent = ["%s %s" % (what, path) for what, path in files.items() if not os.path.isfile(path)]
        if absent:
            raise SystemExit("lab: LAB_NEXTCLOUD names a release archive, but these files are missing: %s "
                             "(LAB_NEXTCLOUD is `auto`, `standin` or the path of nextcloud-X.Y.Z.tar.bz2)"
                             % "; ".join(absent))
        match = re.match(r"^nextcloud-(\d+\.\d+\.\d+)\.tar\.bz2$", os.path.basename(archive))
        version = environ.get("LAB_NEXTCLOUD_VERSION") or (match.group(1) if match else None)
        if not version:
            raise SystemExit("lab: cannot tell the version of %s from its name (nextcloud-X.Y.Z.tar.bz2); "
                             "set LAB_NEXTCLOUD_VERSION" % archive)
        key = files["signing key (LAB_NEXTCLOUD_KEY)"]
        fingerprint = environ.get("LAB_NEXTCLOUD_FINGERPRINT") or Lab.key_fingerprint(key)
        log("the lab deploys Nextcloud %s from %s (verified on every node against %s, key %s)"
            % (version, archive, os.path.basename(files["checksum (LAB_NEXTCLOUD_SHA256)"]), fingerprint))
        return {
            "nextcloud_version": version,
            "nextcloud_archive_url": archive,
            "nextcloud_checksum_url": files["checksum (LAB_NEXTCLOUD_SHA256)"],
            "nextcloud_signature_url": files["signature (LAB_NEXTCLOUD_ASC)"],
            "nextcloud_gpg_key_url": key,
            "nextcloud_gpg_fingerprint": fingerprint,
        }

    @staticmethod
    def key_fingerprint(key):
        """The fingerprint of the one public key in an armored key file (gpg reads it without importing it)."""
        with tempfile.TemporaryDirectory() as home:
            res = run(["gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", key],
                      capture=True, quiet=True, check=False)
        fprs = []
        seen_pub = False
        for line in res.stdout.splitlines():
            fields = line.split(":")
            if fields[0] == "pub":
                seen_pub = True
            elif fields[0] == "fpr" and seen_pub:
                fprs.append(fields[9])
                seen_pub = False
        if res.returncode != 0 or len(fprs) != 1:
            raise SystemExit("lab: %s must hold exactly one public key (found %d); or set LAB_NEXTCLOUD_FINGERPRINT"
                             % (key, len(fprs)))
        return fprs[0]

    # ---- S3 emulator for the storage tests (issue #8)
    def start_s3(self):
        """moto's S3 server on the mirror host, authentication on; returns the inventory vars of the endpoint."""
        wheels = os.path.join(self.state, "moto-wheels")
        if not os.path.exists(os.path.join(wheels, ".complete")):
            os.makedirs(wheels, exist_ok=True)
            run([sys.executable, "-m", "pip", "download", "-q", "-d", wheels, MOTO_REQUIREMENT], capture=True)
            open(os.path.join(wheels, ".complete"), "w").close()
        self.podman_exec(MIRROR_HOST, "mkdir -p /srv/moto-wheels")
        run(["podman", "cp", wheels + "/.", "%s:/srv/moto-wheels/" % self.container(MIRROR_HOST)],
            capture=True, quiet=True)
        self.podman_exec(MIRROR_HOST, MOTO_SETUP, input_=MOTO_UNIT)
        res = self.podman_exec(MIRROR_HOST, "/opt/moto/bin/python3 -", input_=MOTO_BOOTSTRAP)
        creds = json.loads(res.stdout.strip().splitlines()[-1])
        log("S3 emulator (moto %s) on http://%s:%d with authentication on" % (creds["version"], MIRROR_HOST,
                                                                               MOTO_PORT))
        return {
            "lab_s3_emulator": "moto",
            "nextcloud_s3_hostname": MIRROR_HOST,
            "nextcloud_s3_port": MOTO_PORT,
            "nextcloud_s3_use_ssl": False,
            "nextcloud_s3_use_path_style": True,
            "nextcloud_s3_region": "us-east-1",
            "nextcloud_s3_bucket": "nextcloud-lab",
            "nextcloud_s3_create_bucket": True,
            "nextcloud_ha_s3_key": creds["key"],
            "nextcloud_ha_s3_secret": creds["secret"],
        }

    # ---- commands
    def up(self, fresh=False):
        t0 = time.time()
        self.ensure_host_tools()
        self.build_images([self.distro])
        t_img = time.time()
        self.ensure_network()
        pubkey = self.ensure_key()
        started = [h for h in self.hosts if self.start_host(h, fresh)]
        stale = set(self.labelled("container")) - {self.container(h) for h in self.hosts}
        for name in sorted(stale):
            run(["podman", "rm", "-f", "-t", "2", name], capture=True)
        wanted = {vol for h in self.hosts for vol in self.volumes(h)}
        for vol in sorted(set(self.labelled("volume")) - wanted):
            run(["podman", "volume", "rm", "-f", vol], capture=True)
        hostkeys = {}
        for host in self.hosts:
            self.wait_booted(host)
            hostkeys[host] = self.authorize(host, pubkey)
        extra_vars = self.publish_standin() if MIRROR_HOST in self.hosts else {}
        if MIRROR_HOST in self.hosts and (os.environ.get("NCHA_S3") == "moto"
                                          or os.environ.get("NCHA_STORAGE") == "s3"):
            extra_vars.update(self.start_s3())
        self.write_access(hostkeys, extra_vars)
        for host in self.hosts:
            self.wait_ssh(host)
        log("up: %d hosts (%d started) on %s, distro %s; images %.0f s, total %.0f s"
            % (len(self.hosts), len(started), self.subnet, self.distro, t_img - t0, time.time() - t0))
        log("inventory: -i %s" % os.path.relpath(self.inventory_dir, ROOT))

    @staticmethod
    def copy_checkout(dest):
        """This checkout as git sees it (tracked and new files, not ignored ones, not builds or venvs), with .git."""
        os.makedirs(dest)
        files = run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                    capture=True, quiet=True).stdout
        subprocess.run(["rsync", "-a", "--from0", "--ignore-missing-args", "--files-from=-", ROOT + "/", dest + "/"],
                       input=files, text=True, check=True)
        run(["rsync", "-a", os.path.join(ROOT, ".git"), dest + "/"], quiet=True)

    def blank(self, command):
        """Run `command` in a throw-away container of the lab's base image holding a copy of this checkout.

        Nothing but the image and the checkout is in it, so a test step that needs a package the project's own install
        steps do not name fails here on every machine, however much was installed by hand on this one.
        """
        self.ensure_host_tools()
        self.build_images([self.distro])
        work = tempfile.mkdtemp(prefix="nchalab-blank-")
        name = "%s-blank" % self.name
        try:
            self.copy_checkout(os.path.join(work, "src"))
            run(["podman", "rm", "-f", "--ignore", name], capture=True, quiet=True)
            # What .ci/run does on a fresh machine before it calls make: install make when there is none.
            script = ("set -eu; export DEBIAN_FRONTEND=noninteractive; "
                      "command -v make >/dev/null || { apt-get update -qq && apt-get install -y -qq make >/dev/null; }; "
                      "exec \"$@\"")
            # The container trusts what the host's administrator made this machine trust (a network's TLS proxy):
            # the local CAs, and pip told to use the system's store instead of its own.
            trust = ["-e", "PIP_CERT=%s" % SYSTEM_CA_BUNDLE, "-e", "REQUESTS_CA_BUNDLE=%s" % SYSTEM_CA_BUNDLE]
            if os.path.isdir(LOCAL_CA_DIR) and os.listdir(LOCAL_CA_DIR):
                trust += ["-v", "%s:%s:ro" % (LOCAL_CA_DIR, LOCAL_CA_DIR)]
                script = "update-ca-certificates >/dev/null; " + script
            log("blank container %s (%s): %s" % (name, self.image(), " ".join(command)))
            return run(["podman", "run", "--rm", "--name", name, "--label", "%s=%s" % (LABEL, self.name),
                        "-v", "%s:/src" % os.path.join(work, "src"), "-w", "/src", "-e", "CI=true"] + trust
                       + [self.image(), "/bin/bash", "-c", script, "blank"] + command, check=False).returncode
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def down(self):
        if shutil.which("podman") is None:  # a fresh machine: nothing of the lab can exist yet
            self.write_empty_inventory()
            return
        for name in self.labelled("container"):
            run(["podman", "rm", "-f", "-t", "2", name], capture=True)
        if self.name in self.labelled("network"):
            run(["podman", "network", "rm", "-f", self.name], capture=True)
        for vol in self.labelled("volume"):
            run(["podman", "volume", "rm", "-f", vol], capture=True)
        for path in (self.ssh_config, self.known_hosts):
            if os.path.exists(path):
                os.remove(path)
        self.write_empty_inventory()

    def write_empty_inventory(self):
        """An inventory without hosts stays behind, so that tools pointed at it (molecule) find the file."""
        os.makedirs(self.inventory_dir, exist_ok=True)
        with open(self.inventory, "w") as f:
            f.write("# Lab %r is down.\nall:\n  hosts: {}\n" % self.name)
        log("down: lab %s removed" % self.name)

    def status(self):
        rc = 0
        for host in self.hosts:
            state = self.container_state(host)
            status = state[0] if state else "absent"
            ssh = "-"
            if status == "running" and os.path.exists(self.ssh_config):
                res = run(["ssh", "-F", self.ssh_config, "-o", "ConnectTimeout=3", host, "systemctl",
                           "is-system-running"], check=False, capture=True, quiet=True)
                ssh = "ssh ok, systemd " + res.stdout.strip() if res.stdout.strip() else "ssh failed"
            if status != "running":
                rc = 1
            print("%-8s %-22s %-15s %-10s %s" % (host, self.container(host), self.address(host), status, ssh))
        return rc

    def ansible_env(self):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
        return env

    def deploy(self, extra):
        if not os.path.exists(self.inventory):
            raise SystemExit("lab: no inventory for lab %s; run `python -m lab up` first" % self.name)
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
               "-i", self.inventory_dir,
               os.path.join(ROOT, "site.yml")] + extra
        log("$ " + " ".join(cmd))
        rc = subprocess.call(cmd, cwd=ROOT, env=self.ansible_env())
        if rc == 0 and not {"--check", "-C", "--syntax-check", "--list-tasks", "--list-hosts"} & set(extra):
            print(self.access_text())
        return rc

    @staticmethod
    def public_name():
        """The cloud's public name (nextcloud_ha_domain of the lab's group_vars)."""
        with open(os.path.join(LAB_DIR, "inventory", "group_vars", "all", "lab.yml")) as f:
            return yaml.safe_load(f)["nextcloud_ha_domain"]

    def load_balancers(self):
        return [h for h, spec in self.hosts.items() if "haproxy" in (spec or {}).get("groups", [])]

    def vip(self):
        """The load balancers' floating address (haproxy_vip), when the lab has two or more of them: topology.yml's
        `vip`, a host part in the lab's subnet outside the hosts' range."""
        if len(self.load_balancers()) < 2 or not self.topology.get("vip"):
            return None
        return "%s.%d" % (self.prefix, int(self.topology["vip"]))

    def entrance(self):
        """The address clients reach the cloud at: the floating address, else the first load balancer's."""
        return self.vip() or self.address(self.load_balancers()[0])

    def access_text(self):
        """How to reach the deployed cloud from the controller: printed at the end of `deploy` (and `make lab`)."""
        domain, entrance = self.public_name(), self.entrance()
        web = next(h for h, spec in self.hosts.items() if "webservers" in (spec or {}).get("groups", []))
        prefix = "" if self.name == "nchalab" else "LAB_NAME=%s " % self.name
        return "\n".join([
            "",
            "The lab's Nextcloud is up: https://%s/ (HAProxy at %s; the certificate is self-signed)." % (domain, entrance),
            "  From this machine:  curl -k --resolve %s:443:%s https://%s/status.php" % (domain, entrance, domain),
            "  In a browser here:  add '%s %s' to /etc/hosts" % (entrance, domain),
            "  Admin user: admin; its password is nextcloud_ha_admin_password in lab/inventory/group_vars/all/lab.yml",
            "  (a production inventory keeps it in the vault).",
            "  Two-factor authentication is enforced: WebDAV and the desktop and mobile clients log in with an app",
            "  password, made on a web node with:",
            "    %s.venv/bin/python -m lab ssh %s \"sudo -u www-data OC_PASS='<admin password>' "
            "php /var/www/nextcloud/occ user:auth-tokens:add --password-from-env admin\"" % (prefix, web),
            "  then e.g. curl -k --resolve %s:443:%s -u admin:<app password> "
            "https://%s/remote.php/dav/files/admin/" % (domain, entrance, domain),
            "  More: README.md (The lab). `make status` shows the lab, `make down` removes it.",
            "",
        ])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build images if needed and start the lab")
    p_up.add_argument("--fresh", action="store_true", help="recreate every container")
    sub.add_parser("down", help="remove the lab's containers and network")
    sub.add_parser("status", help="show the lab's hosts")
    p_img = sub.add_parser("images", help="build the base images")
    p_img.add_argument("distros", nargs="*", default=list(DISTROS))
    p_dep = sub.add_parser("deploy", help="run site.yml against the lab")
    p_dep.add_argument("extra", nargs=argparse.REMAINDER, help="extra ansible-playbook arguments")
    p_blank = sub.add_parser("blank", help="run a command in a blank container holding only this checkout")
    p_blank.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (default: the controller-side tests)")
    p_ssh = sub.add_parser("ssh", help="ssh to a lab host")
    p_ssh.add_argument("host")
    p_ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else list(argv)
    # deploy, blank and ssh hand the rest of the line on as it is (`deploy --check -e x=y --tags web`).
    passthrough = []
    if argv and argv[0] in ("deploy", "blank"):
        argv, passthrough = argv[:1], argv[1:]
    elif len(argv) > 1 and argv[0] == "ssh":
        argv, passthrough = argv[:2], argv[2:]
    args = parser.parse_args(argv)
    for name in ("extra", "cmd"):
        if hasattr(args, name):
            setattr(args, name, getattr(args, name) + passthrough)
    lab = Lab()
    if args.command == "up":
        lab.up(fresh=args.fresh)
    elif args.command == "down":
        lab.down()
    elif args.command == "status":
        return lab.status()
    elif args.command == "images":
        lab.ensure_host_tools()
        lab.build_images(args.distros)
    elif args.command == "deploy":
        return lab.deploy(args.extra)
    elif args.command == "blank":
        return lab.blank(args.cmd or ["make", "deps", "venv", "unit", "playbook", "standin", "lint", "sanity"])
    elif args.command == "ssh":
        os.execvp("ssh", ["ssh", "-F", lab.ssh_config, args.host] + args.cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
