"""The model registry against a real stack: adapt, compare, promote while a job runs,
roll back, and a candidate the workers could not load refused before anything changes.

The candidate most tests use is the shipped model with 1 and 7 swapped (tests/models.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Stack, copy_sample, link_signers
from tests.holds import BatchHolds
from tests.models import SWAP, write_swapped_model
from tests.photos import three_people


@pytest.fixture(scope="module")
def swapped_model(tmp_path_factory) -> Path:
    return write_swapped_model(tmp_path_factory.mktemp("swapped"))


@pytest.fixture
def stack(redis_url, database_url, tmp_path):
    stack = Stack(redis_url, database_url, tmp_path, models_dir=str(tmp_path / "models"),
                  visibility_timeout=600)
    _empty_registry(stack)
    yield stack
    stack.stop()
    # The PostgreSQL schema is every test's: a model left promoted would read their jobs.
    _empty_registry(stack)


def _empty_registry(stack: Stack) -> None:
    from sqlalchemy import delete

    from signdigits.db.migrate import upgrade
    from signdigits.db.models import ModelRow

    upgrade(stack.database_url)
    with stack.sessions().begin() as session:
        session.execute(delete(ModelRow))


def _settings(stack: Stack):
    from signdigits.config.settings import Settings

    return Settings(database_url=stack.database_url, models_dir=stack.tmp / "models")


def _register(stack: Stack, keras: Path, name: str):
    from signdigits.training.registry import add_to_registry

    return add_to_registry(_settings(stack), stack.sessions(), keras, name=name, parent=None,
                           figures={})


def _review_hands(stack: Stack, job_id: str, path: str, answers: dict[int, int | None]) -> None:
    """Answer some hands of the job's photo ``path`` one by one (the others keep the
    model's answers), as the review page does."""
    from signdigits.db.models import Image
    from signdigits.db.reviews import add_hand_review

    with stack.sessions().begin() as session:
        image = session.scalar(select(Image).where(Image.job_id == job_id, Image.path == path))
        for hand, digit in answers.items():
            add_hand_review(session, image=image, hand=hand, digit=digit, reviewer="test")


def _promoted(stack: Stack):
    from signdigits.db.registry import promoted_model

    with stack.sessions()() as session:
        return promoted_model(session)


def test_promote_while_a_job_runs_later_batches_carry_the_new_version(stack, swapped_model,
                                                                       dataset, tmp_path):
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    shipped = read_model_info(shipped_model_path()).version
    row = _register(stack, swapped_model, "swapped")
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=2)
    stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1")
    holds = BatchHolds(stack.broker_url)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "4")
    holds.wait_held(job_id, 1)  # batch 0 is stored, batch 1 claimed with the shipped model
    promoted = stack.cli("models", "promote", "swapped")
    assert promoted.returncode == 0, promoted.stderr
    assert f"promoted swapped ({row.version}; was {shipped})" in promoted.stderr
    holds.release(job_id, 1)
    stack.wait_for(job_id)

    rows = stack.rows(job_id)
    assert sorted(r.path for r in rows) == sorted(truth)  # none lost, none twice
    assert all(r.status == "done" for r in rows)
    by_batch = {r.batch: {x.model_version for x in rows if x.batch == r.batch} for r in rows}
    assert by_batch[0] == by_batch[1] == {shipped}  # claimed before the promote
    assert all(by_batch[b] == {row.version} for b in by_batch if b >= 2), by_batch
    swapped_rows = [r for r in rows if r.batch >= 2 and truth[r.path] in SWAP]
    assert swapped_rows and all(r.digit == SWAP[truth[r.path]] for r in swapped_rows)
    # `status` names both models, the images each read and the threshold each applied
    # (no one gave one: each model's default).
    said = stack.cli("status", job_id)
    assert said.returncode == 0, said.stderr
    before = sum(r.model_version == shipped for r in rows)
    default = read_model_info(swapped_model).default_threshold
    assert (f"read by 2 models (a model was promoted after it was submitted with {shipped}), "
            f"each flagging by its own default threshold: {row.version} "
            f"{len(rows) - before} images, threshold {default:g}; {shipped} {before} images, "
            f"threshold {read_model_info(shipped_model_path()).default_threshold:g}"
            ) in said.stdout, said.stdout
    # Each exported row names the threshold that flagged it: its model's.
    exported = stack.cli("results", job_id, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    assert {(r["model_version"], r["threshold"]) for r in json.loads(exported.stdout)} == {
        (shipped, read_model_info(shipped_model_path()).default_threshold), (row.version, default)}

    # Rollback: the next job is read by the shipped model again, by the same worker.
    rolled = stack.cli("models", "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert f"the workers serve default ({shipped})" in rolled.stderr
    assert _promoted(stack) is None
    again = stack.submit(tmp_path / "photos", "--batch-size", "4")
    holds.release(again, 1)
    stack.wait_for(again)
    assert {r.model_version for r in stack.rows(again)} == {shipped}
    nothing = stack.cli("models", "rollback")
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == "error: nothing is promoted: the default model already serves"


def test_a_candidate_the_workers_cannot_load_is_refused_and_nothing_changes(stack,
                                                                            swapped_model):
    from signdigits.db.models import ModelRow

    good = _register(stack, swapped_model, "good")
    assert stack.cli("models", "promote", good.version[:6]).returncode == 0
    from signdigits.serving.artifact import shipped_model_path

    row = _register(stack, shipped_model_path(), "broken")  # the shipped pair, copied
    # The registered graph changed after its registration: its hash no longer matches.
    onnx_file = stack.tmp / "models" / row.file.replace(".keras", ".onnx")
    onnx_file.write_bytes(onnx_file.read_bytes()[:-40] + b"\0" * 40)
    refused = stack.cli("models", "promote", "broken")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: refused, nothing changed: model broken") and "onnx" in lines[0], lines
    assert _promoted(stack).version == good.version

    (stack.tmp / "models" / row.file).unlink()  # the archive gone from the shared folder
    gone = stack.cli("models", "promote", "broken")
    assert gone.returncode == 1 and "model file not found" in gone.stderr
    with stack.sessions()() as session:
        stored = session.scalar(select(ModelRow).where(ModelRow.name == "broken"))
        assert stored is not None and stored.promoted_at is None
    assert _promoted(stack).version == good.version


def test_promote_default_is_the_way_back_when_the_model_before_is_broken(stack,
                                                                         swapped_model):
    """A rollback to a model whose files went away is refused; `promote default` had been
    refused too ("no registered model 'default'"), leaving the workers on the last one."""
    import pytest

    from signdigits.db.registry import ModelNameError
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    shipped = read_model_info(shipped_model_path()).version
    first = _register(stack, swapped_model, "first")
    second = _register(stack, shipped_model_path(), "second")
    for name in ("first", "second"):
        assert stack.cli("models", "promote", name).returncode == 0
    (stack.tmp / "models" / first.file).unlink()
    refused = stack.cli("models", "rollback")
    assert refused.returncode == 1
    assert "model file not found" in refused.stderr
    assert "promote 'default' to serve the default model instead" in refused.stderr
    assert _promoted(stack).version == second.version

    back = stack.cli("models", "promote", "default")
    assert back.returncode == 0, back.stderr
    assert f"promoted default ({shipped}; was {second.version})" in back.stderr
    assert _promoted(stack) is None
    listed = stack.cli("models", "list")
    [default_row] = [line for line in listed.stdout.splitlines() if " default " in line]
    assert default_row.lstrip().startswith("*"), listed.stdout
    with pytest.raises(ModelNameError, match="names the configured or shipped model"):
        _register(stack, swapped_model, "Default")


def test_compare_lists_the_images_whose_answer_would_change(stack, swapped_model, dataset,
                                                             tmp_path):
    _register(stack, swapped_model, "swapped")
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=2, seed=5)
    assert three_people(dataset, tmp_path / "photos" / "group.jpg") == "407"
    studio = tmp_path / "studio"  # three signers: the "test split" of the swapped model
    link_signers(dataset, studio, range(3))
    stack.start_worker(concurrency=1)
    job_id = stack.submit(tmp_path / "photos")
    stack.wait_for(job_id)
    _review_hands(stack, job_id, "group.jpg", {0: 4})  # reviewed hand by hand: 4 0 7
    served = {r.id: r.digit for r in stack.rows(job_id)}
    result = stack.cli("compare", job_id[:8], "--model", "swapped", "--data", str(studio))
    assert result.returncode == 0, result.stderr[-2000:]
    expected = sorted(i for i, digit in served.items() if digit in SWAP)
    assert expected  # the sample holds 1s and 7s
    listed = sorted(int(line.split()[1]) for line in result.stdout.splitlines()
                    if line.startswith("  image "))
    assert listed == expected, result.stdout
    # The group's three hands are scored one by one; the candidate reads its 7 as a 1.
    assert "reviewed hands (3 from 1 photo): serving 3 right, candidate 2 right" \
        in result.stdout.splitlines()
    assert f"other photos ({len(truth)}): {len(expected)} answers would change" in result.stdout
    studio_line = next(x for x in result.stdout.splitlines() if x.startswith("dataset test"))
    serving_share, candidate_share = (float(v.rstrip("%,")) for v in studio_line.split()[5::2])
    assert candidate_share < serving_share  # its 1s and 7s are wrong there
    from signdigits.db.registry import find_model

    with stack.sessions()() as session:
        stored = find_model(session, "swapped").figures["comparison"]
    assert sorted(c["image_id"] for c in stored["changed"]) == expected
    assert all(c["candidate"] == SWAP[c["serving"]] for c in stored["changed"])
    assert stored["reviewed"] == {"images": 3, "hands": 3, "photos": 1, "left_out": {},
                                  "serving_right": 3, "candidate_right": 2}

    # Serving, it has nothing to be compared with: refused, and the comparison its page
    # shows is kept (compared with itself, it had become "0 answers would change").
    assert stack.cli("models", "promote", "swapped").returncode == 0
    itself = stack.cli("compare", job_id[:8], "--model", "swapped", "--data", str(studio))
    assert itself.returncode == 1 and itself.stderr.strip().splitlines() == [
        "error: swapped is the model serving now: nothing to compare it with"], itself.stderr
    with stack.sessions()() as session:
        assert find_model(session, "swapped").figures["comparison"] == stored

    # The model that read the job, its files gone from the registry's folder: `adapt`
    # says so in one line (it had printed a traceback), as `compare` does.
    from sqlalchemy import update

    from signdigits.db.models import Image

    with stack.sessions().begin() as session:  # as if the swapped model had read the job
        session.execute(update(Image).where(Image.job_id == job_id)
                        .values(model_version=find_model(session, "swapped").version))
        gone = stack.tmp / "models" / find_model(session, "swapped").file
    gone.unlink()
    orphan = stack.cli("adapt", job_id[:8], "--out", "orphan", "--data", str(studio))
    lines = orphan.stderr.strip().splitlines()
    assert orphan.returncode == 1 and len(lines) == 1, orphan.stderr[-2000:]
    assert lines[0].startswith("error: the parent model ") and "cannot be read" in lines[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_adapt_on_a_small_real_job_records_its_lineage(stack, dataset, tmp_path):
    from signdigits.db.models import Image
    from signdigits.db.registry import find_model
    from signdigits.db.reviews import add_review
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    truth = copy_sample(dataset, tmp_path / "photos", per_digit=1, seed=9)
    three_people(dataset, tmp_path / "photos" / "group.jpg")
    link_signers(dataset, replay := tmp_path / "replay", range(8))  # read in seconds
    stack.start_worker(concurrency=1)
    job_id = stack.submit(tmp_path / "photos")
    stack.wait_for(job_id)
    with stack.sessions().begin() as session:
        for image in session.scalars(select(Image).where(Image.job_id == job_id,
                                                         Image.path != "group.jpg")):
            add_review(session, image=image, digit=truth[image.path], unusable=False,
                       reviewer="test")
    _review_hands(stack, job_id, "group.jpg", {1: None})  # 4, not a hand, 7
    # A reviewed photo replaced by another since its review: its answer is for a photo no
    # longer there. export-reviews skips it; adapt leaves it out by the same check (it had
    # learnt the new photo under the old answer).
    changed, other = sorted(truth)[:2]
    (tmp_path / "photos" / changed).write_bytes((tmp_path / "photos" / other).read_bytes())
    exported = stack.cli("export-reviews", job_id, "--out", str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert f"{changed}: changed since it was reviewed" in exported.stdout + exported.stderr
    adapted = stack.cli("adapt", job_id, "--out", "small", "--data", str(replay))
    assert adapted.returncode == 0, adapted.stderr[-3000:]
    assert "registered small (" in adapted.stderr

    assert (listed := stack.cli("models", "list")).returncode == 0
    line = next(x for x in listed.stdout.splitlines() if " small " in x)
    shipped = read_model_info(shipped_model_path()).version
    assert shipped in line  # the parent
    with stack.sessions()() as session:
        row = find_model(session, "small")
    assert row.parent == shipped and row.promoted_at is None
    info = read_model_info(stack.tmp / "models" / row.file)
    assert info.version == row.version and info.onnx_path is not None
    lineage = info.metadata["lineage"]
    assert lineage["parent"] == shipped and lineage["jobs"] == [job_id]
    # One example per photo with its hand found again, and two from the group's hands.
    photos = lineage["reviewed_photos"]
    assert lineage["reviews"] == lineage["reviewed_hands"] == photos + 1
    left_out = dict(lineage["left_out"])
    assert left_out.pop("not a hand") == 1
    assert left_out.get("changed since it was reviewed") == 1
    assert photos - 1 + sum(left_out.values()) == len(truth) and photos >= 8
    said = " ".join(adapted.stderr.split())  # the console wraps long lines
    assert f"from {photos + 1} reviewed hands in {photos} photos of 1 job(s) (left out: " \
        in said and "1 hand answered not a hand" in said, adapted.stderr[-2000:]
    assert "1 photo changed since it was reviewed" in said, adapted.stderr[-2000:]
    assert row.figures["lineage"] == lineage
    familiar = info.metadata["familiarity"]  # all replayed and reviewed hands (< 256)
    assert (familiar["references"], familiar["test_unfamiliar"]) == (
        info.metadata["evaluation"]["reviewed"] + info.metadata["split"]["train_images"], 0)
    # It can be promoted: the workers could load it.
    assert stack.cli("models", "promote", "small").returncode == 0


def test_a_promoted_model_a_worker_cannot_read_leaves_it_on_its_model(stack, swapped_model,
                                                                       dataset, tmp_path):
    """Promoted, then its files gone from the shared folder (another machine's folder, a
    volume not mounted): the worker keeps the model it has, every batch is read."""
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    row = _register(stack, swapped_model, "vanishing")
    assert stack.cli("models", "promote", "vanishing").returncode == 0
    for suffix in (".keras", ".onnx"):
        (stack.tmp / "models" / row.file).with_suffix(suffix).unlink()
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=1)
    worker = stack.start_worker(concurrency=1)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "4")
    stack.wait_for(job_id)
    rows = stack.rows(job_id)
    assert sorted(r.path for r in rows) == sorted(truth) and all(r.status == "done" for r in rows)
    assert {r.model_version for r in rows} == {read_model_info(shipped_model_path()).version}
    assert f"cannot serve model {row.version}" in worker.log.read_text()
    # `run` starts its workers on this machine: it says so before anything, in one line,
    # where it had read the job with the default model in silence.
    ran = stack.cli("run", str(tmp_path / "photos"), "--workers", "1")
    assert ran.returncode == 1 and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith(f"error: the promoted model {row.version} cannot be served "
                                 "here (") and "models rollback" in ran.stderr, ran.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_registry_commands_refuse_in_one_line(stack):
    for args, expected in [
        (("models", "promote", "nothing-such"),
         "error: no registered model 'nothing-such' (see `signdigits models list`)"),
        (("models", "promote", " "), "error: no model named (give a name or a version)"),
        (("adapt", "latest", "--out", "x"), "error: no jobs yet"),
        (("compare", "latest", "--model", "x", "--data", "/no/such/folder"),
         "error: --data /no/such/folder: not a folder"),
    ]:
        done = stack.cli(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode in (1, 2) and len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith(expected), (args, lines)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_model_name_is_checked_before_any_work(stack):
    """`adapt --out` refuses a name no model can have before it looks at a job (the
    fine-tune had run, then failed on it, or registered an invisible name); registering
    refuses it by the same rule before a file is copied."""
    from signdigits.db.registry import MAX_NAME, ModelNameError

    for name, expected in [
        ("", "a model's name cannot be empty"),
        ("   ", "a model's name cannot be empty"),
        ("x" * 300, f"a model's name is at most {MAX_NAME} characters (got 300)"),
        ("\U0001f44b" * 60, "a model's name is at most 223 bytes in UTF-8"),
        ("two\nlines", "a model's name is one line"),
        ("evil\u202etxt.exe", "a model's name cannot hold bidirectional control characters"),
        ("tab\there", "a model's name cannot hold control characters"),
    ]:
        done = stack.cli("adapt", "latest", "--out", name)  # no job: refused before that
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (name, done.stderr)
        assert lines[0].startswith(f"error: --out: {expected}"), (name, lines)
        with pytest.raises(ModelNameError):
            _register(stack, stack.tmp / "no-such-model.keras", name)
    assert not (stack.tmp / "models").exists() or not any((stack.tmp / "models").iterdir())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("args", [("models", "list"), ("models", "rollback"),
                                  ("models", "promote", "x")])
def test_the_model_commands_never_create_a_database(stack, args):
    """Pointed at a mistyped path they say there is none there, as `status` does (they
    had created and migrated one, and answered "nothing is promoted")."""
    from tests.conftest import run_cli

    typo = stack.tmp / "typo.db"
    done = run_cli(*args, env={**stack.env, "SIGNDIGITS_DATABASE_URL": f"sqlite:///{typo}"},
                   cwd=stack.tmp)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: no database at {typo} (SIGNDIGITS_DATABASE_URL): nothing was submitted "
        "there"], done.stderr
    assert not typo.exists()
