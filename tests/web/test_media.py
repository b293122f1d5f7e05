"""Action photos and tip photos: checked by decoding, stripped of metadata, stored only with
their action, and served only to the centralists of the action's organisation."""

from __future__ import annotations

import io
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.images import MAX_BYTES
from core.models import Action, Tip
from core.settings import Settings
from tests.web.helpers import csrf_token, login, login_as
from tests.web.test_console import action_form, created_id, other_centralist  # noqa: F401

GPS_IFD, ORIENTATION, MAKE = 0x8825, 0x0112, 0x010F


def photo_bytes(fmt: str = "JPEG", size: tuple[int, int] = (60, 40), mode: str = "RGB",
                gps: bool = False, orientation: int | None = None) -> bytes:
    image = Image.new(mode, size, (200, 30, 30, 0) if mode == "RGBA" else "red")
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 5.0, 27.0), 3: "E", 4: (5.0, 7.0, 17.0)})
    raw = io.BytesIO()
    image.save(raw, format=fmt, exif=exif.tobytes())
    return raw.getvalue()


def upload(client: FlaskClient, content: bytes, filename: str = "photo.jpg",
           content_type: str = "image/jpeg", **fields: object):
    data = action_form(**fields)
    data["csrf_token"] = csrf_token(client, "/console/actions/new")
    data["photo"] = (io.BytesIO(content), filename, content_type)
    return client.post("/console/actions/new", data=data, content_type="multipart/form-data")


def stored_photos(settings: Settings) -> list[Path]:
    folder = settings.var_dir / "media" / "actions"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def centralist(client: FlaskClient) -> FlaskClient:
    return login_as(client, "centralist")


def test_a_photo_loses_its_gps_position_and_camera_data(centralist, db, settings):
    original = photo_bytes(gps=True)
    with Image.open(io.BytesIO(original)) as sent:
        assert sent.getexif().get_ifd(GPS_IFD)  # the test photo really carries a position
    action = db.get(Action, created_id(upload(centralist, original)))
    assert action.photo_type == "image/jpeg" and action.photo_path.endswith(".jpg")
    [path] = stored_photos(settings)
    assert path.name == action.photo_path
    with Image.open(path) as kept:
        assert kept.format == "JPEG" and kept.size == (60, 40)
        assert not kept.getexif() and "exif" not in kept.info
    assert b"Exif" not in path.read_bytes() and b"PhoneMaker" not in path.read_bytes()


def test_a_photo_taken_sideways_is_stored_upright(centralist, db, settings):
    created_id(upload(centralist, photo_bytes(orientation=6)))  # "rotate 90° clockwise"
    with Image.open(stored_photos(settings)[0]) as kept:
        assert kept.size == (40, 60)


@pytest.mark.parametrize(("fmt", "mode", "filename", "content_type"), [
    ("PNG", "RGBA", "kaart.png", "image/png"),
    ("WEBP", "RGB", "foto.webp", "image/webp"),
])
def test_png_and_webp_are_kept_as_jpeg(centralist, db, settings, fmt, mode, filename,
                                       content_type):
    response = upload(centralist, photo_bytes(fmt, mode=mode), filename, content_type)
    action = db.get(Action, created_id(response))
    with Image.open(stored_photos(settings)[0]) as kept:
        assert kept.format == "JPEG" and kept.mode == "RGB"
    assert action.photo_type == "image/jpeg"


@pytest.mark.parametrize(("content", "filename"), [
    (b"Dit is een tekstbestand, geen foto.\n" * 20, "foto.jpg"),
    (b"GIF89a" + b"\x00" * 50, "foto.jpg"),
    (b"", "leeg.jpg"),
])
def test_something_else_named_like_a_photo_is_refused(centralist, db, settings, content,
                                                      filename):
    before = db.scalar(select(func.count(Action.id)))
    response = upload(centralist, content, filename)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="photo-error"' in page
    assert ("Dit bestand is geen foto in JPEG, PNG of WebP." in page
            or "Het gekozen bestand is leeg." in page)
    assert 'value="Man in rode jas"' in page
    assert db.scalar(select(func.count(Action.id))) == before and not stored_photos(settings)


def test_a_real_gif_is_refused_too(centralist, settings):
    page = upload(centralist, photo_bytes("GIF", mode="P"), "foto.gif", "image/gif").get_data(
        as_text=True)
    assert "Dit bestand is geen foto in JPEG, PNG of WebP." in page and not stored_photos(settings)


def test_a_photo_over_5_mb_is_refused_and_the_form_keeps_its_text(centralist, db, settings):
    big = photo_bytes() + b"\x00" * (MAX_BYTES + 1)
    response = upload(centralist, big, description_nl="Blauwe fiets")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "De foto is te groot: hoogstens 5 MB." in page and "Blauwe fiets</textarea>" in page
    assert not stored_photos(settings)


def test_a_body_over_the_servers_limit_gets_the_same_clear_message(centralist, settings):
    response = upload(centralist, b"\xff" * (11 * 1024 * 1024))
    assert response.status_code == 413
    assert "De foto is te groot: hoogstens 5 MB." in response.get_data(as_text=True)


def test_a_photo_with_too_many_pixels_is_refused(centralist, settings):
    huge = io.BytesIO()
    Image.new("1", (7000, 7000)).save(huge, format="PNG")
    page = upload(centralist, huge.getvalue(), "groot.png", "image/png").get_data(as_text=True)
    assert "De foto heeft te veel pixels" in page and not stored_photos(settings)


def test_a_photo_is_removed_when_its_action_is_not_stored(centralist, db, settings,
                                                          monkeypatch):
    @contextmanager
    def failing_commit(factory):
        with factory() as session:
            yield session
            session.flush()
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr("web.console.transaction", failing_commit)
    before = db.scalar(select(func.count(Action.id)))
    assert upload(centralist, photo_bytes()).status_code == 500
    assert not stored_photos(settings)
    assert db.scalar(select(func.count(Action.id))) == before


# --- serving ------------------------------------------------------------------------------

@pytest.fixture
def with_photo(centralist, db) -> int:
    return created_id(upload(centralist, photo_bytes(gps=True)))


def test_the_centralist_sees_the_photo_uncached_and_unsniffed(centralist, with_photo):
    response = centralist.get(f"/console/actions/{with_photo}/photo")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(response.data)).format == "JPEG"
    page = centralist.get(f"/console/actions/{with_photo}").get_data(as_text=True)
    assert f'src="/console/actions/{with_photo}/photo"' in page


@pytest.mark.parametrize("role", ["admin", "municipality_officer"])
def test_admins_and_officers_are_refused_the_photo(centralist, client, with_photo, role):
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    login_as(client, role)
    assert client.get(f"/console/actions/{with_photo}/photo").status_code == 403


def test_another_organisations_centralist_does_not_find_the_photo(
        centralist, with_photo, other_centralist):  # noqa: F811
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    login(centralist, other_centralist)
    assert centralist.get(f"/console/actions/{with_photo}/photo").status_code == 404


def test_nobody_logged_out_gets_the_photo(client, centralist, with_photo):
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    assert client.get(f"/console/actions/{with_photo}/photo").status_code == 302


def test_an_action_without_a_photo_has_none_to_serve(centralist, db):
    response = centralist.post("/console/actions/new", data={
        **action_form(), "csrf_token": csrf_token(centralist, "/console/actions/new")})
    assert centralist.get(f"/console/actions/{created_id(response)}/photo").status_code == 404


@pytest.fixture
def tip_with_photo(with_photo, db: Session, settings: Settings) -> int:
    """A tip as inbound MMS stores it: a cleaned file under var/media/tips."""
    folder = settings.var_dir / "media" / "tips"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0123456789abcdef0123456789abcdef.png").write_bytes(photo_bytes("PNG"))
    tip = Tip(action_id=with_photo, source="mms", text="Hier", received_at=datetime.now(UTC),
              media_path="0123456789abcdef0123456789abcdef.png", media_type="image/png")
    db.add(tip)
    db.commit()
    return tip.id


def test_a_tip_photo_goes_to_the_centralist_only(centralist, client, db, tip_with_photo):
    response = centralist.get(f"/console/tips/{tip_with_photo}/photo")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    action_id = db.get(Tip, tip_with_photo).action_id
    tips = centralist.get(f"/console/actions/{action_id}/progress.json").get_json()["tips"]
    assert tips["latest"][0]["photo_url"] == f"/console/tips/{tip_with_photo}/photo"
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    for role in ("admin", "municipality_officer"):
        login_as(client, role)
        assert client.get(f"/console/tips/{tip_with_photo}/photo").status_code == 403
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def test_a_tip_photo_is_hidden_from_another_organisation(centralist, tip_with_photo,
                                                         other_centralist):  # noqa: F811
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    login(centralist, other_centralist)
    assert centralist.get(f"/console/tips/{tip_with_photo}/photo").status_code == 404


def test_a_stored_name_that_is_a_path_is_never_followed(centralist, db, with_photo):
    db.get(Action, with_photo).photo_path = "../../secret_key"
    db.commit()
    assert centralist.get(f"/console/actions/{with_photo}/photo").status_code == 404
