# Molecule-only connection plugin: containers.podman.podman, but each command runs in
# the container's namespaces through nsenter instead of `podman exec`.
#
# `podman exec` starts podman, conmon and runc for every command (0.3-1 s each on these
# 2 cores, more under load); a converge runs several hundred. nsenter joins the running
# container's mount, UTS, IPC, network and PID namespaces of its PID 1 (root and
# working directory too) in milliseconds. Modules are piped in (pipelining), files are
# copied with `cat` through the same path. Like `podman exec` as root it runs as root in
# the container; unlike it, with root's capabilities on the machine that runs the tests
# (the test hosts are throw-away containers on it). Molecule's inventory names the
# short connection "podman", which resolves to this file through
# ANSIBLE_CONNECTION_PLUGINS (set in molecule.yml). molecule/shared/nsenter.py is the
# same for testinfra.
# GNU General Public License v3.0+ (like the plugin it extends).

from __future__ import annotations

DOCUMENTATION = """
    author: guard-proxy project (wraps containers.podman.podman by Tomas Tomecek)
    name: podman
    short_description: run in a podman container's namespaces with nsenter (pipelining)
    description:
        - Run commands or put/fetch files to an existing container using nsenter into its namespaces.
    options:
      remote_addr:
        description:
          - The ID of the container you want to access.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description:
            - Not supported (commands run as root in the container, like podman exec's default).
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description:
          - Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description:
          - Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
"""

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as _PodmanConnection,
)

# The environment `podman exec` gives a command in these images (nothing of the caller's).
_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "container=podman",
)


class Connection(_PodmanConnection):
    """Commands and files through nsenter into the container's PID 1 namespaces."""

    transport = "podman"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pid = ""

    def _container_pid(self) -> str:
        if self._pid and os.path.exists(f"/proc/{self._pid}"):
            return self._pid
        name = self._container_id
        out = subprocess.run(
            [self.get_option("podman_executable"), "inspect", "--format", "{{.State.Pid}}", name],
            capture_output=True, text=True, check=False,
        )
        pid = out.stdout.strip()
        if out.returncode != 0 or not pid.isdigit() or pid == "0":
            raise AnsibleConnectionFailure(f"container {name} is not running: {out.stderr.strip()}")
        self._pid = pid
        return pid

    def _nsenter(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", self._container_pid(), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
                "--", "/usr/bin/env", "-i", *_ENV, *argv]

    def _run(self, argv: list[str], in_data=None, stdin=None) -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(
            self._nsenter(argv),
            stdin=stdin if stdin is not None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = proc.communicate(in_data if stdin is None else None)
        return proc.returncode, stdout, stderr

    def _connect(self):
        ConnectionBase._connect(self)
        self._container_pid()
        self._connected = True
        return self

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        argv = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        return self._run(argv, in_data=to_bytes(in_data) if in_data is not None else b"")

    @ensure_connect
    def put_file(self, in_path, out_path):
        ConnectionBase.put_file(self, in_path, out_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src:
            rc, _, err = self._run(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=src)
        if rc != 0:
            raise AnsibleError(f"failed to copy {in_path} to {out_path}: {to_native(err)}")

    @ensure_connect
    def fetch_file(self, in_path, out_path):
        ConnectionBase.fetch_file(self, in_path, out_path)
        rc, data, err = self._run(["/bin/cat", in_path])
        if rc != 0:
            raise AnsibleError(f"failed to fetch {in_path}: {to_native(err)}")
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as dst:
            dst.write(data)

    def close(self):
        self._pid = ""
        self._connected = False
