# Molecule-only connection plugin: containers.podman.podman with pipelining.
#
# The collection's plugin runs every task as 6 `podman exec` calls (mkdir,
# interpreter probe, chmod, run, rm) because `podman exec` without -i drops
# stdin, so it declares pipelining unsupported. Passing -i when there is
# input makes pipelining work: one exec per task, converge ~3x faster here.
# Molecule's inventory names the short connection "podman", which resolves
# to this file through ANSIBLE_CONNECTION_PLUGINS (set in molecule.yml).
# GNU General Public License v3.0+ (like the plugin it extends).

from __future__ import annotations

DOCUMENTATION = """
    author: guard-proxy project (wraps containers.podman.podman by Tomas Tomecek)
    name: podman
    short_description: containers.podman.podman with pipelining (podman exec -i)
    description:
        - Run commands or put/fetch files to an existing container using podman tool.
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
            - User specified via name or UID which is used to execute commands inside the container. If you
              specify the user via UID, you must set C(ANSIBLE_REMOTE_TMP) to a path that exits
               inside the container and is writable by Ansible.
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

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as _PodmanConnection,
)


class Connection(_PodmanConnection):
    """podman exec with stdin attached when Ansible pipes a module in."""

    transport = "podman"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        # Skip the parent's exec_command (no -i); keep ConnectionBase's checks.
        super(_PodmanConnection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec"]
        if in_data is not None:
            args.append("-i")
        if self.user:
            args.extend(("--user", self.user))
        cmd_args = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        return self._podman(args, cmd_args, in_data)
