"""The template's method, tested with ssl-core's kit (``ssl_core.testing``, and the
fixtures ``ssl_image_folder`` and ``ssl_register_plugin`` it gives pytest): the loss
against a reference written from the paper, then the plugin as users meet it."""

from __future__ import annotations

import json
import math

import pytest
import torch

import ssl_core
from ssl_core.testing import (
    check_export_loads,
    check_one_vs_two_processes,
    check_plugin,
    check_resume_exact,
    tiny_backbone,
    train_steps,
)
from ssl_plugin_template import TemplateVICRegArgs
from ssl_plugin_template.model import TemplateVICRegModel, vicreg_terms

SMALL = {"hidden_dim": 32, "output_dim": 16}  # heads of seconds on a CPU


def reference_terms(z_a: list[list[float]], z_b: list[list[float]], eps: float) -> list[float]:
    """VICReg's three terms (Bardes et al. 2022, eqs. 1-5) with Python floats."""
    n, d = len(z_a), len(z_a[0])
    invariance = sum((z_a[i][j] - z_b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    variance = covariance = 0.0
    for z in (z_a, z_b):
        means = [sum(row[j] for row in z) / n for j in range(d)]
        cov = [
            [
                sum((row[i] - means[i]) * (row[j] - means[j]) for row in z) / (n - 1)
                for j in range(d)
            ]
            for i in range(d)
        ]
        variance += sum(max(0.0, 1 - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d / 2
        covariance += sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return [invariance, variance, covariance]


@pytest.mark.parametrize(("n", "d"), [(2, 3), (8, 5), (16, 32)])
def test_loss_terms_match_a_float64_reference(n, d):
    generator = torch.Generator().manual_seed(n * d)
    z_a = torch.randn(n, d, generator=generator, dtype=torch.float64) * 0.5
    z_b = z_a + 0.1 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    expected = reference_terms(z_a.tolist(), z_b.tolist(), 1e-4)
    got = [term.item() for term in vicreg_terms(z_a, z_b, 1e-4)]
    assert got == pytest.approx(expected, rel=1e-5)


def test_forward_reports_each_term_and_their_weighted_sum():
    model = TemplateVICRegModel(tiny_backbone(), TemplateVICRegArgs(**SMALL))
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    output = model(views)
    metrics = output.metrics
    weighted = 25 * metrics["invariance"] + 25 * metrics["variance"] + metrics["covariance"]
    assert output.loss.item() == pytest.approx(weighted.item(), rel=1e-6)
    output.loss.backward()
    assert model.projector[0].weight.grad is not None


def test_a_batch_of_one_is_refused_before_anything_is_written(ssl_image_folder, tmp_path):
    with pytest.raises(ssl_core.ConfigError, match="at least 2 images per batch"):
        train_steps(
            "template_vicreg", ssl_image_folder(count=2), out=tmp_path / "run", batch_size=1
        )
    assert not (tmp_path / "run").exists()


def test_passes_the_plugin_checks():
    check_plugin("plugin_template")


def test_trains_and_its_export_loads_into_torchvision(ssl_image_folder, tmp_path):
    result = train_steps(
        "template_vicreg", ssl_image_folder(), out=tmp_path / "run", method_args=SMALL
    )
    assert check_export_loads(result).shape == (2, 512)
    rows = [json.loads(line) for line in (result.out / "metrics.jsonl").read_text().splitlines()]
    assert {"invariance", "variance", "covariance"} <= rows[-1].keys()


def test_sigkill_then_resume_is_bit_identical(ssl_image_folder, tmp_path):
    check_resume_exact(
        "template_vicreg", ssl_image_folder(count=16), tmp_path, batch_size=8, method_args=SMALL
    )


def test_one_step_on_two_processes_equals_one_process(ssl_image_folder, tmp_path):
    check_one_vs_two_processes(
        "template_vicreg", ssl_image_folder(count=16), tmp_path, method_args=SMALL
    )
