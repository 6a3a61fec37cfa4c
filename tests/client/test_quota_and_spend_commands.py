"""Seeing spend without code: the cost in a call's summary, ``imagegate quota`` for the
caller, ``imagegate clients spend`` for the operator (from the local database on the
gateway's host, or through AdminService from anywhere).

One real ``imagegate serve`` (its embedded emulator, a clients file made with
``imagegate clients add``) and the CLI as subprocesses, as users run them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.serve import MODULE_COMMAND, clean_env, serve

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Gateway:
    target: str
    workdir: Path
    env: dict[str, str]
    team: str
    """The token of team-a: $5.00 a day, 10 images per minute, 3 at once; it made one
    256x256 dall-e-2 image ($0.016)."""
    operator: str
    generated: subprocess.CompletedProcess[str]


def cli(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODULE_COMMAND, *argv],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("serve")
    env = clean_env(IMAGEGATE_CLIENTS_FILE=str(workdir / "clients.toml"))
    team = cli(
        "clients", "add", "team-a", "--daily-budget-usd", "5", "--images-per-minute", "10",
        "--max-concurrent", "3", cwd=workdir, env=env,
    ).stdout.strip()  # fmt: skip
    operator = cli("clients", "add", "ops", "--operator", cwd=workdir, env=env).stdout.strip()
    assert team and operator
    with serve(["--port", "0"], env, workdir) as server:
        target = f"127.0.0.1:{server.wait_serving()}"
        generated = cli(
            "generate", "a fox", "--model", "dall-e-2", "--size", "256x256", "-o", "fox.png",
            "--target", target, "--token", team, cwd=workdir,
        )  # fmt: skip
        assert generated.returncode == 0, generated.stderr
        yield Gateway(target, workdir, env, team, operator, generated)
        server.terminate()
        server.wait(30)


def test_the_call_summary_shows_what_the_call_cost(gateway: Gateway) -> None:
    assert "cost: $0.016 (per image; prices of " in gateway.generated.stderr


def test_quota_shows_the_callers_limits_and_spend(gateway: Gateway, tmp_path: Path) -> None:
    done = cli("quota", "--target", gateway.target, "--token", gateway.team, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert lines[0] == "client team-a"
    assert lines[1].startswith("images_per_minute 9 of 10 left, 10 per minute; all 10 again in ")
    assert lines[2] == "concurrent calls 0 of 3 in use"
    tomorrow = (int(datetime.now(UTC).timestamp()) // 86400 + 1) * 86400
    day_ends = datetime.fromtimestamp(tomorrow, UTC)
    assert lines[3] == (
        "daily_budget $4.984 left of $5.00 per UTC day ($0.016 spent, $0.00 reserved; "
        f"starts afresh {day_ends:%Y-%m-%d} 00:00 UTC)"
    )
    assert lines[4] == (
        "spent $0.016 today, $0.016 this month (UTC), $0.00 reserved by calls in flight"
    )
    # Without an upstreams file every call went to the one upstream, `default`.
    assert lines[5] == "on default $0.016 today, $0.016 this month"
    assert lines[6:10] == [
        "models all",
        "operations generation, edit, variation",
        "images per call any n",
        "stored results 0 B in 0 images of 1024.0 MiB, kept 24 h",
    ]

    as_json = cli(
        "quota", "--json", "--target", gateway.target, "--token", gateway.team, cwd=tmp_path
    )
    answer = json.loads(as_json.stdout)
    assert answer["client"] == "team-a"
    assert answer["spent_today_usd_micros"] == "16000"  # int64 in proto3 JSON: a string
    assert answer["budgets"][0]["remaining_usd_micros"] == "4984000"
    assert answer["upstream_spend"] == [
        {
            "upstream": "default",
            "spent_today_usd_micros": "16000",
            "spent_this_month_usd_micros": "16000",
        }
    ]


def test_quota_with_a_wrong_token_fails_with_one_line_and_never_shows_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    wrong = gateway.team[:-4] + "AAAA"
    done = cli("quota", "--target", gateway.target, "--token", wrong, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "UNAUTHENTICATED" in done.stderr
    assert wrong not in done.stderr


def test_clients_spend_reads_the_local_database_on_the_gateways_host(gateway: Gateway) -> None:
    done = cli("clients", "spend", cwd=gateway.workdir, env=gateway.env)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0] == ["client", "today", "this", "month", "reserved", "in", "flight"]
    assert rows[1] == ["team-a", "$0.016", "of", "$5.00", "$0.016", "$0.00", "0"]
    assert done.stdout.splitlines()[2].startswith("1 client: $0.016 on ")
    assert f"from local {gateway.workdir / 'data' / 'imagegate.sqlite3'}" in done.stdout

    listed = cli("clients", "spend", "--json", cwd=gateway.workdir, env=gateway.env)
    as_json = json.loads(listed.stdout)
    assert as_json["clients"] == [
        {
            "client": "team-a",
            "spent_today_usd_micros": 16_000,
            "spent_this_month_usd_micros": 16_000,
            "reserved_usd_micros": 0,
            "calls_in_flight": 0,
            "daily_budget_usd_micros": 5_000_000,
            "monthly_budget_usd_micros": None,
        }
    ]
    assert as_json["truncated"] is False


def test_clients_spend_through_the_gateway_needs_an_operator(
    gateway: Gateway, tmp_path: Path
) -> None:
    remote = ("clients", "spend", "--target", gateway.target)
    done = cli(*remote, "--token", gateway.operator, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == [
        "team-a", "$0.016", "of", "$5.00", "$0.016", "$0.00", "0",
    ]  # fmt: skip
    assert f"from gateway {gateway.target} (local store)" in done.stdout

    refused = cli(*remote, "--token", gateway.team, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("imagegate clients: PERMISSION_DENIED: client 'team-a'")
    assert gateway.team not in refused.stderr


def test_clients_spend_says_where_it_looked_when_there_is_no_database(tmp_path: Path) -> None:
    done = cli("clients", "spend", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"imagegate clients: no limits database at '{tmp_path / 'data' / 'imagegate.sqlite3'}': "
        "run this where the gateway runs, with its IMAGEGATE_DATA_DIR, or ask the gateway "
        "with --target\n"
    )
    assert not (tmp_path / "data").exists()
