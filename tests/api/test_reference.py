"""The api describes itself: /openapi.json and the /docs reference page, without a key, working offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import async_playwright

from shared.apidoc import parameters
from shared.apidoc.document import build
from shared.domain.order_types import ORDER_TYPES
from shared.ingress.registry import load_actions
from shared.settings import Settings
from tests.support.processes import ApiProcess

CHROMIUM = "/usr/bin/chromium"


async def test_openapi_json_is_served_without_a_key(api: ApiProcess, settings: Settings) -> None:
    async with aiohttp.ClientSession() as http, http.get(api.url + "/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        served = json.loads(await resp.text())
    assert served == json.loads(json.dumps(build(settings)))
    assert served["paths"]["/api/v2"]["get"]["parameters"][0]["name"] == "action"


async def test_docs_page_and_its_renderer_are_served_without_a_key(api: ApiProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(api.url + "/docs") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
        async with http.get(api.url + "/docs/redoc.standalone.js") as resp:
            assert resp.status == 200
            assert len(await resp.read()) > 500_000
    assert "/docs/redoc.standalone.js" in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page.replace("https://github.com/Redocly/redoc", "")


async def test_docs_page_renders_every_action_and_order_type_in_chromium_offline(
    api: ApiProcess, tmp_path: Path
) -> None:
    assert shutil.which(CHROMIUM), (
        "Debian's chromium is missing: scripts/ensure-test-tools.sh installs it (apt-get install chromium)"
    )
    origin = urlsplit(api.url)
    requested: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("request", lambda request: requested.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(api.url + "/docs", wait_until="networkidle")
            await page.wait_for_selector("text=Order types", timeout=30_000)
            text = await page.inner_text("body")
            screenshot = tmp_path / "docs.png"
            await page.screenshot(path=str(screenshot))
            print(f"\nscreenshot of /docs: {screenshot}")
        finally:
            await browser.close()
    assert errors == []
    missing_actions = [a for a in load_actions() if f"{a}" not in text]
    missing_types = [t for t in ORDER_TYPES if t not in text]
    assert missing_actions == []
    assert missing_types == []
    # The per-action request schemas are rendered too (the discriminator's choices), not only the overview.
    for action in parameters.ACTIONS:
        assert text.count(action) >= 2, action
    outside = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob")
        and (urlsplit(url).hostname, urlsplit(url).port) != (origin.hostname, origin.port)
    ]
    assert outside == [], outside
    assert any(url.endswith("/openapi.json") for url in requested)
    assert screenshot.stat().st_size > 10_000
