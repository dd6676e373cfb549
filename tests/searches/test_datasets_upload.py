"""Data sets users bring: the catalogue of sets on disk, uploads and every refusal.

Each refusal is checked three ways: the form answers 400 with the reason, the refused
attempt is kept as a failed row saying why, and nothing at all was written, neither
outside the upload folder nor left inside it.
"""
import html
import io
import json
import os
import stat
import struct
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from searches import services
from searches.datasets_catalog import available_datasets, dataset_info
from searches.forms import SearchForm
from searches.models import Dataset, Search

pytestmark = pytest.mark.django_db


# --- helpers -------------------------------------------------------------------------

def png(color=(200, 30, 30), size=(8, 8), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 128).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(files: dict, dirs=(), extra=()) -> bytes:
    """A zip of ``files`` (name -> bytes), empty ``dirs`` and ready-made ``extra`` (ZipInfo, bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in dirs:
            zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in extra:
            zf.writestr(info, data)
    return buf.getvalue()


def image_zip(classes=("cat", "dog"), per_class=6, prefix="") -> bytes:
    colors = [(220, 20, 20), (20, 20, 220), (20, 220, 20)]
    return make_zip({f"{prefix}{c}/{i}.png": png(colors[k % 3]) for k, c in enumerate(classes)
                     for i in range(per_class)})


def csv_bytes(rows, header="text,label") -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


GOOD_ROWS = [f"row {i} about {'cats' if i % 2 else 'dogs'},{'cat' if i % 2 else 'dog'}" for i in range(12)]


def tree(root) -> set:
    """Every path under ``root`` (files and folders), relative to it."""
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}


@pytest.fixture
def data_dir(tmp_path, settings):
    path = tmp_path / "data"
    path.mkdir()
    settings.DATA_DIR = path
    return path


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


def upload(client, filename, content, name="myset"):
    return client.post(reverse("dataset_list"), {
        "name": name, "file": SimpleUploadedFile(filename, content)})


def assert_refused(client, user, data_dir, tmp_path, filename, content, fragment, recorded=True):
    """Upload through the page; assert the 400, the message, the failed row (when the file
    reached the checks), and an untouched disk."""
    before = tree(tmp_path)
    response = upload(client, filename, content)
    assert response.status_code == 400
    assert fragment in html.unescape(response.content.decode())
    assert not Dataset.objects.filter(owner=user, state=Dataset.State.READY).exists()
    failed = Dataset.objects.filter(owner=user, state=Dataset.State.FAILED).first()
    if recorded:
        assert fragment in failed.message and failed.path == ""
    else:
        assert failed is None
    user_folder = data_dir / "uploads" / str(user.pk)
    assert not user_folder.exists() or list(user_folder.iterdir()) == []  # nothing left inside
    created = tree(tmp_path) - before
    allowed = {os.path.relpath(p, tmp_path) for p in (data_dir / "uploads", user_folder)}
    assert created <= allowed, f"written outside the upload folder: {created - allowed}"
    return failed


# --- refusals --------------------------------------------------------------------------

def test_zip_slip_member_is_refused_and_nothing_lands_outside(logged_in, alice, data_dir, tmp_path):
    content = make_zip({"cat/1.png": png(), "../../../../../evil.txt": b"pwned", "dog/1.png": png()})
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "path traversal")
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_zip_slip_two_levels_up_is_refused(logged_in, alice, data_dir, tmp_path):
    content = make_zip({"cat/1.png": png(), "../../evil": b"pwned"})
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "path traversal")
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))


def test_absolute_path_member_is_refused(logged_in, alice, data_dir, tmp_path):
    target = tmp_path / "absolute-evil.txt"
    content = make_zip({"cat/1.png": png(), str(target): b"pwned"})
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "absolute path")
    assert not target.exists()


def test_symlink_member_is_refused(logged_in, alice, data_dir, tmp_path):
    link = zipfile.ZipInfo("cat/passwd.png")
    link.create_system = 3  # unix: the mode bits live in external_attr
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    content = make_zip({f"{c}/{i}.png": png() for c in ("cat", "dog") for i in range(6)},
                       extra=[(link, b"/etc/passwd")])
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "symbolic link")


def test_archive_that_declares_more_than_the_limit_is_refused(logged_in, alice, data_dir, tmp_path, settings):
    settings.UPLOAD_MAX_BYTES = 1_000_000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cat/zeros.png", bytes(5_000_000))
    assert len(buf.getvalue()) < 50_000  # small on the wire, big once unpacked
    assert_refused(logged_in, alice, data_dir, tmp_path, "bomb.zip", buf.getvalue(), "expands to 5.0 MB")


def _lying_bomb(expanded: int, declared: int) -> bytes:
    """A zip whose one member inflates to ``expanded`` bytes of zeros but declares ``declared``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("cat/zeros.png", "w") as member:
            chunk = bytes(1 << 20)
            for _ in range(expanded >> 20):
                member.write(chunk)
    data = bytearray(buf.getvalue())
    # Uncompressed size: at offset 22 of the local header, 24 of the central directory entry.
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, declared)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)
    return bytes(data)


def test_zip_bomb_with_lying_headers_is_caught_while_extracting(logged_in, alice, data_dir, tmp_path, settings):
    settings.UPLOAD_MAX_BYTES = 1_000_000
    bomb = _lying_bomb(expanded=64 << 20, declared=1000)
    assert zipfile.ZipFile(io.BytesIO(bomb)).infolist()[0].file_size == 1000  # the header lies
    failed = assert_refused(logged_in, alice, data_dir, tmp_path, "bomb.zip", bomb, "expands beyond its declared size")
    assert "zeros.png" in failed.message


def test_too_many_files_are_refused(logged_in, alice, data_dir, tmp_path, settings):
    settings.UPLOAD_MAX_FILES = 5
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", image_zip(per_class=3), "the limit is 5")


def test_upload_larger_than_the_limit_is_refused_before_it_is_stored(logged_in, alice, data_dir, tmp_path, settings):
    settings.UPLOAD_MAX_BYTES = 2000
    rows = [f"{'word ' * 20}{i},{'a' if i % 2 else 'b'}" for i in range(100)]
    assert_refused(logged_in, alice, data_dir, tmp_path, "big.csv", csv_bytes(rows), "larger than the limit",
                   recorded=False)  # stopped while the request was read: never reached the checks


def test_wrong_file_type_is_refused(logged_in, alice, data_dir, tmp_path):
    assert_refused(logged_in, alice, data_dir, tmp_path, "notes.txt", b"hello", "neither a .zip")


def test_a_zip_that_is_not_a_zip_is_refused(logged_in, alice, data_dir, tmp_path):
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", b"MZ\x90\x00 not an archive",
                   "not a valid zip archive")


def test_a_file_that_is_not_an_image_is_refused(logged_in, alice, data_dir, tmp_path):
    content = make_zip({**{f"{c}/{i}.png": png() for c in ("cat", "dog") for i in range(6)},
                        "dog/notes.txt": b"hello"})
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "is not a PNG or JPEG image")


def test_a_broken_image_is_refused(logged_in, alice, data_dir, tmp_path):
    content = make_zip({**{f"{c}/{i}.png": png() for c in ("cat", "dog") for i in range(6)},
                        "dog/broken.png": b"\x89PNG\r\n\x1a\n garbage"})
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "cannot be read as an image")


def test_an_empty_class_is_refused(logged_in, alice, data_dir, tmp_path):
    content = make_zip({f"{c}/{i}.png": png() for c in ("cat", "bird") for i in range(6)}, dirs=["dog/"])
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content,
                   "The class folder 'dog' has no images")


def test_a_single_class_is_refused(logged_in, alice, data_dir, tmp_path):
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", image_zip(classes=("cat",), per_class=12),
                   "needs at least two")


def test_images_outside_class_folders_are_refused(logged_in, alice, data_dir, tmp_path):
    content = make_zip({**{f"{c}/{i}.png": png() for c in ("cat", "dog") for i in range(6)}, "loose.png": png()})
    assert_refused(logged_in, alice, data_dir, tmp_path, "set.zip", content, "is not inside a class folder")


def test_non_utf8_text_is_refused_naming_the_line(logged_in, alice, data_dir, tmp_path):
    content = b"text,label\nfine text,a\ncaf\xe9 latin-1,b\n" + csv_bytes(GOOD_ROWS, header="")[1:]
    assert_refused(logged_in, alice, data_dir, tmp_path, "reviews.csv", content, "Line 3 is not valid UTF-8")


def test_csv_without_a_label_column_is_refused(logged_in, alice, data_dir, tmp_path):
    content = csv_bytes([r.replace(",", ";") for r in GOOD_ROWS], header="text,category")
    assert_refused(logged_in, alice, data_dir, tmp_path, "reviews.csv", content,
                   "must name the columns text and label")


def test_empty_text_is_refused_naming_the_line(logged_in, alice, data_dir, tmp_path):
    content = csv_bytes(GOOD_ROWS[:4] + ["  ,cat"] + GOOD_ROWS[4:])
    assert_refused(logged_in, alice, data_dir, tmp_path, "reviews.csv", content, "Line 6: the text is empty")


def test_text_with_one_label_is_refused(logged_in, alice, data_dir, tmp_path):
    content = csv_bytes([f"text number {i},same" for i in range(12)])
    assert_refused(logged_in, alice, data_dir, tmp_path, "reviews.csv", content, "at least two labels")


def test_jsonl_with_a_broken_line_is_refused(logged_in, alice, data_dir, tmp_path):
    lines = [json.dumps({"text": f"t {i}", "label": i % 2}) for i in range(12)]
    lines.insert(3, '{"text": "unterminated", "label": ')
    assert_refused(logged_in, alice, data_dir, tmp_path, "reviews.jsonl", "\n".join(lines).encode(),
                   "Line 4 is not valid JSON")


def test_jsonl_without_a_label_key_is_refused(logged_in, alice, data_dir, tmp_path):
    lines = [json.dumps({"text": f"t {i}", "label": i % 2}) for i in range(12)] + [json.dumps({"text": "x"})]
    assert_refused(logged_in, alice, data_dir, tmp_path, "reviews.jsonl", "\n".join(lines).encode(),
                   "Line 13 has no 'label' key")


def test_an_invalid_name_is_refused_without_writing(logged_in, alice, data_dir):
    response = upload(logged_in, "set.zip", image_zip(), name="../escape")
    assert response.status_code == 400
    assert not Dataset.objects.exists()
    assert not (data_dir / "uploads").exists()


# --- accepted uploads ----------------------------------------------------------------------

def test_image_folder_zip_is_stored_under_the_owner_folder(logged_in, alice, data_dir):
    response = upload(logged_in, "pets.zip", image_zip(per_class=6), name="pets")
    dataset = Dataset.objects.get(owner=alice, name="pets")
    assert response.status_code == 302 and response["Location"] == dataset.get_absolute_url()
    assert dataset.state == Dataset.State.READY and dataset.kind == Dataset.Kind.IMAGE_FOLDER
    assert (dataset.num_examples, dataset.num_classes, dataset.class_names) == (12, 2, ["cat", "dog"])
    folder = data_dir / "uploads" / str(alice.pk) / "pets"
    assert dataset.path == str(folder) and dataset.size > 0
    assert sorted(p.name for p in folder.iterdir()) == ["cat", "dog"]
    assert len(list((folder / "cat").iterdir())) == 6
    assert os.listdir(folder.parent) == ["pets"]  # no temporary folder left behind


def test_an_enclosing_folder_and_mac_metadata_are_stepped_over(alice, data_dir):
    content = make_zip({**{f"pets/{c}/{i}.png": png() for c in ("cat", "dog") for i in range(6)},
                        "__MACOSX/pets/._x": b"junk", "pets/.DS_Store": b"junk"})
    dataset = services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", content))
    assert dataset.class_names == ["cat", "dog"]
    assert sorted(os.listdir(dataset.path)) == ["cat", "dog"]


def test_text_upload_is_stored_with_its_labels(logged_in, alice, data_dir):
    response = upload(logged_in, "reviews.csv", csv_bytes(GOOD_ROWS), name="reviews")
    assert response.status_code == 302
    dataset = Dataset.objects.get(owner=alice, name="reviews")
    assert dataset.kind == Dataset.Kind.TEXT and dataset.class_names == ["cat", "dog"]
    assert dataset.num_examples == 12
    assert os.listdir(dataset.path) == ["data.csv"]


def test_a_second_upload_with_the_same_name_is_refused(alice, data_dir):
    services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    with pytest.raises(ValidationError, match="already have a data set named"):
        services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    assert Dataset.objects.filter(owner=alice).count() == 1


def test_an_upload_becomes_a_search_choice_for_its_owner_only(alice, bob, data_dir):
    dataset = services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    alice_choices = dict(SearchForm(user=alice).fields["dataset"].choices)
    bob_choices = dict(SearchForm(user=bob).fields["dataset"].choices)
    assert dataset.catalog_name in alice_choices and dataset.catalog_name not in bob_choices
    assert dataset_info(dataset.catalog_name, owner=bob) is None
    assert dataset_info(dataset.catalog_name) is None  # nobody named: unknown
    search = services.search_create(owner=alice, name="s", dataset=dataset.catalog_name, space="chain",
                                    strategy="random", max_candidates=1, epochs=1, seed=1)
    assert search.task == "image-classification"
    with pytest.raises(ValidationError, match="Unknown data set"):
        services.search_create(owner=bob, name="s", dataset=dataset.catalog_name, space="chain",
                               strategy="random", max_candidates=1, epochs=1, seed=1)


def test_a_text_upload_needs_the_text_space(alice, data_dir):
    dataset = services.dataset_upload(owner=alice, name="r", upload=SimpleUploadedFile("r.csv", csv_bytes(GOOD_ROWS)))
    with pytest.raises(ValidationError, match="needs a text-classification space"):
        services.search_create(owner=alice, name="s", dataset=dataset.catalog_name, space="chain",
                               strategy="random", max_candidates=1, epochs=1, seed=1)
    search = services.search_create(owner=alice, name="s", dataset=dataset.catalog_name, space="text",
                                    strategy="random", max_candidates=1, epochs=1, seed=1)
    assert search.task == "text-classification"


# --- ownership and delete ---------------------------------------------------------------------

def test_other_users_get_404_for_an_upload(client, alice, bob, data_dir):
    dataset = services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    client.force_login(bob)
    assert client.get(reverse("dataset_detail", args=[dataset.pk])).status_code == 404
    assert client.post(reverse("dataset_delete", args=[dataset.pk])).status_code == 404
    listing = client.get(reverse("dataset_list"))
    assert listing.status_code == 200 and "pets" not in listing.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists() and os.path.isdir(dataset.path)


def test_dataset_pages_need_a_login(client, alice, data_dir):
    dataset = services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    for url in (reverse("dataset_list"), reverse("dataset_detail", args=[dataset.pk])):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    response = upload(client, "p.zip", image_zip(), name="sneaky")
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert not Dataset.objects.filter(name="sneaky").exists()


def test_the_owner_sees_and_deletes_an_upload(logged_in, alice, data_dir, django_capture_on_commit_callbacks):
    dataset = services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    page = logged_in.get(reverse("dataset_detail", args=[dataset.pk]))
    assert page.status_code == 200 and "cat, dog" in page.content.decode()
    assert "pets" in logged_in.get(reverse("dataset_list")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(reverse("dataset_delete", args=[dataset.pk]))
    assert response.status_code == 302
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not os.path.exists(dataset.path)


def test_an_upload_in_use_by_a_running_search_is_not_deleted(alice, data_dir):
    dataset = services.dataset_upload(owner=alice, name="pets", upload=SimpleUploadedFile("p.zip", image_zip()))
    services.search_create(owner=alice, name="s", dataset=dataset.catalog_name, space="chain",
                           strategy="random", max_candidates=1, epochs=1, seed=1)
    with pytest.raises(ValidationError, match="still uses this data set"):
        services.dataset_delete(dataset)
    assert os.path.isdir(dataset.path)
    Search.objects.update(state=Search.State.FINISHED)
    services.dataset_delete(dataset)
    assert not Dataset.objects.exists()


def test_upload_form_posts_need_csrf(client, alice, data_dir):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    response = csrf_client.post(reverse("dataset_list"),
                                {"name": "x", "file": SimpleUploadedFile("p.zip", image_zip())})
    assert response.status_code == 403
    assert not Dataset.objects.exists()


# --- data sets on disk -------------------------------------------------------------------------

def test_text_files_and_image_folders_on_disk_appear_in_the_catalogue(logged_in, data_dir):
    (data_dir / "text").mkdir()
    (data_dir / "text" / "reviews.csv").write_bytes(csv_bytes(GOOD_ROWS))
    (data_dir / "text" / "broken.jsonl").write_bytes(b'{"text": "only one"}\n')
    for c in ("circle", "square"):
        (data_dir / "images" / "shapes" / c).mkdir(parents=True)
        (data_dir / "images" / "shapes" / c / "1.png").write_bytes(png())
    (data_dir / "images" / "half" / "a").mkdir(parents=True)
    (data_dir / "images" / "half" / "a" / "1.png").write_bytes(png())
    (data_dir / "images" / "half" / "b").mkdir()

    infos = {i.name: i for i in available_datasets()}
    assert infos["text:reviews"].task == "text-classification"
    assert infos["text:reviews"].availability() == (True, "")
    ok, reason = infos["text:broken"].availability()
    assert not ok and "no 'label' key" in reason
    assert infos["folder:shapes"].task == "image-classification"
    assert infos["folder:shapes"].availability() == (True, "")
    ok, reason = infos["folder:half"].availability()
    assert not ok and "'b' has no PNG or JPEG image" in reason
    assert dataset_info("text:../secrets") is None and dataset_info("folder:nope") is None
    assert dataset_info("digits").label.startswith("Digits")  # the built-in sets are still there
    page = html.unescape(logged_in.get(reverse("dataset_list")).content.decode())
    assert "folder:half" in page and "'b' has no PNG or JPEG image" in page and "text:reviews" in page


def test_the_search_form_refuses_an_unavailable_disk_set(alice, data_dir):
    (data_dir / "text").mkdir()
    (data_dir / "text" / "broken.csv").write_bytes(b"text,label\nonly,one\n")
    form = SearchForm({"name": "x", "dataset": "text:broken", "space": "text", "strategy": "random",
                       "max_candidates": 2, "epochs": 1, "parallel": 1, "objective": "val_accuracy",
                       "early_stopping": "none", "train_fraction": 1, "resolution": 0, "batch_size": 8,
                       "lr": 0.01}, user=alice)
    assert not form.is_valid()
    assert "unavailable" in form.errors["dataset"][0]

