"""`python -m guard_proxy` is the `guard-proxy` command."""

import sys

from guard_proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
