"""Every CLI command, run both in-process (Typer's runner) and as a real ``ssl`` process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import WIDE, run_ssl
from ssl_core.cli import app

runner = CliRunner()
DOCS = Path(__file__).parent.parent / "docs"


def invoke(*args: str):
    """Both ways of running; they must agree on exit code and output."""
    result = runner.invoke(app, list(args), env=WIDE)
    process = run_ssl(*args)
    assert result.exit_code == process.returncode, (result.output, process.stderr)
    return result.exit_code, result.output, process.stdout + process.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["methods", "models", "plugins", "pretrain", "docs"]),
        (["--version"], ["ssl-core 0.1.0"]),
        (["methods", "list"], ["simclr", "NT-Xent", "byol", "momentum target"]),
        (
            ["methods", "show", "simclr"],
            [
                "temperature",
                "0.1",
                "hidden_dim",
                "2048",
                "color_jitter.prob",
                "0.8",
                "sgd",
                "Default epochs: 100",
            ],
        ),
        (
            ["methods", "show", "byol"],
            ["momentum_start", "0.99", "view_2.solarize.prob", "0.2", "lars", "1.5e-06"],
        ),
        (["transforms", "list"], ["simclr", "byol"]),
        (["transforms", "show", "simclr"], ["gaussian_blur.sigmas", "[0.1, 2.0]"]),
        (
            ["models", "list", "torchvision/resnet1*"],
            ["torchvision/resnet18", "torchvision/resnet101"],
        ),
        (["plugins"], ["simclr", "ssl-simclr", "0.1.0", "loaded", "backbone provider: timm"]),
        (
            ["pretrain", "--method", "simclr", "--help"],
            [
                "--method-args",
                "--transform-args",
                "temperature",
                "Temperature of the NT-Xent",
                "random_resize.min_scale",
            ],
        ),
        (
            ["pretrain", "--method", "byol", "--help"],
            ["--method-args", "prediction_hidden_dim", "view_1.gaussian_blur.prob"],
        ),
        (["pretrain", "--help"], ["--overwrite", "--resume", "temperature"]),
        (["docs", "--check", "--out", str(DOCS)], ["Generated docs are up to date."]),
    ],
)
def test_command_succeeds_and_shows(args, expected):
    code, output, process_output = invoke(*args)
    assert code == 0, output
    for text in expected:
        assert text in output, text
        assert text in process_output, text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["methods", "show", "simclrr"], "Unknown method 'simclrr'. Did you mean 'simclr'?"),
        (["transforms", "show", "nope"], "Unknown transform 'nope'"),
        (["models", "list", "no-such-model*"], "No model matches"),
        (
            [
                "pretrain",
                "--out",
                "o",
                "--data",
                "d",
                "--model",
                "torchvision/resnet18",
                "--method-args",
                "tempreature=0.2",
            ],
            "Unknown argument 'method_args.tempreature'. Did you mean 'method_args.temperature'?",
        ),
        (
            [
                "pretrain",
                "out=o",
                "data=d",
                "model=torchvision/resnet18",
                "method_args.temperature=hot",
            ],
            "Invalid value for 'method_args.temperature' (got 'hot')",
        ),
        (
            ["pretrain", "out=o", "data=d", "model=torchvision/resnet18", "epoch=3"],
            "Unknown argument 'epoch'. Did you mean 'epochs'?",
        ),
        (
            ["pretrain", "out=o", "data=d", "model=torchvision/resnet18", "notkeyvalue"],
            "'notkeyvalue' is not of the form KEY=VALUE",
        ),
        (["pretrain", "--data", "d"], "Missing --out, --model"),
        (
            ["pretrain", "out=o", "data=d", "model=torchvision/resnet18", "method=simclrr"],
            "Did you mean 'simclr'",
        ),
        (["pretrain", "out=o", "data=d", "model=tv/resnet18"], "Unknown model 'tv/resnet18'"),
        (["pretrain", "--method", "nope", "--help"], "Unknown method 'nope'"),
    ],
)
def test_user_mistakes_give_one_message_and_no_traceback(args, expected):
    code, output, process_output = invoke(*args)
    if args[-1] == "--help":
        assert code == 0
    else:
        assert code == 2
    assert expected in output
    assert expected in process_output
    assert "Traceback" not in output and "Traceback" not in process_output


def test_valid_key_list_is_in_the_error():
    _, output, _ = invoke(
        "pretrain", "out=o", "data=d", "model=torchvision/resnet18", "method_args.tempreature=1"
    )
    assert (
        "Valid keys for method_args: temperature, hidden_dim, output_dim, num_layers, "
        "batch_norm." in output
    )


def test_third_party_method_is_documented_in_help_once_installed(installed_plugins):
    site = [installed_plugins["fake_method"]]
    listing = run_ssl("methods", "list", extra_path=site)
    assert "fakemethod" in listing.stdout
    help_text = run_ssl("pretrain", "--method", "fakemethod", "--help", extra_path=site)
    assert help_text.returncode == 0
    assert "sharpness" in help_text.stdout and "How sharp the fake method is." in help_text.stdout
    assert "[96, 96]" in help_text.stdout  # the method's own transform default
    plugins = run_ssl("plugins", extra_path=site)
    assert "ssl-fake-method" in plugins.stdout and "0.3.0" in plugins.stdout


def test_broken_plugin_warning_in_cli(installed_plugins):
    result = run_ssl("methods", "list", extra_path=[installed_plugins["broken_plugin"]])
    assert result.returncode == 0
    assert "simclr" in result.stdout
    assert "plugin 'broken' from ssl-broken-plugin 0.0.1 is skipped" in result.stderr
    plugins = run_ssl("plugins", extra_path=[installed_plugins["broken_plugin"]])
    assert "broken" in plugins.stdout and "a_module_that_does_not_exist" in plugins.stdout


def test_blocked_plugin_in_cli():
    result = run_ssl("plugins", env={"SSL_CORE_BLOCKED_PLUGINS": "simclr"})
    assert result.returncode == 0
    assert "blocked" in result.stdout
    methods = run_ssl("methods", "show", "simclr", env={"SSL_CORE_BLOCKED_PLUGINS": "simclr"})
    assert methods.returncode == 2
    assert "Unknown method 'simclr'" in methods.stderr and "Available: byol" in methods.stderr


def test_python_dash_m_is_the_same_cli():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ssl_core", "methods", "list"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "simclr" in result.stdout
