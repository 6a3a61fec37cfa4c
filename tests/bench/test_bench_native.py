"""The bench's own parts that need no servers: finding the native generators, reading
their reports, the descriptor set ghz loads, and the soak's per-call verdicts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from imagegate_server.bench.descriptors import descriptor_set
from imagegate_server.bench.native import find_tools, parse_ghz, parse_hey_csv
from imagegate_server.bench.soak_verdicts import KINDS, Outcome, attempts_by_prompt, judge

HEY_HEADER = "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,"
HEY_HEADER += "status-code,offset\n"


def _executable(path: Path, text: bytes = b"#!/bin/sh\n") -> Path:
    path.write_bytes(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_tools_are_found_in_the_given_directory_first_with_their_module_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GOBIN", raising=False)
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    # What a Go binary's build info holds (``go version -m`` prints the same).
    _executable(tools_dir / "ghz", b"\x00path\tgithub.com/bojand/ghz/cmd/ghz\n"
                b"mod\tgithub.com/bojand/ghz\tv0.120.0\th1:abc=\n")  # fmt: skip
    found = find_tools(str(tools_dir))
    assert found.ghz is not None and found.ghz.path == str(tools_dir / "ghz")
    assert str(found.ghz) == "ghz v0.120.0"
    assert found.hey is None
    note = found.missing_note()
    assert "hey not found" in note and f"--tools {tools_dir}" in note and "PATH" in note


def test_without_tools_the_note_names_both_and_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GOBIN", raising=False)
    found = find_tools(None)
    assert found.ghz is None and found.hey is None
    assert "ghz and hey not found" in found.missing_note()
    assert ".ci/bench-tools.sh" in found.missing_note()
    # On PATH, with no build info to read: found, version unknown.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "hey")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert str(find_tools(None).hey) == "hey unknown"
    assert find_tools(str(bin_dir), use_native=False).hey is None


def test_hey_csv_gives_successes_errors_by_status_and_requests_left_unanswered() -> None:
    text = HEY_HEADER + (
        "0.0012,0.0003,0.0000,0.0001,0.0008,0.0001,200,0.0001\n"
        "0.0020,0.0000,0.0000,0.0001,0.0018,0.0001,200,0.0015\n"
        "0.0031,0.0000,0.0000,0.0001,0.0029,0.0001,500,0.0040\n"
    )
    load = parse_hey_csv(text, requested=4)
    assert load.latencies_s == [0.0012, 0.0020]
    assert load.errors == {"http 500": 1, "no answer (hey)": 1}
    assert load.elapsed_s == pytest.approx(0.0071)  # the last answer's end


def test_ghz_json_gives_every_call_and_names_codes_as_grpc_does() -> None:
    report = {
        "total": 2_000_000_000,
        "details": [
            {"latency": 1_500_000, "error": "", "status": "OK"},
            {"latency": 2_500_000, "error": "", "status": "OK"},
            {"latency": 900_000, "error": "rpc error", "status": "Unavailable"},
            {"latency": 800_000, "error": "rpc error", "status": "ResourceExhausted"},
        ],
    }
    load = parse_ghz(json.dumps(report))
    assert load.latencies_s == [0.0015, 0.0025]
    assert load.errors == {"grpc UNAVAILABLE": 1, "grpc RESOURCE_EXHAUSTED": 1}
    assert load.elapsed_s == 2.0 and load.throughput == 1.0


def test_the_descriptor_set_holds_the_service_its_imports_and_health(tmp_path: Path) -> None:
    out = tmp_path / "imagegate.binpb"
    source = descriptor_set(out)
    assert source.startswith("descriptors from")
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    names = [f.name for f in files]
    assert "imagegate/v1/images_service.proto" in names
    assert "imagegate/v1/params.proto" in names
    assert "grpc_health/v1/health.proto" in names  # as grpcio-health-checking names it
    services = {f"{f.package}.{s.name}" for f in files for s in f.service}
    assert {"imagegate.v1.ImagesService", "grpc.health.v1.Health"} <= services


def _journal(*attempts: tuple[str, str | None]) -> list[dict[str, object]]:
    entries = []
    for seq, (prompt, fault) in enumerate(attempts, 1):
        events = [{"kind": "fault", "detail": f"{fault};first=1;key=k{seq}"}] if fault else []
        entries.append(
            {
                "seq": seq,
                "path": "/v1/images/generations",
                "json": {"prompt": prompt},
                "events": events,
            }
        )
    return entries


def test_the_soak_judges_each_call_by_its_upstream_attempts() -> None:
    retry, final = KINDS[0], KINDS[2]  # 429 retry-after-ms; 500 (UNAVAILABLE)
    journal = _journal(
        ("soak t 0", retry.text),
        ("soak t 1", final.text),
        ("soak t 0", None),
        ("soak t 2", None),
        ("soak t 3", None),
        ("other run 0", final.text),  # someone else's call: not counted
    )
    attempts = attempts_by_prompt(journal, "t")
    assert attempts["soak t 0"] == [[retry.label], []]
    assert "other run 0" not in attempts
    outcomes = [
        Outcome("soak t 0", "OK", 0.01, identity_ok=True),
        Outcome("soak t 1", "UNAVAILABLE", 0.01),
        Outcome("soak t 2", "OK", 0.01, identity_ok=True),
        Outcome("soak t 3", "OK", 0.01, identity_ok=False),  # someone else's image
    ]
    tally = judge(outcomes, attempts)
    assert (tally.retried_ok, tally.mapped_ok, tally.wrong_image) == (1, 1, 1)
    assert (tally.retried_failed, tally.mapped_wrong, tally.clean_failed) == (0, 0, 0)

    # The same attempts, answered wrongly: each is caught.
    wrong = [
        Outcome("soak t 0", "RESOURCE_EXHAUSTED", 0.01),  # the retried 429 did not succeed
        Outcome("soak t 1", "INTERNAL", 0.01),  # a 500 must be UNAVAILABLE
        Outcome("soak t 2", "UNAVAILABLE", 0.01),  # no fault, yet it failed
    ]
    tally = judge(wrong, attempts)
    assert (tally.retried_failed, tally.mapped_wrong, tally.clean_failed) == (1, 1, 1)
    assert len(tally.unexplained) == 3
