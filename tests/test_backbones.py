"""Backbone registry, the TFLite MobileNetV2 and the offline torchvision paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from assets import MOBILENET, MOBILENET_SHA256, needs_mobilenet

from cap.backbones import BACKBONES, build_backbone
from cap.backbones.base import file_sha256
from cap.utils.errors import ConfigError, MissingResourceError


def test_registry_names_and_unknown_names():
    assert set(BACKBONES) == {"resnet152", "wide_resnet50_2", "tflite"}
    with pytest.raises(ConfigError, match="valid: resnet152, wide_resnet50_2, tflite"):
        build_backbone("vgg16")
    with pytest.raises(
        ConfigError, match="no option colour; valid: map_tensor, num_threads, pooled_tensor"
    ):
        build_backbone("tflite", weights=MOBILENET, colour="red")


# --- TFLite --------------------------------------------------------------------------


def _uint8_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)


@needs_mobilenet
def test_tflite_mobilenet_pooled_feature_is_the_mean_of_its_map():
    backbone = build_backbone("tflite", weights=MOBILENET, num_threads=2)
    assert (
        backbone.dim == 1280
        and backbone.weights_id == MOBILENET_SHA256
        and backbone.device == "cpu"
    )
    assert "uint8" in backbone.preprocessing and "no mean/std" in backbone.preprocessing
    batch = _uint8_batch(3)
    pooled, maps = backbone.embed(torch.from_numpy(batch), return_maps=True)
    assert pooled.shape == (3, 1280) and pooled.dtype == np.float32
    assert maps.shape == (3, 7, 7, 1280) and maps.dtype == np.float32
    step = backbone.pooled["quantization"][0]  # one uint8 step after dequantisation
    np.testing.assert_allclose(pooled, maps.mean(axis=(1, 2)), atol=step)
    assert (pooled >= 0).all() and pooled.std() > 0.1  # ReLU6 features, not constant
    alone, no_maps = backbone.embed(batch[1:2])
    np.testing.assert_array_equal(alone[0], pooled[1])  # batch of one per invoke: order-independent
    assert no_maps is None


@needs_mobilenet
def test_tflite_rejects_missing_model_and_unknown_tensor(tmp_path):
    with pytest.raises(ConfigError, match="weights=PATH.tflite"):
        build_backbone("tflite")
    with pytest.raises(MissingResourceError, match="nowhere.tflite"):
        build_backbone("tflite", weights=tmp_path / "nowhere.tflite")
    with pytest.raises(ConfigError, match="no tensor 'Logits/Nope'.*MobilenetV2/Logits/AvgPool"):
        build_backbone("tflite", weights=MOBILENET, pooled_tensor="Logits/Nope")
    with pytest.raises(ConfigError, match="runs on the CPU only"):
        build_backbone("tflite", weights=MOBILENET, device="cuda")


# --- torchvision, offline ------------------------------------------------------------


@pytest.fixture(scope="module")
def random_resnet152(tmp_path_factory):
    """A randomly initialised ResNet-152 state dict saved as a local checkpoint."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet152-random.pth"
    torch.save(torchvision.models.resnet152(weights=None).state_dict(), path)
    return path


def test_local_checkpoint_is_loaded_not_reinitialised(random_resnet152):
    batch = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)  # the transform's output
    first = build_backbone("resnet152", weights=random_resnet152, device="cpu")
    assert first.dim == 2048 and first.weights_id == file_sha256(random_resnet152)
    assert "resize 256x256" in first.preprocessing and "ImageNet mean/std" in first.preprocessing
    pooled, maps = first.embed(batch, return_maps=True)
    assert (
        pooled.shape == (2, 2048) and maps.shape == (2, 7, 7, 2048) and pooled.dtype == np.float32
    )
    np.testing.assert_allclose(pooled, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    saved = torch.load(random_resnet152, weights_only=True)
    torch.testing.assert_close(
        first.trunk[0].weight, saved["conv1.weight"]
    )  # loaded, not re-initialised
    torch.testing.assert_close(first.trunk[-1][-1].conv3.weight, saved["layer4.2.conv3.weight"])
    small = batch[:, :64, :64]  # bfloat16 convolutions are slow on CPUs: keep it tiny
    reference, _ = first.embed(small)
    first.bf16 = True  # autocast to bfloat16 (meant for GPUs); outputs stay float32
    low, _ = first.embed(small)
    cosine = (
        (low * reference).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(reference, axis=1)
    )
    assert low.dtype == np.float32 and cosine.min() > 0.999


def test_hub_cache_is_used_offline_with_pinned_v1_tag(random_resnet152, tmp_path, monkeypatch):
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet152-394f9c45.pth").symlink_to(random_resnet152)  # V1's file name
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("CAP_OFFLINE", "1")
    backbone = build_backbone("resnet152", device="cpu")
    assert backbone.weights_id == "IMAGENET1K_V1"


def test_offline_without_weights_names_the_path_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = f"{tmp_path}/hub/checkpoints/wide_resnet50_2-95faca4d.pth"
    with pytest.raises(MissingResourceError, match=expected) as error:
        build_backbone("wide_resnet50_2", offline=True)
    assert "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth" in str(error.value)
    with pytest.raises(MissingResourceError, match="missing.pth"):
        build_backbone("wide_resnet50_2", weights=tmp_path / "missing.pth")


def test_checkpoint_of_another_model_or_not_a_checkpoint_is_refused(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="do not fit resnet152"):
        build_backbone("resnet152", weights=tmp_path / "other.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(ConfigError, match="cannot load checkpoint"):
        build_backbone("resnet152", weights=tmp_path / "text.pth")
