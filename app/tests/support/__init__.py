"""The old import path of the test harness, now the installed ``guard_proxy_testing``.

Kept only for ``proxy/test_serve.py``, ``proxy/test_systemd.py`` and ``proxy/test_workers.py``
(rewritten on another branch at the time of the move): each module here re-exports its
``guard_proxy_testing`` namesake, so both paths name the same objects. Delete this package
once those three import ``guard_proxy_testing`` too.
"""
