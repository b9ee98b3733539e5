"""The documentation site builds with warnings as errors, and its pages hold what the code
generates: each method's defaults, the CLI reference, every public name's docstring."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ssl_core
from ssl_core import hookspecs

DOCS = Path(__file__).parent.parent / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `nox -s docs` builds it, into a temporary folder (docs/ is not written)."""
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    build = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"sphinx-build failed:\n{build.stdout}\n{build.stderr}"
    return out / "html"


def page_text(site: Path, page: str) -> str:
    """A page's visible text, tags removed and whitespace collapsed."""
    html = (site / page).read_text(encoding="utf-8")
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html)
    # Sphinx's smart quotes and HTML entities back to what the Markdown source says
    pairs = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("\u2019", "'")]
    pairs += [("\u201c", '"'), ("\u201d", '"'), ("\u2013", "--"), ("\u2014", "---")]
    for entity, char in pairs:
        text = text.replace(entity, char)
    return " ".join(text.replace("&amp;", "&").split())


def test_method_pages_show_the_generated_defaults(site: Path) -> None:
    from ssl_byol import BYOL
    from ssl_dino import DINO
    from ssl_simclr import SimCLR

    for method in (SimCLR, BYOL, DINO):
        text = page_text(site, f"methods/{method.name}.html")
        for key in method.args_model.model_fields:
            assert f"{key} " in text, f"{method.name}: {key} missing"
        assert method.description in text
    simclr = page_text(site, "methods/simclr.html")
    temperature = SimCLR.args_model.model_fields["temperature"]
    assert f"temperature float {temperature.default} {temperature.description}" in simclr
    assert "color_jitter.prob float 0.8" in simclr  # the transform's page is included too
    assert "lr float 0.3" in simclr  # and the optimiser defaults
    assert "sd-tab-set" in (site / "methods/simclr.html").read_text()  # Python / CLI tabs


def test_cli_reference_is_included(site: Path) -> None:
    text = page_text(site, "reference/cli.html")
    for command in ("ssl pretrain", "ssl methods list", "ssl models list", "ssl evaluate"):
        assert command in text
    assert "--method-args" in text


def test_api_reference_documents_every_public_name(site: Path) -> None:
    html = (site / "reference/api.html").read_text(encoding="utf-8")
    missing = [name for name in ssl_core.__all__ if f'id="ssl_core.{name}"' not in html]
    assert not missing, f"not in the API reference: {missing}"
    assert "Pretrain" in page_text(site, "reference/api.html")  # docstrings, not only names


def test_api_reference_documents_the_test_kit(site: Path) -> None:
    import ssl_core.testing

    html = (site / "reference/api.html").read_text(encoding="utf-8")
    names = [f"ssl_core.testing.{name}" for name in ssl_core.testing.__all__ if name.islower()]
    fixtures = ("ssl_image_folder", "ssl_register_plugin")
    names += [f"ssl_core.testing.pytest_plugin.{name}" for name in fixtures]
    missing = [name for name in names if f'id="{name}"' not in html]
    assert not missing, f"not in the API reference: {missing}"


def test_guides_and_results_are_part_of_the_site(site: Path) -> None:
    guide = page_text(site, "plugins.html")
    hooks = [name for name in dir(hookspecs) if name.startswith("ssl_register_")]
    assert hooks
    for hook in hooks:
        assert hook in guide
    first_result = next(
        line[3:].strip()
        for line in (DOCS.parent / "benchmarks" / "RESULTS.md").read_text().splitlines()
        if line.startswith("## ")
    )
    assert page_text(site, "benchmarks.html").count(first_result.replace("`", "")) >= 1
    assert "Reliability: what is tried, and what happens" in page_text(site, "reliability.html")
    for page in ("getting-started", "models", "outputs", "distributed", "evaluation"):
        assert (site / f"{page}.html").exists(), page
    assert "ssl_image_folder" in page_text(site, "plugin-kit.html")
    assert "list_names" in page_text(site, "providers.html")


def test_models_page_lists_each_providers_names_when_generated(site: Path) -> None:
    text = page_text(site, "models.html")
    generated = sorted((DOCS / "models" / "_auto").glob("*_models.md"))
    if not generated:  # before `ssl docs` writes provider pages: the command that lists them
        assert "The names each provider serves are listed by ssl models list" in text
    for page in generated:
        names = ssl_core.list_models(page.name.removesuffix("_models.md") + "/*")
        for name in (names[0], names[-1]):
            assert name.partition("/")[2] in text, f"{name} is not on the models page"
