"""The web app as a daily tool (issue 34): the API page renders, jobs have names that
can be changed and are deleted with their files, the jobs page links the job it started
and counts what the job counts, the jobs list shows reviews, /try keeps a photo.

The API on a real uvicorn over a real worker; the pages in Debian's Chromium, judged by
what is on screen.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import Stack, copy_sample, require, sample_images
from tests.waiting import wait_until
from tests.web_server import CHROMIUM, desktop_page, save_screenshot, serving

PAGE_WAIT = 120_000  # ms a page may take to show what the workers finished


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, dataset):
    from signdigits.config.settings import Settings

    tmp = tmp_path_factory.mktemp("daily")
    stack = Stack(redis_url, f"sqlite:///{tmp / 'r.db'}", tmp)
    stack.start_worker(concurrency=1)
    # Batches of 4: a walk's first part (4 batches) is 16 images, so a 40-image folder
    # is still being walked when the API answers.
    settings = Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                        upload_dir=tmp / "uploads", batch_size=4)
    try:
        with serving(settings) as client:
            client.tmp = tmp
            yield client
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def page(site):
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    with desktop_page() as opened:
        yield opened


def _upload(client, dataset, name: str | None = None, *, per_digit: int = 1,
            threshold: float | None = None) -> dict:
    files = [("files", (f"{digit}/{path.name}", path.read_bytes(), "image/jpeg"))
             for path, digit in sample_images(dataset, per_digit, seed=5)]
    data = {k: str(v) for k, v in (("name", name), ("threshold", threshold)) if v is not None}
    answer = client.post("/api/jobs", files=files, data=data)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _done(client, job_id: str) -> dict:
    return wait_until(lambda: (job := client.get(f"/api/jobs/{job_id}").json())["state"]
                      in ("done", "done with errors") and job, timeout=240,
                      message=f"job {job_id} done")


# --- the API ---------------------------------------------------------------------------

def test_jobs_are_named_after_their_folder_or_upload_unless_named(site, dataset, tmp_path):
    client = site
    folder = tmp_path / "batch-01"
    copy_sample(dataset, folder, per_digit=1, seed=3)
    by_folder = client.post("/api/jobs", json={"folder": str(folder)}).json()
    named = client.post("/api/jobs", json={"folder": str(folder), "name": "  cyril,\tday 2 "})
    assert by_folder["name"] == "batch-01"
    assert named.status_code == 201 and named.json()["name"] == "cyril, day 2"
    zipped = tmp_path / "cyril.zip"
    shutil.make_archive(str(zipped.with_suffix("")), "zip", folder)
    upload = client.post("/api/jobs", files=[("files", ("cyril.zip", zipped.read_bytes(),
                                                         "application/zip"))])
    assert upload.status_code == 201 and upload.json()["name"] == "cyril"
    for job in (by_folder, named.json(), upload.json()):
        _done(client, job["id"])


def test_bad_names_get_one_line_each(site, dataset, tmp_path):
    """POST (JSON and the upload form) and PATCH keep run --name's rule: a line break
    inside a name or a bidirectional control is a 422, never changed in silence."""
    client = site
    job = _upload(client, dataset, "kept")
    for name, said in (("", "cannot be empty"), ("x" * 201, "at most 200"),
                       ("a\x00b", "control characters"), (7, "must be a string"),
                       ("a\nb", "name: a job's name is one line: it cannot hold a line break"),
                       ("x \u202e rtl", "bidirectional control characters (U+202E)"),
                       ("\u2066x\u2069", "bidirectional control characters (U+2066)")):
        answer = client.post("/api/jobs", json={"folder": str(tmp_path), "name": name})
        assert answer.status_code == 422, answer.text
        assert said in answer.json()["detail"] and "\n" not in answer.json()["detail"]
        renamed = client.patch(f"/api/jobs/{job['id']}", json={"name": name})
        assert renamed.status_code == 422, renamed.text
        assert said in renamed.json()["detail"] and "\n" not in renamed.json()["detail"]
        if isinstance(name, str) and name:
            form = client.post("/api/jobs", data={"name": name},
                               files=[("files", ("a.jpg", b"\xff\xd8", "image/jpeg"))])
            assert form.status_code == 422, form.text
            assert said.removeprefix("name: ") in form.json()["detail"]
    assert client.get(f"/api/jobs/{job['id']}").json()["name"] == "kept"
    _done(client, job["id"])


def test_a_job_is_renamed_and_its_downloads_are_named_after_it(site, dataset):
    client = site
    job = _done(client, _upload(client, dataset, "first")["id"])
    renamed = client.patch(f"/api/jobs/{job['id'][:10]}", json={"name": "Zoë's photos"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Zoë's photos"
    assert client.get(f"/api/jobs/{job['id']}").json()["name"] == "Zoë's photos"
    for extension in ("csv", "json"):
        said = client.get(f"/api/jobs/{job['id']}/results.{extension}").headers[
            "content-disposition"]
        assert f'filename="Zo__s photos.{extension}";' in said  # no quote ends it early
        assert f"filename*=UTF-8''{'Zo%C3%AB%27s%20photos'}.{extension}" in said, said
        assert unquote(said.split("''")[1]) == f"Zoë's photos.{extension}"
    for body, status in (({"name": ""}, 422), ([], 422), ({"name": None}, 422)):
        assert client.patch(f"/api/jobs/{job['id']}", json=body).status_code == status
    assert client.patch("/api/jobs/" + "0" * 32, json={"name": "x"}).status_code == 404


def test_delete_removes_rows_reviews_hands_and_uploaded_files_and_waits_for_the_end(
        site, dataset, tmp_path):
    from sqlalchemy import func, select

    from signdigits.db.models import HandRow, Image, Review
    from signdigits.db.session import session_factory

    client = site
    job = _done(client, _upload(client, dataset, "to delete", threshold=1)["id"])
    folder = Path(job["folder"])
    assert folder.is_dir()
    image = client.get(f"/api/jobs/{job['id']}/images?below_threshold=true").json()["items"][0]
    assert client.post(f"/api/images/{image['id']}/review", json={"digit": 3}).status_code == 200
    deleted = client.delete(f"/api/jobs/{job['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": job["id"], "name": "to delete", "files_removed": True}
    assert not folder.exists()
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    sessions = session_factory(client.settings.database_url)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Image)
                              .where(Image.job_id == job["id"])) == 0
        assert session.scalar(select(func.count()).select_from(Review)
                              .where(Review.image_id == image["id"])) == 0
        assert session.scalar(select(func.count()).select_from(HandRow)
                              .where(HandRow.image_id == image["id"])) == 0
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 404
    # A folder job's files are the user's: its rows go, its folder stays.
    folder = tmp_path / "mine"
    copy_sample(dataset, folder, per_digit=1, seed=9)
    mine = _done(client, client.post("/api/jobs", json={"folder": str(folder)}).json()["id"])
    assert client.delete(f"/api/jobs/{mine['id']}").json()["files_removed"] is False
    assert len(list(folder.rglob("*.*"))) == 10


def test_a_job_that_has_not_ended_is_not_deleted(site, tmp_path):
    """A job whose walk was interrupted (no producer alive) still has work recorded for
    workers: 409 in one line, and the job stays."""
    from signdigits.db.models import Job
    from signdigits.db.session import session_factory

    client = site
    sessions = session_factory(client.settings.database_url)
    with sessions.begin() as session:
        session.add(Job(id="ab" * 16, name="half walked", root=str(tmp_path), threshold=0.5,
                        batch_size=4, total_images=0, total_batches=0, model_version="v"))
    refused = client.delete("/api/jobs/" + "ab" * 16)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (f"job {'ab' * 16} (half walked) has not ended: "
                                        "cancel it first, then delete it")
    assert client.get("/api/jobs/" + "ab" * 16).status_code == 200
    assert client.post("/api/jobs/" + "ab" * 16 + "/cancel").status_code == 200
    assert client.delete("/api/jobs/" + "ab" * 16).status_code == 200


def test_the_jobs_list_counts_reviews(site, dataset):
    client = site
    job = _done(client, _upload(client, dataset, "reviewed ones", threshold=1)["id"])
    below = client.get(f"/api/jobs/{job['id']}/images?below_threshold=true").json()["items"]
    for image in below[:2]:
        client.post(f"/api/images/{image['id']}/review", json={"unusable": True})
    listed = {j["id"]: j for j in client.get("/api/jobs?limit=200").json()["items"]}
    assert listed[job["id"]]["reviewed"] == 2
    assert listed[job["id"]]["below_threshold"] == len(below) == job["below_threshold"]
    assert client.get(f"/api/jobs/{job['id']}/review").json()["reviewed"] == 2


# --- the pages, in Chromium ----------------------------------------------------------------

def test_docs_show_the_endpoints_and_expand_a_schema(site, page):
    page.goto(f"{site.base_url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    text = page.inner_text("body")
    assert "Unable to render" not in text and "valid version field" not in text
    paths = page.eval_on_selector_all(
        ".opblock-summary", "blocks => blocks.map(b => b.querySelector('.opblock-summary-method')"
        ".textContent + ' ' + b.querySelector('.opblock-summary-path').textContent)")
    for expected in ("POST /api/jobs", "GET /api/jobs/{job_id}", "DELETE /api/jobs/{job_id}",
                     "PATCH /api/jobs/{job_id}", "POST /api/predict"):
        assert any(p.replace("\u200b", "") == expected for p in paths), (expected, paths)
    # The schemas (JSON Schema 2020-12, as OpenAPI 3.1 has them): JobOut opened shows
    # its fields.
    job_out = page.locator("section.models article.json-schema-2020-12").filter(
        has=page.locator(".json-schema-2020-12__title", has_text="JobOut")).first
    job_out.locator("button.json-schema-2020-12-accordion").first.click()
    fields = job_out.locator(".json-schema-2020-12-property .json-schema-2020-12__title")
    fields.first.wait_for(timeout=10_000)
    shown = fields.all_inner_texts()
    assert {"id", "name", "total_images", "below_threshold", "reviewed"} <= set(shown), shown
    shots = Path(os.environ.get("SIGNDIGITS_SCREENSHOT_DIR") or site.tmp)
    page.set_viewport_size({"width": 1200, "height": 900})
    save_screenshot(page, shots / "web-docs.png")


def test_start_links_the_job_clears_the_form_then_rename_and_delete(site, page, dataset,
                                                                     tmp_path):
    folder = tmp_path / "cyril"
    truth = copy_sample(dataset, folder, per_digit=1, seed=21)
    page.goto(f"{site.base_url}/")
    page.set_input_files("#folder", str(folder))
    page.fill("#threshold", "1")
    page.click("#submit")
    page.wait_for_selector("#submit-message a.open-job", timeout=60_000)
    link = page.get_attribute("#submit-message a.open-job", "href")
    job_id = link.rsplit("/", 1)[1]
    assert page.inner_text("#submit-message").startswith(f"Started cyril: {len(truth)} images")
    # The form is empty again for the next job.
    assert page.eval_on_selector("#folder", "i => i.files.length") == 0
    assert page.input_value("#threshold") == "" and page.input_value("#job-name") == ""
    row = f"#job-{job_id}"
    assert page.inner_text(f"{row} .job-name") == "cyril"
    page.wait_for_selector(f"{row} td.state:text-is('done')", timeout=PAGE_WAIT)
    # Reviews counted: one of the below-threshold images answered, the page reloaded.
    below = site.get(f"/api/jobs/{job_id}/images?below_threshold=true").json()["items"]
    site.post(f"/api/images/{below[0]['id']}/review", json={"digit": 4})
    page.reload()
    page.wait_for_selector(f"{row} td.reviews:text-is('1 / {len(below)}')", timeout=10_000)

    page.click(f"{row} button.rename")
    page.fill(f"{row} input.new-name", "cyril, second session")
    page.press(f"{row} input.new-name", "Enter")
    page.wait_for_selector(f"{row} .job-name:text-is('cyril, second session')")
    assert site.get(f"/api/jobs/{job_id}").json()["name"] == "cyril, second session"
    page.click(f"{row} a.job-name")
    page.wait_for_selector("#job-name:text-is('cyril, second session')")

    page.goto(f"{site.base_url}/")
    page.wait_for_selector(f"{row} button.delete:enabled")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click(f"{row} button.delete")
    assert asked and "cyril, second session" in asked[0]
    assert site.get(f"/api/jobs/{job_id}").status_code == 200  # dismissed: kept
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{row} button.delete")
    page.wait_for_selector("#jobs-message:has-text('deleted')")
    assert page.query_selector(row) is None
    assert site.get(f"/api/jobs/{job_id}").status_code == 404


def test_a_server_folder_is_counted_to_the_end_of_its_walk(site, page, dataset, tmp_path):
    """The answer comes while the walk goes on (16 of 40 images): the message follows the
    job to 40, as the row does."""
    folder = tmp_path / "batch-02"
    truth = copy_sample(dataset, folder, per_digit=4, seed=22)
    page.goto(f"{site.base_url}/")
    page.fill("#server-folder", str(folder))
    page.click("#submit")
    page.wait_for_selector(f"#submit-message:has-text('Started batch-02: {len(truth)} images.')",
                           timeout=60_000)
    assert page.input_value("#server-folder") == ""
    job_id = page.get_attribute("#submit-message a.open-job", "href").rsplit("/", 1)[1]
    page.wait_for_selector(f"#job-{job_id} .muted:text-matches(' / {len(truth)}$')")
    _done(site, job_id)


def _placeholder_fits(page, selector: str) -> bool:
    return page.eval_on_selector(selector, """input => {
        const style = getComputedStyle(input);
        const context = document.createElement("canvas").getContext("2d");
        context.font = style.font;
        const room = input.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight) - 20;  // the number's spin buttons
        return context.measureText(input.placeholder).width <= room;
    }""")


def test_try_shows_the_photo_keeps_it_for_review_and_its_placeholder_fits(site, page,
                                                                          dataset):
    page.goto(f"{site.base_url}/try")
    assert _placeholder_fits(page, "#threshold")
    photo, _digit = sample_images(dataset, 1, seed=30)[0]
    page.fill("#threshold", "1")  # every answer is below it: the kept photo awaits review
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#answer-headline:has-text('digit')", timeout=60_000)
    shown = page.eval_on_selector("#answer-photo", "img => [img.complete, img.naturalWidth, "
                                  "img.getBoundingClientRect().width, img.hidden]")
    assert shown[0] and shown[1] > 64 and shown[2] >= 300 and not shown[3], shown
    page.click("#keep")
    page.wait_for_selector("#kept-link", timeout=60_000)
    assert page.is_disabled("#keep")
    href = page.get_attribute("#kept-link", "href")
    job_id = href.split("/")[2]
    job = site.get(f"/api/jobs/{job_id}").json()
    assert job["total_images"] == 1 and job["name"] == f"photo {photo.name}"
    page.click("#kept-link")
    page.wait_for_url(f"**/jobs/{job_id}/review")
    page.goto(f"{site.base_url}/")
    assert _placeholder_fits(page, "#threshold")
