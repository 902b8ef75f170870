"""Smoke checks: the instances are real systemd hosts that see each other."""


def test_systemd_is_pid1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_system_running(host):
    state = host.run("systemctl is-system-running --wait").stdout.strip()
    assert state == "running"


def test_peers_resolve(host):
    for peer in ("redis1", "proxy1"):
        assert host.run(f"getent hosts {peer}").rc == 0
