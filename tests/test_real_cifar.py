"""The real pretrained CIFAR-10 ResNets on the real test set reproduce the published accuracies
exactly (akamaster/pytorch_resnet_cifar10 README: 91.73 / 92.63 / 93.10 / 93.39)."""
from __future__ import annotations

import json

import pytest

from committee_tasks.cli.eval import main

PUBLISHED = {"resnet20": 91.73, "resnet32": 92.63, "resnet44": 93.10, "resnet56": 93.39}


@pytest.fixture(scope="module")
def report(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar") / "report.json"
    # accuracy only (no test here reads throughput; the main job's tests cover measuring)
    code = main(["--task", "classification", "--dataset", "cifar10", "--data-root", str(shared_data),
                 "--weights-dir", str(shared_data / "cifar10-resnets"), "--models", "resnet32,resnet44",
                 "--cascade", "resnet20,resnet56", "--thresholds", "0.9", "--ensemble", "resnet20,resnet32",
                 "--measure-samples", "0", "--no-progress", "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.real_data
def test_published_accuracies_exactly(report):
    rows = {r["name"]: r for r in report["rows"]}
    assert report["samples"] == 10000 and not report["skipped"]
    for name, top1 in PUBLISHED.items():
        assert round(rows[name]["metric"], 2) == top1, name
        assert rows[name]["published"]["metrics"]["top-1"] == top1


@pytest.mark.real_data
def test_cascade_line(report):
    cascade = next(r for r in report["rows"] if r["kind"] == "cascade")
    rows = {r["name"]: r for r in report["rows"]}
    assert cascade["reference"] == "resnet56"
    # the cascade beats ResNet56 at well under its cost (measured here: 93.54 at 51.6M vs 125M MACs)
    assert cascade["metric"] >= rows["resnet56"]["metric"]
    assert cascade["macs_mean"] < 0.5 * rows["resnet56"]["macs_mean"]
    assert cascade["macs_worst"] == pytest.approx(rows["resnet20"]["macs_mean"] + rows["resnet56"]["macs_mean"])
    assert len(cascade["exit_fractions"]) == 2 and sum(cascade["exit_fractions"]) == pytest.approx(1)
    assert cascade["speedup_macs"] > 2
    ensemble = next(r for r in report["rows"] if r["kind"] == "ensemble")
    assert ensemble["metric"] > rows["resnet32"]["metric"]
