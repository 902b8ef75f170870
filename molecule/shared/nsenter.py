"""testinfra's ``podman://`` hosts through nsenter instead of ``podman exec``.

Importing this module (gplib does) makes every ``podman://NAME`` host run its commands in
the namespaces of the container's PID 1 (mount, UTS, IPC, network, PID; its root and
working directory), with the environment ``podman exec`` gives: the same commands, the same
view of the host, without starting podman, conmon and runc for each of the hundreds of
commands a verify runs. Like the Ansible connection plugin in plugins/connection/podman.py.
A ``podman://user@NAME`` host still goes through ``podman exec -u``.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from testinfra.backend import base
from testinfra.backend.podman import PodmanBackend

ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "container=podman",
)
_PIDS: dict[str, str] = {}


def container_pid(name: str) -> str:
    """PID (on this machine) of the running container's PID 1; looked up once per start."""
    pid = _PIDS.get(name, "")
    if pid and os.path.exists(f"/proc/{pid}"):
        return pid
    out = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.Pid}}", name],
        capture_output=True, text=True, check=False, timeout=120,
    )
    pid = out.stdout.strip()
    if out.returncode != 0 or not pid.isdigit() or pid == "0":
        raise RuntimeError(f"container {name} is not running: {out.stderr.strip()}")
    _PIDS[name] = pid
    return pid


def _run(self: PodmanBackend, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
    cmd = self.get_command(command, *args)
    if self.user is not None:
        out = self.run_local("podman exec -u %s %s /bin/sh -c %s", self.user, self.name, cmd)
    else:
        out = self.run_local(
            "nsenter -t %s -m -u -i -n -p -r -w -- /usr/bin/env -i %s %s %s /bin/sh -c %s",
            container_pid(self.name), *ENV, cmd,
        )
    out.command = self.encode(cmd)
    return out


PodmanBackend.run = _run  # type: ignore[method-assign]
