"""Images embedded in an order (OBX, value type ED, Base64): the case opens with them, or the order
is refused (AE, ERR at the OBX) and nothing is kept."""

from __future__ import annotations

import base64

from sqlalchemy import func, select

from connector.demo import demo_order, demo_photo
from connector.hl7.orm import images_from_orm
from connector.hl7.parse import parse
from connector.store.schema import cases, images
from tests.support.channels import demo_jpeg


def with_obx(*segments: str):
    """An edit that puts OBX segments right after the order's NTE (before its consent OBX, so
    they are OBX 1, 2 ...)."""
    def edit(text: str) -> str:
        head, nte, rest = text.partition("\rNTE|")
        line, _, tail = rest.partition("\r")
        return head + nte + line + "\r" + "\r".join(segments) + "\r" + tail
    return edit


def obx(n: int, data: bytes | str, *, code: str = "PHOTO", subtype: str = "JPEG",
        encoding: str = "Base64", site: str = "") -> str:
    payload = data if isinstance(data, str) else base64.b64encode(data).decode("ascii")
    fields = ["OBX", str(n), "ED", f"{code}^Photo^L", "1", f"DPI^IM^{subtype}^{encoding}^{payload}",
              "", "", "", "", "", "F"] + [""] * 8 + [site]
    return "|".join(fields)


def count(channels, table) -> int:
    with channels.services.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_order_with_an_embedded_jpeg_opens_a_case_with_that_image_in_orthanc(channels):
    case = channels.open_case(edit=with_obx(obx(1, demo_jpeg(), site="66643007"),
                                            obx(2, demo_photo(True), code="")))
    accession = case["accession"]
    detail = channels.case(accession)
    assert detail["status"] == "IMAGES_PENDING"  # committed with the case, before the ACK
    assert sorted(i["site"] for i in detail["images"]) == ["", "66643007"]
    assert {i["kind"] for i in detail["images"]} == {"photo"}
    instances = channels.wait_instances(case["study_instance_uid"], 2)
    assert {i["AccessionNumber"] for i in instances} == {accession}


def test_order_with_bad_base64_gets_ae_at_the_obx_and_opens_nothing(channels):
    before = (count(channels, cases), count(channels, images))
    ack, placer = channels.send_order(with_obx(obx(1, demo_jpeg()), obx(2, "not*base64!")))
    assert ack.code == "AE"
    (err,) = ack.errors
    assert (err.location, err.hl7_code) == ("OBX^2^5", "102")
    assert channels.api.get("/api/cases", params={"placer_order_number": placer}).json() == []
    assert (count(channels, cases), count(channels, images)) == before


def test_order_with_a_payload_that_is_not_an_image_gets_ae_and_nothing_half_done(channels):
    before = (count(channels, cases), count(channels, images))
    ack, placer = channels.send_order(with_obx(obx(1, demo_jpeg()), obx(2, b"GIF89a-nope")))
    assert ack.code == "AE"
    (err,) = ack.errors
    assert err.location == "OBX^2^5" and err.hl7_code == "102"
    assert channels.api.get("/api/cases", params={"placer_order_number": placer}).json() == []
    assert (count(channels, cases), count(channels, images)) == before


def test_order_with_an_unknown_subtype_gets_ae_103_at_the_obx(channels):
    ack, _ = channels.send_order(with_obx(obx(1, demo_jpeg(), subtype="BMP")))
    assert ack.code == "AE"
    assert (ack.errors[0].location, ack.errors[0].hl7_code) == ("OBX^1^5", "103")


def test_obx3_code_gives_the_kind_and_other_observations_are_left_alone():
    order = with_obx("OBX|1|NM|SIZE^Taille^L||12|mm",
                     obx(2, demo_jpeg(), code="DERMOSCOPY"), obx(3, demo_jpeg(), code="OTHER"))(
        demo_order("K-1", "PL-K-1"))
    found = images_from_orm(parse(order.encode("utf-8")))
    assert [(i.location, i.kind, i.subtype) for i in found] == [
        ("OBX^2^5", "dermoscopy", "JPEG"), ("OBX^3^5", "photo", "JPEG")]
    assert found[0].data == demo_jpeg()
