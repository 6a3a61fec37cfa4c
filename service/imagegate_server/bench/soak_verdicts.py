"""The soak's faults, and each call judged against what its upstream attempts took.

The emulator's journal tells, per prompt, which attempts a call made and which
faults each took (:func:`attempts_by_prompt`); :func:`judge` then holds every call
to the README's error table: only retryable faults (or none) must end in success
after one attempt more than it had faults; a non-retryable fault must reach the
caller with its code, and its attempt must be the last.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

GENERATIONS = "/v1/images/generations"


@dataclass(frozen=True)
class FaultKind:
    label: str
    text: str
    """The emulator's fault item, without ``first=`` and ``key=``."""
    code: str
    """What the caller gets: ``OK`` for a retried fault, else the gRPC code name."""

    @property
    def retried(self) -> bool:
        return self.code == "OK"


# The README's error table: OpenAI 5xx and a reset are UNAVAILABLE, a content policy
# refusal INVALID_ARGUMENT, insufficient_quota RESOURCE_EXHAUSTED (never retried).
KINDS = (
    FaultKind("429 retry-after-ms", "429;retry-after-ms=20", "OK"),
    FaultKind("503 x-should-retry", "503;x-should-retry=true", "OK"),
    FaultKind("500", "500", "UNAVAILABLE"),
    FaultKind("moderation", "moderation", "INVALID_ARGUMENT"),
    FaultKind("reset", "reset;after=64", "UNAVAILABLE"),
    FaultKind("quota", "quota", "RESOURCE_EXHAUSTED"),
)


@dataclass
class Outcome:
    prompt: str
    code: str
    latency_s: float
    identity_ok: bool | None = None
    """None when the call failed (no image)."""


@dataclass
class Tally:
    """The soak's verdicts, call by call."""

    wrong_image: int = 0
    retried_ok: int = 0
    retried_failed: int = 0
    mapped_ok: int = 0
    mapped_wrong: int = 0
    clean_failed: int = 0
    unexplained: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)


def attempts_by_prompt(journal: list[dict[str, Any]], tag: str) -> dict[str, list[list[str]]]:
    """Per soak prompt, in arrival order, each upstream attempt's fault labels."""
    labels = {kind.text: kind.label for kind in KINDS}
    attempts: dict[str, list[list[str]]] = {}
    prefix = f"soak {tag} "
    for entry in sorted(journal, key=lambda e: int(e.get("seq", 0))):
        body = entry.get("json")
        if entry.get("path") != GENERATIONS or not isinstance(body, dict):
            continue
        prompt = str(body.get("prompt", ""))
        if not prompt.startswith(prefix):
            continue
        applied: list[str] = []
        for event in entry.get("events") or ():
            if event.get("kind") == "fault":
                for item in str(event.get("detail", "")).split(", "):
                    base = item.split(";first=")[0]
                    applied.append(labels.get(base, base))
        attempts.setdefault(prompt, []).append(applied)
    return attempts


def judge(outcomes: list[Outcome], attempts: dict[str, list[list[str]]]) -> Tally:
    """Each call against what its upstream attempts went through."""
    by_label = {kind.label: kind for kind in KINDS}
    tally = Tally()
    for outcome in outcomes:
        if outcome.identity_ok is False:
            tally.wrong_image += 1
        tried = attempts.get(outcome.prompt, [])
        kinds = [by_label[label] for faults in tried for label in faults if label in by_label]
        tally.faults.update(kind.label for kind in kinds)
        final = [kind for kind in kinds if not kind.retried]
        if final:
            last_faulted = any(not by_label[label].retried for label in tried[-1])
            if outcome.code == final[0].code and len(final) == 1 and last_faulted:
                tally.mapped_ok += 1
            else:
                tally.mapped_wrong += 1
                tally.unexplained.append(f"{outcome.prompt}: {outcome.code} after {tried}")
        elif kinds:
            if outcome.code == "OK" and len(tried) == len(kinds) + 1:
                tally.retried_ok += len(kinds)
            else:
                tally.retried_failed += len(kinds)
                tally.unexplained.append(f"{outcome.prompt}: {outcome.code} after {tried}")
        elif outcome.code != "OK" or len(tried) != 1:
            tally.clean_failed += 1
            tally.unexplained.append(f"{outcome.prompt}: {outcome.code} after {tried}")
    return tally
