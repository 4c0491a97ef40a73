"""s3:// job folders: the URL, the allowed roots, the keys a worker reads (files.objects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signdigits.config.settings import Settings
from signdigits.files.objects import ObjectLocation, key_is_plain, objects_allowed, parse_object_url
from signdigits.files.paths import inside_allowed_roots


@pytest.mark.parametrize(("url", "location"), [
    ("s3://photos/batch", ObjectLocation("photos", "batch/")),
    ("s3://photos/batch/", ObjectLocation("photos", "batch/")),
    ("s3://photos", ObjectLocation("photos", "")),
    ("s3://photos/", ObjectLocation("photos", "")),
    ("s3://my.bucket-1/a/b", ObjectLocation("my.bucket-1", "a/b/")),
    ("s3:/photos/batch", ObjectLocation("photos", "batch/")),  # as a pathlib.Path spells it
])
def test_urls_become_a_bucket_and_a_folder_prefix(url, location):
    assert parse_object_url(url) == location
    assert str(location) == f"s3://{location.bucket}/{location.prefix}"


@pytest.mark.parametrize("url", ["s3://", "s3://x/a", "s3://a_b!/p", "s3://-abc/p",
                                 "s3://photos/a/../b", "s3://photos/a//b", "s3://photos/./a",
                                 "s3://photos/a\x00b", "s3://photos/\udce9"])
def test_urls_that_name_no_prefix_are_refused_in_one_line(url):
    with pytest.raises(ValueError, match="s3://|refused") as caught:
        parse_object_url(url)
    assert "\n" not in str(caught.value)


def test_a_prefix_is_a_folder_not_the_start_of_a_name():
    assert parse_object_url("s3://bkt/photos").contains(parse_object_url("s3://bkt/photos/x"))
    assert not parse_object_url("s3://bkt/photos").contains(parse_object_url("s3://bkt/photos2"))
    assert not parse_object_url("s3://bkt/photos").contains(parse_object_url("s3://cab/photos"))


def test_allowed_roots_name_buckets_and_folders_each_for_its_own_kind(monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_ALLOWED_ROOTS", '["s3://photos/in", "/srv/photos"]')
    roots = Settings().allowed_roots
    assert objects_allowed(parse_object_url("s3://photos/in/a"), roots)
    assert not objects_allowed(parse_object_url("s3://photos/other"), roots)
    assert not objects_allowed(parse_object_url("s3://secrets/in"), roots)
    assert inside_allowed_roots("/srv/photos/a", roots)
    # An s3 root admits no folder, not even one a relative 's3:' folder would resolve to.
    assert not inside_allowed_roots(str(Path.cwd() / "s3:" / "photos" / "in"), roots)
    monkeypatch.setenv("SIGNDIGITS_ALLOWED_ROOTS", '["s3://photos/in"]')
    assert not inside_allowed_roots("/srv/photos", Settings().allowed_roots)
    assert objects_allowed(parse_object_url("s3://any/where"), [])  # no roots: anything


def test_keys_a_worker_reads_are_plain():
    assert key_is_plain("3/IMG_1.JPG") and key_is_plain("a b/é.jpg")
    for key in ("../x.jpg", "a/./b.jpg", "a//b.jpg", "/a.jpg", "a\x00.jpg", "\udce9.jpg"):
        assert not key_is_plain(key), key
