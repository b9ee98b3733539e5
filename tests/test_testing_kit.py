"""The plugin author's kit, ``ssl_core.testing``: its fixtures reach a third party's tests
through the pytest11 entry point, and each check fails on the mistake it is there for.
(The checks passing on real plugins is shown by the plugins' own tests.)"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

import ssl_core
from conftest import _install
from ssl_core import hookimpl
from ssl_core.results import PretrainResult
from ssl_core.testing import (
    assert_same_step,
    check_export_loads,
    check_one_vs_two_processes,
    check_plugin,
    check_resume_exact,
    train_steps,
)
from ssl_core.testing.resume import assert_same_checkpoint
from ssl_simclr import SimCLR


def test_the_kit_imports_without_torch():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ssl_core.testing, ssl_core.testing.pytest_plugin; "
            "print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


THIRD_PARTY_TESTS = """
import json

import ssl_core
from PIL import Image
from ssl_core import Method, StrictArgs, hookimpl


class ProbeArgs(StrictArgs):
    pass


class Probe(Method):
    name = "kitprobe"
    description = "A method for one test."
    args_model = ProbeArgs
    transform = "simclr"


class Plugin:
    @hookimpl
    def ssl_register_methods(self, register):
        register(Probe)


def test_a_registers_for_this_test(ssl_register_plugin):
    assert ssl_register_plugin(Plugin(), name="probe") == "probe"
    assert "kitprobe" in ssl_core.list_methods()


def test_b_and_is_gone_in_the_next():
    assert "kitprobe" not in ssl_core.list_methods()


def test_c_image_folders(ssl_image_folder):
    flat, labelled = ssl_image_folder(count=5, size=24), ssl_image_folder(count=7, classes=3)
    assert flat != labelled
    files = sorted(flat.iterdir())
    assert len(files) == 5 and all(f.suffix == ".jpg" for f in files)
    with Image.open(files[0]) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (24, 24))
    counts = {d.name: len(list(d.glob("*.jpg"))) for d in labelled.iterdir()}
    assert counts == {"class0": 3, "class1": 2, "class2": 2}
"""


def test_fixtures_reach_a_third_partys_tests_without_a_conftest(tmp_path):
    """A plugin's own test folder, outside this repository: pytest finds the fixtures
    through ssl-core's pytest11 entry point alone."""
    (entry_point,) = [
        ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "ssl_core"
    ]
    assert entry_point.value == "ssl_core.testing.pytest_plugin"
    (tmp_path / "test_third_party.py").write_text(THIRD_PARTY_TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_third_party.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout


PLUGIN_HEADER = """
from typing import Any
from pydantic import Field
from ssl_core import Method, StrictArgs, hookimpl
"""

GOOD_METHOD = """
class KitArgs(StrictArgs):
    width: int = Field(8, gt=0, description="A width.")


class KitMethod(Method):
    name = "{name}"
    description = "A method for the kit's tests."
    args_model = KitArgs
    transform = "simclr"
    transform_defaults = {transform_defaults}
"""


def write_plugin(folder: Path, module: str, body: str) -> str:
    (folder / f"{module}.py").write_text(PLUGIN_HEADER + textwrap.dedent(body))
    return module


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path (and so on the checks' processes' PYTHONPATH) for modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_check_plugin_passes_a_sound_module_that_is_not_installed(plugin_folder):
    module = write_plugin(
        plugin_folder,
        "kit_good",
        GOOD_METHOD.format(name="kitgood", transform_defaults={"image_size": 48})
        + "\n@hookimpl\ndef ssl_register_methods(register: Any) -> None:\n"
        "    register(KitMethod)\n",
    )
    check_plugin(module)


def test_check_plugin_lists_every_problem_at_once(plugin_folder):
    module = write_plugin(
        plugin_folder,
        "kit_heavy",
        """
        import torch  # at import time: listing methods would load torch


        class HeavyArgs(StrictArgs):
            depth: int = Field(2)  # no description


        class Heavy(Method):
            name = "kitheavy"
            description = "Imports torch and documents nothing."
            args_model = HeavyArgs
            transform = "simclr"


        @hookimpl
        def ssl_register_methods(register: Any) -> None:
            register(Heavy)
        """,
    )
    with pytest.raises(AssertionError) as info:
        check_plugin(module)
    message = str(info.value)
    assert "found 2 problem(s)" in message
    assert "importing kit_heavy imports torch" in message
    assert "'depth' has no description" in message


def test_check_plugin_names_a_misspelled_hook(plugin_folder):
    module = write_plugin(
        plugin_folder,
        "kit_misspelled",
        GOOD_METHOD.format(name="kitmisspelled", transform_defaults={})
        + "\n@hookimpl\ndef ssl_register_method(register: Any) -> None:\n"
        "    register(KitMethod)\n",
    )
    with pytest.raises(AssertionError, match=r"registers nothing|ssl_register_method\b") as info:
        check_plugin(module)
    assert "kitmisspelled" not in ssl_core.list_methods()
    assert "1 problem" in str(info.value)


def test_check_plugin_blames_invalid_transform_defaults_on_the_plugin(plugin_folder):
    module = write_plugin(
        plugin_folder,
        "kit_bad_defaults",
        GOOD_METHOD.format(name="kitbaddefaults", transform_defaults={"image_sise": 32})
        + "\n@hookimpl\ndef ssl_register_methods(register: Any) -> None:\n"
        "    register(KitMethod)\n",
    )
    with pytest.raises(AssertionError, match="image_sise"):
        check_plugin(module)


def test_check_plugin_names_a_module_that_does_not_import():
    with pytest.raises(AssertionError, match="importing kit_missing_module fails"):
        check_plugin("kit_missing_module")


def resnet_state() -> dict[str, torch.Tensor]:
    state = torchvision.models.resnet18().state_dict()
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def exported_run(tmp_path: Path, state: dict[str, torch.Tensor]) -> PretrainResult:
    """A run directory as ``ssl pretrain`` leaves it, as far as the export check reads it."""
    (tmp_path / "exported_models").mkdir()
    config = {"model": "torchvision/resnet18", "transform_args": {"image_size": [32, 32]}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    export = tmp_path / "exported_models/exported_last.pt"
    torch.save(state, export)
    return PretrainResult(
        tmp_path, export, tmp_path / "checkpoints/last.ckpt", 1, 1, 1, 0, 0.0, 1.0, 1.0, "cpu", ""
    )


def test_check_export_loads_takes_torchvisions_state_dict_without_its_classifier(tmp_path):
    assert check_export_loads(exported_run(tmp_path, resnet_state())).shape == (2, 512)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {**s, "projection.weight": torch.zeros(2)}, "keys torchvision's resnet18 lacks"),
        (
            lambda s: {k: v for k, v in s.items() if k != "layer1.0.conv1.weight"},
            "besides the classifier",
        ),
        (
            lambda s: {**s, "bn1.weight": torch.full_like(s["bn1.weight"], float("nan"))},
            "non-finite features",
        ),
    ],
    ids=["extra key", "missing key", "nan"],
)
def test_check_export_loads_refuses_what_torchvision_would_not_load(tmp_path, change, message):
    with pytest.raises(AssertionError, match=message):
        check_export_loads(exported_run(tmp_path, change(resnet_state())))


def test_train_steps_refuses_a_batch_that_does_not_make_the_steps(ssl_image_folder, tmp_path):
    with pytest.raises(ValueError, match="10 images in batches of 3 over 1 epoch"):
        train_steps("simclr", ssl_image_folder(count=10), out=tmp_path / "o", batch_size=3)
    assert not (tmp_path / "o").exists()


def states(**tensors: list[float]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor(value) for key, value in tensors.items()}


def test_assert_same_step_tells_a_split_update_from_a_different_one():
    initial = states(w=[0.0, 0.0], frozen=[1.0], bn_running_mean=[0.5])
    one = states(w=[1.0, 1.0], frozen=[1.0], bn_running_mean=[0.6])
    close = states(w=[1.001, 1.0], frozen=[1.0], bn_running_mean=[0.6])
    assert_same_step(one, close, initial, unreachable=("frozen",))
    far = states(w=[1.1, 1.0], frozen=[1.0], bn_running_mean=[0.6])
    with pytest.raises(AssertionError, match="'w'"):
        assert_same_step(one, far, initial, unreachable=("frozen",))
    with pytest.raises(AssertionError, match="frozen"):  # a weight that did not move
        assert_same_step(one, close, initial)
    other_stats = states(w=[1.0, 1.0], frozen=[1.0], bn_running_mean=[0.7])
    with pytest.raises(AssertionError, match="bn_running_mean"):
        assert_same_step(one, other_stats, initial, unreachable=("frozen",))


def test_assert_same_checkpoint_names_what_the_resume_changed():
    def checkpoint(weight: float, momentum: float) -> dict:
        return {
            "epoch": 2,
            "step": 8,
            "model": states(a=[1.0], b=[weight]),
            "optimizer": {"state": {0: {"momentum_buffer": torch.tensor([momentum])}}},
        }

    assert_same_checkpoint(checkpoint(2.0, 0.5), checkpoint(2.0, 0.5))
    with pytest.raises(AssertionError, match=r"\['b'\]"):
        assert_same_checkpoint(checkpoint(2.5, 0.5), checkpoint(2.0, 0.5))
    with pytest.raises(AssertionError, match="optimizer state 0.momentum_buffer"):
        assert_same_checkpoint(checkpoint(2.0, 0.6), checkpoint(2.0, 0.5))


class LocalBatchNormSimCLR(SimCLR):
    """SimCLR with each process's BatchNorm on its own half of the batch (at module level:
    the training processes import it by reference)."""

    name = "simclr_local_batchnorm"
    sync_batchnorm = False


class LocalBatchNormPlugin:
    @hookimpl
    def ssl_register_methods(self, register):
        register(LocalBatchNormSimCLR)


def test_check_one_vs_two_processes_catches_batchnorm_that_is_not_global(
    ssl_register_plugin, ssl_image_folder, tmp_path
):
    ssl_register_plugin(LocalBatchNormPlugin(), name="local-batchnorm")
    with pytest.raises(AssertionError, match=r"backbone\.model\."):  # off by over 100%
        check_one_vs_two_processes(
            "simclr_local_batchnorm",
            ssl_image_folder(count=16),
            tmp_path,
            method_args={"hidden_dim": 64, "output_dim": 16},
        )


FORGETFUL_PLUGIN = """
from ssl_core import hookimpl
from ssl_simclr import SimCLR


class Forgetful(SimCLR):
    name = "forgetful"

    def build(self, backbone, run=None):
        from ssl_simclr.model import SimCLRModel

        class ForgetfulModel(SimCLRModel):
            steps_seen = 0  # a plain attribute: not in the checkpoint, 0 again on resume

            def forward(self, views):
                self.steps_seen += 1
                return super().forward(views) * (1 + 0.1 * self.steps_seen)

        return ForgetfulModel(backbone, self.args)


@hookimpl
def ssl_register_methods(register):
    register(Forgetful)
"""


def test_check_resume_exact_catches_state_the_checkpoint_lacks(
    ssl_image_folder, tmp_path, monkeypatch
):
    """A real distribution, installed for the ``ssl`` processes the check starts."""
    source = tmp_path / "forgetful"
    source.mkdir()
    (source / "kit_forgetful.py").write_text(FORGETFUL_PLUGIN)
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "kit-forgetful"\nversion = "0.1"\n'
        '[project.entry-points.ssl_core]\nforgetful = "kit_forgetful"\n'
        '[tool.setuptools]\npy-modules = ["kit_forgetful"]\n'
    )
    site = _install(source, tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("SSL_CORE_PLUGINS")  # as in a plugin author's tests: all installed load
    with pytest.raises(AssertionError, match=r"differ from the straight run: \['backbone"):
        check_resume_exact(
            "forgetful",
            ssl_image_folder(count=16),
            tmp_path / "runs",
            batch_size=8,
            method_args={"hidden_dim": 64, "output_dim": 16},
        )
