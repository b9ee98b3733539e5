"""The generated docs match the code; every hook is documented."""

from __future__ import annotations

from pathlib import Path

import ssl_core
from conftest import run_ssl
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


def test_provider_pages_list_every_model_name_once():
    pages = docs.generate()
    for prefix in ("torchvision", "timm"):
        page = pages[Path(f"models/_auto/{prefix}_models.md")]
        listed = [line[3:-1] for line in page.splitlines() if line.startswith("- `")]
        assert listed == ssl_core.list_models(f"{prefix}/*"), prefix
    assert "- `torchvision/resnet18`\n" in pages[Path("models/_auto/torchvision_models.md")]


def test_the_pages_ssl_docs_writes():
    """The docs site includes these paths: they must stay where they are."""
    assert sorted(str(p) for p in docs.generate()) == [
        "methods/_auto/byol_method_args.md",
        "methods/_auto/byol_transform_args.md",
        "methods/_auto/dino_method_args.md",
        "methods/_auto/dino_transform_args.md",
        "methods/_auto/simclr_method_args.md",
        "methods/_auto/simclr_transform_args.md",
        "models/_auto/timm_models.md",
        "models/_auto/torchvision_models.md",
        "reference/_auto/cli.md",
    ]


def test_docs_for_one_plugin_write_only_its_pages(tmp_path):
    result = run_ssl("docs", "--plugin", "simclr", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.md"))
    assert written == [
        "methods/_auto/simclr_method_args.md",
        "methods/_auto/simclr_transform_args.md",
    ]
    for path in tmp_path.rglob("*.md"):
        assert path.read_text() == (DOCS / path.relative_to(tmp_path)).read_text()

    provider = run_ssl("docs", "--plugin", "torchvision", "--out", str(tmp_path / "p"))
    assert provider.returncode == 0, provider.stderr
    written = sorted(str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*.md"))
    assert written == ["models/_auto/torchvision_models.md"]

    check = run_ssl("docs", "--check", "--plugin", "byol", "--out", str(DOCS))
    assert check.returncode == 0, check.stderr


def test_docs_for_a_third_party_plugin(tmp_path, installed_plugins):
    site = [installed_plugins["fake_method"]]
    result = run_ssl("docs", "--plugin", "fake", "--out", str(tmp_path), extra_path=site)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "methods/_auto/fakemethod_method_args.md").read_text()
    assert "| `sharpness` | `float` | `3.5` | How sharp the fake method is. |" in page
    transform_page = (tmp_path / "methods/_auto/fakemethod_transform_args.md").read_text()
    assert "| `image_size` | `tuple[int, int] \\| 'auto'` | `[96, 96]` |" in transform_page
    assert sorted(p.name for p in tmp_path.rglob("*.md")) == [
        "fakemethod_method_args.md",
        "fakemethod_transform_args.md",
    ]


def test_docs_for_a_plugin_that_is_unknown_or_broken(tmp_path, installed_plugins):
    unknown = run_ssl("docs", "--plugin", "simclear", "--out", str(tmp_path))
    assert unknown.returncode == 2
    assert "Unknown plugin 'simclear'. Did you mean 'simclr'?" in unknown.stderr
    site = [installed_plugins["broken_plugin"]]
    broken = run_ssl("docs", "--plugin", "broken", "--out", str(tmp_path), extra_path=site)
    assert broken.returncode == 2
    assert "Plugin 'broken' (ssl-broken-plugin 0.0.1) is broken" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert not list(tmp_path.rglob("*.md"))
