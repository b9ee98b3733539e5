"""A run records which installed code trained it, and a resume holds it to that: a plugin
uninstalled since is named with its distribution, a changed version is warned of."""

from __future__ import annotations

import importlib.metadata
import json

import ssl_core
from conftest import TINY_RESNET, pretrain_args, run_ssl
from lifecycle_support import make_images, small_run

FAKE_RUN = {
    "model": "torchvision/resnet18",
    "method": "fakemethod",
    "transform_args": "image_size=32",
    "num_workers": 0,
    "accelerator": "cpu",
    "precision": "32-true",
    "epochs": 1,
    "batch_size": 4,
}


def provider(name, plugin, distribution):
    return {
        "name": name,
        "plugin": plugin,
        "distribution": distribution,
        "version": importlib.metadata.version(distribution),
    }


def test_a_run_records_ssl_core_and_each_plugins_distribution(tmp_path, installed_plugins):
    out = tmp_path / "run"
    site = [installed_plugins["fake_method"]]
    args = pretrain_args(
        out=out, data=make_images(tmp_path / "images", count=8, side=40), **FAKE_RUN
    )
    result = run_ssl(*args, extra_path=site)
    assert result.returncode == 0, result.stderr

    expected = {
        "ssl_core": ssl_core.__version__,
        "method": {
            "name": "fakemethod",
            "plugin": "fake",
            "distribution": "ssl-fake-method",
            "version": "0.3.0",
        },
        "transform": provider("simclr", "simclr", "ssl-simclr"),
        "backbone_provider": provider("torchvision", "torchvision", "ssl-core"),
    }
    assert json.loads((out / "config.json").read_text())["provenance"] == expected
    assert json.loads((out / "summary.json").read_text())["provenance"] == expected

    # The method's distribution uninstalled: the resume says what to install.
    resumed = run_ssl(*args, "--resume")
    assert resumed.returncode == 2, resumed.stderr
    message = " ".join(resumed.stderr.split())
    assert "method 'fakemethod' came from the distribution ssl-fake-method 0.3.0" in message
    assert "pip install 'ssl-fake-method==0.3.0'" in message
    assert "Unknown method" not in message and "Traceback" not in message

    # Installed but left out by an allow-list: the resume says so, not "install it".
    core_only = "torchvision,timm,simclr,byol,dino"
    left_out = run_ssl(*args, "--resume", extra_path=site, env={"SSL_CORE_PLUGINS": core_only})
    assert left_out.returncode == 2, left_out.stderr
    message = " ".join(left_out.stderr.split())
    assert "installed but not in SSL_CORE_PLUGINS: add 'fake' to it" in message

    # Installed again: the resume goes on (the run had finished: it exports again).
    again = run_ssl(*args, "--resume", extra_path=site)
    assert again.returncode == 0, again.stderr
    assert "Warning" not in again.stderr


def test_a_resume_with_changed_versions_warns_and_goes_on(tmp_path):
    out = tmp_path / "run"
    args = pretrain_args(
        out=out,
        data=make_images(tmp_path / "images", count=8, side=40),
        epochs=1,
        batch_size=4,
        **TINY_RESNET,
    )
    assert run_ssl(*args).returncode == 0
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["provenance"]["ssl_core"] = "0.0.1"
    config["provenance"]["method"]["version"] = "0.0.2"
    config_path.write_text(json.dumps(config))
    # As if killed after its last checkpoint: the resume trains no more, writes the summary.
    (out / "summary.json").unlink()

    resumed = run_ssl(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    warning = " ".join(resumed.stderr.split())
    simclr = importlib.metadata.version("ssl-simclr")
    assert "Warning:" in warning
    assert f"ssl-core: 0.0.1 when the run started, {ssl_core.__version__} now" in warning
    assert f"method 'simclr': ssl-simclr 0.0.2 when the run started, ssl-simclr {simclr} now" in (
        warning
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["method"]["version"] == simclr  # what finished the run
    assert summary["provenance"]["ssl_core"] == ssl_core.__version__


def test_own_module_has_no_backbone_provider(tmp_path):
    images = make_images(tmp_path / "images", count=8, side=40)
    result = ssl_core.pretrain(out=tmp_path / "run", data=images, **small_run(epochs=1))
    assert result.provenance["backbone_provider"] is None
    assert result.provenance["method"]["distribution"] == "ssl-simclr"
