"""The web page in a real headless Chromium (Debian's), driven by Playwright, on a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.serve import ROOT

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/system-deps.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


def test_edit_morph_optimise_and_errors(server: str, browser, photos: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('input[data-attribute]').length === 40")
    # the most useful attribute comes first
    assert page.locator("#sliders input").first.get_attribute("data-attribute") == "Smiling"

    page.set_input_files("#file", str(photos / "astronaut.png"))
    page.wait_for_function("document.getElementById('aligned').src.startsWith('data:image/png')")
    page.wait_for_function("document.getElementById('preview').src.startsWith('blob:')")
    before = page.locator("#preview").get_attribute("src")
    page.screenshot(path=str(ARTIFACTS / "1-uploaded.png"), full_page=True)

    slider = page.locator("#s-Smiling")
    slider.focus()
    for _ in range(15):  # the keyboard moves it: 1.5
        page.keyboard.press("ArrowRight")
    assert page.locator("#s-Smiling-o").inner_text() == "1.5"
    page.wait_for_function(f"document.getElementById('preview').src !== {before!r}")
    page.wait_for_function("document.getElementById('busy').textContent === ''")
    page.screenshot(path=str(ARTIFACTS / "2-slider-moved.png"), full_page=True)

    page.set_input_files("#file2", str(photos / "messi5.jpg"))
    page.wait_for_selector("#morph:not([hidden])")
    first = page.locator("#morph-frame").get_attribute("src")
    page.locator("#morph-t").focus()
    page.keyboard.press("End")
    assert page.locator("#morph-frame").get_attribute("src") != first
    assert page.locator("#morph-gif").get_attribute("src").startswith("blob:")

    page.click("#optimize")
    page.wait_for_selector("#job-result:not([hidden])", timeout=60_000)
    assert "succeeded" in page.locator("#job-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "3-morph-and-optimised.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#download-photo")
    saved = tmp_path / "photo.png"
    download.value.save_as(saved)
    from PIL import Image

    assert Image.open(saved).size == (512, 512)  # the whole photo, face pasted back

    not_image = tmp_path / "notes.txt"
    not_image.write_text("this is not a photo")
    page.set_input_files("#file", str(not_image))
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.locator("#error").inner_text()
    page.screenshot(path=str(ARTIFACTS / "4-error.png"), full_page=True)

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (128, 128, 128)).save(blank)
    page.set_input_files("#file", str(blank))
    page.wait_for_function("document.getElementById('error').textContent.includes('no face')")


def test_narrow_screen_and_generated_faces(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 360, "height": 800})
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('input[data-attribute]').length === 40")
    page.click("#more")
    page.wait_for_selector("#generated button")
    page.keyboard.press("Tab")  # keyboard reaches the controls
    page.locator("#generated button").first.click()
    page.wait_for_function("document.getElementById('preview').src.startsWith('blob:')")
    assert page.locator("#download-photo").is_disabled()  # nothing to paste a generated face into
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways on a narrow screen ({width}px)"
    page.screenshot(path=str(ARTIFACTS / "5-narrow.png"), full_page=True)
