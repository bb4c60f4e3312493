"""The planning module: variant resolution, de-duplication, runs per target, arguments."""

from __future__ import annotations

import copy
import json
import shlex
from collections import Counter
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from cap.benchmark import layout
from cap.benchmark.plan import ConfigReferenceError, Plan, Run

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    """A repository config, validated (defaults filled) as the workflow does."""
    config = yaml.safe_load((REPO / name).read_text())
    validate(config, str(SCHEMA))
    return config


@pytest.fixture(scope="module")
def paper_config() -> dict:
    return load("config/config.yaml")


@pytest.fixture(scope="module")
def paper_plan(paper_config) -> Plan:
    return Plan(paper_config)


def test_variant_resolution_layers_method_dataset_and_variant(paper_plan):
    method, settings = paper_plan.resolve_variant("cifar10", "k4")
    assert method == "cap" and settings["k"] == 4 and settings["lam"] == 2.0
    # MVTec's settings override the method's defaults, a variant's override MVTec's
    _, mvtec = paper_plan.resolve_variant("mvtec", "cap")
    assert (mvtec["k"], mvtec["lam"], mvtec["batch_size"], mvtec["lr"]) == (4, 0.1, 16, 1e-4)
    _, mvtec_k64 = paper_plan.resolve_variant("mvtec", "k64")
    assert mvtec_k64["k"] == 64 and mvtec_k64["lam"] == 0.1


def test_variants_with_the_same_settings_run_once(paper_plan):
    assert paper_plan.canonical_variant("cifar10", "k32") == "cap"  # K=32 is CIFAR's default
    assert paper_plan.canonical_variant("cifar10", "lam2") == "cap"
    assert paper_plan.canonical_variant("mvtec", "k4") == "cap"  # K=4 is MVTec's
    assert paper_plan.canonical_variant("mvtec", "k32") == "k32"
    assert paper_plan.canonical_variant("cifar10", "no_adaptation") == "no_adaptation"


def test_seeds_apply_to_trainable_methods_only(paper_config):
    config = copy.deepcopy(paper_config)
    config["seeds"] = [3, 1, 2]
    plan = Plan(config)
    assert plan.seeds_of("cifar10", "cap") == [1, 2, 3]
    assert plan.seeds_of("cifar10", "no_adaptation") == [1]
    assert [run.seed for run in plan.runs("cifar10", "k4", classes=["0"])] == [1, 2, 3]


def test_a_table_needs_its_variants_on_its_datasets(paper_plan):
    runs = paper_plan.table_runs("table3")
    assert {run.dataset for run in runs} == {"cifar10", "cifar100", "mvtec"}
    by_dataset = {
        d: {run.variant for run in runs if run.dataset == d} for d in ("cifar10", "mvtec")
    }
    assert by_dataset["cifar10"] == {"k1", "k4", "k8", "k16", "cap", "k64"}
    assert by_dataset["mvtec"] == {"k1", "cap", "k8", "k16", "k32", "k64"}
    assert len(runs) == 3 * (6 * 10 + 6 * 20 + 6 * 15)  # 3 seeds


def test_figures_need_every_seed_of_their_variants_on_their_class(paper_config):
    config = copy.deepcopy(paper_config)
    config["seeds"] = [0, 1]
    plan = Plan(config)
    assert plan.target_runs("fig_attention") == [
        Run("cifar10", "resnet152", "1", "cap", 0), Run("cifar10", "resnet152", "1", "cap", 1),
    ]  # fmt: skip
    attention = {"dataset": "cifar10", "backbone": "resnet152", "cls": "1", "variant": "cap"}
    assert plan.figure_run("attention", attention).seed == 0  # its model is drawn
    curves = plan.curve_specs(
        "score_curves", {"dataset": "cifar10", "backbone": "resnet152", "cls": "2"}
    )
    assert [curve["label"] for curve in curves] == ["0", "0.1", "1", "2", "10", "100"]
    assert [curve["variants"] for curve in curves] == [
        ["lam0"],
        ["lam0.1"],
        ["lam1"],
        ["cap"],
        ["lam10"],
        ["lam100"],
    ]
    assert {seed for curve in curves for seed in curve["seeds"]} == {0, 1}
    assert {r.cls for r in plan.target_runs("fig_score_curves") if r.dataset == "cifar10"} == {
        "0",
        "2",
    }


def test_k_max_is_the_largest_k_a_dataset_needs(paper_plan):
    assert paper_plan.k_max("cifar10") == 64
    assert paper_plan.k_max("fmnist") == 32  # only Table 1 (K=32 CAP, no adaptation)


def run_specs(args: str) -> list[dict]:
    """The ``--run`` JSON objects of a step's arguments."""
    return [
        json.loads(arg.split("=", 1)[1]) for arg in shlex.split(args) if arg.startswith("--run=")
    ]


def test_clip_k_reaches_the_runs_and_the_search(paper_plan):
    batch = paper_plan.batch_of(Run("mvtec", "wide_resnet50_2", "toothbrush", "k64", 0))
    assert "--clip-k" in shlex.split(
        paper_plan.evaluate_args("mvtec", "wide_resnet50_2", "toothbrush", batch.name)
    )
    assert "--clip-k" in shlex.split(
        paper_plan.neighbor_args("mvtec", "wide_resnet50_2", "toothbrush", "all")
    )
    cifar = paper_plan.batch_of(Run("cifar10", "resnet152", "0", "k64", 0))
    assert "--clip-k" not in shlex.split(
        paper_plan.evaluate_args("cifar10", "resnet152", "0", cifar.name)
    )


def test_run_specs_carry_every_resolved_setting(paper_plan):
    batch = paper_plan.batch_of(Run("mvtec", "wide_resnet50_2", "bottle", "cap", 0))
    args = paper_plan.evaluate_args("mvtec", "wide_resnet50_2", "bottle", batch.name)
    assert shlex.split(args)[:4] == ["--backbone", "wide_resnet50_2", "--normal-class", "none"]
    caps = [spec for spec in run_specs(args) if spec["variant"] == "cap"]
    assert [spec["seed"] for spec in caps] == [0, 1, 2]
    cap = caps[0]
    assert cap["method"] == "cap" and cap["model"].endswith("bottle/cap/seed0.pt")  # drawn
    assert (
        cap["settings"]["k"] == 4
        and cap["settings"]["lr_decay"] == 0.9
        and cap["settings"]["attention"]
    )
    assert "--tag=cls=bottle" in shlex.split(args)
    assert shlex.split(paper_plan.split_args("cifar10", "resnet152", "3"))[-1] == "3"


def test_batches_group_a_classes_runs_by_the_targets_that_need_them(paper_plan):
    names = {
        batch.name for batch in paper_plan.batches if (batch.dataset, batch.cls) == ("cifar10", "3")
    }
    assert names == {
        "cap",  # Tables 1-4
        "no_adaptation",  # Tables 1 and 4
        "dn2",  # Table 1
        "head_lrl+head_lr+no_attention",  # Table 2
        "k1+k4+k8+k16+k64",  # Table 3
        "lam0+lam0.1+lam1+lam10+lam100",  # Table 4
    }
    # class 0 draws the λ curves too: its λ variants are needed by one more target
    assert paper_plan.batch_of(Run("cifar10", "resnet152", "0", "lam0", 0)).variants == (
        "lam0",
        "lam0.1",
        "lam1",
        "lam10",
        "lam100",
    )
    all_runs = paper_plan.all_runs
    batched = [run for batch in paper_plan.batches for run in paper_plan.batch_runs(batch)]
    assert sorted(batched) == sorted(all_runs) and len(batched) == len(set(batched))  # a partition


@pytest.mark.parametrize("target", ["table1", "table2", "table3", "table4", "fig_score_curves"])
def test_a_target_needs_whole_batches_and_nothing_more(paper_plan, target):
    needed = set(paper_plan.target_runs(target))
    batches = {paper_plan.batch_of(run) for run in needed}
    assert {run for batch in batches for run in paper_plan.batch_runs(batch)} == needed


def test_models_are_kept_for_model_figures_or_on_request(paper_config):
    plan = Plan(paper_config)
    assert plan.kept_runs == {
        Run("cifar10", "resnet152", "1", "cap", 0),
        Run("mvtec", "wide_resnet50_2", "bottle", "cap", 0),
    }
    assert {run.cls for run in plan.monitored_runs} == {"0", "2", "1"}
    assert all(run.dataset != "mvtec" for run in plan.monitored_runs)
    spec = plan.run_spec(Run("cifar10", "resnet152", "1", "cap", 0))
    assert (
        spec["model"] == "results/models/cifar10/resnet152/1/cap/seed0.pt" and "monitor" not in spec
    )
    assert plan.run_spec(Run("cifar10", "resnet152", "0", "lam0", 0))["monitor"] is True
    keep = Plan({**copy.deepcopy(paper_config), "keep_models": True})
    assert len(keep.kept_runs) == 3 * 470  # every trainable run, 3 seeds


def test_embeddings_are_shared_except_per_category(paper_plan):
    assert paper_plan.split_inputs("cifar10", "resnet152", "3")["train_emb"] == (
        "results/embeddings/cifar10/resnet152/all/train.h5"
    )
    assert paper_plan.split_inputs("mvtec", "wide_resnet50_2", "pill")["test_emb"] == (
        "results/embeddings/mvtec/wide_resnet50_2/pill/test.h5"
    )
    assert "--category" in shlex.split(
        paper_plan.embed_args("mvtec", "wide_resnet50_2", "pill", "test")
    )


@pytest.mark.parametrize(
    ("config", "jobs", "batches"),
    [
        ("config/config.yaml", 324, 211),  # 2,025 jobs with one train/score/auroc job per run
        ("config/demo.yaml", 51, 23),  # 199 so
        ("tests/configs/smoke.yaml", 28, 8),
    ],
)
def test_job_counts(config, jobs, batches):
    counts = Counter(rule for rule, _ in Plan(load(config)).jobs())
    assert sum(counts.values()) + 1 == jobs  # + the `all` target
    assert counts["evaluate"] == batches


def test_benchmark_files_are_this_configs_jobs_only(paper_plan):
    files = paper_plan.benchmark_files()
    assert len(files) == len(paper_plan.jobs()) - 1  # all but the report's own
    assert "results/benchmarks/aggregate.tsv" in files
    assert "results/benchmarks/train/cifar10/resnet152/1/cap/seed0.tsv" in files
    assert "results/benchmarks/evaluate/cifar10/resnet152/0/k1+k4+k8+k16+k64.tsv" in files
    assert not any(path.startswith("results/benchmarks/report") for path in files)


def test_targets_cover_every_table_and_figure_kind(paper_plan):
    assert paper_plan.targets() == [
        "table1",
        "table2",
        "table3",
        "table4",
        "fig_attention",
        "fig_score_curves",
        "fig_anomaly_maps",
        "fig_bank_curves",  # none in the paper's config: an empty target
    ]
    assert paper_plan.target_outputs("fig_bank_curves") == []
    assert paper_plan.target_outputs("table2") == [
        f"results/tables/table2{suffix}" for suffix in layout.TABLE_SUFFIXES.values()
    ]
    assert (
        "results/figures/anomaly_maps/mvtec/wide_resnet50_2/bottle/cap.pdf"
        in paper_plan.target_outputs("fig_anomaly_maps")
    )


def test_table_spec_names_the_papers_table(paper_config):
    config = copy.deepcopy(paper_config)
    config["tables"]["k_ablation"] = config["tables"].pop("table3")
    spec = Plan(config).table_spec("k_ablation")
    assert spec["name"] == "k_ablation" and spec["paper_key"] == "table3"
    assert spec["entries"][4] == {
        "label": "32",
        "variants": {"cifar10": "cap", "cifar100": "cap", "mvtec": "k32"},
    }


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c["datasets"]["cifar10"].update(classes=[0, 1, 12]), "datasets.cifar10.classes"),
        (
            lambda c: c["datasets"]["mvtec"].update(classes=["bottle", "bottel"]),
            "datasets.mvtec.classes",
        ),
        (lambda c: c["datasets"]["fmnist"].update(classes=["shirt"]), "datasets.fmnist.classes"),
        (
            lambda c: c["tables"]["table2"]["entries"].append({"label": "x", "variant": "k3"}),
            "tables.table2.entries",
        ),
        (lambda c: c["figures"]["attention"][0].update(cls=12), "figures.attention[0].cls"),
        (
            lambda c: c["datasets"]["cifar10"].update(resource="cifar-ten"),
            "datasets.cifar10.resource",
        ),
    ],
    ids=[
        "class-id-out-of-range",
        "unknown-category",
        "class-name-for-ids",
        "unknown-variant",
        "figure-class",
        "unknown-resource",
    ],
)
def test_bad_references_name_the_key(paper_config, edit, named):
    config = copy.deepcopy(paper_config)
    edit(config)
    with pytest.raises(ConfigReferenceError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Plan(config)


def test_image_folder_classes_pass_planning_for_the_split_to_check():
    config = load("config/demo.yaml")
    config["datasets"]["cifar10"]["classes"] = [0, 1, 2, 12]
    assert Plan(config).class_ids("cifar10") == ["0", "1", "2", "12"]  # its folders are unknown yet


def test_schema_enums_are_the_registries():
    from cap.backbones import BACKBONES
    from cap.data import DATASETS
    from cap.detectors import DETECTORS
    from cap.detectors.cap_model import CONSTRAINTS, HEADS, INITS

    schema = yaml.safe_load(SCHEMA.read_text())
    definitions, properties = schema["definitions"], schema["properties"]
    variant = properties["variants"]["additionalProperties"]
    assert set(variant["properties"]["method"]["enum"]) == set(DETECTORS)
    backbone = properties["backbones"]["additionalProperties"]["properties"]
    assert set(backbone["model"]["enum"]) == set(BACKBONES)
    dataset = properties["datasets"]["additionalProperties"]["properties"]
    assert set(dataset["source"]["enum"]) == set(DATASETS)
    settings = definitions["setting_properties"]["properties"]
    assert (
        set(settings["head"]["enum"]),
        set(settings["constraint"]["enum"]),
        set(settings["init"]["enum"]),
    ) == (
        set(HEADS),
        set(CONSTRAINTS),
        set(INITS),
    )
    # every setting the schema allows is a keyword of some detector
    keywords = {name for cls in DETECTORS.values() for name in cls._param_names()}
    assert set(settings) <= keywords, set(settings) - keywords


def test_a_variant_may_run_more_seeds_and_shares_them_with_its_equals(paper_config):
    config = copy.deepcopy(paper_config)
    config["seeds"] = [0]
    config["variants"]["k32"]["seeds"] = [2, 0, 1]  # K=32 is CIFAR's default CAP run
    config["variants"]["no_adaptation"]["seeds"] = [0, 1, 2]  # deterministic: once
    plan = Plan(config)
    assert plan.seeds_of("cifar10", "cap") == [0, 1, 2] == plan.seeds_of("cifar10", "k32")
    assert plan.seeds_of("mvtec", "cap") == [0] and plan.seeds_of("mvtec", "k32") == [0, 1, 2]
    assert plan.seeds_of("cifar10", "no_adaptation") == [0]
    assert plan.resolve_variant("cifar10", "k32") == plan.resolve_variant("cifar10", "cap")


def test_bank_sizes_get_their_own_neighbours_batches_and_runs(paper_config):
    config = copy.deepcopy(paper_config)
    config["variants"]["cap_n200"] = {"method": "cap", "bank_size": 200}
    config["variants"]["na_n200"] = {"method": "no_adaptation", "bank_size": 200}
    config["tables"]["sizes"] = {
        "title": "bank size",
        "layout": "variants_as_rows",
        "datasets": ["cifar10"],
        "classes": {"cifar10": [0, 3]},
        "entries": [
            {"label": "CAP 200", "variant": "cap_n200"},
            {"label": "NA 200", "variant": "na_n200"},
        ],
    }
    validate(config, str(SCHEMA))
    plan = Plan(config)
    assert plan.canonical_variant("cifar10", "cap_n200") == "cap_n200"  # not the same runs as cap
    assert {run.cls for run in plan.table_runs("sizes")} == {"0", "3"}
    batch = plan.batch_of(Run("cifar10", "resnet152", "3", "cap_n200", 0))
    assert batch.bank == "200" and batch.variants == ("cap_n200", "na_n200")
    args = shlex.split(plan.evaluate_args("cifar10", "resnet152", "3", batch.name))
    assert args[args.index("--bank-size") + 1] == "200"
    neighbors = [
        w
        for rule, w in plan.jobs()
        if rule == "neighbors" and (w["dataset"], w["cls"]) == ("cifar10", "3")
    ]
    assert sorted(w["bank"] for w in neighbors) == ["200", "all"]
    assert plan.k_max("cifar10", "200") == 32
    bad = copy.deepcopy(config)
    bad["tables"]["sizes"]["classes"] = {"cifar10": [0, 11]}
    with pytest.raises(ConfigReferenceError, match="tables.sizes.classes.cifar10"):
        Plan(bad)


def test_bank_curves_need_every_size_of_every_method_on_their_classes(paper_config):
    config = copy.deepcopy(paper_config)
    config["variants"].update(
        {
            "cap_n200": {"method": "cap", "bank_size": 200},
            "na_n200": {"method": "no_adaptation", "bank_size": 200},
        }
    )
    config["figures"]["bank_curves"] = [{
        "name": "sizes", "dataset": "cifar10", "classes": [0, 8],
        "curves": [{"label": "CAP", "variants": ["cap_n200", "cap"]},
                   {"label": "NA", "variants": ["na_n200", "no_adaptation"]}],
    }]  # fmt: skip
    validate(config, str(SCHEMA))
    plan = Plan(config)
    runs = plan.target_runs("fig_bank_curves")
    assert {(r.cls, r.variant) for r in runs} == {
        (c, v) for c in ("0", "8") for v in ("cap_n200", "cap", "na_n200", "no_adaptation")
    }
    wildcards = {"dataset": "cifar10", "backbone": "resnet152", "name": "sizes"}
    assert ("figure_bank_curves", wildcards) in plan.jobs()
    assert plan.curve_specs("bank_curves", wildcards)[1] == {
        "label": "NA", "variants": ["na_n200", "no_adaptation"], "seeds": [0],
    }  # fmt: skip
    assert "results/figures/bank_curves/cifar10/resnet152/sizes.png" in plan.all_figures()
