"""The README's figures are what a fresh run prints (tools/update_readme.py --check): the digits
tables from README command 1's own outputs, the CIFAR-10 ones where ../shared/data is present.
Measured throughput differs between machines and is the only thing left out of the comparison."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
from update_readme import BLOCKS, mask_measured, readme_block  # noqa: E402

CHECK = [sys.executable, str(REPO / "tools" / "update_readme.py"), "--check"]


def _check(only: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CHECK, "--only", only, *extra], capture_output=True, text=True, timeout=1200)


def test_readme_digits_figures_match_the_main_job(main_job):
    out, _ = main_job
    done = _check("digits-eval,digits-search", "--outputs", str(out))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 of 2 README blocks match a fresh run" in done.stdout


@pytest.mark.real_data
def test_readme_cifar_figures_match_a_fresh_run(shared_data, tmp_path):
    done = _check("cifar-eval,cifar-fit,cifar-search", "--data-root", str(shared_data), "--outputs", str(tmp_path))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 of 3 README blocks match a fresh run" in done.stdout


def test_every_block_is_in_the_readme_and_filled():
    text = (REPO / "README.md").read_text()
    for name in BLOCKS:
        assert readme_block(text, name).strip(), name


def test_the_check_sees_a_changed_figure_but_not_a_changed_timing():
    table = ("| model / committee | kind | top-1 (95% CI) | samples/s (IQR) | speedup (MACs) | speedup (measured, IQR) |\n"
             "|---|---:|---:|---:|---:|---:|\n"
             "| a | member | 97.50 [96.16, 98.66] | 23859 (23394–23989) | 20.62x | 5.03x (5.03–5.14) |")
    other_machine = table.replace("23859 (23394–23989)", "9000 (8000–9100)").replace("5.03x (5.03–5.14)", "1.2x (1–2)")
    assert mask_measured(other_machine) == mask_measured(table)
    assert mask_measured(table.replace("97.50", "97.33")) != mask_measured(table)
    assert mask_measured(table.replace("20.62x", "20.61x")) != mask_measured(table)
