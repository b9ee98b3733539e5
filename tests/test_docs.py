"""The generated docs match the code; every hook is documented."""

from __future__ import annotations

from pathlib import Path

from ssl_core import docs, hookspecs

DOCS = Path(__file__).parent.parent / "docs"


def test_generated_docs_are_up_to_date():
    stale = docs.stale(DOCS)
    assert not stale, f"regenerate with `ssl docs`: {stale}"


def test_generated_pages_hold_every_argument_and_default():
    pages = docs.method_pages("simclr")
    method_page = pages[Path("methods/_auto/simclr_method_args.md")]
    for row in (
        "| `temperature` | `float` | `0.1` |",
        "| `hidden_dim` | `int` | `2048` |",
        "| `output_dim` | `int` | `128` |",
        "| `num_layers` | `int` | `2` |",
        "| `batch_norm` | `bool` | `True` |",
        "| `lr` | `float` | `0.3` |",
    ):
        assert row in method_page
    transform_page = pages[Path("methods/_auto/simclr_transform_args.md")]
    assert "| `color_jitter.prob` | `float` | `0.8` |" in transform_page
    assert "| `image_size` | `tuple[int, int] \\| 'auto'` | `\"auto\"` |" in transform_page


def test_byol_pages_show_its_own_defaults_for_each_view():
    pages = docs.method_pages("byol")
    method_page = pages[Path("methods/_auto/byol_method_args.md")]
    for row in (
        "| `momentum_start` | `float` | `0.99` |",
        "| `projection_hidden_dim` | `int` | `4096` |",
        "| `name` | `'sgd' \\| 'lars' \\| 'adamw'` | `\"lars\"` |",
        "| `weight_decay` | `float` | `1.5e-06` |",
    ):
        assert row in method_page, row
    transform_page = pages[Path("methods/_auto/byol_transform_args.md")]
    for row in (
        "| `view_1.gaussian_blur.prob` | `float` | `1.0` |",
        "| `view_2.gaussian_blur.prob` | `float` | `0.1` |",
        "| `view_2.solarize.prob` | `float` | `0.2` |",
        "| `color_jitter.brightness` | `float` | `0.4` |",
    ):
        assert row in transform_page, row


def test_stale_page_is_detected(tmp_path):
    docs.write(tmp_path)
    assert docs.stale(tmp_path) == []
    page = tmp_path / "methods/_auto/simclr_method_args.md"
    page.write_text(page.read_text().replace("0.1", "0.2"))
    assert docs.stale(tmp_path) == [page]


def test_cli_reference_lists_every_command_and_option():
    page = docs.cli_page()
    for text in (
        "## `ssl pretrain`",
        "## `ssl methods list`",
        "## `ssl models list`",
        "## `ssl plugins`",
        "`--method-args`",
        "`--resume`",
    ):
        assert text in page


def test_every_hook_is_documented():
    guide = (DOCS / "plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("ssl_register_")]
    assert hooks, "no hooks found"
    for hook in hooks:
        assert f"`{hook}" in guide, f"{hook} is not documented in docs/plugins.md"
