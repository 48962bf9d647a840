"""Sample manifests (genda.pipeline.manifest): what the evaluation stages depend on instead of the PNG folders, and the
check that the folder still holds exactly the sampled files before anything is scored."""
import json

import pytest

from genda.errors import DataError
from genda.pipeline.manifest import MANIFEST, verify_manifest, write_manifest


def _folder(tmp_path):
    d = tmp_path / "samples"
    (d / "images").mkdir(parents=True)
    for i in range(3):
        (d / "images" / f"0_{i:03d}.png").write_bytes(bytes([i]) * 50)
    (d / "meta.json").write_text("{}")
    return d


def test_manifest_lists_every_file_but_itself_and_verifies(tmp_path):
    d = _folder(tmp_path)
    assert write_manifest(d, d / MANIFEST) == 4  # inside the folder: itself not listed
    files = json.loads((d / MANIFEST).read_text())["files"]
    assert sorted(files) == ["images/0_000.png", "images/0_001.png", "images/0_002.png", "meta.json"]
    assert files["meta.json"] == "99914b932bd37a50b983c5e7c90ae93b"  # md5 of "{}"
    assert verify_manifest(d, d / MANIFEST) == 4
    write_manifest(d / "images", tmp_path / "images.json")  # beside the folder (the face GANs' layout)
    assert verify_manifest(d / "images", tmp_path / "images.json") == 3


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / "images/0_001.png").write_bytes(b"other"), r"images/0_001\.png: its content differs"),
    (lambda d: (d / "images/0_002.png").unlink(), r"images/0_002\.png: listed in .* but missing"),
    (lambda d: (d / "images/9_999.png").write_bytes(b"x"), r"images/9_999\.png: not in .*manifest\.json"),
])
def test_a_changed_missing_or_extra_file_is_a_data_error_naming_it(tmp_path, change, message):
    d = _folder(tmp_path)
    write_manifest(d, d / MANIFEST)
    change(d)
    with pytest.raises(DataError, match=message):
        verify_manifest(d, d / MANIFEST)


def test_missing_or_malformed_manifest_names_it(tmp_path):
    d = _folder(tmp_path)
    with pytest.raises(DataError, match=r"manifest\.json: missing"):
        verify_manifest(d, d / MANIFEST)
    (d / MANIFEST).write_text('["not", "a", "manifest"]')
    with pytest.raises(DataError, match=r"manifest\.json: not a sample manifest"):
        verify_manifest(d, d / MANIFEST)


def test_dvc_gitignore_written_after_sampling_is_not_a_sample(tmp_path):
    """DVC writes ``.gitignore`` beside the outputs it tracks once the stage has run (the fresh-clone CI case):
    it is neither listed nor an extra file."""
    d = _folder(tmp_path)
    write_manifest(d, d / MANIFEST)
    (d / ".gitignore").write_text("/images\n/manifest.json\n")
    assert verify_manifest(d, d / MANIFEST) == 4
    (d / ".gitignore").unlink()
    (d / ".gitignore").write_text("/images\n")
    assert write_manifest(d, d / MANIFEST) == 4
    assert ".gitignore" not in json.loads((d / MANIFEST).read_text())["files"]
