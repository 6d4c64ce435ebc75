"""Which Keras wrote a saved model, read from the file alone (no TensorFlow, no Keras import)."""

import json
import subprocess
import sys
import zipfile

import pytest

from keras_legc.errors import InvalidArgumentError, ModelStructureError
from keras_legc.keras.saving import keras_file_flavour


def write_zip(path, members: dict[str, object]):
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content if isinstance(content, (str, bytes)) else json.dumps(content))
    return path


@pytest.mark.parametrize(("version", "flavour"), [("3.15.1", "keras3"), ("2.21.0", "keras2")])
def test_metadata_version_decides(tmp_path, version, flavour):
    config = {"module": "keras", "class_name": "Sequential", "config": {}}
    path = write_zip(
        tmp_path / "m.keras", {"metadata.json": {"keras_version": version}, "config.json": config}
    )
    assert keras_file_flavour(path) == flavour


@pytest.mark.parametrize(
    ("marker", "flavour"), [("batch_input_shape", "keras2"), ("batch_shape", "keras3")]
)
def test_config_decides_without_metadata(tmp_path, marker, flavour):
    config = {"class_name": "Sequential", "config": {"layers": [{"config": {marker: [None, 4]}}]}}
    path = write_zip(tmp_path / "m.keras", {"config.json": config})
    assert keras_file_flavour(path) == flavour


def test_h5_and_savedmodel_folders_are_keras2(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n")
    (tmp_path / "saved").mkdir()
    assert keras_file_flavour(tmp_path / "m.h5") == "keras2"
    assert keras_file_flavour(tmp_path / "saved") == "keras2"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.write_bytes(b"not a zip at all" * 10), "not a .keras zip archive"),
        (lambda p: write_zip(p, {"weights.bin": b"\x00" * 8}), "a zip without the metadata.json"),
        (lambda p: write_zip(p, {"metadata.json": "{broken"}), "unreadable JSON"),
        (lambda p: write_zip(p, {"metadata.json": {"keras_version": "9.0"}}), "a zip without the"),
    ],
)
def test_not_a_keras_file_gives_the_clear_error(tmp_path, make, why):
    path = tmp_path / "m.keras"
    make(path)
    with pytest.raises(ModelStructureError, match=rf"not a Keras model file \({why}.*Fix: "):
        keras_file_flavour(path)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no saved model"):
        keras_file_flavour(tmp_path / "absent.keras")


def test_detection_imports_neither_tensorflow_nor_keras(tmp_path):
    path = write_zip(tmp_path / "m.keras", {"metadata.json": {"keras_version": "3.15.1"}})
    code = (
        "import sys; from keras_legc.keras.saving import keras_file_flavour as f; "
        f"print(f({str(path)!r}), 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["keras3", "False", "False"]


@pytest.mark.parametrize(
    ("attrs", "flavour"),
    [({"keras_version": "3.15.1"}, "keras3"), ({"keras_version": b"3.9.0"}, "keras3"),
     ({"keras_version": "2.21.0"}, "keras2"), ({}, "keras2")],
)  # fmt: skip
def test_h5_flavour_is_read_from_the_files_keras_version(tmp_path, attrs, flavour):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
    assert keras_file_flavour(path) == flavour
