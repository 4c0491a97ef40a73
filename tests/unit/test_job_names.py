"""A job's name: the one rule ``db.jobs.job_name`` keeps for ``run --name``, ``submit
--name``, ``POST /api/jobs`` and ``PATCH /api/jobs/{id}``, and the names made from a
folder's or a file's name, which are never refused."""

from __future__ import annotations

import pytest

from signdigits.db.jobs import JobNameError, default_job_name, job_name

BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
        "\u2069", "\u200e", "\u200f", "\u061c"]


@pytest.mark.parametrize(("text", "name"), [
    ("  cyril,\tday 2 ", "cyril, day 2"), ("Zoë's photos", "Zoë's photos"),
    ("batch 1\n", "batch 1"), ("\r\nbatch 1\r\n", "batch 1"),  # a line break at an end: trimmed
    ("שלום world", "שלום world")])  # right-to-left letters are text, not controls
def test_a_name_is_trimmed_and_its_spaces_made_one(text, name):
    assert job_name(text) == name


@pytest.mark.parametrize("text", ["a\nb", "a\r\nb", "a\rb", "a\x0bb", "a\x0cb", "a\x85b",
                                  "a\u2028b", "a\u2029b", "first line\n\nsecond"])
def test_a_line_break_inside_a_name_is_refused(text):
    with pytest.raises(JobNameError, match="^a job's name is one line: it cannot hold a "
                                           "line break$"):
        job_name(text)


@pytest.mark.parametrize("control", BIDI)
def test_bidirectional_controls_are_refused_by_name(control):
    with pytest.raises(JobNameError) as refused:
        job_name(f"x {control} rtl")
    said = str(refused.value)
    assert said.startswith("a job's name cannot hold bidirectional control characters")
    assert f"U+{ord(control):04X}" in said and "\n" not in said


@pytest.mark.parametrize(("text", "said"), [
    ("", "cannot be empty"), (" \t ", "cannot be empty"), ("x" * 201, "at most 200"),
    ("a\x00b", "control characters"), ("a\x1bb", "control characters"),
    ("a\x7fb", "control characters")])
def test_other_names_no_job_can_have(text, said):
    with pytest.raises(JobNameError, match=said):
        job_name(text)


def test_a_folder_or_file_name_becomes_a_name_without_its_controls():
    assert default_job_name("photos\u202egpj.exe  day 2") == "photosgpj.exe day 2"
    for control in BIDI:
        assert control not in default_job_name(f"a{control}b")
    assert default_job_name("\u202e") == "job"
    assert job_name(default_job_name("x \u202e rtl")) == "x rtl"
