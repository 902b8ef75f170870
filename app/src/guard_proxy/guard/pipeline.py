"""The :class:`Guard`: the scanners of both directions, built once from settings."""

from __future__ import annotations

from guard_proxy.config.settings import GuardSettings
from guard_proxy.exceptions import ScannerError, ScannerLoadError
from guard_proxy.guard.hashing import config_hash
from guard_proxy.guard.offload import is_inline
from guard_proxy.guard.plugins import PluginScanner, describe, load_plugin
from guard_proxy.guard.scanners import BUILTIN, build_scanners
from guard_proxy.guard.stream import StreamGuard, call_scanner
from guard_proxy.guard.types import ALLOWED, Direction, Finding, Scanner, Verdict


class Guard:
    """Scans texts of one direction with every scanner that is on for it.

    Build it with :meth:`from_settings`, which raises :class:`ScannerLoadError` for anything
    that cannot be loaded. ``scan`` and ``stream`` are safe to call concurrently.
    """

    __slots__ = ("_hashes", "_inline", "_offloaded", "_scanners", "enabled", "fail_mode")

    def __init__(
        self,
        *,
        enabled: bool,
        fail_mode: str,
        scanners: dict[Direction, tuple[Scanner, ...]],
        hashes: dict[Direction, str],
        offloaded: tuple[Scanner, ...] = (),
    ) -> None:
        self.enabled = enabled
        self.fail_mode = fail_mode
        self._scanners = scanners
        self._hashes = hashes
        off = {id(s) for s in offloaded}
        self._inline = {d: tuple(s for s in ss if id(s) not in off) for d, ss in scanners.items()}
        self._offloaded = {d: tuple(s for s in ss if id(s) in off) for d, ss in scanners.items()}

    @classmethod
    def from_settings(cls, settings: GuardSettings) -> Guard:
        """Build every scanner of both directions and load every plug-in."""
        plugins: list[PluginScanner] = []
        seen: set[str] = set(BUILTIN)
        for i, plugin_settings in enumerate(settings.plugins):
            plugin = load_plugin(i, plugin_settings)
            if plugin.name in seen:
                raise ScannerLoadError(
                    f"{describe(i, plugin_settings)}: the name {plugin.name!r} is already taken"
                )
            seen.add(plugin.name)
            plugins.append(plugin)
        scanners: dict[Direction, tuple[Scanner, ...]] = {}
        hashes: dict[Direction, str] = {}
        for direction in Direction:
            mine = [
                (p, ps)
                for p, ps in zip(plugins, settings.plugins, strict=True)
                if direction.value in ps.directions
            ]
            built = build_scanners(direction.value, getattr(settings, direction.value))
            scanners[direction] = (*built, *(p for p, _ in mine))
            described = [(p.name, p.path, ps.options, p.version) for p, ps in mine]
            hashes[direction] = config_hash(settings, direction.value, described)
        return cls(
            enabled=settings.enabled,
            fail_mode=settings.fail_mode,
            scanners=scanners,
            hashes=hashes,
            # Built-ins run inline; a plug-in only when it says so (guard.offload.is_inline).
            offloaded=tuple(p for p in plugins if not is_inline(p)),
        )

    def config_hash(self, direction: Direction | str) -> str:
        """A stable hex digest of everything that decides this direction's verdicts."""
        return self._hashes[Direction(direction)]

    def scanners(self, direction: Direction | str) -> tuple[Scanner, ...]:
        """The scanners that run in ``direction`` (none when the guard is off)."""
        return self._scanners[Direction(direction)] if self.enabled else ()

    def inline(self, direction: Direction | str) -> tuple[Scanner, ...]:
        """The scanners of ``direction`` that run on the event loop (cheap ones)."""
        return self._inline[Direction(direction)] if self.enabled else ()

    def offloaded(self, direction: Direction | str) -> tuple[Scanner, ...]:
        """The scanners of ``direction`` that run in model threads (:mod:`.offload`)."""
        return self._offloaded[Direction(direction)] if self.enabled else ()

    def active(self, direction: Direction | str) -> bool:
        """Whether any scanner runs in ``direction``."""
        return bool(self.scanners(direction))

    def scan(self, direction: Direction | str, text: str) -> Verdict:
        """Run every scanner on ``text`` and collect all findings.

        A scanner that raises becomes :class:`ScannerError` (its name, no text).
        """
        findings: list[Finding] = []
        for s in self.scanners(direction):
            f = call_scanner(s, s.scan, text)
            if f is not None:
                findings.append(f)
        return Verdict(False, tuple(findings)) if findings else ALLOWED

    @staticmethod
    def scan_each(
        scanners: tuple[Scanner, ...], text: str
    ) -> tuple[list[Finding], list[ScannerError]]:
        """Run each of ``scanners`` on ``text``: the findings, and the errors of those that
        raised (one scanner's failure does not stop the others)."""
        findings: list[Finding] = []
        errors: list[ScannerError] = []
        for s in scanners:
            try:
                f = call_scanner(s, s.scan, text)
            except ScannerError as exc:
                errors.append(exc)
                continue
            if f is not None:
                findings.append(f)
        return findings, errors

    def stream(self, direction: Direction | str) -> StreamGuard:
        """A new :class:`StreamGuard` for one streamed text of ``direction``."""
        return StreamGuard(self.scanners(direction))
