"""The web page in a real headless Chromium (Debian's), driven by Playwright, on the real server
with the bundled model and real photos. Screenshots of what a user sees go to artifacts/screenshots."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.serve import ROOT, start_server
from app.settings import Settings

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SLOW = 180_000  # ms: jobs on a busy 2-core machine


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


@pytest.fixture(scope="module")
def bundled_server() -> Iterator[str]:
    # the bundled checkpoint and the default per-client share, as `make serve` runs it
    proc, url = start_server({"FACEEDIT_RATE_PER_S": str(Settings.model_fields["rate_per_s"].default)})
    yield url
    proc.terminate()
    proc.wait(10)


def _open(browser, url: str, width: int, height: int):  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(SLOW)  # every wait below: a condition, with a deadline a busy machine meets
    page.goto(url + "/")
    page.wait_for_function("document.querySelectorAll('input[data-attribute]').length === 40")
    return page


def _result_changes(page, before: str | None) -> str:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "([b]) => { const src = document.getElementById('result').src; return src.startsWith('blob:') && src !== b; }",
        arg=[before],
        timeout=SLOW,
    )
    return page.locator("#result").get_attribute("src")  # type: ignore[no-any-return]


def _set_slider(page, name: str, value: float) -> None:  # type: ignore[no-untyped-def]
    page.eval_on_selector(
        f"#s-{name}",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }",
        value,
    )


def _group_crops(photos: Path, tmp: Path) -> list[str]:
    group = Image.open(photos / "group.jpg").convert("RGB")
    out = []
    for i, (x, y, w, h) in enumerate(((462, 264, 112, 150), (750, 346, 92, 124), (1132, 274, 94, 124))):
        path = tmp / f"person{i}.jpg"
        group.crop((x - w // 2, y - h // 2, x + w + w // 2, y + h + h // 2)).save(path)
        out.append(str(path))
    return out


def test_editing_a_whole_photo(bundled_server: str, browser, photos: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, bundled_server, 1200, 1000)
    assert page.locator("#sliders input").first.get_attribute("data-attribute") == "Smiling"

    page.set_input_files("#file", str(photos / "group.jpg"))
    page.wait_for_function("document.getElementById('faces-found').textContent.includes('6 faces found')")
    first = _result_changes(page, None)
    page.locator("#face-picker button").nth(1).click()  # the second face of the group
    page.wait_for_selector("#face-picker button:nth-child(2)[aria-pressed='true']", timeout=SLOW)
    second = _result_changes(page, first)
    page.screenshot(path=str(ARTIFACTS / "1-group-second-face.png"))

    _set_slider(page, "Smiling", 1.0)
    smiling = _result_changes(page, second)
    assert page.locator("#undo").is_enabled()
    page.screenshot(path=str(ARTIFACTS / "2-smiling.png"))
    page.click("#undo")
    assert page.locator("#s-Smiling-o").inner_text() == "0.0"
    _result_changes(page, smiling)
    page.click("#redo")
    assert page.locator("#s-Smiling-o").inner_text() == "1.0"
    _result_changes(page, page.locator("#result").get_attribute("src"))

    compare = page.locator("#compare")
    compare.hover()
    page.mouse.down()  # press and hold: the photo before the edit
    assert page.locator("#original").is_visible() and not page.locator("#result").is_visible()
    page.screenshot(path=str(ARTIFACTS / "3-before.png"))
    page.mouse.up()
    assert page.locator("#result").is_visible()

    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with Image.open(saved) as out, Image.open(photos / "group.jpg") as original:
        assert out.format == "JPEG" and out.size == original.size  # the whole photo, its own format and size

    page.click("#brush-panel summary")
    box = page.locator("#brush").bounding_box()
    page.mouse.move(box["x"] + 0.35 * box["width"], box["y"] + 0.78 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.65 * box["width"], box["y"] + 0.78 * box["height"], steps=8)
    page.mouse.up()
    before_brush = page.locator("#result").get_attribute("src")
    page.click("#brush-apply")
    page.wait_for_selector("#brush-progress:not([hidden])")
    page.wait_for_function("document.getElementById('brush-status').textContent === 'done'", timeout=SLOW)
    _result_changes(page, before_brush)
    page.screenshot(path=str(ARTIFACTS / "4-brush.png"))

    page.click("#custom-panel summary")
    page.set_input_files("#custom-with", [str(photos / n) for n in ("astronaut.png", "einstein.jpg", "messi5.jpg")])
    page.set_input_files("#custom-without", _group_crops(photos, tmp_path))
    page.fill("#custom-name", "famous")
    page.click("#custom-make")
    page.wait_for_function("document.getElementById('custom-status').textContent.includes('ready')", timeout=SLOW)
    custom = page.locator("#sliders input").first
    assert custom.get_attribute("data-attribute").startswith("custom-")
    assert page.locator("#sliders label").first.inner_text() == "famous"
    page.screenshot(path=str(ARTIFACTS / "5-custom-slider.png"), full_page=True)

    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a photo")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.locator("#error").inner_text()
    assert page.locator("#editor").is_hidden()  # the last photo is gone, nothing old to download
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (128, 128, 128)).save(blank)
    page.set_input_files("#file", str(blank))
    page.wait_for_function("document.getElementById('error').textContent.includes('aligned=true')")
    page.screenshot(path=str(ARTIFACTS / "6-no-face.png"))


def test_a_phone_screen_keeps_the_photo_in_view(bundled_server: str, browser, photos: Path) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, bundled_server, 390, 844)
    page.set_input_files("#file", str(photos / "astronaut.png"))
    _result_changes(page, None)
    page.locator("#s-Young").scroll_into_view_if_needed()
    _set_slider(page, "Young", -1.0)
    top = page.locator("#result").bounding_box()
    assert top is not None and -5 <= top["y"] < 844 / 2, "the edited photo scrolled out of view"
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    page.screenshot(path=str(ARTIFACTS / "7-phone.png"))


def test_forget_this_photo_deletes_it_from_the_service(bundled_server: str, browser, photos: Path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    page = _open(browser, bundled_server, 1000, 900)
    page.set_input_files("#file", str(photos / "astronaut.png"))
    _result_changes(page, None)
    latent_id = page.evaluate("state.latentId")
    assert httpx.post(f"{bundled_server}/edit", params={"latent_id": latent_id}).status_code == 200
    page.click("#forget")
    page.wait_for_function("document.getElementById('notice').textContent.includes('deleted')")
    assert page.locator("#editor").is_hidden() and page.locator("#error").is_hidden()
    assert page.locator("#result").get_attribute("src") is None  # nothing of it left on screen
    assert httpx.post(f"{bundled_server}/edit", params={"latent_id": latent_id}).status_code == 404
    page.screenshot(path=str(ARTIFACTS / "8-forgotten.png"))


def test_generated_faces_and_morph(bundled_server: str, browser, photos: Path) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, bundled_server, 1000, 900)
    page.click("#more")
    page.wait_for_selector("#generated button")
    page.locator("#generated button").first.click()
    _result_changes(page, None)
    page.set_input_files("#file2", str(photos / "messi5.jpg"))
    page.wait_for_selector("#morph:not([hidden])", timeout=SLOW)
    first = page.locator("#morph-frame").get_attribute("src")
    page.locator("#morph-t").focus()
    page.keyboard.press("End")
    assert page.locator("#morph-frame").get_attribute("src") != first


def test_the_editor_page_edits_and_hides_what_needs_a_latent_space(  # type: ignore[no-untyped-def]
    browser, tiny_editor: Path, photos: Path
) -> None:
    proc, url = start_server({"FACEEDIT_CHECKPOINT": str(tiny_editor)})
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.set_default_timeout(SLOW)
        page.goto(url + "/")
        page.wait_for_function("document.querySelectorAll('input[data-attribute]').length === 13")
        assert page.locator("#more").is_hidden() and page.locator("#generated").is_hidden()
        page.set_input_files("#file", str(photos / "astronaut.png"))
        first = _result_changes(page, None)
        for panel in ("#custom-panel", "#morph-section"):
            assert page.locator(panel).is_hidden(), panel  # no latent space: no custom slider, no morph
        assert page.locator("#refine-panel").is_visible() and page.locator("#brush-panel").is_visible()
        _set_slider(page, "Smiling", 1.0)
        _result_changes(page, first)
        page.screenshot(path=str(ARTIFACTS / "7-editor-smiling.png"))
    finally:
        proc.terminate()
        proc.wait(10)
