"""Entry point of the processes the bench starts: ``python -m imagegate_server.bench.child``.

It raises the open-file limit to the hard limit first (10,000 calls in flight need
more than the usual soft limit of 1,024 sockets), silences the emulator's per-request
access log (it would cost the shared CPUs more than the work under test), then runs
the ordinary ``imagegate`` command line.
"""

from __future__ import annotations

import logging
import resource
import sys

from imagegate_server.cli import main as cli_main


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main() -> int:
    raise_fd_limit()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
