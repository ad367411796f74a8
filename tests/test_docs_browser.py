"""/docs works with no network: swagger-ui's files come from the server (the swagger-ui-bundle
wheel), so a browser that may reach nothing but the server still shows every route."""

from __future__ import annotations

import pytest

from tests.server_helpers import Server
from tests.test_ui_browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")


def test_docs_page_lists_the_routes_with_the_network_blocked(tmp_path):
    from playwright.sync_api import sync_playwright

    server = Server(tmp_path, ui=False).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            elsewhere = []

            def only_the_server(route):
                if route.request.url.startswith(server.url):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_server)
            page.goto(server.url + "/docs")
            page.wait_for_selector(".opblock", timeout=60_000)
            paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(n => n.textContent)")
            assert "/sdapi/v1/txt2img" in paths and "/v1/jobs" in paths  # every route, as swagger-ui lists them
            assert elsewhere == []  # nothing was asked of any other host
            browser.close()
    finally:
        server.stop()
