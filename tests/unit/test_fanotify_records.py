"""Parsing of fanotify event bytes, built field by field with struct.pack in the kernel's
layout (linux/fanotify.h): metadata, info header, fsid, struct file_handle, name.

One test per info-record shape a FanotifyWatcher asks for: a create (DFID_NAME + FID
of the target), a rename (OLD_DFID_NAME + NEW_DFID_NAME + FID), a self event (DFID
with name "."), an overflow (no records), an FS error record, and malformed input.
"""

from __future__ import annotations

import struct

import pytest

from mirrord.watch import fanotify_sys as S
from mirrord.watch.fanotify_probe import mounts_below

FSID = (0x1234, 0x5678)


def handle(ino: int, gen: int = 7) -> bytes:
    """A struct file_handle as ext4 makes it: handle_bytes=8, handle_type=1, ino + gen."""
    return struct.pack("=Ii", 8, 1) + struct.pack("=II", ino, gen)


def fid_record(info_type: int, fh: bytes, name: bytes | None = None) -> bytes:
    body = struct.pack("=ii", *FSID) + fh
    if name is not None:
        body += name + b"\0"
    length = 4 + len(body)
    pad = (-length) % 4         # records are padded to 4 bytes (FAN_EVENT_INFO_LEN)
    return struct.pack("=BBH", info_type, 0, length + pad) + body + b"\0" * pad


def event(mask: int, *records: bytes, pid: int = 4242, vers: int = 3) -> bytes:
    info = b"".join(records)
    return struct.pack("=IBBHQii", 24 + len(info), vers, 0, 24, mask, S.FAN_NOFD, pid) + info


def test_create_of_a_file_with_dfid_name_and_target_fid():
    buf = event(S.FAN_CREATE, fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, handle(2), b"a.jpg"),
                fid_record(S.FAN_EVENT_INFO_TYPE_FID, handle(99)))
    [ev] = S.parse(buf)
    assert ev == S.RawEvent(S.FAN_CREATE, 4242, dfid=handle(2), name=b"a.jpg", fid=handle(99))


def test_rename_carries_both_ends_and_the_moved_object():
    buf = event(S.FAN_RENAME | S.FAN_ONDIR,
                fid_record(S.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, handle(10), b"old"),
                fid_record(S.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, handle(20), b"new-name"),
                fid_record(S.FAN_EVENT_INFO_TYPE_FID, handle(30)))
    [ev] = S.parse(buf)
    assert (ev.old_dfid, ev.old_name) == (handle(10), b"old")
    assert (ev.dfid, ev.name) == (handle(20), b"new-name")
    assert ev.fid == handle(30) and ev.mask & S.FAN_ONDIR


def test_a_handle_is_the_raw_file_handle_struct_open_by_handle_at_takes():
    long_fh = struct.pack("=Ii", 12, 0x81) + bytes(range(12))       # another fs's handle size
    [ev] = S.parse(event(S.FAN_CLOSE_WRITE,
                         fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, long_fh, b"x")))
    assert ev.dfid == long_fh and ev.name == b"x" and ev.fid is None


def test_an_event_on_a_directory_itself_names_it_dot():
    [ev] = S.parse(event(S.FAN_ATTRIB | S.FAN_ONDIR,
                         fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, handle(5), b"."),
                         fid_record(S.FAN_EVENT_INFO_TYPE_FID, handle(5))))
    assert ev.name == b"." and ev.dfid == ev.fid == handle(5)


def test_dfid_without_name():
    [ev] = S.parse(event(S.FAN_DELETE_SELF, fid_record(S.FAN_EVENT_INFO_TYPE_DFID, handle(5))))
    assert ev.dfid == handle(5) and ev.name is None


def test_overflow_has_no_records():
    [ev] = S.parse(event(S.FAN_Q_OVERFLOW))
    assert ev == S.RawEvent(S.FAN_Q_OVERFLOW, 4242)


def test_fs_error_record_and_an_unknown_record_are_read_past():
    err = struct.pack("=BBH", S.FAN_EVENT_INFO_TYPE_ERROR, 0, 12) + struct.pack("=iI", 117, 3)
    unknown = struct.pack("=BBH", 99, 0, 8) + b"\xff" * 4
    buf = event(S.FAN_FS_ERROR, unknown, err, fid_record(S.FAN_EVENT_INFO_TYPE_FID, handle(1)))
    [ev] = S.parse(buf)
    assert ev.error == 117 and ev.fid == handle(1)


def test_several_events_in_one_read_keep_their_order():
    buf = (event(S.FAN_CREATE | S.FAN_ONDIR,
                 fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, handle(2), b"d"))
           + event(S.FAN_Q_OVERFLOW)
           + event(S.FAN_DELETE, fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, handle(2), b"f")))
    assert [(e.mask, e.name) for e in S.parse(buf)] == [
        (S.FAN_CREATE | S.FAN_ONDIR, b"d"), (S.FAN_Q_OVERFLOW, None), (S.FAN_DELETE, b"f")]


def test_non_utf8_names_stay_bytes():
    [ev] = S.parse(event(S.FAN_CLOSE_WRITE,
                         fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, handle(2), b"caf\xe9")))
    assert ev.name == b"caf\xe9"


@pytest.mark.parametrize("buf, message", [
    (event(S.FAN_CREATE, vers=2), "version 2"),
    (event(S.FAN_CREATE)[:20], "trailing"),
    (struct.pack("=IBBHQii", 100, 3, 0, 24, S.FAN_CREATE, -1, 1), "bad event length"),
    (event(S.FAN_CREATE, struct.pack("=BBH", 1, 0, 2)), "bad info record length"),
    (event(S.FAN_CREATE, struct.pack("=BBH", 2, 0, 8) + b"\0" * 4), "too short"),
    (event(S.FAN_CREATE, struct.pack("=BBH", 1, 0, 20) + struct.pack("=ii", *FSID)
           + struct.pack("=Ii", 64, 1)), "overruns"),
])
def test_malformed_input_is_refused_not_misread(buf, message):
    with pytest.raises(S.ParseError, match=message):
        S.parse(buf)


def test_mount_points_below_the_root_from_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_bytes(
        b"22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        b"30 22 0:40 / /srv/up rw - ext4 /dev/vdb rw\n"
        b"31 30 0:41 / /srv/up/site\\040one/2024 rw - tmpfs tmpfs rw\n"
        b"32 22 0:42 / /srv/upload rw - tmpfs tmpfs rw\n"
        b"33 30 0:43 / /srv/up/caf\xc3\xa9 rw - tmpfs tmpfs rw\n")
    assert mounts_below("/srv/up", str(info)) == ["/srv/up/caf\u00e9", "/srv/up/site one/2024"]
    assert mounts_below("/srv/up", str(tmp_path / "absent")) == []
