"""Reading one photo: `signdigits predict` (the label table on real photos, every file its
own line, the previews) and the workers' predict_image task (the web's /try)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid

import pytest
from PIL import Image

from tests.conftest import Stack, make_env, run_cli, sample_images, unseen_signer_files
from tests.photos import plain_wall
from tests.waiting import broker_client, pop_within


def test_predict_reports_the_folder_digits(dataset, tmp_path):
    """The label table, checked on real photos: the original project's was wrong."""
    import random

    files = unseen_signer_files(dataset)
    assert len(files) > 200
    sample = random.Random(5).sample(files, 100)
    result = run_cli("predict", *(str(p) for p, _ in sample), env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 100
    correct = sum(
        f": digit {digit} " in line for (path, digit), line in zip(sample, lines, strict=True)
    )
    assert correct >= 95, f"{correct}/100 correct"


def test_predict_reports_bad_files_and_goes_on(dataset, tmp_path):
    good = next((dataset / "3").iterdir())
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_text("<html>no</html>")
    missing = tmp_path / "missing.png"
    preview = tmp_path / "preview"
    result = run_cli("predict", str(corrupt), str(good), str(missing), "--preview", str(preview),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{good}: digit" in result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and "not an image" in errors[0] and "not found" in errors[1]
    assert Image.open(preview / f"{good.stem}.png").size == (100, 100)  # the photo, drawn on
    assert Image.open(preview / f"{good.stem}-hand.png").size == (224, 224)  # the hand read


def test_predict_keeps_a_preview_for_each_of_two_files_of_one_name(dataset, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    three, seven = next((dataset / "3").iterdir()), next((dataset / "7").iterdir())
    (tmp_path / "a" / "one.jpg").write_bytes(three.read_bytes())
    (tmp_path / "b" / "one.jpg").write_bytes(seven.read_bytes())
    result = run_cli("predict", "a/one.jpg", "b/one.jpg", "--preview", "views",
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "digit" in result.stdout.splitlines()[0] and "digit" in result.stdout.splitlines()[1]
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == [
        "one-2-hand.png", "one-2.png", "one-hand.png", "one.png"]
    assert (tmp_path / "views" / "one.png").read_bytes() != \
        (tmp_path / "views" / "one-2.png").read_bytes()


def test_predict_reports_an_unreadable_file_and_classifies_the_rest(dataset, tmp_path):
    """click's own readable check refused the whole command (a usage box, exit 2)."""
    good = next((dataset / "3").iterdir())
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(good.read_bytes())
    locked.chmod(0)
    as_user = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] \
        if os.geteuid() == 0 else []  # so the file's mode applies to root too
    result = subprocess.run(
        [*as_user, sys.executable, "-m", "signdigits", "predict", str(locked), str(good)],
        env=make_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert f"{good}: digit" in result.stdout
    [error] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "locked.jpg" in error and "permission denied" in error, error


def test_predict_says_no_hand_found_and_draws_no_hand(tmp_path):
    plain_wall(tmp_path / "wall.jpg")
    result = run_cli("predict", "wall.jpg", "--preview", "views", env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # a reading, not an error
    assert result.stdout == "wall.jpg: no hand found (below threshold)\n"
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["wall.png"]


def test_predict_without_the_hand_models_is_one_line(dataset, tmp_path):
    from tests.test_cli_errors import one_line_error

    (tmp_path / "empty").mkdir()
    good = next((dataset / "3").iterdir())
    one_line_error(run_cli("predict", str(good), env=make_env(hand_models_dir=tmp_path / "empty"),
                           cwd=tmp_path), 1, "run `signdigits fetch-hand-models`")


# The workers' predict_image: what the web sends (the photo as read_photo decoded it) and
# what it gets back.


@pytest.fixture(scope="module")
def predict_stack(redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    stack = Stack(redis_url, f"sqlite:///{tmp / 'results.db'}", tmp)
    stack.start_worker(concurrency=1)
    yield stack
    stack.stop()


def ask_worker(stack: Stack, *args, **kwargs) -> dict:
    """Send predict_image as the web does and wait for the answer on its reply list."""
    from signdigits.broker.app import PREDICT_QUEUE
    from signdigits.broker.messages import PREDICT_TASK_NAME, predict_reply_key

    reply_to = predict_reply_key(uuid.uuid4().hex)
    stack.app().send_task(PREDICT_TASK_NAME, args=list(args),
                          kwargs={**kwargs, "reply_to": reply_to}, queue=PREDICT_QUEUE,
                          ignore_result=True)
    found = pop_within(broker_client(stack.broker_url), reply_to, timeout=60)
    assert found is not None, "no reply within 60 s"
    return json.loads(found)


def message_of(photo) -> tuple[str, list[int], list[int]]:
    return (base64.b64encode(photo.image.tobytes()).decode("ascii"), list(photo.image.size),
            list(photo.original_size))


def test_the_worker_reads_a_photo_as_predict_does(predict_stack, dataset):
    """Its answers are the in-process reader's on the same pixels, and right on real hands."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.photo import read_photo
    from signdigits.serving.preview import hand_record
    from signdigits.serving.reader import HandReader

    reader = HandReader.from_folder(Classifier(), models_dir(None))
    correct = 0
    for path, digit in sample_images(dataset, 1, seed=31):
        photo = read_photo(path)
        answer = ask_worker(predict_stack, *message_of(photo))
        expected = reader.read(photo)
        assert answer["reading"] == expected.how
        assert answer["model_version"] == reader.classifier.version
        assert answer["threshold"] == reader.classifier.info.default_threshold
        if expected.answer is None:
            assert answer["digit"] is None and answer["hands"] == [] and answer["crop_png"] is None
            continue
        p = expected.answer.prediction
        assert (answer["digit"], answer["confidence"]) == (p.digit, pytest.approx(p.confidence))
        assert answer["below_threshold"] == (p.confidence < answer["threshold"])
        assert answer["probabilities"] == pytest.approx(p.probabilities, abs=1e-6)
        assert answer["hands"][0] == hand_record(
            expected.answer.hand, scale=photo.scale, digit=p.digit, confidence=p.confidence,
            probabilities=p.probabilities,
            below_threshold=p.confidence < answer["threshold"])
        assert (answer["digits"], answer["hand_count"]) == (str(p.digit), 1)
        crop = Image.open(io.BytesIO(base64.b64decode(answer["crop_png"])))
        assert (crop.format, crop.size) == ("PNG", (224, 224))
        correct += answer["digit"] == digit
    assert correct >= 8, f"{correct}/10 right"


def test_the_worker_reports_no_hand_and_takes_the_threshold_given(predict_stack, tmp_path):
    from signdigits.serving.photo import read_photo

    plain_wall(tmp_path / "wall.jpg", size=(1280, 960))
    photo = read_photo(tmp_path / "wall.jpg")
    assert photo.original_size == (1280, 960) and photo.scale < 1  # decoded smaller
    answer = ask_worker(predict_stack, *message_of(photo), threshold=0.0)
    assert answer == {
        "digit": None, "digits": "", "hand_count": 0, "confidence": 0.0,
        "below_threshold": True, "threshold": 0.0,
        "probabilities": None, "model_version": answer["model_version"],
        "reading": "no hand found", "hands": [], "crop_png": None,
        # What the web does next, as a batch would: decode closer and search again.
        "found": 0, "closer": {"step": "search", "place": None}}


@pytest.mark.parametrize(("args", "error"), [
    (["AAAA", [2, 2], [2, 2]], "expected 12 RGB bytes for 2x2"),  # 3 bytes
    ([base64.b64encode(bytes(12)).decode(), [2, 2], [0, 2]], "original_size must be"),
    ([base64.b64encode(bytes(12)).decode(), [2, True], [2, 2]], "size must be"),
    ([base64.b64encode(bytes(12)).decode(), [2, 2, 1], [2, 2]], "size must be"),
    (["A" * 64, [5000, 4000], [5000, 4000]], "over the 16,777,216-pixel limit"),
    (["#nt#", [1, 1], [1, 1]], "not base64"),
])
def test_a_malformed_message_is_answered_with_one_line(predict_stack, args, error):
    answer = ask_worker(predict_stack, *args)
    assert list(answer) == ["error"] and error in answer["error"], answer
    assert "\n" not in answer["error"]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"last_look": "yes"}, "last_look must be true or false"),
    ({"place": [{"landmarks": [[0, 0]] * 20}]}, "21 [x, y] pairs of numbers"),
    ({"place": "everywhere"}, "place must be a list"),
])
def test_a_malformed_closer_look_is_answered_with_one_line(predict_stack, kwargs, error):
    answer = ask_worker(predict_stack, base64.b64encode(bytes(12)).decode(), [2, 2], [8, 8],
                        **kwargs)
    assert list(answer) == ["error"] and error in answer["error"], answer
