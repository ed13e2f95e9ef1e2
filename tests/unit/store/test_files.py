"""The spooled files: sealed with the storage key ring, readable after a rotation, rewritten
under the new key when asked, refused when altered; modes 0600 and 0700 with or without a key."""

import pytest

from connector.store.files import (MAGIC, DataFiles, Keyring, StorageKeyError, new_key_entry,
                                   write_durably)

CLEAR = b"DICM...QUIVERLANDE^Ysoldine...IPP7Q4K9Z2"


def ring(*entries: str) -> Keyring:
    return Keyring.parse("\n".join(entries), where="test")


def test_a_file_is_sealed_under_the_current_key_and_opens_again(tmp_path):
    keys = ring(new_key_entry())
    path = tmp_path / "images" / "TD1" / "1.2.3.dcm"
    DataFiles(keys).write(path, CLEAR)
    sealed = path.read_bytes()
    assert sealed.startswith(MAGIC + bytes([len(keys.current)]) + keys.current.encode())
    assert b"QUIVERLANDE" not in sealed and b"IPP7Q4K9Z2" not in sealed
    assert DataFiles(keys).read(path) == CLEAR
    assert path.stat().st_mode & 0o777 == 0o600
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in (path.parent, path.parent.parent))


def test_after_a_rotation_old_files_open_and_rewrite_seals_them_and_clear_ones_anew(tmp_path):
    old_entry = new_key_entry()
    old = ring(old_entry)
    DataFiles(old).write(tmp_path / "images" / "a.dcm", CLEAR)
    write_durably(tmp_path / "reports" / "b.dcm", CLEAR)  # written before the site set a key
    rotated = ring(old_entry, new_key_entry())
    assert rotated.current != old.current
    files = DataFiles(rotated)
    assert files.read(tmp_path / "images" / "a.dcm") == CLEAR
    assert files.read(tmp_path / "reports" / "b.dcm") == CLEAR

    assert files.rewrite([tmp_path / "images", tmp_path / "reports", tmp_path / "none"]) == 2
    for path in (tmp_path / "images" / "a.dcm", tmp_path / "reports" / "b.dcm"):
        assert path.read_bytes()[len(MAGIC) + 1:].startswith(rotated.current.encode())
        assert files.read(path) == CLEAR
    assert files.rewrite([tmp_path / "images", tmp_path / "reports"]) == 0
    with pytest.raises(StorageKeyError, match="not in the ring"):
        DataFiles(old).read(tmp_path / "images" / "a.dcm")


def test_an_altered_file_and_a_bad_key_ring_are_refused(tmp_path):
    keys = ring(new_key_entry())
    path = tmp_path / "a.dcm"
    DataFiles(keys).write(path, CLEAR)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(StorageKeyError, match="altered or truncated"):
        DataFiles(keys).read(path)
    for text in ("", "k1:c2hvcnQ=", "no-colon", "k1:not base64!"):
        with pytest.raises(StorageKeyError):
            Keyring.parse(text, where="storage.key_file")


def test_without_a_key_files_stay_clear_but_private(tmp_path):
    path = tmp_path / "images" / "a.dcm"
    DataFiles().write(path, CLEAR)
    assert path.read_bytes() == CLEAR and path.stat().st_mode & 0o777 == 0o600
