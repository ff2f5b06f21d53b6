"""Keys XML cannot carry, on the S3 target (mirrord/targets/s3/keys.xml_safe) against SeaweedFS.

DeleteObjects names its keys in an XML body. A key with a character outside XML 1.0's
Char production (most C0 controls, U+FFFE, U+FFFF) makes S3 refuse the whole call as
MalformedXML, so before the fix one such file made a tree removal, a directory move and
a batch of deletes fail for good (PermanentError), and the target kept every key of the
call. The shared suite checks the plain bucket (test_conformance.py); these check the
versioned bucket's move, the trash purge, and that the other keys stay batched.
"""

from __future__ import annotations

import pytest

from mirrord.targets.model import SyncItem
from mirrord.targets.s3.keys import xml_safe
from tests.targets.test_s3_trash import STAMP, put, s3, vs3  # noqa: F401 (s3, vs3: fixtures)

BAD = ["a\x01b.jpg", "bell\x07", "vt\x0b", "us\x1f", "nonchar\ufffe"]
GOOD = ["tab\t.jpg", "nl\n.jpg", "cr\r.jpg", "del\x7f.jpg", "plain.jpg", "ünï.jpg"]


def test_xml_safe_is_xml_1_0s_char_production():
    assert [xml_safe(f"k{c}") for c in ("\t", "\n", "\r", " ", "\x7f", "\ud7ff", "\ue000",
                                        "\ufffd", "\U0001f600")] == [True] * 9
    unsafe = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20),
                               0xD800, 0xDFFF, 0xFFFE, 0xFFFF)]
    assert [xml_safe(f"k{c}") for c in unsafe] == [False] * len(unsafe)


def calls_of(t, operation: str) -> list[dict]:
    seen: list[dict] = []
    t.client.meta.events.register(f"provide-client-params.s3.{operation}",
                                  lambda params, **_: seen.append(params))
    return seen


def test_a_batch_sends_those_keys_alone_and_the_rest_in_one_delete_objects(s3, tmp_path):
    for name in BAD + GOOD:
        put(s3, tmp_path, f"d/{name}", name.encode())
    batches = calls_of(s3, "DeleteObjects")
    results = s3.sync([SyncItem(f"d/{name}", "absent") for name in BAD + GOOD])
    assert [r.error for r in results] == [None] * len(BAD + GOOD)
    assert [len(b["Delete"]["Objects"]) for b in batches] == [len(GOOD)]
    assert list(s3.list()) == []


@pytest.mark.parametrize("bucket", ["s3", "vs3"])
def test_a_directory_move_and_a_tree_removal_carry_those_keys(bucket, request, tmp_path):
    t = request.getfixturevalue(bucket)
    for name in BAD + GOOD:
        put(t, tmp_path, f"old/{name}", name.encode())
        put(t, tmp_path, f"tree/{name}", name.encode())
    t.move("old", "new")
    t.delete("tree", tree=True)
    assert {e.path for e in t.list()} == {f"new/{name}" for name in BAD + GOOD}
    assert t.read("new/a\x01b.jpg") == "a\x01b.jpg".encode()
    if bucket == "vs3":   # the move left no version behind at the old names
        assert not [k for k in t.trash_list() if k.path.startswith("old/")]


def test_the_trash_purge_removes_kept_copies_of_those_keys(s3, tmp_path):
    for name in BAD + GOOD:
        put(s3, tmp_path, f"k/{name}", name.encode())
    s3.keep("k", stamp=STAMP, coming="absent")
    kept = list(s3.trash_list())
    assert len(kept) == len(BAD + GOOD)
    s3.trash_purge(kept)
    assert list(s3.trash_list()) == []
    assert {e.path for e in s3.list()} == {f"k/{name}" for name in BAD + GOOD}
