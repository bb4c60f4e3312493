"""Backbone registry; real pretrained backbones (TFLite, ONNX, timm) loading and
classifying photographs right; the offline torchvision paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from assets import (
    EFFICIENTNET_LITE0,
    EFFICIENTNET_LITE2,
    IMAGENET_LABELS,
    MOBILENET,
    MOBILENET_INAT,
    MOBILENET_SHA256,
    MOBILENET_V1,
    SAMPLES,
    SHUFFLENET,
    needs_file,
    needs_mobilenet,
    needs_package,
    needs_package_file,
)
from PIL import Image

from cap.backbones import BACKBONES, build_backbone
from cap.backbones.base import file_sha256
from cap.backbones.timm_models import match_state_dict, pretrained_name
from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.resources import package_file

needs_timm = needs_package("timm", "pip install timm")
needs_onnx = needs_package("onnxruntime", "pip install onnx onnxruntime")
needs_lite0 = needs_package_file(EFFICIENTNET_LITE0)
needs_lite2 = needs_package_file(EFFICIENTNET_LITE2)


def test_registry_names_and_unknown_names():
    assert set(BACKBONES) == {"resnet152", "wide_resnet50_2", "tflite", "timm", "onnx"}
    with pytest.raises(ConfigError, match="valid: resnet152, wide_resnet50_2, tflite, timm, onnx"):
        build_backbone("vgg16")
    with pytest.raises(
        ConfigError,
        match="no option colour; valid: map_tensor, num_threads, patch_layers, pooled_tensor",
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
    assert "uint8" in backbone.input_description
    assert "no mean/std" in backbone.input_description
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
    first = build_backbone(  # torch's: its bfloat16 autocast is tried below, on small images
        "resnet152", weights=random_resnet152, device="cpu", runtime="torch"
    )
    assert first.dim == 2048 and first.weights_id == file_sha256(random_resnet152)
    assert "resize 256x256" in first.input_description
    assert "ImageNet mean/std" in first.input_description
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


# --- real pretrained backbones: photographs classified right ---------------------------

#: Each sample photograph's right ImageNet labels: the model card's top-1
#: (../shared/models/README.md).
SAMPLE_LABELS: dict[str, set[str]] = {
    "cat.bmp": {"Egyptian cat", "tabby, tabby cat"},
    "grace_hopper.bmp": {"military uniform"},
    "parrot.jpg": {"macaw"},
    "hot_dog.jpg": {"hotdog, hot dog, red hot"},
}


def lite0() -> dict:
    return {"weights": package_file(EFFICIENTNET_LITE0), "architecture": "tf_efficientnet_lite0"}


def lite2() -> dict:
    return {"weights": package_file(EFFICIENTNET_LITE2), "architecture": "tf_efficientnet_lite2"}


#: ImageNet backbones that keep their classifier: (model, options, first logit's label
#: index, margin). The margin is how far (in the model's output units) the right label's
#: output may lie below the top one: onnxruntime's int8 kernels round differently on AVX2
#: (u8s8 products summed in pairs into a saturating int16) than with AVX-512 VNNI (exact
#: int32 sums), and ShuffleNetV2's top-1 for Grace Hopper differs between them. Measured on
#: an AVX-512 VNNI CPU: the top-1 label's lead over the second one (negative: the right
#: label's gap below the top one):
#:
#:   backbone (output)                    cat   grace_hopper        parrot  hot_dog
#:   mobilenet_v2 (uint8 probability)     0.68  0.91                1.00    0.86
#:   shufflenet_v2 (int8 logit, step .17) 2.41  -0.86 (suit first)  8.28    0.34
#:   efficientnet_lite0 (float32 logit)   0.81  1.93                4.80    6.30
#:   efficientnet_lite2 (float32 logit)   0.81  1.93                4.46    2.92
#:
#: ShuffleNetV2 (int8, onnxruntime): AVX2 CPUs name "military uniform" first (issue 29;
#: all four right labels are top-1 there, where a top-1 check passed), this one "suit" by
#: 0.86 (5 output steps). Its margin, 1.5 (8.7 steps), holds on both with room and still
#: fails faults, measured: the photographs in another order (the right
#: label 11.9 to 23 below the top one), channels in BGR order (hot dog ranked 89th), the
#: portrait cropped ("paper" preprocessing: uniform 4.3 below); a missing mean/std passes
#: (gaps 0.69, 0.17). onnxruntime has no switch to take the AVX2 kernels on a VNNI CPU
#: (MLAS picks them by cpuid); its session option ``session.x64quantprecision=1`` makes
#: AVX2 exact too (u8u8) and changes no bit here, but it would pin the label to this CPU's,
#: not the model card's: unused.
#: MobileNetV2 (uint8, LiteRT): XNNPACK, the builtin and the reference kernels differ by at
#: most 0.031 (8 steps of 1/256) here, far below its smallest top-1 lead 0.68: top-1 kept.
#: EfficientNet-Lite (float32, torch): AVX2 kernels forced (``ATEN_CPU_CAPABILITY=avx2``,
#: ``ONEDNN_MAX_CPU_ISA=AVX2``, read when torch loads) changed no bit of the logits, and
#: the smallest top-1 lead is 0.81: top-1 kept, no kernels forced.
CLASSIFIERS = [
    pytest.param(
        "tflite", lambda: {"weights": MOBILENET}, 0, 0.0, marks=needs_mobilenet, id="mobilenet_v2"
    ),
    pytest.param(
        "onnx",
        lambda: {"weights": SHUFFLENET, "pooled_tensor": "611", "map_tensor": "610"},
        1,
        1.5,
        marks=[needs_onnx, needs_file(SHUFFLENET)],
        id="shufflenet_v2",
    ),
    pytest.param("timm", lite0, 1, 0.0, marks=[needs_timm, needs_lite0], id="efficientnet_lite0"),
    pytest.param(  # the default runtime on a CPU is the ONNX export's (test_torch_onnx.py)
        "timm",
        lambda: {**lite0(), "runtime": "torch"},
        1,
        0.0,
        marks=[needs_timm, needs_lite0],
        id="efficientnet_lite0-torch",
    ),
    pytest.param("timm", lite2, 1, 0.0, marks=[needs_timm, needs_lite2], id="efficientnet_lite2"),
]


def photographs(backbone) -> np.ndarray:
    """The four sample photographs through the backbone's own transform: (4, S, S, 3) uint8."""
    return np.stack(
        [backbone.transform(Image.open(SAMPLES / name).convert("RGB")) for name in SAMPLE_LABELS]
    )


@pytest.mark.cpu_sensitive
@needs_file(IMAGENET_LABELS)
@pytest.mark.parametrize(("model", "options", "offset", "margin"), CLASSIFIERS)
def test_imagenet_backbones_classify_the_sample_photographs_right(model, options, offset, margin):
    """Weights loaded right and inputs preprocessed right: each photograph's label from the
    model card is among the model's top 5, its output within ``margin`` of the top one
    (top-1 where the margin is 0; the whole image at the input size: cropping the portrait
    of Grace Hopper cuts her uniform off). A rank and a margin are properties of the
    weights; an int8 model's top-1 on a close call is one of the CPU's kernels."""
    labels = IMAGENET_LABELS.read_text().splitlines()  # index 0: background
    backbone = build_backbone(model, device="cpu", preprocessing="direct", **options())
    logits = backbone.logits(photographs(backbone))  # (4, n_classes)
    for row, (photo, right) in zip(logits, SAMPLE_LABELS.items(), strict=True):
        best = max(row[labels.index(name) - offset] for name in right)
        above = int((row > best).sum())  # labels ranked before the right one
        top = labels[row.argmax() + offset]
        assert above < 5 and row.max() - best <= margin, (photo, top, above, row.max() - best)


@pytest.mark.parametrize(("model", "options", "offset", "margin"), CLASSIFIERS)
def test_pooled_features_are_repeatable_and_independent_of_the_batch(
    model, options, offset, margin
):
    """Two backbones built alike give bit-identical pooled features; a batch of four gives
    each image's features as four batches of one do, up to the last bits where the
    runtime picks its kernels by batch size (oneDNN)."""
    images = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    first = build_backbone(model, device="cpu", **options())
    images = np.stack([first.transform(Image.fromarray(image)) for image in images])
    pooled, maps = first.embed(images, return_maps=True)
    again, _ = build_backbone(model, device="cpu", **options()).embed(images)
    np.testing.assert_array_equal(again, pooled)
    one_by_one = np.concatenate([first.embed(images[i : i + 1])[0] for i in range(4)])
    np.testing.assert_allclose(one_by_one, pooled, rtol=0, atol=1e-5 * np.abs(pooled).max())
    assert pooled.shape == (4, first.dim) and maps.shape[0] == 4 and maps.shape[-1] == first.dim
    step = 0.0 if model == "timm" else 0.03  # the quantised models' pooled tensor: one uint8 step
    np.testing.assert_allclose(pooled, maps.mean(axis=(1, 2)), rtol=1e-5, atol=step + 1e-5)


@needs_file(MOBILENET_V1)
def test_an_embedding_extractor_gives_features_but_no_classifier():
    backbone = build_backbone(
        "tflite",
        weights=MOBILENET_V1,
        pooled_tensor="MobilenetV1/Logits/AvgPool_1a/AvgPool",
        map_tensor="MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6",
    )
    images = np.zeros((1, 224, 224, 3), np.uint8)
    assert backbone.dim == 1024 and backbone.embed(images)[0].shape == (1, 1024)
    with pytest.raises(ConfigError, match="has no classifier"):
        backbone.logits(images)


@needs_file(MOBILENET_INAT)
def test_the_bird_model_has_mobilenet_v2s_features_and_bird_classes():
    backbone = build_backbone("tflite", weights=MOBILENET_INAT, pooled_tensor="AvgPool/AvgPool")
    images = np.zeros((2, 224, 224, 3), np.uint8)
    assert backbone.dim == 1280 and backbone.logits(images).shape == (2, 965)


@needs_timm
@needs_lite0
def test_a_state_dict_in_another_naming_loads_by_order_and_each_shape_is_checked(tmp_path):
    """The EfficientNet-Lite file is in efficientnet_pytorch's names: matched in order, each
    shape checked; a tensor missing or of another shape is named."""
    import timm

    own = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    state = torch.load(package_file(EFFICIENTNET_LITE0), weights_only=True)
    assert set(state) != set(own)
    matched = match_state_dict(state, own, "lite0.pth")
    assert list(matched) == list(own)
    torch.testing.assert_close(matched["conv_stem.weight"], state["_conv_stem.weight"])
    wrong = dict(state)
    wrong["_bn0.weight"] = torch.zeros(16)
    with pytest.raises(
        ConfigError, match=r"'_bn0.weight' has shape \(16,\), but the model's 'bn1.weight'"
    ):
        match_state_dict(wrong, own, "lite0.pth")
    wrong.pop("_fc.bias")
    with pytest.raises(ConfigError, match="holds 295 tensors, the model 296"):
        match_state_dict(wrong, own, "lite0.pth")
    b0 = tmp_path / "b0.pth"  # another architecture's file is refused by its shapes
    torch.save(timm.create_model("efficientnet_b0", pretrained=False).state_dict(), b0)
    with pytest.raises(ConfigError, match="b0.pth"):
        build_backbone("timm", weights=b0, architecture="tf_efficientnet_lite0", device="cpu")


@needs_timm
def test_a_timm_name_takes_the_pretrained_tag_timm_create_model_takes():
    """As timm's README names models (``resnet18``), the default tag; a tag as written."""
    import timm

    assert pretrained_name(timm, "resnet18") == "resnet18.a1_in1k"
    assert pretrained_name(timm, "tf_efficientnet_lite0") == "tf_efficientnet_lite0.in1k"
    assert pretrained_name(timm, "resnet18.tv_in1k") == "resnet18.tv_in1k"


def hub_cache(root, hub_id: str, weights) -> None:
    """A Hugging Face hub cache under ``root`` holding ``weights`` as ``hub_id``'s file."""
    repo = root / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "pytorch_model.bin").symlink_to(weights)


@needs_timm
def test_an_untagged_timm_name_loads_its_default_tags_weights_offline(
    random_resnet18, tmp_path, monkeypatch
):
    """``resnet18`` without local weights is ``resnet18.a1_in1k``: found in the hub cache
    under that tag's hub id and recorded in the weights id, as the tagged name is."""
    import huggingface_hub

    hub_cache(tmp_path, "timm/resnet18.a1_in1k", random_resnet18)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    for name in ("resnet18", "resnet18.a1_in1k"):
        backbone = build_backbone("timm", architecture=name, offline=True, device="cpu")
        assert backbone.weights_id == "timm:resnet18.a1_in1k", name
        saved = torch.load(random_resnet18, weights_only=True)["conv1.weight"]
        torch.testing.assert_close(backbone.module.conv1.weight, saved)  # the cached file's
    with pytest.raises(ConfigError, match="no architecture 'resnet18.nope' with pretrained"):
        build_backbone("timm", architecture="resnet18.nope", offline=True)


@needs_timm
def test_timm_options_and_offline_errors_say_what_to_do():
    with pytest.raises(ConfigError, match="needs an architecture"):
        build_backbone("timm")
    with pytest.raises(ConfigError, match="timm has no architecture 'resnet_9000'"):
        build_backbone("timm", architecture="resnet_9000")
    with pytest.raises(MissingResourceError, match="not in the Hugging Face cache and offline"):
        build_backbone("timm", architecture="resnet18.a1_in1k", offline=True)


@pytest.fixture(scope="module")
def random_resnet18(tmp_path_factory):
    """timm's ResNet-18, randomly initialised, as a local state-dict file."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    return path


def resnet18(weights, *patch_layers: str):
    """On torch, whose hooks catch the patch layers on small images (the ONNX export's
    patch maps: tests/test_torch_onnx.py)."""
    return build_backbone(
        "timm",
        weights=weights,
        architecture="resnet18",
        device="cpu",
        patch_layers=patch_layers,
        runtime="torch",
    )


@needs_timm
def test_timm_patch_layers_give_their_maps_finest_first(random_resnet18):
    images = _uint8_batch(2)[:, :64, :64]
    encoded = resnet18(random_resnet18, "layer1", "layer2").encode(images, patches=True)
    assert [m.shape for m in encoded.patches] == [(2, 16, 16, 64), (2, 8, 8, 128)]


@needs_timm
@pytest.mark.parametrize(
    ("layer", "gave"),
    [("global_pool", r"gives \(2, 512\)"), ("fc", "is not called by the forward")],
    ids=["pooled", "never-called"],
)
def test_a_timm_patch_layer_without_a_feature_map_is_refused_naming_those_with_one(
    random_resnet18, layer, gave
):
    """A module outside forward_features (pooled, or never called while encoding) gives
    no (B, C, h, w) map: refused at the first batch, listing the modules that give one."""
    backbone = resnet18(random_resnet18, "layer2", layer)
    with pytest.raises(ConfigError, match=f"patch layer '{layer}' {gave}, not a feature map") as e:
        backbone.encode(_uint8_batch(2)[:, :64, :64], patches=True)
    assert "give one: conv1, bn1, act1, maxpool, layer1.0, layer1.1, layer1," in str(e.value)
    assert str(e.value).endswith("layer4.0, layer4.1, layer4") and "\n" not in str(e.value)


@needs_timm
def test_the_whole_network_is_no_patch_layer(random_resnet18):
    with pytest.raises(ConfigError, match="no module '' for patch_layers; .*: conv1, bn1"):
        resnet18(random_resnet18, "")


@needs_onnx
@needs_file(SHUFFLENET)
def test_onnx_names_a_missing_tensor_and_a_wrong_layout():
    with pytest.raises(ConfigError, match="no tensor 'nope'; its last tensors are: .*611"):
        build_backbone("onnx", weights=SHUFFLENET, pooled_tensor="nope")
    with pytest.raises(ConfigError, match="check input_layout"):
        build_backbone("onnx", weights=SHUFFLENET, pooled_tensor="611", input_layout="NHWC")
    with pytest.raises(ConfigError, match="options.pooled_tensor"):
        build_backbone("onnx", weights=SHUFFLENET)


def test_a_missing_optional_package_names_its_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name in ("timm", "onnx", "onnxruntime"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(ConfigError, match="pip install timm"):
        build_backbone("timm", architecture="tf_efficientnet_lite0")
    with pytest.raises(ConfigError, match="pip install onnx onnxruntime"):
        build_backbone("onnx", weights="model.onnx", pooled_tensor="x")
