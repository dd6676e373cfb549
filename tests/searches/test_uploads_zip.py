"""extract_zip over ZipFile.open: its CRC and size checks, and the bomb limits on top."""
import io
import zipfile

import pytest

from searches.uploads import UploadError, extract_zip


def stored_zip(name: str, content: bytes) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, content)
    return bytearray(buf.getvalue())


def test_a_member_whose_bytes_changed_is_refused_as_corrupt_and_the_good_ones_land(tmp_path):
    (tmp_path / "ok").mkdir()
    good = extract_zip(io.BytesIO(bytes(stored_zip("cat/1.txt", b"hello world"))), tmp_path / "ok",
                       max_bytes=1000, max_files=10)
    assert good == 11 and (tmp_path / "ok" / "cat" / "1.txt").read_bytes() == b"hello world"

    data = stored_zip("cat/1.txt", b"hello world")
    data[data.index(b"hello world")] = ord("j")  # same size, another CRC
    (tmp_path / "bad").mkdir()
    with pytest.raises(UploadError, match="is corrupt"):
        extract_zip(io.BytesIO(bytes(data)), tmp_path / "bad", max_bytes=1000, max_files=10)


def test_the_limit_on_the_whole_archive_holds_while_extracting(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"cat/{i}.bin", bytes(400))
    with pytest.raises(UploadError, match="more than the limit"):
        extract_zip(io.BytesIO(buf.getvalue()), tmp_path, max_bytes=1000, max_files=10)
