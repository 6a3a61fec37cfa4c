"""``imagegate --help`` stays light: building the parser loads no server parts.

Every command module is imported to build the help, so one heavy import at the
top of any of them would make every ``imagegate`` invocation (health checks in a
container, ``--help``, a client call) pay for the gateway, aiohttp and Pillow.
The check runs in a fresh interpreter, as a user's shell would.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# What only serving, emulating or running a client call needs.
HEAVY = (
    "aiohttp",
    "PIL",
    "grpc",
    "imagegate_server.gateway",
    "imagegate_server.upstream",
    "imagegate_server.settings",
    "imagegate_server.emulator.server",
    "imagegate_server.emulator.app",
    "imagegate_server.emulator.render",
    "imagegate_server.client.command",
)


# Runs the console script's code (it imports main and calls it), then lists what the
# interpreter loaded. sys.modules, unlike -X importtime, also sees the command modules
# that cli.py loads through importlib.
_PROBE = """
import sys
from imagegate_server.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(MARKER)
print("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""
MARKER = "--- modules ---"


def _imported_by(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("MARKER", repr(MARKER)), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _, _, listing = done.stdout.partition(MARKER + "\n")
    return done, set(listing.split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["serve", "--help"]])
def test_help_imports_no_server_parts(argv: list[str]) -> None:
    done, modules = _imported_by(*argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: imagegate" in done.stdout
    assert "imagegate_server.cli" in modules  # the parse of -X importtime worked
    assert "imagegate_server.client.parsers" in modules
    assert _heavy(modules) == []


def test_the_check_sees_heavy_imports() -> None:
    # The same parse on a command that does load them, so the test above cannot
    # pass merely because the output format changed.
    _, modules = _imported_by("emulator", "--faults", "nonsense")
    assert "imagegate_server.emulator.faults" in modules
    done, modules = _imported_by("healthcheck", "--target", "127.0.0.1:1", "--timeout", "0.1")
    assert done.returncode == 1
    assert "grpc" in _heavy(modules)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        ([], "the following arguments are required: COMMAND (see imagegate --help)"),
        (
            ["generate"],
            "the following arguments are required: PROMPT (see imagegate generate --help)",
        ),
        (
            ["generate", "p", "-o", "x.png", "--timeout", "0"],
            "argument --timeout: must be more than 0 seconds (see imagegate generate --help)",
        ),
        # Found after parsing, by the command itself: the same one line.
        (
            ["edit", "p", "-o", "x.png"],
            "give at least one IMAGE (or --image-url/--file-id) (see imagegate edit --help)",
        ),
        (
            ["clients", "add"],
            "the following arguments are required: NAME (see imagegate clients add --help)",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_a_hint(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not the usage block: for the client commands it is twenty lines of options above
    # the one line that says what is wrong.
    from imagegate_server.cli import main

    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"imagegate: error: {line}\n"
