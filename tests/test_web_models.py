"""The Models page and ``/api/models`` behind the web's credentials: list, promote after a
confirmation in a real Chromium, roll back, a broken candidate refused in one line, and a
stored comparison shown as figures and a grid of the changed answers."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.models import write_swapped_model
from tests.web_server import CHROMIUM, serving

USER, PASSWORD = "ann", "a-real-secret"
CHANGED = 12  # answers a stored comparison changes: more than one row of tiles
# Each changed tile's box and its thumbnail's ([left, top, right, bottom]), and the
# comparison card's content box.
TILE_BOXES = """() => {
  const edges = r => [r.left, r.top, r.right, r.bottom];
  const card = document.getElementById("comparison"), style = getComputedStyle(card);
  const outer = card.getBoundingClientRect();
  return {inner: [outer.left + parseFloat(style.paddingLeft), outer.top,
                  outer.right - parseFloat(style.paddingRight), outer.bottom],
          tiles: [...card.querySelectorAll("#changed figure.tile")].map(t => ({
            box: edges(t.getBoundingClientRect()),
            img: edges(t.querySelector("img").getBoundingClientRect())}))};
}"""


@pytest.fixture(scope="module")
def registry_site(tmp_path_factory):
    """A web server (no workers: promoting needs none) over a registry of one candidate."""
    from signdigits.config.settings import Settings
    from signdigits.training.registry import add_to_registry

    tmp = tmp_path_factory.mktemp("models-web")
    settings = Settings(database_url=f"sqlite:///{tmp / 'r.db'}", models_dir=tmp / "models",
                        web_auth=f"{USER}:{PASSWORD}")
    with serving(settings) as client:
        from signdigits.db.session import session_factory

        sessions = session_factory(settings.database_url)
        row = add_to_registry(settings, sessions, write_swapped_model(tmp), name="swapped",
                              parent=None, figures={"lineage": {"reviews": 12, "jobs": []}})
        client.headers["Authorization"] = "Basic " + base64.b64encode(
            f"{USER}:{PASSWORD}".encode()).decode()
        client.candidate = row
        client.sessions = sessions
        yield client


def _csrf(client: httpx.Client) -> dict[str, str]:
    page = client.get("/models")
    assert page.status_code == 200
    return {"X-CSRF-Token": client.cookies["signdigits_csrf"]}


def test_the_api_lists_promotes_refuses_and_rolls_back(registry_site):
    client = registry_site
    version = client.candidate.version
    assert httpx.get(f"{client.base_url}/api/models").status_code == 401
    listed = client.get("/api/models").json()
    assert listed["serving"] == listed["default"] != version
    assert [(m["name"], m["serving"]) for m in listed["items"]] == [("swapped", False)]
    headers = _csrf(client)

    missing = client.post("/api/models/nothing-such/promote", headers=headers)
    # An HTTP client's answer, without the CLI's hint.
    assert (missing.status_code, missing.json()["detail"]) == (
        404, "no registered model 'nothing-such'")
    nothing = client.post("/api/models/rollback", headers=headers)
    assert nothing.status_code == 409
    assert nothing.json()["detail"] == "nothing is promoted: the default model already serves"

    promoted = client.post(f"/api/models/{version[:6]}/promote", headers=headers)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json() == {"before": listed["default"], "after": version, "name": "swapped"}
    assert client.get("/api/models").json()["serving"] == version
    rolled = client.post("/api/models/rollback", headers=headers)
    assert rolled.status_code == 200 and rolled.json()["after"] == listed["default"]
    assert client.get("/api/models").json()["serving"] == listed["default"]


def test_a_broken_candidate_is_refused_in_one_line(registry_site, tmp_path):
    from signdigits.serving.artifact import shipped_model_path
    from signdigits.training.registry import add_to_registry

    client = registry_site
    row = add_to_registry(client.settings, client.sessions, shipped_model_path(),
                          name="broken-copy", parent=None, figures={})
    (client.settings.registry_dir / row.file).write_bytes(b"not a model")
    refused = client.post("/api/models/broken-copy/promote", headers=_csrf(client))
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert detail.startswith("refused, nothing changed: model broken-copy") and "\n" not in detail
    listed = client.get("/api/models").json()
    assert listed["serving"] == listed["default"]  # still the default: nothing promoted
    assert [m["promoted_at"] for m in listed["items"] if m["name"] == "broken-copy"] == [None]


def test_promote_needs_a_confirmation_on_the_page(registry_site):
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    from signdigits.db.registry import find_model, set_figures

    client = registry_site
    version = client.candidate.version
    changed = [{"image_id": 900 + i, "path": f"1/{i}.jpg", "serving": 1,
                "serving_confidence": 0.99, "candidate": 7, "candidate_confidence": 0.97}
               for i in range(3)]
    with client.sessions.begin() as session:
        set_figures(session, find_model(session, "swapped"), comparison={
            "jobs": ["ab" * 16], "candidate": version, "serving": "s", "changed": changed,
            "reviewed": {"images": 12, "serving_right": 9, "candidate_right": 12},
            "test_split": {"images": 30, "serving_right": 29, "candidate_right": 23},
            "others": {"images": 40, "changed": 3, "serving_below_threshold": 4,
                       "candidate_below_threshold": 2, "left_out": {}}})
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_context(http_credentials={
                "username": USER, "password": PASSWORD}).new_page()
            page.goto(f"{client.base_url}/models")
            row = page.locator(f"tr[data-version='{version}']")
            questions: list[str] = []

            def answer(dialog, accept: bool) -> None:
                questions.append(dialog.message)
                dialog.accept() if accept else dialog.dismiss()

            page.once("dialog", lambda dialog: answer(dialog, False))
            row.locator("button.promote").click()
            assert questions and questions[0].startswith(f"Promote swapped ({version})?")
            assert client.get("/api/models").json()["serving"] != version  # declined
            assert "serving" not in (row.get_attribute("class") or "")

            page.once("dialog", lambda dialog: answer(dialog, True))
            with page.expect_navigation():
                row.locator("button.promote").click()
            page.locator(f"tr.serving[data-version='{version}']").wait_for()
            assert client.get("/api/models").json()["serving"] == version
            assert page.locator("#rollback").is_visible()

            page.goto(f"{client.base_url}/models/swapped")
            assert page.locator("#changed-count").inner_text() == "3 answers would change"
            captions = page.locator("#changed figcaption").all_inner_texts()
            assert len(captions) == 3 and all(c.startswith("1 → 7") for c in captions)
            table = page.locator("#comparison-table").inner_text()
            assert "the dataset's test signers (right)\t30\t29\t23" in table

            # The default row's own button: the way back, whatever was promoted before.
            page.goto(f"{client.base_url}/models")
            page.once("dialog", lambda dialog: answer(dialog, True))
            with page.expect_navigation():
                page.locator("tr[data-version='default'] button.promote").click()
            assert questions[-1].startswith("Serve the default model again?")
            page.locator("tr.serving[data-version='default']").wait_for()
            assert page.locator("tr[data-version='default'] button.promote").count() == 0
            listed = client.get("/api/models").json()
            assert listed["serving"] == listed["default"]
        finally:
            chromium.close()
        client.post("/api/models/rollback", headers=_csrf(client))


def test_the_changed_photos_fit_their_tiles_and_open_the_photo(tmp_path):
    """The model page's grid of changed answers: each tile holds its 120 px thumbnail, the
    grid wraps inside the card, and each thumbnail links to its photo (the tiles were once
    62 px wide, thumbnails spilling over them, the last column on the card's edge, nothing
    to click). A copy of the shipped model stands for the candidate: no TensorFlow needed."""
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    from signdigits.config.settings import Settings
    from signdigits.db.registry import find_model, set_figures
    from signdigits.db.session import session_factory
    from signdigits.serving.artifact import shipped_model_path
    from signdigits.training.registry import add_to_registry

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}",
                        models_dir=tmp_path / "models", web_auth=f"{USER}:{PASSWORD}")
    changed = [{"image_id": 900 + i, "path": f"1/{i}.jpg", "serving": 1,
                "serving_confidence": 0.99, "candidate": 7, "candidate_confidence": 0.97}
               for i in range(CHANGED)]
    with serving(settings) as client:
        sessions = session_factory(settings.database_url)
        row = add_to_registry(settings, sessions, shipped_model_path(), name="gridded",
                              parent=None, figures={})
        with sessions.begin() as session:
            set_figures(session, find_model(session, "gridded"), comparison={
                "jobs": ["ab" * 16], "candidate": row.version, "serving": "s",
                "changed": changed,
                "reviewed": {"images": 12, "serving_right": 9, "candidate_right": 12},
                "others": {"images": 40, "changed": CHANGED, "serving_below_threshold": 4,
                           "candidate_below_threshold": 2, "left_out": {}}})
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = chromium.new_context(viewport={"width": 1000, "height": 800},
                                            http_credentials={"username": USER,
                                                              "password": PASSWORD}).new_page()
                page.goto(f"{client.base_url}/models/gridded")
                page.wait_for_selector(f"#changed figure.tile >> nth={CHANGED - 1}")
                shots = Path(os.environ.get("SIGNDIGITS_SCREENSHOT_DIR") or tmp_path)
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "web-model-changed.png"), full_page=True)
                boxes = page.evaluate(TILE_BOXES)
                assert len(boxes["tiles"]) == CHANGED
                for tile in boxes["tiles"]:
                    assert tile["img"][2] - tile["img"][0] == 120, tile
                    assert tile["box"][0] <= tile["img"][0], tile  # the thumbnail inside
                    assert tile["img"][2] <= tile["box"][2], tile
                    assert boxes["inner"][0] <= tile["box"][0], (tile, boxes["inner"])
                    assert tile["box"][2] <= boxes["inner"][2], (tile, boxes["inner"])
                assert len({round(tile["box"][1]) for tile in boxes["tiles"]}) > 1  # wrapped
                links = page.eval_on_selector_all("#changed figure.tile", "f => f.map(x => "
                                                  "x.querySelector('a img') && "
                                                  "x.querySelector('a').getAttribute('href'))")
                assert links == [f"/api/images/{900 + i}/annotated.jpg" for i in range(CHANGED)]
            finally:
                chromium.close()
