"""Torch backbones through onnxruntime (cap.backbones.torch_onnx): the export gives torch's
features within the tolerance (real EfficientNet-Lite0 weights on photographs, a
torchvision ResNet with random weights, patch layers included), is kept by content key,
and an export that fails or differs falls back to torch with a warning naming the model;
which runtime ran is recorded in the embedding file and never mixed within a task."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
import yaml
from assets import EFFICIENTNET_LITE0, SAMPLES, needs_file, needs_package, needs_package_file
from data_fixtures import make_image_folder
from PIL import Image

from cap.backbones import build_backbone, torch_onnx
from cap.backbones.torch_onnx import TOLERANCE, difference, resolve_runtime
from cap.data import load_dataset
from cap.evaluation.embeddings import Embeddings, extract_embeddings, load_embeddings
from cap.evaluation.protocol import one_class_task
from cap.reporting.provenance import backbone_weights
from cap.utils.errors import ConfigError, DataError
from cap.utils.resources import package_file

needs_onnx = needs_package("onnxruntime", "pip install onnx onnxruntime")
needs_timm = needs_package("timm", "pip install timm")
LOG = "cap.backbones.torch_onnx"


def features(backbone, images: np.ndarray):
    return backbone.encode(images, maps=True, patches=bool(backbone.patch_layers))


@needs_onnx
@needs_timm
@needs_package_file(EFFICIENTNET_LITE0)
@needs_file(SAMPLES / "cat.bmp")
def test_lite0_through_onnxruntime_gives_torchs_features_on_photographs():
    """The real weights: pooled features, last maps and both patch layers' maps of the
    four photographs within the tolerance of torch's (measured: 5e-6), each photograph's
    top-1 class the same (their labels: test_backbones.py, on the default runtime)."""
    options = {
        "weights": package_file(EFFICIENTNET_LITE0),
        "architecture": "tf_efficientnet_lite0",
        "device": "cpu",
        "patch_layers": ["blocks.2", "blocks.4"],
    }
    exported = build_backbone("timm", runtime="onnx", **options)
    reference = build_backbone("timm", runtime="torch", **options)
    assert (exported.runtime, reference.runtime) == ("onnxruntime", "torch")
    photographs = np.stack(
        [exported.transform(Image.open(path).convert("RGB")) for path in sorted(SAMPLES.iterdir())]
    )
    ours, theirs = features(exported, photographs), features(reference, photographs)
    assert [m.shape[1:] for m in ours.patches] == [(28, 28, 40), (14, 14, 112)]
    assert difference(theirs, ours) <= TOLERANCE
    np.testing.assert_array_equal(
        exported.logits(photographs).argmax(1), reference.logits(photographs).argmax(1)
    )


@needs_onnx
def test_a_random_torchvision_resnet_exports_within_the_tolerance_patch_layers_included():
    options = {"weights": "random", "device": "cpu", "patch_layers": ["layer2", "layer3"]}
    torch.manual_seed(0)
    exported = build_backbone("wide_resnet50_2", runtime="onnx", **options)
    torch.manual_seed(0)  # the same random weights
    reference = build_backbone("wide_resnet50_2", runtime="torch", **options)
    images = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    ours, theirs = features(exported, images), features(reference, images)
    assert exported.runtime == "onnxruntime"
    assert ours.pooled.shape == (3, 2048) and ours.maps.shape == (3, 7, 7, 2048)
    assert [m.shape for m in ours.patches] == [(3, 28, 28, 512), (3, 14, 14, 1024)]
    assert difference(theirs, ours) <= TOLERANCE
    only_pooled = exported.encode(images)  # the outputs asked for, in order
    assert only_pooled.maps is None and only_pooled.patches == ()
    np.testing.assert_array_equal(only_pooled.pooled, ours.pooled)
    with pytest.raises(DataError, match=r"images of shape \(64, 64, 3\).*runtime torch"):
        exported.encode(images[:, :64, :64])


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Two random timm ResNet-18 state dicts as local files: the models the cache and
    fallback tests export (at a 64-pixel input, fast)."""
    import timm

    folder = tmp_path_factory.mktemp("weights")
    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save(timm.create_model("resnet18").state_dict(), folder / f"r18-{seed}.pth")
    return folder


def small(weights, **options):
    return build_backbone(
        "timm", weights=weights, architecture="resnet18", input_size=64, device="cpu", **options
    )


@needs_onnx
@needs_timm
def test_an_export_is_made_once_per_key_and_an_unreadable_one_again(
    small_weights, tmp_path, monkeypatch, caplog
):
    first = small(small_weights / "r18-0.pth", runtime="onnx", export_cache=tmp_path)
    (kept,) = tmp_path.glob("resnet18*.onnx")
    exports = []
    real = torch_onnx.export
    monkeypatch.setattr(torch_onnx, "export", lambda *a: exports.append(a) or real(*a))
    again = small(small_weights / "r18-0.pth", runtime="onnx", export_cache=tmp_path)
    assert again.runtime == "onnxruntime" and exports == []  # read back, not exported
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(again.encode(images).pooled, first.encode(images).pooled)
    small(small_weights / "r18-1.pth", runtime="onnx", export_cache=tmp_path)  # other weights
    assert len(exports) == 1 and len(list(tmp_path.glob("*.onnx"))) == 2
    kept.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, LOG):
        mended = small(small_weights / "r18-0.pth", runtime="onnx", export_cache=tmp_path)
    assert mended.runtime == "onnxruntime" and len(exports) == 2
    assert f"{kept}: exporting again" in caplog.text and kept.stat().st_size > 1000


def inexact(real):
    """An export whose first convolution's weights are 0.1% off: features about 1e-3 away."""

    def export(*args):
        import onnx

        model = onnx.load_from_string(real(*args))
        weight = next(w for w in model.graph.initializer if len(w.dims) == 4)
        values = onnx.numpy_helper.to_array(weight) * np.float32(1.001)
        weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
        return model.SerializeToString()

    return export


def failing(*args):
    raise RuntimeError("Exporting the operator 'aten::nope' to ONNX opset 17 is not supported")


@needs_onnx
@needs_timm
@pytest.mark.parametrize(
    ("broken", "warning"),
    [
        (failing, r"resnet18 runs on torch: its ONNX export failed \(RuntimeError: Exporting"),
        (inexact, r"resnet18 runs on torch: its ONNX export differs from torch by .* 0.0001"),
    ],
    ids=["failed", "inexact"],
)
@pytest.mark.parametrize("runtime", ["onnx", "auto"])
def test_a_failed_or_inexact_export_falls_back_to_torch_naming_the_model(
    small_weights, monkeypatch, caplog, broken, warning, runtime
):
    real = torch_onnx.export
    monkeypatch.setattr(torch_onnx, "export", broken if broken is failing else broken(real))
    with caplog.at_level(logging.WARNING, LOG):
        backbone = small(small_weights / "r18-0.pth", runtime=runtime)
    assert backbone.runtime == "torch"
    assert len(caplog.records) == 1 and caplog.records[0].levelname == "WARNING"
    assert re.search(warning, caplog.text), caplog.text
    images = np.zeros((2, 64, 64, 3), np.uint8)
    assert backbone.encode(images, maps=True).maps.shape == (2, 2, 2, 512)  # torch's


@needs_onnx
@needs_timm
def test_a_bad_patch_layer_is_a_config_error_not_a_fallback(small_weights):
    with pytest.raises(ConfigError, match="patch layer 'fc' is not called by the forward"):
        small(small_weights / "r18-0.pth", runtime="onnx", patch_layers=["layer2", "fc"])


def test_auto_takes_onnxruntime_on_a_cpu_and_torch_elsewhere(monkeypatch):
    rule = {"bf16": False, "compile": False, "model": "m"}
    assert resolve_runtime("auto", device="cpu", **rule) == "onnx"
    assert resolve_runtime("auto", device="cpu", **{**rule, "compile": True}) == "onnx"
    assert resolve_runtime("auto", device="cuda:0", **rule) == "torch"
    assert resolve_runtime("auto", device="cpu", **{**rule, "bf16": True}) == "torch"
    assert resolve_runtime("torch", device="cpu", **rule) == "torch"
    assert resolve_runtime("onnx", device="cpu", **rule) == "onnx"
    with pytest.raises(ConfigError, match="m: runtime onnx .* without device cuda"):
        resolve_runtime("onnx", device="cuda", **rule)
    with pytest.raises(ConfigError, match="without bf16 and compile: set runtime torch"):
        resolve_runtime("onnx", device="cpu", **{**rule, "bf16": True, "compile": True})
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'; valid: torch, onnx, auto"):
        resolve_runtime("tensorrt", device="cpu", **rule)
    monkeypatch.setattr(torch_onnx.importlib.util, "find_spec", lambda name: None)
    assert resolve_runtime("auto", device="cpu", **rule) == "torch"
    with pytest.raises(ConfigError, match="m: runtime onnx needs onnxruntime: pip install"):
        resolve_runtime("onnx", device="cpu", **rule)


def test_the_schema_offers_the_runtimes():
    from assets import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    options = schema["properties"]["backbones"]["additionalProperties"]["properties"]["options"]
    assert options["properties"]["runtime"]["enum"] == list(torch_onnx.RUNTIMES)


def embeddings(runtime: str | None, labels: list[int]) -> Embeddings:
    attrs = {} if runtime is None else {"runtime": runtime}
    rows = np.random.default_rng(0).normal(size=(len(labels), 4)).astype(np.float32)
    return Embeddings(rows, np.asarray(labels), [str(i) for i in labels], ["a", "b"], attrs)


def test_a_task_never_mixes_two_runtimes_features():
    one_class_task(embeddings("onnxruntime", [0, 0]), embeddings("onnxruntime", [0, 1]), 0)
    one_class_task(embeddings(None, [0, 0]), embeddings(None, [0, 1]), 0)  # tflite, or older
    for train, test in [("torch", "onnxruntime"), (None, "torch")]:
        with pytest.raises(DataError, match="different runtimes .*options.runtime"):
            one_class_task(embeddings(train, [0, 0]), embeddings(test, [0, 1]), 0)


@needs_onnx
@needs_timm
def test_the_embedding_file_records_the_runtime_that_ran(small_weights, tmp_path):
    images = load_dataset("imagefolder", make_image_folder(tmp_path / "images"), "test")
    for runtime, recorded in [("auto", "onnxruntime"), ("torch", "torch")]:
        backbone = small(small_weights / "r18-0.pth", runtime=runtime)
        out = extract_embeddings(
            images, backbone, tmp_path / f"{runtime}.h5", num_workers=0, progress=False
        )
        assert load_embeddings(out).attrs["runtime"] == recorded
        assert backbone_weights([out])["timm runtime"] == recorded  # the report's provenance


def test_an_embed_spec_records_a_torch_backbones_runtime_and_leaves_the_others_as_they_were():
    """The runtime asked for (its default stated) is part of the embedding's key: a spec
    written before it existed differs, so its file is embedded again; a TFLite backbone's
    spec is as it was."""
    from assets import REPO
    from workflow_helpers import validated

    from cap.evaluation.jobs import spec_data
    from cap.workflow import Plan, Steps

    config = validated(yaml.safe_load((REPO / "config/industrial.yaml").read_text()))
    steps = Steps(Plan(config))
    specs = {
        backbone: spec_data(
            steps.spec(
                "embed",
                {"dataset": dataset, "backbone": backbone, "subset": "tire", "split": "test"},
            )
        )
        for dataset, backbone in [
            ("tire_lite0", "efficientnet_lite0"),
            ("tire_mnv2", "mobilenet_v2"),
        ]
    }
    assert specs["efficientnet_lite0"]["options"]["runtime"] == "auto"
    assert "runtime" not in specs["mobilenet_v2"]["options"]
    config["backbones"]["efficientnet_lite0"]["options"]["runtime"] = "torch"
    torch_spec = Steps(Plan(config)).spec(
        "embed",
        {
            "dataset": "tire_lite0",
            "backbone": "efficientnet_lite0",
            "subset": "tire",
            "split": "test",
        },
    )
    assert torch_spec.options["runtime"] == "torch"
