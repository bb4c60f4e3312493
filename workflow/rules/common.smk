# Config validation, path patterns, and every input function of the workflow.
import os
import re
import shlex

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = config["datasets"]
VARIANTS = config["variants"]
SEEDS = config["seeds"]
#: Methods that learn parameters (a model file per run); the others fit by storing the bank.
TRAINABLE_METHODS = {"cap"}
#: Sources whose categories each have their own train/test folders (MVTec AD).
PER_CATEGORY_SOURCES = {"mvtec"}

EMBEDDINGS = "results/embeddings/{dataset}/{backbone}/{subset}/{split}.h5"
NEIGHBORS = "results/neighbors/{dataset}/{backbone}/{cls}.h5"
RUN = "{dataset}/{backbone}/{cls}/{variant}/seed{seed}"
MODEL = f"results/models/{RUN}.pt"
HISTORY = f"results/models/{RUN}.history.json"
SCORES = f"results/scores/{RUN}.csv.gz"
AUROC = f"results/auroc/{RUN}.json"
SUMMARY = "results/tables/auroc_summary.csv"
#: One software environment for every rule (used with --use-conda).
CONDA_ENV = "../../environment.yml"
TABLE_SUFFIXES = {"csv": ".csv", "md": ".md", "tex": ".tex", "per_class": "_per_class.csv"}


class ConfigReferenceError(ValueError):
    """A config entry naming something the config does not define."""


def _require(name, known, where):
    if str(name) not in {str(k) for k in known}:
        raise ConfigReferenceError(
            f"{where} refers to {name!r}, which is not defined; valid: {sorted(map(str, known))}"
        )


def check_references():
    """Cross-references the JSON schema cannot express, each error naming the key."""
    for name, dataset in DATASETS.items():
        _require(dataset["resource"], config["resources"], f"datasets.{name}.resource")
        _require(dataset["backbone"], config["backbones"], f"datasets.{name}.backbone")
        for method in dataset["settings"]:
            _require(method, config["methods"], f"datasets.{name}.settings")
    for name, backbone in config["backbones"].items():
        if backbone["resource"] is not None:
            _require(backbone["resource"], config["resources"], f"backbones.{name}.resource")
    for name, table in config["tables"].items():
        for dataset in table["datasets"]:
            _require(dataset, DATASETS, f"tables.{name}.datasets")
        for entry in table["entries"]:
            _require(entry["variant"], VARIANTS, f"tables.{name}.entries")
    for kind, figures in config["figures"].items():
        for index, figure in enumerate(figures):
            where = f"figures.{kind}[{index}]"
            _require(figure["dataset"], DATASETS, f"{where}.dataset")
            _require(figure["cls"], DATASETS[figure["dataset"]]["classes"], f"{where}.cls")
            for variant in [figure.get("variant")] + [c["variant"] for c in figure.get("curves", [])]:
                if variant is not None:
                    _require(variant, VARIANTS, f"{where}.variant")


check_references()


# ---------------------------------------------------------------- datasets and classes


def class_ids(dataset):
    return [str(c) for c in DATASETS[dataset]["classes"]]


def backbone_of(dataset):
    return DATASETS[dataset]["backbone"]


def is_per_category(dataset):
    return DATASETS[dataset]["source"] in PER_CATEGORY_SOURCES


def embedding_subset(dataset, cls):
    """Embeddings are shared by all classes, except per-category datasets (MVTec)."""
    return cls if is_per_category(dataset) else "all"


def resource_dir(name):
    return f"resources/{name}"


def resource_path(name):
    return f"resources/{name}/{config['resources'][name]['file']}"


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    backbone="|".join(map(re.escape, config["backbones"])),
    variant="|".join(map(re.escape, VARIANTS)),
    cls="|".join(sorted({re.escape(c) for d in DATASETS for c in class_ids(d)})),
    resource="|".join(map(re.escape, config["resources"])),
    table="|".join(map(re.escape, config["tables"])),
    split="train|test",
    seed=r"\d+",


# ---------------------------------------------------------------- variants


def resolve_variant(dataset, variant):
    """(method, settings): method defaults ← dataset overrides ← the variant's own."""
    spec = dict(VARIANTS[variant])
    method = spec.pop("method")
    settings = dict(config["methods"].get(method, {}))
    settings.update(DATASETS[dataset]["settings"].get(method, {}))
    settings.update(spec)
    return method, settings


def canonical_variant(dataset, variant):
    """The first variant (config order) with the same resolved settings: run once, reuse."""
    resolved = resolve_variant(dataset, variant)
    return next(name for name in VARIANTS if resolve_variant(dataset, name) == resolved)


def seeds_of(dataset, variant):
    method, _ = resolve_variant(dataset, variant)
    return SEEDS if method in TRAINABLE_METHODS else SEEDS[:1]


def variants_of(dataset):
    """Canonical variants some table or figure needs on ``dataset``, in config order."""
    needed = set()
    for table in config["tables"].values():
        if dataset in table["datasets"]:
            needed.update(canonical_variant(dataset, e["variant"]) for e in table["entries"])
    for kind, figures in config["figures"].items():
        for figure in figures:
            if figure["dataset"] == dataset:
                names = [figure.get("variant")] + [c["variant"] for c in figure.get("curves", [])]
                needed.update(canonical_variant(dataset, v) for v in names if v)
    return [name for name in VARIANTS if name in needed]


def k_max(dataset):
    """The largest K any run needs on ``dataset``: neighbours are searched once with it."""
    return max(resolve_variant(dataset, v)[1].get("k", 1) for v in variants_of(dataset))


def run_paths(pattern, dataset, variant, classes=None):
    variant = canonical_variant(dataset, variant)
    return [
        pattern.format(dataset=dataset, backbone=backbone_of(dataset), cls=cls, variant=variant, seed=seed)
        for cls in (classes or class_ids(dataset))
        for seed in seeds_of(dataset, variant)
    ]


def all_auroc_records():
    return [
        path
        for dataset in DATASETS
        for variant in variants_of(dataset)
        for path in run_paths(AUROC, dataset, variant)
    ]


# ---------------------------------------------------------------- input functions


def get_fetch_args(wildcards):
    resource = config["resources"][wildcards.resource]
    args = ["--destination", resource_path(wildcards.resource)]
    for local in resource["local"]:
        args += ["--local", os.path.expandvars(os.path.expanduser(local))]
    if resource["url"]:
        args += ["--url", resource["url"]]
    if resource["torchvision"]:
        args += ["--torchvision", resource["torchvision"]]
    if resource["instructions"]:
        args += ["--instructions", " ".join(resource["instructions"].split())]
    if config["offline"]:
        args.append("--offline")
    return shlex.join(args)


def get_embed_inputs(wildcards):
    dataset = DATASETS[wildcards.dataset]
    inputs = {"data": resource_dir(dataset["resource"])}
    backbone = config["backbones"][wildcards.backbone]
    if backbone["resource"] is not None:
        inputs["weights"] = resource_dir(backbone["resource"])
    return inputs


def get_embed_args(wildcards):
    dataset = DATASETS[wildcards.dataset]
    backbone = config["backbones"][wildcards.backbone]
    args = [
        "--dataset", dataset["source"],
        "--data-root", resource_path(dataset["resource"]),
        "--split", wildcards.split,
        "--backbone", backbone["model"],
        "--batch-size", str(backbone["batch_size"]),
    ]
    if backbone["resource"] is not None:
        args += ["--weights", resource_path(backbone["resource"])]
    if is_per_category(wildcards.dataset):
        args += ["--category", wildcards.subset]
    limit = dataset["limit_per_class"].get(wildcards.split)
    if limit:
        args += ["--limit-per-class", str(limit)]
    if wildcards.split == "test" and dataset["feature_maps_per_class"]:
        args += ["--feature-maps-per-class", str(dataset["feature_maps_per_class"])]
    if backbone["bf16"]:
        args.append("--bf16")
    for option, value in backbone["options"].items():
        args += [f"--tflite-{option.removesuffix('_tensor')}-tensor", value]
    if config["offline"]:
        args.append("--offline")
    return shlex.join(args)


def get_split_inputs(wildcards):
    """Train and test embeddings of the split that ``wildcards.cls`` belongs to."""
    subset = embedding_subset(wildcards.dataset, wildcards.cls)
    return {
        f"{split}_emb": EMBEDDINGS.format(
            dataset=wildcards.dataset, backbone=wildcards.backbone, subset=subset, split=split
        )
        for split in ("train", "test")
    }


def get_split_args(wildcards):
    normal_class = "none" if is_per_category(wildcards.dataset) else wildcards.cls
    model = config["backbones"][wildcards.backbone]["model"]
    return shlex.join(["--backbone", model, "--normal-class", normal_class])


def get_run_inputs(wildcards):
    """Embeddings and neighbours of one run."""
    neighbors = NEIGHBORS.format(**dict(wildcards.items()))
    return {**get_split_inputs(wildcards), "neighbors": neighbors}


def get_score_inputs(wildcards):
    """Those of the run, plus the trained model where the method learns one."""
    inputs = get_run_inputs(wildcards)
    method, _ = resolve_variant(wildcards.dataset, wildcards.variant)
    if method in TRAINABLE_METHODS:
        inputs["model"] = MODEL.format(**dict(wildcards.items()))
    return inputs


def get_model_arg(wildcards, input):
    return f"--model {shlex.quote(input.model)}" if "model" in input.keys() else ""


def get_run_args(wildcards):
    method, settings = resolve_variant(wildcards.dataset, wildcards.variant)
    args = ["--method", method, "--seed", wildcards.seed]
    for key, value in settings.items():
        args += ["--set", f"{key}={'null' if value is None else value}"]
    if DATASETS[wildcards.dataset]["clip_k"]:
        args.append("--clip-k")
    return f"{get_split_args(wildcards)} {shlex.join(args)}"


def get_auroc_tags(wildcards):
    method, _ = resolve_variant(wildcards.dataset, wildcards.variant)
    tags = dict(wildcards.items(), method=method)
    return shlex.join(f"--tag={key}={value}" for key, value in tags.items())


# ---------------------------------------------------------------- tables, figures, report


def table_outputs(table):
    return [f"results/tables/{table}{suffix}" for suffix in TABLE_SUFFIXES.values()]


def resolved_table_spec(table):
    spec = config["tables"][table]
    return {
        "name": table,
        "title": spec["title"],
        "layout": spec["layout"],
        "datasets": spec["datasets"],
        "paper_key": table,
        "reported_rows": spec["reported_rows"],
        "entries": [
            {
                "label": entry["label"],
                "variants": {d: canonical_variant(d, entry["variant"]) for d in spec["datasets"]},
            }
            for entry in spec["entries"]
        ],
    }


def get_table_records(wildcards):
    spec = config["tables"][wildcards.table]
    return sorted(
        {
            path
            for dataset in spec["datasets"]
            for entry in spec["entries"]
            for path in run_paths(AUROC, dataset, entry["variant"])
        }
    )


def figure_paths(kind):
    """PNG and PDF of every configured figure of ``kind``."""
    paths = []
    for figure in config["figures"][kind]:
        dataset = figure["dataset"]
        parts = [kind, dataset, backbone_of(dataset), str(figure["cls"])]
        if "variant" in figure:
            parts.append(canonical_variant(dataset, figure["variant"]))
        stem = os.path.join("results", "figures", *parts)
        paths += [f"{stem}.png", f"{stem}.pdf"]
    return paths


def find_figure(kind, wildcards):
    for figure in config["figures"][kind]:
        if figure["dataset"] == wildcards.dataset and str(figure["cls"]) == wildcards.cls:
            if "variant" not in figure or canonical_variant(figure["dataset"], figure["variant"]) == wildcards.variant:
                return figure
    raise ConfigReferenceError(f"no figures.{kind} entry for {dict(wildcards.items())}")


def get_figure_run_inputs(wildcards):
    """Model, embeddings and neighbours of the first seed's run, for a figure."""
    run = dict(wildcards.items(), seed=seeds_of(wildcards.dataset, wildcards.variant)[0])
    return {**get_split_inputs(wildcards), "neighbors": NEIGHBORS.format(**run), "model": MODEL.format(**run)}


def get_figure_dataset(wildcards):
    dataset = DATASETS[wildcards.dataset]
    return {
        "source": dataset["source"],
        "root": resource_path(dataset["resource"]),
        "category": wildcards.cls if is_per_category(wildcards.dataset) else None,
    }


def get_figure_normal_class(wildcards):
    return None if is_per_category(wildcards.dataset) else int(wildcards.cls)


def get_curve_histories(wildcards):
    figure = find_figure("score_curves", wildcards)
    return [
        run_paths(HISTORY, wildcards.dataset, curve["variant"], classes=[wildcards.cls])[0]
        for curve in figure["curves"]
    ]


def all_figures():
    return [path for kind in config["figures"] for path in figure_paths(kind)]


def get_final_output():
    tables = [path for table in config["tables"] for path in table_outputs(table)]
    return tables + all_figures() + [SUMMARY, "results/report/reproduction.md"]
