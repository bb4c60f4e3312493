"""Sub-commands from embeddings to AUROC: ``neighbors``, ``train``, ``score``,
``auroc`` and ``aggregate`` (one per workflow rule)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from cap.utils.errors import ConfigError

log = logging.getLogger(__name__)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["k=32", "head=linear"]`` → ``{"k": 32, "head": "linear"}`` (values read as YAML)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ConfigError(f"expected KEY=VALUE, got {pair!r}")
        parsed[key] = yaml.safe_load(value)
    return parsed


def parse_normal_class(text: str) -> int | None:
    """An integer class id, or ``none`` when the training split is all normal (MVTec)."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--normal-class must be an integer or 'none', got {text!r}") from None


def _add_split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-emb", type=Path, required=True, help="train-split HDF5")
    parser.add_argument("--test-emb", type=Path, required=True, help="test-split HDF5")
    parser.add_argument("--backbone", help="refuse embeddings from any other backbone")
    parser.add_argument(
        "--normal-class",
        type=parse_normal_class,
        required=True,
        help="class id, or 'none' (MVTec: the train split is all normal)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _add_split_arguments(parser)
    parser.add_argument("--neighbors", type=Path, required=True, help="from `cap neighbors`")
    parser.add_argument("--method", required=True, help="registered detector name")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="detector setting (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clip-k",
        action="store_true",
        help="use all searched neighbours when K exceeds them (small banks)",
    )


def _load_split(args: argparse.Namespace):
    from cap.benchmark.protocol import load_split

    split, _ = load_split(args.train_emb, args.test_emb, args.normal_class, backbone=args.backbone)
    return split


def _run_settings(args: argparse.Namespace, k_available: int) -> dict[str, Any]:
    """The detector settings, with K lowered to the neighbours available under --clip-k."""
    settings = parse_assignments(args.settings)
    if args.clip_k and settings.get("k", 0) > k_available:
        log.warning(
            "K=%s exceeds the %d neighbours available: using K=%d",
            settings["k"],
            k_available,
            k_available,
        )
        settings["k"] = k_available
    return settings


def run_neighbors(args: argparse.Namespace) -> None:
    from cap.benchmark.neighbors import save_neighbors, search_split_neighbors

    split = _load_split(args)
    k_max = args.k_max
    if args.clip_k and k_max >= len(split.bank):
        k_max = len(split.bank) - 1
        log.warning(
            "k_max=%d exceeds the bank of %d items: searching %d",
            args.k_max,
            len(split.bank),
            k_max,
        )
    neighbors = search_split_neighbors(split, k_max)
    save_neighbors(args.out, neighbors, k_max=k_max, normal_class=str(args.normal_class))
    log.info(
        "searched %d train and %d test items, k_max=%d", len(split.bank), len(split.test), k_max
    )


def run_train(args: argparse.Namespace) -> None:
    from cap.benchmark.experiment import build_detector, fit_on_split
    from cap.benchmark.neighbors import load_neighbors
    from cap.utils.io import write_json_atomic

    split = _load_split(args)
    neighbors = load_neighbors(args.neighbors)
    detector = build_detector(args.method, _run_settings(args, neighbors.k_max), args.seed)
    fit_on_split(detector, split, neighbors, monitor=True)
    detector.save(args.out_model, include_bank=False)
    write_json_atomic(args.out_history, detector.history_)


def run_score(args: argparse.Namespace) -> None:
    import pandas as pd

    from cap.benchmark.evaluation import write_scores
    from cap.benchmark.experiment import build_detector, fit_on_split, score_split
    from cap.benchmark.neighbors import load_neighbors
    from cap.detectors import DETECTORS

    split = _load_split(args)
    neighbors = load_neighbors(args.neighbors)
    if args.model is not None:
        detector = DETECTORS[args.method].load(args.model, bank=split.bank)
    else:
        detector = build_detector(args.method, _run_settings(args, neighbors.k_max), args.seed)
        fit_on_split(detector, split, neighbors)
    frame = pd.DataFrame(
        {
            "id": split.test_ids,
            "label": split.test_labels,
            "is_anomaly": split.is_anomaly,
            "score": score_split(detector, split, neighbors),
        }
    )
    write_scores(args.out, frame)


def run_auroc(args: argparse.Namespace) -> None:
    from cap.benchmark.evaluation import read_scores, write_auroc_record

    # Tags stay text (class ids mix numbers and MVTec names), except the seed.
    tags = {key: str(value) for key, value in parse_assignments(args.tags).items()}
    if "seed" in tags:
        tags["seed"] = int(tags["seed"])
    record = write_auroc_record(args.out, read_scores(args.scores), tags)
    log.info("AUROC %.4f (%s)", record["auroc"], json.dumps(tags, sort_keys=True))


def run_aggregate(args: argparse.Namespace) -> None:
    from cap.benchmark.evaluation import summarize_records
    from cap.utils.io import atomic_path

    frame = summarize_records(args.records)
    with atomic_path(args.out) as temporary:
        frame.to_csv(temporary, index=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluation sub-commands to the ``cap`` parser."""
    parser = subparsers.add_parser("neighbors", help="search k_max cosine neighbours once")
    _add_split_arguments(parser)
    parser.add_argument("--k-max", type=int, required=True)
    parser.add_argument("--clip-k", action="store_true", help="lower k_max to the bank size − 1")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(handler=run_neighbors)

    parser = subparsers.add_parser("train", help="fit a trainable detector (CAP)")
    _add_run_arguments(parser)
    parser.add_argument("--out-model", type=Path, required=True)
    parser.add_argument("--out-history", type=Path, required=True)
    parser.set_defaults(handler=run_train)

    parser = subparsers.add_parser("score", help="anomaly scores of the test split")
    _add_run_arguments(parser)
    parser.add_argument("--model", type=Path, help="saved model; else fit here (baselines)")
    parser.add_argument("--out", type=Path, required=True, help="scores .csv.gz")
    parser.set_defaults(handler=run_score)

    parser = subparsers.add_parser("auroc", help="AUROC of one score file, as JSON")
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--tag", dest="tags", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(handler=run_auroc)

    parser = subparsers.add_parser("aggregate", help="AUROC JSON records → one CSV")
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(handler=run_aggregate)
