"""MVTec 3D-AD's RGB loader (``mvtec3d``): the real ``tire`` category from the shared zip
where it is present (counts, labels, masks and their alignment, zip = folder), its error
paths on small trees written here (from a few real files, or synthetic PNGs without the
zip), and masks through the embeddings' preprocessing."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from assets import SHARED
from data_fixtures import png_header
from PIL import Image

from cap.data import list_classes, load_dataset
from cap.data.mvtec3d import MVTec3DDataset
from cap.data.transforms import Uint8Transform
from cap.utils.errors import ConfigError, DataError, MissingResourceError

#: The tire category, RGB and masks at half resolution (../shared/data/README.md).
MVTEC3D_ZIP = SHARED / "data" / "mvtec3d-tire.zip"
needs_mvtec3d_zip = pytest.mark.skipif(
    not MVTEC3D_ZIP.is_file(), reason=f"{MVTEC3D_ZIP} is absent (set CAP_SHARED_DIR)"
)
#: Where users obtain the dataset; every "not found" message must point there.
OFFICIAL_URL = "https://www.mvtec.com/company/research/datasets/mvtec-3d-ad"
CATEGORIES = "bagel, cable_gland, carrot, cookie, dowel, foam, peach, potato, rope, tire"
#: The published counts of the tire category.
TRAIN, VALIDATION = 210, 29
TEST = {"good": 25, "contamination": 28, "cut": 27, "hole": 27, "combined": 5}
#: Ring contrast of the real masks over that of misaligned ones, median over the defective
#: images; measured 0.80 aligned vs 0.38-0.52 for every misalignment below (ratio >= 1.5).
ALIGNED_OVER_MISALIGNED = 1.3


def load(root: Path, split: str, **options) -> MVTec3DDataset:
    return load_dataset("mvtec3d", root, split, category="tire", **options)


def gt_path(image_id: str) -> str:
    """The dataset's mask file of a test image: ``test/<defect>/gt/<same name>``."""
    split, defect, folder, name = image_id.split("/")
    assert (split, folder) == ("test", "rgb")
    return f"{split}/{defect}/gt/{name}"


# --- the real tire zip -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tire_zip() -> Iterator[zipfile.ZipFile]:
    if not MVTEC3D_ZIP.is_file():
        pytest.skip(f"{MVTEC3D_ZIP} is absent (set CAP_SHARED_DIR)")
    with zipfile.ZipFile(MVTEC3D_ZIP) as archive:
        yield archive


@pytest.fixture(scope="module")
def tire_test(tire_zip) -> MVTec3DDataset:
    return load(MVTEC3D_ZIP, "test")


@pytest.fixture(scope="module")
def tire_test_pixels(tire_test) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image (H, W, 3) uint8, mask (H, W) bool) of every test image, read once."""
    return [(np.asarray(tire_test.image(i)), tire_test.mask(i)) for i in range(len(tire_test))]


def zip_counts(archive: zipfile.ZipFile, split: str) -> Counter:
    """Images per defect type of a split, from the zip's listing (not the loader)."""
    return Counter(
        name.split("/")[2]
        for name in archive.namelist()
        if re.fullmatch(rf"tire/{split}/[^/]+/rgb/[^/]+\.png", name)
    )


@needs_mvtec3d_zip
def test_tire_counts_per_split_and_defect_type(tire_zip, tire_test):
    assert zip_counts(tire_zip, "train") == {"good": TRAIN}  # the data are the published ones
    assert zip_counts(tire_zip, "validation") == {"good": VALIDATION}
    assert zip_counts(tire_zip, "test") == TEST
    train = load(MVTEC3D_ZIP, "train")
    assert len(train) == TRAIN and all(i.startswith("train/good/rgb/") for i in train.ids)
    assert len(tire_test) == sum(TEST.values()) == 112
    assert Counter(tire_test.defect_types) == TEST
    assert [i.split("/")[1] for i in tire_test.ids] == tire_test.defect_types
    bank = load(MVTEC3D_ZIP, "train", validation_in_bank=True)
    assert len(bank) == TRAIN + VALIDATION == 239
    assert bank.ids[:TRAIN] == train.ids
    assert all(i.startswith("validation/good/rgb/") for i in bank.ids[TRAIN:])
    assert len(set(bank.ids)) == len(bank)


@needs_mvtec3d_zip
def test_tire_labels_good_zero_defect_one_with_types_kept(tire_test):
    assert tire_test.class_names == ["good", "defect"] == list_classes("mvtec3d", category="tire")
    assert tire_test.category == "tire" and tire_test.name == "mvtec3d" and tire_test.has_masks
    expected = [0 if defect == "good" else 1 for defect in tire_test.defect_types]
    assert tire_test.labels.tolist() == expected
    assert np.bincount(tire_test.labels).tolist() == [25, 87]
    bank = load(MVTEC3D_ZIP, "train", validation_in_bank=True)
    assert not bank.labels.any() and set(bank.defect_types) == {"good"}
    assert bank.class_names == ["good", "defect"]


@needs_mvtec3d_zip
def test_tire_masks_are_their_gt_files_binary_at_image_size(tire_zip, tire_test, tire_test_pixels):
    """Each mask is its image's ``gt`` file of the same name, at the image's size; the
    files hold only the class ids (no interpolated values), the defect type's own id for
    single-defect images, and nothing for good ones."""
    class_ids = json.loads(tire_zip.read("tire/class_ids.json"))
    value_of = {name: int(value) for value, name in class_ids.items()}  # defect → mask value
    for index, (image, mask) in enumerate(tire_test_pixels):
        image_id, defect = tire_test.ids[index], tire_test.defect_types[index]
        with Image.open(io.BytesIO(tire_zip.read(f"tire/{gt_path(image_id)}"))) as gt:
            values = np.asarray(gt)
        assert image.shape == (400, 300, 3), image_id
        assert mask.dtype == bool and mask.shape == image.shape[:2] == values.shape, image_id
        np.testing.assert_array_equal(mask, values > 0, err_msg=image_id)
        present = set(np.unique(values).tolist())
        assert present <= set(value_of.values()), (image_id, present)
        if defect == "good":
            assert not mask.any(), image_id
        elif defect == "combined":
            assert len(present - {0}) >= 2, (image_id, present)  # several defect kinds
        else:
            assert present == {0, value_of[defect]}, (image_id, present)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)² square, separably."""
    for axis in (0, 1):
        padded = np.pad(mask, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        mask = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis).any(-1)
    return mask


def ring_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """How much the region under ``mask`` differs in colour from a 6-pixel ring around it,
    in units of the ring's spread: high where the mask covers a defect."""
    rows, cols = np.nonzero(mask)
    window = np.s_[max(rows.min() - 7, 0) : rows.max() + 8, max(cols.min() - 7, 0) : cols.max() + 8]
    pixels, mask = image[window].astype(float), mask[window]  # around the mask only, for speed
    ring = dilate(mask, 6) & ~mask
    inside, around = pixels[mask].mean(0), pixels[ring]
    return float(np.linalg.norm(inside - around.mean(0)) / around.std(0).mean())


@needs_mvtec3d_zip
def test_tire_masks_cover_the_defect_of_their_own_image(tire_test, tire_test_pixels):
    """Defects lie on the tire in the middle of the picture, never at the border, and a
    mask marks a region that stands out from its surroundings in its own image far more
    than the same mask shifted, flipped or paired with the next image does."""
    defective = [
        pair for pair, label in zip(tire_test_pixels, tire_test.labels, strict=True) if label
    ]
    assert len(defective) == 87
    for _, mask in defective:
        rows, cols = np.nonzero(mask)
        height, width = mask.shape
        assert rows.min() > 0.2 * height and rows.max() < 0.8 * height
        assert cols.min() > 0.2 * width and cols.max() < 0.85 * width

    def median_contrast(misalign) -> float:
        return float(
            np.median(
                [
                    ring_contrast(image, misalign(k, mask))
                    for k, (image, mask) in enumerate(defective)
                ]
            )
        )

    aligned = median_contrast(lambda k, mask: mask)
    misalignments = {
        "right 20 px": lambda k, mask: np.roll(mask, 20, axis=1),
        "left 20 px": lambda k, mask: np.roll(mask, -20, axis=1),
        "down 20 px": lambda k, mask: np.roll(mask, 20, axis=0),
        "up 20 px": lambda k, mask: np.roll(mask, -20, axis=0),
        "upside down": lambda k, mask: mask[::-1],
        "mirrored": lambda k, mask: mask[:, ::-1],
        "next image's": lambda k, mask: defective[(k + 1) % len(defective)][1],
    }
    for name, misalign in misalignments.items():
        assert aligned > ALIGNED_OVER_MISALIGNED * median_contrast(misalign), name


@needs_mvtec3d_zip
def test_tire_training_images_are_good_without_mask_files(tire_zip):
    assert not [n for n in tire_zip.namelist() if re.match(r"tire/(train|validation)/.*/gt/", n)]
    bank = load(MVTEC3D_ZIP, "train", validation_in_bank=True)
    assert not any("/gt/" in i or "/xyz/" in i for i in bank.ids)
    for index in (0, TRAIN - 1, TRAIN, len(bank) - 1):  # first and last of train, validation
        mask = bank.mask(index)
        assert mask.dtype == bool and mask.shape == (400, 300) and not mask.any()


# --- zip and folder --------------------------------------------------------------------


def subset_members(archive: zipfile.ZipFile) -> list[str]:
    """A handful of the zip's files: the first two training images, one validation image
    and the first test image of every defect type with its mask."""
    names = sorted(name for name in archive.namelist() if not name.endswith("/"))

    def first(folder: str, n: int = 1) -> list[str]:
        return [name for name in names if name.startswith(folder)][:n]

    members = first("tire/train/good/rgb/", 2) + first("tire/validation/good/rgb/")
    for defect in TEST:
        image = first(f"tire/test/{defect}/rgb/")[0]
        members += [image, "tire/" + gt_path(image.removeprefix("tire/"))]
    return members


def zip_tree(folder: Path, archive: Path, *, top: str = "", folders: bool = True) -> Path:
    """Zip ``folder``'s contents under ``top``, with folder entries (so that empty folders
    survive) unless ``folders`` is False."""
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            name = top + path.relative_to(folder).as_posix()
            if path.is_file():
                handle.write(path, name)
            elif folders:
                handle.writestr(name + "/", b"")
    return archive


def same_items(first: MVTec3DDataset, second: MVTec3DDataset) -> None:
    assert first.ids == second.ids and first.defect_types == second.defect_types
    assert first.labels.tolist() == second.labels.tolist()
    for index in range(len(first)):
        np.testing.assert_array_equal(np.asarray(first.image(index)), second.image(index))
        np.testing.assert_array_equal(first.mask(index), second.mask(index))


@needs_mvtec3d_zip
def test_zip_and_unpacked_folder_give_the_same_items(tmp_path, tire_zip, tire_test):
    members = subset_members(tire_zip)
    assert len(members) == 13
    tire_zip.extractall(tmp_path / "folder", members)
    folder = tmp_path / "folder"
    rezipped = zip_tree(folder, tmp_path / "subset.zip", top="mvtec_3d_anomaly_detection/")
    for split, options in (("train", {"validation_in_bank": True}), ("test", {})):
        from_folder = load(folder, split, **options)
        assert len(from_folder) == (3 if split == "train" else 5)
        same_items(from_folder, load(rezipped, split, **options))  # the folder, zipped again
    from_folder = load(folder, "test")
    assert from_folder.source(0) == str(folder / "tire" / from_folder.ids[0])
    assert tire_test.source(0) == f"{MVTEC3D_ZIP}::tire/{tire_test.ids[0]}"
    # ... and each of its items is the shared zip's item of the same id
    for index, image_id in enumerate(from_folder.ids):
        other = tire_test.index_of(image_id)
        assert tire_test.labels[other] == from_folder.labels[index]
        assert tire_test.defect_types[other] == from_folder.defect_types[index]
        np.testing.assert_array_equal(tire_test.image(other), from_folder.image(index))
        np.testing.assert_array_equal(tire_test.mask(other), from_folder.mask(index))


# --- error paths, on small trees -------------------------------------------------------

#: The files of the small trees the error tests break.
SMALL_TREE = (
    "tire/train/good/rgb/000.png",
    "tire/train/good/rgb/001.png",
    "tire/validation/good/rgb/000.png",
    "tire/test/good/rgb/000.png",
    "tire/test/good/gt/000.png",
    "tire/test/cut/rgb/000.png",
    "tire/test/cut/gt/000.png",
    "tire/test/hole/rgb/000.png",
    "tire/test/hole/gt/000.png",
)


def synthetic_png(name: str, seed: int) -> bytes:
    """A 30 × 40 image, or its mask: a square for defects, nothing for good images."""
    if "/gt/" in name:
        pixels = np.zeros((40, 30), np.uint8)
        if "/good/" not in name:
            pixels[10:20, 8:16] = 255
    else:
        pixels = np.random.default_rng(seed).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_tree(tmp_path) -> Path:
    """``tmp_path/tree``: the shared zip's files of :data:`SMALL_TREE` where it is present,
    synthetic PNGs in the same layout otherwise."""
    root = tmp_path / "tree"
    archive = zipfile.ZipFile(MVTEC3D_ZIP) if MVTEC3D_ZIP.is_file() else None
    for seed, name in enumerate(SMALL_TREE):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(synthetic_png(name, seed) if archive is None else archive.read(name))
    if archive is not None:
        archive.close()
    assert len(load(root, "test")) == 3 and len(load(root, "train")) == 2  # a valid tree
    return root


def as_form(root: Path, form: str) -> tuple[Path, str]:
    """The tree itself or a zip of it, and how its messages name ``root``'s files."""
    if form == "folder":
        return root, f"{root}/"
    archive = zip_tree(root, root.with_suffix(".zip"))
    return archive, f"{archive}::"


@pytest.mark.parametrize("name", ["mvtec3d-tire.zip", "mvtec_3d_anomaly_detection"])
def test_missing_zip_or_folder_names_it_and_the_download_page(tmp_path, name):
    with pytest.raises(MissingResourceError) as error:
        load(tmp_path / name, "test")
    assert str(tmp_path / name) in str(error.value) and OFFICIAL_URL in str(error.value)


def test_unknown_category_lists_the_valid_ones(small_tree):
    with pytest.raises(ConfigError, match=rf"'tyre'; valid: {CATEGORIES}$"):
        load_dataset("mvtec3d", small_tree, "test", category="tyre")
    with pytest.raises(ConfigError, match=rf"mvtec3d needs a category; valid: {CATEGORIES}$"):
        load_dataset("mvtec3d", small_tree, "test")
    assert ", ".join(list_classes("mvtec3d")) == CATEGORIES


def test_category_absent_from_the_data_says_what_is_there(small_tree, tmp_path):
    with pytest.raises(MissingResourceError) as error:
        load_dataset("mvtec3d", small_tree, "test", category="bagel")
    message = str(error.value)
    assert f"'bagel' is not in {small_tree} (it holds: tire)" in message and OFFICIAL_URL in message
    nested = tmp_path / "nested"
    nested.mkdir()
    small_tree.rename(nested / "extra")  # one folder too deep
    with pytest.raises(MissingResourceError, match=r"'tire' is not in .*\(it holds: extra/tire\)"):
        load(nested, "test")


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_mask_of_another_size_than_its_image_names_both(small_tree, form):
    mask_file = small_tree / "tire/test/cut/gt/000.png"
    with Image.open(mask_file) as mask:
        width, height = mask.size
        smaller = mask.resize((width // 2, height // 2), Image.Resampling.NEAREST)
    smaller.save(mask_file)
    root, where = as_form(small_tree, form)
    test = load(root, "test")  # masks are read when needed
    assert test.mask(test.index_of("test/hole/rgb/000.png")).any()
    with pytest.raises(DataError) as error:
        test.mask(test.index_of("test/cut/rgb/000.png"))
    assert str(error.value) == (
        f"mask {where}tire/test/cut/gt/000.png is {width // 2}x{height // 2} but its image "
        f"{where}tire/test/cut/rgb/000.png is {width}x{height}"
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("form", ["folder", "zip"])
def test_mask_of_too_many_pixels_is_refused_undecoded_naming_it(small_tree, form):
    (small_tree / "tire/test/cut/gt/000.png").write_bytes(png_header(10_000, 10_000))
    root, where = as_form(small_tree, form)
    test = load(root, "test")
    with pytest.raises(DataError) as error:
        test.mask(test.index_of("test/cut/rgb/000.png"))
    assert str(error.value).startswith(f"{where}tire/test/cut/gt/000.png is 10000x10000 pixels")


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_test_image_without_its_mask_names_both(small_tree, form):
    (small_tree / "tire/test/hole/gt/000.png").unlink()
    root, where = as_form(small_tree, form)
    with pytest.raises(DataError) as error:
        load(root, "test")
    assert (
        f"image {where}tire/test/hole/rgb/000.png has no mask at {where}tire/test/hole/gt/000.png"
    ) in str(error.value)
    assert len(load(root, "train")) == 2  # the training images need no masks


@pytest.mark.parametrize("form", ["folder", "zip"])
@pytest.mark.parametrize(
    ("folder", "split", "options"),
    [
        ("train/good/rgb", "train", {}),
        ("validation/good/rgb", "train", {"validation_in_bank": True}),
        ("test/cut/rgb", "test", {}),  # the other defect types still hold images
    ],
)
def test_image_folder_without_images_is_named(small_tree, form, folder, split, options):
    for image in (small_tree / "tire" / folder).iterdir():
        image.unlink()
    (small_tree / "tire" / folder / "notes.txt").write_text("no images here")
    root, where = as_form(small_tree, form)
    with pytest.raises(DataError, match=re.escape(f"{where}tire/{folder} holds no .png image")):
        load(root, split, **options)
    if "validation" in folder:
        assert len(load(root, "train")) == 2  # left out of the bank, it is not read


def test_split_folder_missing_is_named(small_tree):
    for path in sorted((small_tree / "tire" / "validation").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (small_tree / "tire" / "validation").rmdir()
    with pytest.raises(DataError, match=re.escape(f"{small_tree}/tire/validation is missing")):
        load(small_tree, "train", validation_in_bank=True)


# --- masks through the embeddings' preprocessing ---------------------------------------


def boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of the mask's edge, on either side."""
    return dilate(mask, width) & dilate(~mask, width)


# torchvision's geometry is checked in test_preprocessing.py; importing it here would double
# this file's time
@pytest.mark.parametrize("preprocessing", ["paper", "direct"])
def test_transformed_mask_stays_on_the_transformed_image(preprocessing):
    """A bright off-centre square and its mask, in a 300 × 400 image (the tire's shape),
    land on the same pixels of the 224 × 224 input, up to a pixel at the square's edge."""
    pixels = np.full((400, 300, 3), 20, np.uint8)
    mask = np.zeros((400, 300), bool)
    mask[230:290, 60:121] = True  # lower left: a flip or a shift would show
    pixels[mask] = 235
    transform = Uint8Transform(preprocessing=preprocessing)
    image = transform(Image.fromarray(pixels))  # (224, 224, 3)
    bright = image.mean(-1) > 127
    aligned = transform.mask(mask)  # (224, 224)
    assert aligned.shape == bright.shape == (224, 224) and aligned.dtype == bool
    assert aligned.sum() > 1000
    rows, cols = np.nonzero(aligned)
    assert rows.mean() > 112 and cols.mean() < 112  # still lower left
    assert not (bright ^ aligned)[~boundary(aligned, 1)].any()
    for axis in (0, 1):
        spans = [np.nonzero(m.any(axis=1 - axis))[0][[0, -1]] for m in (bright, aligned)]
        assert np.abs(spans[0] - spans[1]).max() <= 1


@needs_mvtec3d_zip
@pytest.mark.parametrize("preprocessing", ["paper", "direct"])
def test_real_masks_follow_the_image_geometry(tire_test, tire_test_pixels, preprocessing):
    """A real mask through ``transform.mask`` covers what the image transform makes of the
    same mask drawn as a picture (white on black), up to a pixel at its edge."""
    transform = Uint8Transform(preprocessing=preprocessing)
    for defect in TEST.keys() - {"good"}:
        mask = tire_test_pixels[tire_test.defect_types.index(defect)][1]
        drawn = transform(Image.fromarray(np.repeat(mask[..., None] * np.uint8(255), 3, -1)))
        aligned = transform.mask(mask)
        assert aligned.any(), defect
        assert not ((drawn.mean(-1) > 127) ^ aligned)[~boundary(aligned, 1)].any(), defect
