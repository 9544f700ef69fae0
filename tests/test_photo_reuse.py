"""A department's photo that is the same picture as one already on another case (拍照造假: one "after" photo fed
back for several cases, re-saved, scaled or slightly cropped) is kept and counted, and marked on the case."""

import io
import random

import cv2
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance
from sqlalchemy import event, insert, text

from gateway import photohash, schema, storage
from gateway.photohash import SAME_PICTURE_BITS, distance, picture_hash
from gateway.storage import Store
from xueliang import wire

from .conftest import REPO
from .test_api_limits import city, city_on_both  # noqa: F401 (fixtures)
from .test_workflow import JPEG, auth, database_url  # noqa: F401 (fixture)

CLIPS = [REPO / "fixtures" / "videos" / name for name in ("campus-gate.mp4", "campus-litter.mp4")]


def clip_frames(every: int = 120) -> list[Image.Image]:
    """Real pictures of a street: frames of the test clips, ``every`` frames apart."""
    frames = []
    for clip in CLIPS:
        video = cv2.VideoCapture(str(clip))
        for at in range(0, int(video.get(cv2.CAP_PROP_FRAME_COUNT)), every):
            video.set(cv2.CAP_PROP_POS_FRAMES, at)
            ok, frame = video.read()
            assert ok, f"{clip.name}: frame {at}"
            frames.append(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        video.release()
    return frames


def jpeg(picture: Image.Image, quality: int = 90, **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, **options)
    return out.getvalue()


def cut(picture: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    """The picture less the given fractions of each side."""
    w, h = picture.size
    return picture.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))


RESENT = {  # the same picture sent again
    "re-encoded at quality 30": lambda p: jpeg(p, 30),
    "re-encoded progressive": lambda p: jpeg(p, 75, progressive=True),
    "halved": lambda p: jpeg(p.resize((p.width // 2, p.height // 2)), 80),
    "quartered": lambda p: jpeg(p.resize((p.width // 4, p.height // 4)), 70),
    "cropped by 2% around": lambda p: jpeg(cut(p, .02, .02, .02, .02)),
    "cropped by 3% around": lambda p: jpeg(cut(p, .03, .03, .03, .03)),
}
ANOTHER = {  # another photo of the same place
    "the framing moved right by a tenth": lambda p: jpeg(cut(p, .1, 0, 0, 0)),
    "the framing moved up and left by a tenth": lambda p: jpeg(cut(p, 0, 0, .1, .1)),
    "the framing moved by 15%": lambda p: jpeg(cut(p, .15, .15, 0, 0)),
    "taken facing the other way": lambda p: jpeg(p.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
}


def test_the_threshold_tells_a_picture_sent_again_from_another_photo_of_the_same_place():
    """``SAME_PICTURE_BITS`` is chosen between the two: every copy of a street's picture re-encoded, scaled or cropped
    a little is within it, every other photo of the same place beyond it."""
    resent, another = {}, {}
    for picture in clip_frames():
        first = picture_hash(jpeg(picture))
        for found, ways in ((resent, RESENT), (another, ANOTHER)):
            for way, copy in ways.items():
                found[way] = found.get(way, []) + [distance(first, picture_hash(copy(picture)))]
    assert max(max(bits) for bits in resent.values()) <= SAME_PICTURE_BITS < min(min(b) for b in another.values()), (
        resent, another)


def test_a_picture_is_hashed_as_shown_turned_by_its_exif_orientation():
    picture = clip_frames(every=10_000)[0]
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down, shown turned
    turned = jpeg(picture.rotate(180), exif=exif)
    assert distance(picture_hash(jpeg(picture)), picture_hash(turned)) <= 1


def test_a_photo_too_dark_to_tell_has_no_hash_and_is_found_by_its_bytes_only(city):  # noqa: F811
    """A night photo with no light (the street at 1 % of its brightness) shows little but the JPEG's rounding: the
    street and the same street facing the other way hashed 8 bits apart, and the second was marked as the first."""
    street = clip_frames(every=10_000)[0]
    dark, other_way = (jpeg(ImageEnhance.Brightness(p).enhance(0.01))
                       for p in (street, street.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert picture_hash(dark) is None and picture_hash(other_way) is None
    assert picture_hash(jpeg(ImageEnhance.Brightness(street).enhance(0.1))) is not None  # dusk is hashed
    app, store, ingest, client, tokens = city
    police = auth(tokens["police"])
    first, second = sorted(c["id"] for c in client.get("/cases", headers=police).json())
    assert client.post(f"/cases/{first}/photos", content=dark, headers={**police, **JPEG}).status_code == 201
    r = client.post(f"/cases/{second}/photos", content=other_way, headers={**police, **JPEG})
    assert r.status_code == 201, r.text
    assert [e for e in r.json()["timeline"] if e["action"] == "photo_reused"] == []
    r = client.post(f"/cases/{second}/photos", content=dark, headers={**police, **JPEG})  # the same bytes: found
    marks = [e["note"] for e in r.json()["timeline"] if e["action"] == "photo_reused"]
    assert [note.split(" is ")[1].split("'s photo")[0] for note in marks] == [f"the same picture as case #{first}"]


def test_a_department_photo_already_on_another_case_is_kept_counted_and_marked(city_on_both):  # noqa: F811
    app, store, ingest, client, tokens = city_on_both
    police = auth(tokens["police"])
    first, second = sorted(c["id"] for c in client.get("/cases", headers=police).json())
    picture = clip_frames(every=10_000)[0]
    r = client.post(f"/cases/{first}/photos", content=jpeg(picture), headers={**police, **JPEG})
    assert r.status_code == 201, r.text
    assert not [e for e in r.json()["timeline"] if e["action"] == "photo_reused"]  # the first of it: nothing to say
    (first_photo,) = [e for e in r.json()["timeline"] if e["action"] == "photo"]
    # another photo of the place, then the first one re-saved and a little cropped, on the second case
    assert client.post(f"/cases/{second}/photos", content=ANOTHER["the framing moved by 15%"](picture),
                       headers={**police, **JPEG}).status_code == 201
    again = jpeg(cut(picture, .02, .02, .02, .02), 60)
    r = client.post(f"/cases/{second}/photos", content=again, headers={**police, **JPEG})
    assert r.status_code == 201, r.text
    moved, resent = [e for e in r.json()["timeline"] if e["action"] == "photo"]
    assert moved["same_picture_as"] is None and resent["same_picture_as"] == first
    (marked,) = [e for e in r.json()["timeline"] if e["action"] == "photo_reused"]
    assert marked["role"] == "system" and marked["note"] == (
        f"photo {resent['note']} is the same picture as case #{first}'s photo of {first_photo['at']}")
    # the department's feedback with it still counts: the operator who confirms the closing reads the mark
    for action in ("acknowledge", "feedback"):
        r = client.post(f"/cases/{second}/actions", json={"action": action}, headers=police)
        assert r.status_code == 200, r.text
    assert r.json()["state"] == "feedback"
    assert [e["action"] for e in client.get(f"/cases/{first}", headers=police).json()["timeline"]].count(
        "photo_reused") == 0  # the case whose photo it was first is not marked
    page = TestClient(app)
    page.post("/ui/login", data={"token": tokens["admin"]})
    shown = page.get(f"/ui/cases/{second}").text
    linked = f"<a href='/ui/cases/{first}'>案件 #{first}</a>"
    when = shown.split(f"现场照片与{linked} ")[1].split(" ")[0:2]
    assert f"<tr><th>照片存疑</th><td>现场照片与{linked} {' '.join(when)}" in shown, shown
    assert f"<figcaption>现场照片 · 与案件 #{first} 的照片为同一张图片</figcaption>" in shown
    assert shown.count("的照片为同一张图片") == 4  # the facts, the photo's alt text and caption, its timeline row
    assert "照片重复" in shown


def test_the_same_bytes_kept_before_the_hashes_are_found_and_an_operators_photo_is_not_marked(city):  # noqa: F811
    app, store, ingest, client, tokens = city
    first, second = sorted(c["id"] for c in client.get("/cases", headers=auth(tokens["police"])).json())
    photo = jpeg(clip_frames(every=10_000)[0])
    r = client.post(f"/cases/{first}/photos", content=photo, headers={**auth(tokens["police"]), **JPEG})
    assert r.status_code == 201
    with store.engine.begin() as db:  # kept before migration 17: no hash
        db.execute(text("DELETE FROM photo_hashes"))
    r = client.post(f"/cases/{second}/photos", content=photo, headers={**auth(tokens["admin"]), **JPEG})
    assert [e for e in r.json()["timeline"] if e["action"] == "photo_reused"] == []  # the centre's own, not marked
    with store.engine.begin() as db:
        db.execute(text("DELETE FROM photo_hashes"))
        db.execute(text("DELETE FROM case_photos WHERE case_id = :c"), {"c": second})
    r = client.post(f"/cases/{second}/photos", content=photo, headers={**auth(tokens["police"]), **JPEG})
    marks = [e["note"] for e in r.json()["timeline"] if e["action"] == "photo_reused"]
    assert [note.split(" is ")[1].split("'s photo")[0] for note in marks] == [f"the same picture as case #{first}"]


def test_the_same_picture_is_looked_up_through_the_index_not_by_reading_every_photo(tmp_path):
    """A year's city keeps some 100,000 cases' photos: the lookup reads the rows near the picture's bands and the
    cases by the bytes found, each through an index."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    rng = random.Random(7)
    with store.begin() as db:
        db.execute(insert(schema.case_photos), [{"case_id": n, "sha256": f"{n:064x}", "added_at": n}
                                                 for n in range(1, 5001)])
        for n in range(1, 5001):
            storage.add_photo_hash(db, f"{n:064x}", rng.getrandbits(64))
        picture = rng.getrandbits(64)
        storage.add_photo_hash(db, f"{9999:064x}", picture ^ 0b1010_0000_0000_0000_0101_0000_0000_0000_0000_0011)
        db.execute(insert(schema.case_photos).values(case_id=9999, sha256=f"{9999:064x}", added_at=123.0))
    statements = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, params, *_: statements.append((sql, params)))
    with store.begin() as db:
        assert storage.same_picture(db, 10_000, "f" * 64, picture) == (9999, 123.0)
        plans = [" ".join(str(row[-1]) for row in db.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                 for sql, params in statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(plans) == 2 and all("SCAN" not in plan for plan in plans), plans


def test_the_other_case_is_named_only_to_a_reader_who_may_see_it(city):  # noqa: F811
    """The mark named the other case to every reader of this one: a department's photo matched another department's
    case, and the department, or a street's operator, read its number and time. Only one who may see that case reads
    its number (linked, on the page); to another it is another case's photo. The case log keeps the number."""
    app, store, ingest, client, tokens = city
    police, sanitation, admin = auth(tokens["police"]), auth(tokens["sanitation"]), auth(tokens["admin"])
    near, far = sorted(c["id"] for c in client.get("/cases", headers=police).json())  # D-S1's, D-S2's
    for who, action in ((police, {"action": "return"}), (admin, {"action": "redispatch", "department": "sanitation"})):
        assert client.post(f"/cases/{far}/actions", json=action, headers=who).status_code == 200
    photo = jpeg(clip_frames(every=10_000)[0])
    assert client.post(f"/cases/{far}/photos", content=photo, headers={**sanitation, **JPEG}).status_code == 201
    r = client.post(f"/cases/{near}/photos", content=photo, headers={**police, **JPEG})  # the police's own answer too
    assert r.status_code == 201, r.text
    logged = [e["note"] for e in store.get_case(near)["timeline"] if e["action"] == "photo_reused"]
    assert [n.split(" is ")[1].split("'s photo")[0] for n in logged] == [f"the same picture as case #{far}"]
    when = logged[0].rsplit(" ", 1)[1]

    def api(headers: dict, body: dict | None = None) -> tuple:
        timeline = (body or client.get(f"/cases/{near}", headers=headers).json())["timeline"]
        (photo_row,) = [e for e in timeline if e["action"] == "photo"]
        (mark,) = [e["note"] for e in timeline if e["action"] == "photo_reused"]
        return photo_row["same_picture_as"], mark.split(" is ")[1]

    hidden = (None, f"the same picture as another case's photo of {when}")
    assert api(police, r.json()) == api(police) == hidden  # the sanitation's case, not the police's to see
    assert api(auth(tokens["op-s1"])) == hidden  # another street's
    assert api(admin) == (far, f"the same picture as case #{far}'s photo of {when}")
    for who, named in (("police", False), ("op-s1", False), ("admin", True)):
        page = TestClient(app)
        page.post("/ui/login", data={"token": tokens[who]})
        shown = page.get(f"/ui/cases/{near}").text
        assert (f"案件 #{far}" in shown, f"/ui/cases/{far}" in shown) == (named, named), (who, shown)
        assert shown.count("另一案件") == (0 if named else 4), (who, shown)  # facts, alt text, caption, timeline
        if named:
            assert f"<tr><th>照片存疑</th><td>现场照片与<a href='/ui/cases/{far}'>案件 #{far}</a> " in shown
