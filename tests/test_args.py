"""key=value parsing and schema validation with dotted-key errors."""

from __future__ import annotations

import pytest

from ssl_core import ConfigError, config
from ssl_core.args import parse_key_values
from ssl_simclr import SimCLRArgs, SimCLRTransformArgs

BASE = {"out": "o", "data": "d", "model": "torchvision/resnet18"}


def test_simclr_defaults_are_the_reference_ones():
    args = SimCLRArgs()
    assert (
        args.temperature,
        args.hidden_dim,
        args.output_dim,
        args.num_layers,
        args.batch_norm,
    ) == (0.1, 2048, 128, 2, True)
    t = SimCLRTransformArgs()
    assert t.image_size == "auto" and t.reference_image_size == 224  # chosen from the data
    assert (t.random_resize.min_scale, t.random_resize.max_scale) == (0.08, 1.0)
    assert (t.random_resize.min_ratio, t.random_resize.max_ratio) == (3 / 4, 4 / 3)
    assert t.random_flip.horizontal_prob == 0.5
    cj = t.color_jitter
    assert (cj.prob, cj.brightness, cj.contrast, cj.saturation, cj.hue) == (0.8, 0.8, 0.8, 0.8, 0.2)
    assert t.random_gray_scale == 0.2
    assert (t.gaussian_blur.prob, t.gaussian_blur.sigmas) == (0.5, (0.1, 2.0))
    assert t.normalize.mean == (0.485, 0.456, 0.406)
    assert t.normalize.std == (0.229, 0.224, 0.225)


def test_parse_key_values_nests_dotted_keys():
    assert parse_key_values(["a=1", "b.c=x=y", "b.d= 2"], "--x") == {
        "a": "1",
        "b": {"c": "x=y", "d": " 2"},
    }
    with pytest.raises(ConfigError, match="not of the form KEY=VALUE"):
        parse_key_values(["novalue"], "--method-args")
    with pytest.raises(ConfigError, match="given a value and sub-keys"):
        parse_key_values(["a=1", "a.b=2"], "--x")


def test_strings_from_the_command_line_are_typed():
    resolved = config.resolve(
        {
            **BASE,
            "epochs": "3",
            "num_workers": "2",
            "method_args": {"temperature": "0.2", "batch_norm": "false"},
            "transform_args": {
                "image_size": "32",
                "gaussian_blur": {"sigmas": "0.2,1.5"},
                "normalize": {"mean": "[0.5, 0.5, 0.5]"},
            },
            "optim_args": {"name": "adamw", "gradient_clip_norm": "none"},
        },
        from_strings=True,
    )
    assert resolved.epochs == 3 and resolved.args.num_workers == 2
    assert resolved.method_args.temperature == 0.2 and resolved.method_args.batch_norm is False
    assert resolved.transform_args.image_size == (32, 32)
    assert resolved.transform_args.gaussian_blur.sigmas == (0.2, 1.5)
    assert resolved.transform_args.normalize.mean == (0.5, 0.5, 0.5)
    assert resolved.transform_args.color_jitter.prob == 0.8  # untouched default kept
    assert resolved.optim_args.name == "adamw" and resolved.optim_args.gradient_clip_norm is None
    assert resolved.optim_args.lr == 0.3  # SimCLR's default survives a partial override


def test_python_values_and_defaults():
    resolved = config.resolve({**BASE, "method_args": {"temperature": 0.5}})
    assert resolved.epochs == 100
    assert resolved.args.batch_size == 256
    assert resolved.to_json()["method_args"]["temperature"] == 0.5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"method_args": {"tempreature": 1}},
            "Unknown argument 'method_args.tempreature'. Did you mean 'method_args.temperature'?",
        ),
        (
            {"transform_args": {"color_jitter": {"prb": 1}}},
            "Unknown argument 'transform_args.color_jitter.prb'. "
            "Did you mean 'transform_args.color_jitter.prob'?",
        ),
        (
            {"transform_args": {"color_jitter": {"prob": 2}}},
            "Invalid value for 'transform_args.color_jitter.prob' (got 2)",
        ),
        (
            {"transform_args": {"gaussian_blur": {"sigmas": (0.0, 2.0)}}},
            "Invalid value for 'transform_args.gaussian_blur.sigmas' (got (0.0, 2.0))",
        ),
        ({"optim_args": {"name": "adam"}}, "Invalid value for 'optim_args.name' (got 'adam')"),
        ({"epochs": 0}, "Invalid value for 'epochs' (got 0)"),
        ({"precision": "fp8"}, "Invalid value for 'precision'"),
        ({"overwrite": True, "resume": True}, "overwrite and resume exclude each other"),
        ({"method_args": 3}, "method_args must be a mapping"),
    ],
)
def test_errors_name_the_dotted_key(values, message):
    with pytest.raises(ConfigError) as info:
        config.resolve({**BASE, **values})
    assert message in str(info.value)
