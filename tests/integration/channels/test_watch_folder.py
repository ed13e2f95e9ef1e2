"""Watched folder: files named by a sidecar JSON or by the file-name pattern are attached to their
case and moved to done/; files the connector refuses go to failed/ with a one-line reason."""

from __future__ import annotations

import json

from connector.entrypoints.watch_folder import FolderWatcher
from tests.support.channels import DEADLINE, demo_jpeg, jpeg_object, part10
from tests.support.wait import wait_until


def drop(folder, name: str, data: bytes):
    """Write a file the way an exporter should: under a temporary name, then renamed."""
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    tmp.rename(folder / name)


def wait_moved(channels, name: str, where: str):
    target = channels.watch / where / name
    wait_until(target.exists, DEADLINE, f"{name} in {where}/")
    assert not (channels.watch / name).exists()
    return target


def test_file_described_by_a_sidecar_is_attached_and_moved_to_done(channels):
    case = channels.open_case()
    accession = case["accession"]
    (channels.watch / "IMG_0042.jpg.json").write_text(json.dumps({
        "accession": accession, "kind": "photo", "site": "66643007", "laterality": "L",
        "description": "Dos"}), encoding="utf-8")
    drop(channels.watch, "IMG_0042.jpg", demo_jpeg())
    wait_moved(channels, "IMG_0042.jpg", "done")
    assert (channels.watch / "done" / "IMG_0042.jpg.json").exists()
    (image,) = channels.case(accession)["images"]
    assert (image["site"], image["laterality"], image["kind"]) == ("66643007", "L", "photo")
    (inst,) = channels.wait_instances(case["study_instance_uid"], 1)
    assert inst["AccessionNumber"] == accession


def test_file_named_by_the_pattern_is_attached_and_moved_to_done(channels):
    case = channels.open_case()
    name = f"{case['accession']}_closeup.jpg"
    drop(channels.watch, name, demo_jpeg())
    wait_moved(channels, name, "done")
    assert len(channels.case(case["accession"])["images"]) == 1
    channels.wait_instances(case["study_instance_uid"], 1)


def test_dicom_file_is_matched_by_its_own_accession_when_it_has_no_sidecar(channels):
    case = channels.open_case()
    ds = jpeg_object(accession=case["accession"], patient_id="IPP123456", seed=21)
    drop(channels.watch, "export-0001.dcm", part10(ds))
    wait_moved(channels, "export-0001.dcm", "done")
    (inst,) = channels.wait_instances(case["study_instance_uid"], 1)
    assert inst["SOPInstanceUID"] == ds.SOPInstanceUID


def test_file_without_accession_goes_to_failed_with_a_one_line_reason(channels):
    drop(channels.watch, "holiday.jpg", demo_jpeg())
    target = wait_moved(channels, "holiday.jpg", "failed")
    reason = (target.parent / "holiday.jpg.error.txt").read_text(encoding="utf-8")
    assert reason.count("\n") == 1 and "no accession" in reason


def test_file_for_an_unknown_case_goes_to_failed_naming_the_accession(channels):
    drop(channels.watch, "ZZ99999999_x.jpg", demo_jpeg())
    target = wait_moved(channels, "ZZ99999999_x.jpg", "failed")
    reason = (target.parent / "ZZ99999999_x.jpg.error.txt").read_text(encoding="utf-8")
    assert "ZZ99999999" in reason


def test_bad_sidecar_sends_the_file_and_its_sidecar_to_failed(channels):
    (channels.watch / "lesion.json").write_text('{"accession": "TD1", "colour": "red"}')
    drop(channels.watch, "lesion.jpg", demo_jpeg())
    target = wait_moved(channels, "lesion.jpg", "failed")
    assert (target.parent / "lesion.json").exists()
    assert "colour" in (target.parent / "lesion.jpg.error.txt").read_text()


def test_not_an_image_goes_to_failed_and_leaves_nothing_in_the_case(channels):
    case = channels.open_case()
    name = f"{case['accession']}-notes.jpg"
    drop(channels.watch, name, b"these are not pixels")
    wait_moved(channels, name, "failed")
    assert channels.case(case["accession"])["images"] == []


def test_file_is_taken_only_when_unchanged_across_two_polls(channels, tmp_path):
    case = channels.open_case()
    folder = tmp_path / "inbox"
    folder.mkdir()
    watcher = FolderWatcher(channels.services, folder, pattern=r"^(?P<accession>TD\d{8})_")
    data = demo_jpeg()
    growing = folder / f"{case['accession']}_a.jpg"
    growing.write_bytes(data[: len(data) // 2])
    assert watcher.poll_once() == []          # first sight
    growing.write_bytes(data)                 # still being written
    assert watcher.poll_once() == []          # changed since the last poll
    (taken,) = watcher.poll_once()            # unchanged: taken
    assert (taken.outcome, taken.accession) == ("done", case["accession"])
    assert (folder / "done" / growing.name).exists()


def test_file_taken_again_after_a_crash_before_its_move_adds_nothing(channels, tmp_path):
    case = channels.open_case()
    folder = tmp_path / "inbox"
    folder.mkdir()
    name = f"{case['accession']}_b.jpg"
    data = demo_jpeg()
    watcher = FolderWatcher(channels.services, folder, pattern=r"^(?P<accession>TD\d{8})_")
    (folder / name).write_bytes(data)
    watcher.poll_once()
    watcher.poll_once()
    # As if the process had died after the commit but before the move: the file is back.
    (folder / name).write_bytes(data)
    again = FolderWatcher(channels.services, folder, pattern=r"^(?P<accession>TD\d{8})_")
    again.poll_once()
    (taken,) = again.poll_once()
    assert taken.outcome == "done" and taken.moved_to.name == f"{case['accession']}_b-1.jpg"
    assert len(channels.case(case["accession"])["images"]) == 1


def test_an_over_long_name_goes_to_failed_under_a_short_name_and_later_files_are_taken(
        channels):
    case = channels.open_case()
    long_name = f"{case['accession']}_" + "DUPONT-Helene-" * 17 + ".jpg"
    long_name = long_name[:244] + ".jpg"  # 248 bytes: `<name>.error.txt` would not fit
    drop(channels.watch, long_name, demo_jpeg())
    failed = channels.watch / "failed"
    wait_until(lambda: not (channels.watch / long_name).exists(), DEADLINE,
               "the long-named file moved away")
    (moved,) = [p for p in failed.glob("long-name-*") if not p.name.endswith(".error.txt")]
    assert moved.suffix == ".jpg" and len(moved.name) < 40
    reason = (failed / f"{moved.name}.error.txt").read_text(encoding="utf-8")
    assert "longer than 200 bytes" in reason and "DUPONT" not in reason
    refused = [a for a in channels.audit_actions("image.refused") if "longer than" in a["detail"]]
    assert len(refused) == 1 and "DUPONT" not in refused[0]["detail"]

    name = f"{case['accession']}_after.jpg"
    drop(channels.watch, name, demo_jpeg())
    wait_moved(channels, name, "done")
    assert len(channels.case(case["accession"])["images"]) == 1
