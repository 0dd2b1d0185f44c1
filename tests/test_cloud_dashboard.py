"""The dashboard in a real headless Chromium (Debian ``chromium`` driven by Playwright): sign-in, seeded rows,
per-camera table, stacked timeline, unusual panel, live update when a clip is posted, and no request leaves
the service (the page works offline). Skipped with the reason when Chromium or Playwright is missing.

``TINYACT_DASHBOARD_SCREENSHOT=docs/img/dashboard.png`` also saves the screenshot there.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, toy_latents
from tests.browser import browser_page, expect, needs_browser
from tinyact.cloud.db.engine import make_engine
from tinyact.cloud.server import serve_in_background
from tinyact.cloud.store import CameraIds, NewPrediction, store_predictions

LABELS = ("walking", "running", "waving", "jumping", "sitting", "falling")
DIM = 32

pytestmark = needs_browser


def seed(db_url: str, device_ids: dict[str, int], now: datetime) -> int:
    """A week of history for two devices (cam-a mostly walking; a fall and a burst of running just now)."""
    engine = make_engine(db_url)
    ids = CameraIds()
    rng = np.random.default_rng(0)
    n = 0

    def put(device: str, camera: str, label: str, at: datetime) -> None:
        nonlocal n
        score = float(rng.uniform(0.55, 0.99))
        top5 = [{"label": label, "score": round(score, 4)}] + [
            {"label": other, "score": round((1 - score) / 4, 4)} for other in LABELS if other != label
        ][:4]
        store_predictions(engine, device_ids[device], device,
                          [NewPrediction(uuid.uuid4(), camera, at, label, score, top5, "seed-1")], ids)
        n += 1

    for hour in range(1, 24 * 7, 3):
        put("edge-1", "entrance", "walking", now - timedelta(hours=hour))
        put("edge-1", "hall", ["walking", "sitting", "waving"][(hour // 3) % 3], now - timedelta(hours=hour, minutes=20))
        put("edge-2", "yard", ["running", "jumping", "walking"][(hour // 3) % 3], now - timedelta(hours=hour, minutes=40))
    put("edge-1", "entrance", "falling", now - timedelta(minutes=4))
    for minute in range(6):
        put("edge-2", "yard", "running", now - timedelta(minutes=minute + 1))
    engine.dispose()
    return n


def test_dashboard_in_chromium(tmp_path):
    model = fit_toy_classifier(tmp_path / "m", labels=LABELS, latent_dim=DIM, per_class=10).path
    with serve_in_background(model, tmp_path / "c.db", admin_token="adm-token", viewer_token="view-token") as cloud:
        keys = {name: cloud.add_device(name) for name in ("edge-1", "edge-2")}
        seeded = seed(cloud.db_url, {"edge-1": 1, "edge-2": 2}, datetime.now(UTC))
        requests: list[str] = []
        errors: list[str] = []
        with browser_page(requests, errors) as page:
            page.goto(cloud.url + "/")
            # A wrong token is refused on the sign-in form.
            page.fill("#token", "nope")
            page.click("#login button[type=submit]")
            expect(page.locator("#login-error")).to_contain_text("not accepted")
            errors.clear()  # the browser logs that refused request (401) as an error
            page.fill("#token", "view-token")
            page.click("#login button[type=submit]")

            latest = page.locator("#latest tbody tr")
            expect(latest).to_have_count(50)  # the newest 50 of the seeded rows
            assert seeded > 50
            expect(page.locator("#latest tbody tr").first).to_contain_text("running")
            cameras = page.locator("#cameras tbody tr")
            expect(cameras).to_have_count(3)
            expect(page.locator('#cameras tr[data-camera="edge-1/entrance"]')).to_contain_text("falling")
            expect(page.locator("#timeline canvas").first).to_be_visible()
            legend = page.locator("#timeline .u-legend").inner_text()
            assert "walking" in legend and "running" in legend
            expect(page.locator("#unusual")).to_contain_text("falling is rare on edge-1/entrance")
            expect(page.locator("#unusual")).to_contain_text("running on edge-2/yard")
            expect(page.locator("#export")).to_be_hidden()  # viewer: no export buttons
            expect(page.locator("#status")).to_contain_text("live")

            # A clip posted by a device shows up without a reload.
            x = toy_latents([3], DIM, len(LABELS), noise=0.3)[0]
            response = httpx.post(f"{cloud.url}/v1/clips", headers={"Authorization": f"Bearer {keys['edge-2']}"},
                                  json={"clips": [clip_message(x, camera_id="gate")]})
            new = response.json()["results"][0]
            row = page.locator(f'#latest tbody tr[data-id="{new["cursor"]}"]')
            expect(row).to_contain_text("jumping", timeout=15_000)
            expect(row).to_contain_text("edge-2/gate")
            expect(page.locator("#latest tbody tr").first).to_have_attribute("data-id", str(new["cursor"]))
            expect(page.locator("#cameras tbody tr")).to_have_count(4, timeout=15_000)

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            target = os.environ.get("TINYACT_DASHBOARD_SCREENSHOT")
            if target:  # the docs get the first screenful (chart, cameras, unusual, newest rows)
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=target)
        assert errors == []
        outside = [url for url in requests if not url.startswith(cloud.url)]
        assert outside == [], f"the page fetched from outside the service: {outside}"
        assert any(url.endswith("/static/vendor/uPlot.iife.min.js") for url in requests)
