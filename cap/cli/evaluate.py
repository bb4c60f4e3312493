"""Sub-commands from embeddings to AUROC, one per workflow rule: ``neighbors``,
``train`` (a kept model), ``evaluate`` (a batch of runs of one class) and ``aggregate``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cap.cli import log_startup
from cap.utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from cap.benchmark.embeddings import Embeddings
    from cap.benchmark.experiment import RunSpec
    from cap.benchmark.neighbors import Neighbors
    from cap.benchmark.protocol import OneClassSplit

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
    parser.add_argument(
        "--bank-size", type=int, metavar="N", help="the first N normal training images only"
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _add_split_arguments(parser)
    parser.add_argument("--neighbors", type=Path, required=True, help="from `cap neighbors`")
    parser.add_argument(
        "--run",
        dest="runs",
        action="append",
        required=True,
        metavar="JSON",
        help='a run: {"variant", "method", "seed", "settings", "monitor", "model"} (repeatable)',
    )
    parser.add_argument(
        "--clip-k",
        action="store_true",
        help="use all searched neighbours when K exceeds them (small banks)",
    )


def _load_split(args: argparse.Namespace):
    """The run's split (bank and test items) and the test embeddings' file, from the arguments."""
    from cap.benchmark.protocol import load_split

    return load_split(
        args.train_emb,
        args.test_emb,
        args.normal_class,
        backbone=args.backbone,
        bank_size=args.bank_size,
    )


def run_neighbors(args: argparse.Namespace) -> None:
    from cap.benchmark.neighbors import save_neighbors, search_split_neighbors

    split, _ = _load_split(args)
    log_startup()
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
    from cap.benchmark.experiment import RunSpec, train_run

    if len(args.runs) != 1:
        raise ConfigError(f"cap train makes one run; got {len(args.runs)} --run")
    spec = RunSpec.from_json(args.runs[0])
    split, _, neighbors, provenance, _ = _prepare_runs(args, [spec])
    train_run(spec, split, neighbors, provenance, args.out_model, clip_k=args.clip_k)


def run_evaluate(args: argparse.Namespace) -> None:
    import pandas as pd

    from cap.benchmark.evaluation import write_batch
    from cap.benchmark.experiment import RunSpec, evaluate_run

    specs = [RunSpec.from_json(text) for text in args.runs]
    split, test, neighbors, provenance, startup = _prepare_runs(args, specs)
    identity = {
        **{key: str(value) for key, value in parse_assignments(args.tags).items()},
        "class_name": split.normal_class_name,
        "backbone_model": test.attrs.get("backbone"),
        "weights": test.attrs.get("weights"),
        "n_train": len(split.bank),
        "n_test": len(split.test),
        "n_anomalous": int(split.is_anomaly.sum()),
    }
    runs, scores = [], []
    for spec in specs:
        record, values = evaluate_run(spec, split, neighbors, provenance, clip_k=args.clip_k)
        runs.append({**identity, **record})
        scores.append(values)
    items = pd.DataFrame(
        {"id": split.test_ids, "label": split.test_labels, "is_anomaly": split.is_anomaly}
    )
    write_batch(
        args.out_records,
        args.out_scores,
        job={"startup_s": startup},
        runs=runs,
        scores=scores,
        test=items,
    )


def run_aggregate(args: argparse.Namespace) -> None:
    from cap.benchmark.evaluation import summarize_records, write_runs_table

    write_runs_table(args.out, summarize_records(args.records))


def _prepare_runs(
    args: argparse.Namespace, specs: list[RunSpec]
) -> tuple[OneClassSplit, Embeddings, Neighbors, dict[str, Any], float]:
    """What a job's runs share, before the first fit: the runtime their methods need, the
    split (and the test embeddings), its neighbours and the bank's provenance; then the
    start-up is logged. Returns those four and the start-up seconds."""
    from cap.benchmark.experiment import bank_provenance
    from cap.benchmark.neighbors import load_neighbors

    _import_runtime(specs)
    split, test = _load_split(args)
    neighbors = load_neighbors(args.neighbors)
    provenance = bank_provenance(split, args.train_emb, args.normal_class)
    return split, test, neighbors, provenance, log_startup()


def _import_runtime(specs: list[RunSpec]) -> None:
    """Where a method trains, import torch, and the compiler stack that its optimisers
    import at their first step (about a second), before the first fit: the start-up
    then includes them, and each run's fit seconds are its own."""
    from cap.detectors import detector_class

    if any(detector_class(spec.method).trainable for spec in specs):
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step()


def run_verify(args: argparse.Namespace) -> None:
    from cap.reporting.verification import read_tables, verify

    expected, expected_claims = read_tables(args.expected)
    actual, actual_claims = read_tables(args.actual)
    result = verify(
        expected,
        actual,
        expected_claims=expected_claims,
        actual_claims=actual_claims,
        tolerance=args.tolerance,
        z=args.z,
        subset=args.subset,
    )
    if not result.ok:
        raise DataError(f"{args.actual} does not reproduce {args.expected}:\n{result.report()}")
    log.info("%s reproduces %s\n%s", args.actual, args.expected, result.summary)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluation sub-commands to the ``cap`` parser."""
    parser = subparsers.add_parser("neighbors", help="search k_max cosine neighbours once")
    _add_split_arguments(parser)
    parser.add_argument("--k-max", type=int, required=True)
    parser.add_argument("--clip-k", action="store_true", help="lower k_max to the bank size − 1")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(handler=run_neighbors)

    parser = subparsers.add_parser("train", help="fit one trainable run and keep its model")
    _add_run_arguments(parser)
    parser.add_argument("--out-model", type=Path, required=True)
    parser.set_defaults(handler=run_train)

    parser = subparsers.add_parser(
        "evaluate", help="fit (or load) and score a batch of runs of one class"
    )
    _add_run_arguments(parser)
    parser.add_argument(
        "--tag", dest="tags", action="append", default=[], metavar="KEY=VALUE",
        help="identity recorded with every run (dataset, backbone, cls)",
    )  # fmt: skip
    parser.add_argument("--out-records", type=Path, required=True, help="runs' records (.json)")
    parser.add_argument("--out-scores", type=Path, required=True, help="runs' scores (.csv.gz)")
    parser.set_defaults(handler=run_evaluate)

    from cap.reporting import verification

    parser = subparsers.add_parser(
        "verify",
        help="check a run against a committed report: runs, seed means and verdicts",
        description=verification.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "expected", type=Path, help="the committed report's tables/ folder, or its runs.csv"
    )
    parser.add_argument("actual", type=Path, help="the tables/ folder (or runs.csv) to check")
    parser.add_argument(
        "--tolerance", type=float, default=verification.RUN_TOLERANCE,
        help="largest |ΔAUROC| of a deterministic run (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--z", type=float, default=verification.CHAOTIC_Z,
        help="standard deviations a chaotic group's seed mean may move (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--subset", action="store_true",
        help="ACTUAL holds a slice of EXPECTED's runs: compare those (claims are not compared)",
    )  # fmt: skip
    parser.set_defaults(handler=run_verify)

    parser = subparsers.add_parser("aggregate", help="batch records → the long-form runs table")
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(handler=run_aggregate)
