"""The weights fingerprint: the same files give the same print, a changed checkpoint another."""

from pathlib import Path

import pytest

from inference.fingerprint import SAMPLE, fingerprint


def folder(tmp_path: Path, unet: bytes) -> Path:
    (tmp_path / "unet").mkdir(parents=True)
    (tmp_path / "unet/diffusion_pytorch_model.safetensors").write_bytes(unet)
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae/diffusion_pytorch_model.safetensors").write_bytes(b"vae" * 100)
    (tmp_path / "model_index.json").write_text("{}")
    return tmp_path


def test_the_same_weights_give_the_same_print(tmp_path: Path):
    weights = bytes(range(256)) * (3 * SAMPLE // 256)
    assert fingerprint(folder(tmp_path / "a", weights)) == fingerprint(folder(tmp_path / "b", weights))


@pytest.mark.parametrize("where", [0, -1])
def test_a_changed_checkpoint_gives_another_print(tmp_path: Path, where: int):
    weights = bytearray(3 * SAMPLE)
    before = fingerprint(folder(tmp_path / "a", bytes(weights)))
    weights[where] = 1  # the first or the last byte of a 3 MiB file
    assert fingerprint(folder(tmp_path / "b", bytes(weights))) != before


def test_configs_do_not_count_and_a_single_file_works(tmp_path: Path):
    path = folder(tmp_path, b"unet")
    before = fingerprint(path)
    (path / "model_index.json").write_text('{"changed": true}')
    assert fingerprint(path) == before
    assert fingerprint(path / "unet/diffusion_pytorch_model.safetensors").startswith("sha256:")


def test_no_weights_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no weight files"):
        fingerprint(tmp_path)
