"""The named preprocessings, against direct PIL and torchvision computations, and their wiring
through the transforms, the backbones, ``cap embed`` and the embedding file."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from assets import MOBILENET, needs_mobilenet
from data_fixtures import MeanColourBackbone, make_image_folder
from PIL import Image
from torchvision import transforms as T
from workflow_helpers import run_step

from cap.backbones import build_backbone
from cap.data import load_dataset
from cap.data.transforms import (
    PREPROCESSINGS,
    Uint8Transform,
    get_preprocessing,
    transform_mask,
)
from cap.evaluation.embeddings import extract_embeddings, load_embeddings
from cap.evaluation.jobs import EmbedJob
from cap.utils.errors import ConfigError

LANCZOS, BILINEAR = Image.Resampling.LANCZOS, Image.Resampling.BILINEAR


def _random(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    width, height = size
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, np.uint8))


#: CIFAR-like 32×32 RGB, Fashion-MNIST-like 28×28 grayscale as RGB, a landscape and a portrait.
IMAGES = {
    "cifar": _random((32, 32)),
    "fmnist": _random((28, 28), "L", seed=1).convert("RGB"),
    "landscape": _random((40, 30), seed=2),
    "portrait": _random((30, 45), seed=3),
}


def _centre(image: Image.Image, crop: int) -> np.ndarray:
    """Centre crop as torchvision rounds its offsets, on the array: (crop, crop, 3) uint8."""
    pixels = np.asarray(image)
    top = round((pixels.shape[0] - crop) / 2)
    left = round((pixels.shape[1] - crop) / 2)
    return pixels[top : top + crop, left : left + crop]


def test_registry_names_and_unknown_name_lists_the_valid_ones():
    assert list(PREPROCESSINGS) == ["paper", "torchvision", "direct"]
    assert all(entry.source and entry.describe(224) for entry in PREPROCESSINGS.values())
    valid = "unknown preprocessing 'bilinear'; valid: paper, torchvision, direct"
    for make in (
        lambda: get_preprocessing("bilinear"),
        lambda: Uint8Transform(224, "bilinear"),
        lambda: transform_mask(np.zeros((4, 4), bool), preprocessing="bilinear"),
        lambda: build_backbone("tflite", preprocessing="bilinear"),  # before the model is needed
        lambda: build_backbone("resnet152", weights="random", preprocessing="bilinear"),
    ):
        with pytest.raises(ConfigError, match=valid):
            make()


@pytest.mark.parametrize("name", list(IMAGES))
def test_paper_is_lanczos_256_square_then_centre_crop_224(name):
    image = IMAGES[name]
    out = np.asarray(PREPROCESSINGS["paper"](image))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    two_step = _centre(image.resize((256, 256), LANCZOS), 224)  # the released code, literally
    np.testing.assert_array_equal(out, two_step)  # the one-step box resize loses nothing
    small = np.asarray(PREPROCESSINGS["paper"](image, 112))  # another input size: 128 → 112
    np.testing.assert_array_equal(small, _centre(image.resize((128, 128), LANCZOS), 112))


@pytest.mark.parametrize("name", list(IMAGES))
def test_torchvision_is_panda_resize_256_shorter_side_then_centre_crop_224(name):
    image = IMAGES[name]
    out = np.asarray(PREPROCESSINGS["torchvision"](image))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    panda = T.Compose([T.Resize(256), T.CenterCrop(224)])(image)
    np.testing.assert_array_equal(out, np.asarray(panda))
    width, height = image.size  # the same with PIL alone: shorter side 256, longer truncated
    short = min(width, height)
    size = (256 * width // short, 256 * height // short)
    np.testing.assert_array_equal(out, _centre(image.resize(size, BILINEAR), 224))
    small = T.Compose([T.Resize(128), T.CenterCrop(112)])(image)
    np.testing.assert_array_equal(np.asarray(PREPROCESSINGS["torchvision"](image, 112)), small)


@pytest.mark.parametrize("name", list(IMAGES))
def test_direct_is_bilinear_to_the_input_size_without_crop(name):
    image = IMAGES[name]
    out = np.asarray(PREPROCESSINGS["direct"](image))
    np.testing.assert_array_equal(out, np.asarray(image.resize((224, 224), BILINEAR)))
    np.testing.assert_array_equal(out, np.asarray(T.Resize((224, 224))(image)))


def test_paper_and_torchvision_give_different_pixels_on_a_cifar_image():
    paper, bilinear, direct = (
        np.asarray(PREPROCESSINGS[name](IMAGES["cifar"]), dtype=np.int16)
        for name in ("paper", "torchvision", "direct")
    )
    assert np.abs(paper - bilinear).mean() > 1  # grey levels: a filter change, not rounding
    assert np.abs(direct - bilinear).mean() > 1  # a square image: the crop differs


def test_transforms_apply_the_named_preprocessing_and_say_so():
    image = IMAGES["landscape"]
    resized = PREPROCESSINGS["torchvision"](image)
    expected = np.asarray(resized)
    np.testing.assert_array_equal(Uint8Transform(224, "torchvision")(image), expected)
    describe = Uint8Transform(224, "direct").describe()
    assert (
        describe.startswith("direct: resize 224x224 (PIL bilinear), no crop")
        and "uint8" in describe
    )
    assert Uint8Transform().describe().startswith("paper: resize 256x256 (PIL LANCZOS")
    transform = pickle.loads(pickle.dumps(Uint8Transform(224, "torchvision")))  # DataLoader workers
    np.testing.assert_array_equal(transform(image), expected)


@pytest.mark.parametrize("name", list(PREPROCESSINGS))
def test_masks_follow_the_image_geometry_nearest_neighbour(name):
    mask = np.zeros((30, 40), dtype=bool)  # (H, W): a non-square image's mask
    mask[6:20, 12:30] = True
    aligned = transform_mask(mask, preprocessing=name)
    assert aligned.shape == (224, 224) and aligned.dtype == bool
    as_image = Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB")  # (30, 40, 3)
    resized = np.asarray(PREPROCESSINGS[name](as_image))[..., 0] > 127  # the image's own filter
    assert (aligned == resized).mean() > 0.98  # same geometry: only the edges may differ
    if name == "torchvision":
        nearest = T.Compose([T.Resize(256, T.InterpolationMode.NEAREST), T.CenterCrop(224)])
        np.testing.assert_array_equal(aligned, np.asarray(nearest(as_image))[..., 0] > 127)


def test_files_of_earlier_versions_are_read_in_todays_names(tmp_path):
    folder = make_image_folder(tmp_path / "images", {"train": {"a": 1, "b": 1}})
    dataset = load_dataset("imagefolder", folder, "train")
    out = extract_embeddings(dataset, MeanColourBackbone(), tmp_path / "x.h5", num_workers=0)
    attrs = load_embeddings(out).attrs
    assert attrs["preprocessing"] == "custom"  # the Backbone default
    description = attrs["input_description"]
    with h5py.File(out, "a") as store:  # as written while the key was preprocessing_name
        store.attrs["preprocessing_name"] = "direct"
        store.attrs["preprocessing"] = description
        del store.attrs["input_description"]
    attrs = load_embeddings(out).attrs
    assert (attrs["preprocessing"], attrs["input_description"]) == ("direct", description)
    with h5py.File(out, "a") as store:  # as written before the name was recorded
        del store.attrs["preprocessing_name"]
    attrs = load_embeddings(out).attrs
    assert (attrs["preprocessing"], attrs["input_description"]) == ("paper", description)


@needs_mobilenet
def test_tflite_option_reaches_the_transform_the_cli_and_the_embedding_file(tmp_path):
    backbone = build_backbone("tflite", weights=MOBILENET, preprocessing="torchvision")
    assert backbone.preprocessing == "torchvision"
    assert backbone.input_description.startswith("torchvision: resize the shorter side to 256")
    image = IMAGES["portrait"]
    expected = np.asarray(T.Compose([T.Resize(256), T.CenterCrop(224)])(image))
    np.testing.assert_array_equal(backbone.transform(image), expected)
    assert build_backbone("tflite", weights=MOBILENET).preprocessing == "paper"

    folder = make_image_folder(tmp_path / "images", {"test": {"a": 2, "b": 1}})
    out = tmp_path / "test.h5"
    job = EmbedJob(
        dataset="imagefolder", data_root=str(folder), split="test", backbone="tflite",
        out=str(out), weights=str(MOBILENET), preprocessing="torchvision",
    )  # fmt: skip
    run_step("embed", job, tmp_path, "--num-workers", "0")
    loaded = load_embeddings(out)
    assert loaded.attrs["preprocessing"] == "torchvision"
    assert loaded.attrs["input_description"] == backbone.input_description
    dataset = load_dataset("imagefolder", folder, "test")
    first, _ = backbone.embed(backbone.transform(dataset.image(0))[None])
    np.testing.assert_array_equal(loaded.features[0], first[0])  # embedded with that transform


def test_torchvision_backbone_takes_the_option():
    backbone = build_backbone(
        "resnet152", weights="random", device="cpu", preprocessing="direct"
    )  # random weights: nothing to download
    assert backbone.preprocessing == "direct" and backbone.transform.preprocessing == "direct"
    assert backbone.input_description.startswith("direct: resize 224x224")
    assert "ImageNet" in backbone.input_description
