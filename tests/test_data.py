"""Datasets, preprocessing and the offline switch."""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch
from assets import DEBIAN_FMNIST
from data_fixtures import make_image_folder, make_mvtec, png_header, write_idx, zip_folder
from PIL import Image

from cap.data import DATASETS, list_classes, load_dataset, tree
from cap.data.cifar import CIFAR100_COARSE_CLASSES, CIFAR100_FINE_TO_COARSE
from cap.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Uint8Transform,
    normalise,
    transform_mask,
)
from cap.utils.errors import ConfigError, DataError, MissingResourceError
from cap.utils.offline import is_offline

# --- image folders -------------------------------------------------------------------


def test_image_folder_converts_every_mode_to_rgb_with_sorted_shared_classes(tmp_path):
    root = make_image_folder(tmp_path / "images")
    train = load_dataset("imagefolder", root, "train")
    test = load_dataset("imagefolder", root, "test")
    assert train.class_names == test.class_names == ["ant", "bee", "cat"]
    assert train.labels.tolist() == [0] * 4 + [2] * 3  # no bee in train: one label space anyway
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.ids[0] == "train/ant/00.png" and train.ids[1] == "train/ant/01.jpg"
    modes = {Image.open(root / image_id).mode for image_id in train.ids}
    assert modes == {"RGB", "L", "RGBA"}
    for index in range(len(train)):
        image, label = train[index]
        assert image.mode == "RGB" and image.size == (20, 16) and label == train.labels[index]
    assert train.index_of("train/cat/02.png") == 6
    assert train.source(6) == str(root / "train/cat/02.png")
    with pytest.raises(ConfigError, match="no image with id"):
        train.index_of("train/cat/99.png")


def test_zip_with_a_wrapping_folder_reads_the_same_images(tmp_path):
    root = make_image_folder(tmp_path / "images")
    archive = zip_folder(root, tmp_path / "images.zip", top="wrapped")
    from_folder = load_dataset("imagefolder", root, "test")
    from_zip = load_dataset("imagefolder", archive, "test")
    assert from_zip.ids == from_folder.ids and from_zip.class_names == from_folder.class_names
    np.testing.assert_array_equal(from_zip.labels, from_folder.labels)
    for index in range(len(from_zip)):
        np.testing.assert_array_equal(
            np.asarray(from_zip.image(index)), np.asarray(from_folder.image(index))
        )
    assert from_zip.source(0).endswith("images.zip::wrapped/test/ant/00.png")


def test_corrupt_image_raises_data_error_naming_the_file(tmp_path):
    root = make_image_folder(tmp_path / "images")
    (root / "train/cat/01.jpg").write_bytes(b"not a jpeg")
    dataset = load_dataset("imagefolder", root, "train")
    with pytest.raises(DataError, match="train/cat/01.jpg"):
        dataset[dataset.index_of("train/cat/01.jpg")]


def test_empty_class_folder_and_missing_layout_are_refused(tmp_path):
    root = make_image_folder(tmp_path / "images")
    (root / "train" / "dog").mkdir()
    (root / "train" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="train/dog/"):
        load_dataset("imagefolder", root, "train")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no train/ or test/ folder"):
        load_dataset("imagefolder", tmp_path / "flat", "train")
    with pytest.raises(MissingResourceError, match="does not exist"):
        load_dataset("imagefolder", tmp_path / "nowhere", "train")


def test_subset_view_keeps_ids_labels_and_pixels(tmp_path):
    dataset = load_dataset("imagefolder", make_image_folder(tmp_path / "images"), "test")
    view = dataset.subset([5, 0])
    assert view.ids == [dataset.ids[5], dataset.ids[0]] and view.labels.tolist() == [2, 0]
    np.testing.assert_array_equal(np.asarray(view.image(0)), np.asarray(dataset.image(5)))


# --- files too large to be images ----------------------------------------------------


def image_of(root, form, tmp_path, image_id):
    """The train split of ``root`` as a folder or a zip, and the position of ``image_id``."""
    source = root if form == "folder" else zip_folder(root, tmp_path / "images.zip")
    dataset = load_dataset("imagefolder", source, "train")
    return dataset, dataset.index_of(image_id)


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_a_file_larger_than_any_image_is_refused_unread(tmp_path, monkeypatch, form):
    root = make_image_folder(tmp_path / "images")
    os.truncate(root / "train/cat/01.jpg", tree.MAX_FILE_BYTES + 1)  # sparse zeros: no disk
    dataset, index = image_of(root, form, tmp_path, "train/cat/01.jpg")
    unread = lambda *args: pytest.fail("the member was read")  # noqa: E731
    monkeypatch.setattr(zipfile.ZipExtFile, "read", unread)  # its size is its header's
    with pytest.raises(DataError) as error:
        dataset.image(index)
    assert str(error.value) == (
        f"{dataset.source(index)} holds {tree.MAX_FILE_BYTES + 1} bytes, more than the "
        f"{tree.MAX_FILE_BYTES} an image file may have"
    )


def test_a_zip_member_longer_than_its_header_says_is_read_no_further_than_the_cap(
    tmp_path, monkeypatch
):
    class Lying:
        """An archive whose member says it is empty but goes on."""

        def getinfo(self, path: str) -> zipfile.ZipInfo:
            return zipfile.ZipInfo(path)

        def open(self, info: zipfile.ZipInfo) -> io.BytesIO:
            return io.BytesIO(bytes(2000))

    monkeypatch.setattr(tree, "MAX_FILE_BYTES", 1000)
    files = tree.FileTree(
        zip_folder(make_image_folder(tmp_path / "images"), tmp_path / "a.zip"), ""
    )
    files._archive, files._archive_pid = Lying(), os.getpid()
    with pytest.raises(DataError, match=r"a\.zip::train/cat/00\.png holds 1001 bytes, more than"):
        files.open_image("train/cat/00.png")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("form", ["folder", "zip"])
@pytest.mark.parametrize("side", [10_000, 100_000], ids=["pillow-warns", "pillow-refuses"])
def test_an_image_whose_header_says_too_many_pixels_is_refused_undecoded(tmp_path, form, side):
    assert tree.MAX_PIXELS == Image.MAX_IMAGE_PIXELS  # Pillow's default, stated once
    root = make_image_folder(tmp_path / "images")
    (root / "train/cat/00.png").write_bytes(png_header(side, side))
    dataset, index = image_of(root, form, tmp_path, "train/cat/00.png")
    with pytest.raises(DataError) as error:
        dataset.image(index)
    message = str(error.value)
    assert message.startswith(f"{dataset.source(index)} ") and len(message.splitlines()) == 1
    assert "refused as a decompression bomb" in message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("file", ["test/broken/000.png", "ground_truth/broken/000_mask.png"])
def test_mvtec_refuses_an_image_or_mask_of_too_many_pixels(tmp_path, file):
    root = make_mvtec(tmp_path / "mvtec")
    (root / "bottle" / file).write_bytes(png_header(10_000, 10_000))
    test = load_dataset("mvtec", root, "test", category="bottle")
    index = test.index_of("test/broken/000.png")
    read = test.image if file.startswith("test/") else test.mask
    with pytest.raises(
        DataError, match=re.escape(f"{root / 'bottle' / file} is 10000x10000 pixels")
    ):
        read(index)


# --- registry ------------------------------------------------------------------------


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(
        ConfigError, match="valid: cifar10, cifar100, fmnist, mvtec, mvtec3d, imagefolder"
    ):
        load_dataset("svhn", tmp_path, "train")
    with pytest.raises(ConfigError, match="valid: train, test"):
        load_dataset("cifar10", tmp_path, "validation")
    with pytest.raises(ConfigError, match="only mvtec"):
        load_dataset("cifar10", tmp_path, "train", category="bottle")
    with pytest.raises(ConfigError, match="bottle, cable"):
        load_dataset("mvtec", tmp_path, "train")


def test_list_classes_of_every_dataset(tmp_path):
    assert set(DATASETS) == {"cifar10", "cifar100", "fmnist", "mvtec", "mvtec3d", "imagefolder"}
    assert list_classes("cifar10")[0] == "airplane" and len(list_classes("cifar10")) == 10
    assert len(list_classes("cifar100")) == 20
    assert len(list_classes("fmnist")) == 10 and all(
        "/" not in name for name in list_classes("fmnist")
    )
    assert len(list_classes("mvtec")) == 15 and list_classes("mvtec", category="bottle") == [
        "good",
        "defect",
    ]
    assert list_classes("imagefolder", make_image_folder(tmp_path / "images")) == [
        "ant",
        "bee",
        "cat",
    ]
    with pytest.raises(ConfigError, match="give the data root"):
        list_classes("imagefolder")


# --- CIFAR ---------------------------------------------------------------------------


def test_cifar100_fine_to_coarse_map_is_the_standard_one():
    coarse = np.asarray(CIFAR100_FINE_TO_COARSE)
    assert coarse.shape == (100,) and np.bincount(coarse).tolist() == [5] * 20
    named = {  # apple, aquarium_fish, baby, bicycle, pickup_truck, worm
        0: "fruit_and_vegetables", 1: "fish", 2: "people",
        8: "vehicles_1", 58: "vehicles_1", 99: "non-insect_invertebrates",
    }  # fmt: skip
    for fine, name in named.items():
        assert CIFAR100_COARSE_CLASSES[coarse[fine]] == name


def _write_fake_cifar(root, name: str, n: int) -> np.ndarray:
    """torchvision's pickled batches with n images each; returns the fine labels used."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10 if name == "cifar10" else 100, size=n).tolist()
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        meta, key, label_key = "batches.meta", "label_names", "labels"
    else:
        folder = root / "cifar-100-python"
        batches = ["train", "test"]
        meta, key, label_key = "meta", "fine_label_names", "fine_labels"
    folder.mkdir(parents=True)
    for batch in batches:
        entry = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), label_key: labels}
        (folder / batch).write_bytes(pickle.dumps(entry))
    (folder / meta).write_bytes(pickle.dumps({key: [f"c{i}" for i in range(100)]}))
    return np.asarray(labels)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_torchvision_batches_with_coarse_labels_for_cifar100(
    tmp_path, monkeypatch, name
):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(
        tv_cifar, "check_integrity", lambda *args, **kwargs: True
    )  # fake files, no md5
    fine = _write_fake_cifar(tmp_path, name, n=6)
    test = load_dataset(name, tmp_path, "test")
    expected = fine if name == "cifar10" else np.asarray(CIFAR100_FINE_TO_COARSE)[fine]
    assert test.labels.tolist() == expected.tolist() and test.ids == [str(i) for i in range(6)]
    assert test[0][0].mode == "RGB" and test[0][0].size == (32, 32)
    assert len(load_dataset(name, tmp_path, "train")) == (30 if name == "cifar10" else 6)


def test_cifar_missing_offline_names_the_folder_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("CAP_OFFLINE", "1")
    with pytest.raises(MissingResourceError, match="offline mode is on.*download=True"):
        load_dataset("cifar10", tmp_path, "train", download=True)
    assert not any(tmp_path.iterdir())
    with pytest.raises(MissingResourceError, match="cifar-10-batches-py.*download=True"):
        load_dataset("cifar10", tmp_path, "train")


# --- Fashion-MNIST -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["flat_gz", "torchvision_raw"])
def test_fmnist_reads_idx_files_and_replicates_gray_to_rgb(tmp_path, layout):
    folder = tmp_path if layout == "flat_gz" else tmp_path / "FashionMNIST" / "raw"
    suffix = ".gz" if layout == "flat_gz" else ""
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.array([3, 1, 4, 1, 5]))
    test = load_dataset("fmnist", tmp_path, "test")
    assert test.labels.tolist() == [3, 1, 4, 1, 5]
    image, _ = test[2]
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.shape == (28, 28, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], images[2])


def test_fmnist_truncated_idx_file_is_a_data_error(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset("fmnist", tmp_path, "test")


def test_fmnist_missing_says_how_to_obtain_it(tmp_path):
    with pytest.raises(MissingResourceError, match="dataset-fashion-mnist.*download=True"):
        load_dataset("fmnist", tmp_path, "train")
    with pytest.raises(MissingResourceError, match="offline mode is on"):
        load_dataset("fmnist", tmp_path, "train", offline=True, download=True)


@pytest.mark.skipif(
    not DEBIAN_FMNIST.is_dir(), reason="apt-get install dataset-fashion-mnist to run this"
)
def test_fmnist_from_debian_package_folder():
    train = load_dataset("fmnist", DEBIAN_FMNIST, "train")
    test = load_dataset("fmnist", DEBIAN_FMNIST, "test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train[0][1] == 9 and train[0][0].size == (
        28,
        28,
    )  # the first training image is an ankle boot


# --- MVTec AD ------------------------------------------------------------------------


def test_mvtec_layout_labels_defect_types_and_masks(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    train = load_dataset("mvtec", root, "train", category="bottle")
    test = load_dataset("mvtec", root, "test", category="bottle")
    assert train.labels.tolist() == [0, 0, 0] and test.class_names == ["good", "defect"]
    assert test.defect_types == ["broken", "broken", "crack", "good", "good"]
    assert test.labels.tolist() == [1, 1, 1, 0, 0] and test.category == "bottle"
    mask = test.mask(test.index_of("test/broken/001.png"))
    assert mask.shape == (32, 32) and mask.dtype == bool
    assert mask[4:12, 10:20].all() and mask.sum() == 80
    good = test.mask(test.index_of("test/good/000.png"))
    assert good.shape == (32, 32) and not good.any()
    aligned = transform_mask(mask)
    assert aligned.shape == (224, 224) and aligned.dtype == bool  # 32 → 256 (×8), crop at 16
    assert aligned[16:80, 64:144].all() and aligned.sum() == 64 * 80


def test_mvtec_missing_or_unknown_category_explains(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    with pytest.raises(MissingResourceError, match="download it yourself"):
        load_dataset("mvtec", root, "train", category="zipper")
    with pytest.raises(ConfigError, match="unknown MVTec category 'botle'.*bottle, cable"):
        load_dataset("mvtec", root, "train", category="botle")
    (root / "bottle" / "ground_truth" / "crack" / "000_mask.png").unlink()
    test = load_dataset("mvtec", root, "test", category="bottle")
    with pytest.raises(MissingResourceError, match="000_mask.png"):
        test.mask(test.index_of("test/crack/000.png"))


# --- preprocessing -------------------------------------------------------------------


def test_uint8_images_normalise_to_imagenet_statistics_as_torchvision_does():
    from torchvision.transforms import functional as F

    image = Image.new("RGB", (32, 32), (255, 128, 0))
    pixels = Uint8Transform()(image)
    tensor = normalise(torch.from_numpy(pixels)[None])[0]
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    expected = [
        (value / 255 - mean) / std
        for value, mean, std in zip((255, 128, 0), IMAGENET_MEAN, IMAGENET_STD, strict=True)
    ]
    np.testing.assert_allclose(tensor.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8))
    resized = Uint8Transform()(noisy)
    reference = F.normalize(F.to_tensor(resized), IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(
        normalise(torch.from_numpy(resized)[None])[0], reference, rtol=0, atol=0
    )


@pytest.mark.parametrize("size", [(40, 40), (37, 53), (300, 200)])
def test_uint8_transform_equals_lanczos_resize_256_then_centre_crop_224(size):
    from torchvision.transforms import functional as F

    pixels = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    out = Uint8Transform()(image)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8 and out.flags.writeable
    reference = F.center_crop(image.resize((256, 256), Image.Resampling.LANCZOS), [224, 224])
    np.testing.assert_array_equal(out, np.asarray(reference))
    assert "uint8" in Uint8Transform().describe() and "LANCZOS" in Uint8Transform().describe()


# --- offline switch ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, None, False),
        (True, None, True),
        (None, "1", True),
        (False, "1", True),
        (None, "0", False),
    ],
)
def test_offline_flag_or_environment(monkeypatch, flag, env, expected):
    if env is None:
        monkeypatch.delenv("CAP_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("CAP_OFFLINE", env)
    assert is_offline(flag) is expected


def test_an_idx_header_announcing_more_than_the_cap_is_refused_before_reading(tmp_path):
    """A gzip of a few bytes can announce (and inflate to) gigabytes: nothing beyond the
    header is read when it announces more than MAX_IDX_BYTES."""
    import gzip

    from cap.data.fmnist import MAX_IDX_BYTES, read_idx

    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2**16,) * 3))
    with pytest.raises(DataError, match=f"more than the {MAX_IDX_BYTES} an idx file may hold"):
        read_idx(path)
