"""chart.png, drawn with Pillow (already a dependency, so the bench needs no plotting
library): per scenario and case, p50 latency and throughput of the gateway next to
its baseline (direct; for the tenancy scenario, the gateway without authentication
and limits, beside one bar per limiter backend), each pair on its own scale, with the
values written out.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from imagegate_server.bench.model import Row, ScenarioResult

WIDTH, ROW_H, TOP, LABEL_W, BAR_W = 1100, 46, 70, 300, 330
COLOURS = {
    "gateway": (46, 110, 190),
    "direct": (160, 160, 160),
    "memory": (150, 90, 180),
    "local": (40, 160, 160),
    "redis": (214, 120, 40),
    "floor": (90, 170, 90),
    "stored": (200, 60, 90),
    "stored s3": (230, 150, 170),
    "unary": (46, 110, 190),
    "job": (200, 80, 80),
    "rpc": (90, 170, 90),
    "queued": (120, 120, 60),
    "wake": (60, 140, 100),
}


def _pairs(results: list[ScenarioResult]) -> list[tuple[str, dict[str, Row]]]:
    groups: dict[str, dict[str, Row]] = {}
    for scenario in results:
        for row in scenario.rows:
            key = f"{row.scenario} {row.case} c={row.concurrency}"
            groups.setdefault(key, {})[row.path] = row
    return list(groups.items())


def _bars(
    draw: ImageDraw.ImageDraw,
    x: int,
    y: int,
    values: dict[str, float],
    unit: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    top = max(values.values(), default=0.0) or 1.0
    for i, (path, value) in enumerate(values.items()):
        length = int(BAR_W * 0.75 * value / top)
        y0 = y + i * 18
        draw.rectangle((x, y0, x + max(length, 1), y0 + 14), fill=COLOURS[path])
        draw.text((x + length + 6, y0 + 1), f"{value:,.1f} {unit}", fill="black", font=font)


def draw_chart(results: list[ScenarioResult], path: Path, title: str) -> None:
    pairs = _pairs(results)
    height = TOP + ROW_H * len(pairs) + 40
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((10, 10), title, fill="black", font=font)
    # The legend on a line of its own: beside the column headings its fourth entry
    # ran into the first heading.
    for i, (path_name, colour) in enumerate(COLOURS.items()):
        x = 10 + 100 * i
        draw.rectangle((x, 28, x + 12, 40), fill=colour)
        draw.text((x + 18, 28), path_name, fill="black", font=font)
    draw.text((LABEL_W, 50), "p50 latency (shorter is better)", fill="black", font=font)
    draw.text((LABEL_W + BAR_W + 60, 50), "throughput (longer is better)", fill="black", font=font)
    for index, (label, rows) in enumerate(pairs):
        y = TOP + index * ROW_H
        draw.line((10, y - 4, WIDTH - 10, y - 4), fill=(225, 225, 225))
        draw.text((10, y + 10), label, fill="black", font=font)
        latency = {p: r.p50_ms for p, r in rows.items()}
        throughput = {p: r.throughput for p, r in rows.items()}
        _bars(draw, LABEL_W, y, latency, "ms", font)
        _bars(draw, LABEL_W + BAR_W + 60, y, throughput, "calls/s", font)
    image.save(path, "PNG", optimize=True)
