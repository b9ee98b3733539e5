"""Plugin discovery: entry points, fake and broken plugins, blocking, duplicates."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from pathlib import Path

import pytest
from pydantic import Field
from typer.testing import CliRunner

import ssl_core
from conftest import CORE_PLUGINS, WIDE, run_ssl
from ssl_core import Method, PluginError, StrictArgs, Transform, UnknownNameError, hookimpl
from ssl_core.cli import app
from ssl_core.errors import NameConflictError
from ssl_core.plugins import ALLOWED_ENV, BLOCKED_ENV, PluginWarning, host

DOCS = Path(__file__).parent.parent / "docs"
PRETRAIN = ["pretrain", "--out", "o", "--data", "d", "--model", "torchvision/resnet18"]


def both_ways(*args: str, sites: tuple = (), env: dict | None = None) -> tuple[int, str]:
    """``ssl ARGS`` in this process (Typer's runner; ``with_site`` put ``sites`` on its
    path) and as a real process; their exit codes and messages must agree. Returns the exit
    code and the process's stdout and stderr together."""
    host.reset()
    result = CliRunner().invoke(app, list(args), env={**WIDE, **(env or {})})
    process = run_ssl(*args, extra_path=list(sites), env=env)
    assert result.exit_code == process.returncode, (result.output, process.stderr)
    # The runner mixes the two streams; the process's stdout then stderr.
    assert sorted(result.output.split()) == sorted((process.stdout + process.stderr).split())
    return process.returncode, process.stdout + process.stderr


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_first_party_distributions_are_found_through_their_entry_points(name):
    dist = importlib.metadata.distribution(f"ssl-{name}")
    entry_points = [ep for ep in dist.entry_points if ep.group == "ssl_core"]
    assert [(ep.name, ep.value) for ep in entry_points] == [(name, f"ssl_{name}")]

    assert name in ssl_core.list_methods()
    plugin, cls = host.registry.methods[name]
    assert plugin == name
    assert cls.__module__ == f"ssl_{name}.plugin"
    info = host.plugins[name]
    assert (info.distribution, info.status) == (f"ssl-{name}", "loaded")
    assert info.registers == {"method": [name], "transform": [name]}


def test_builtin_backbone_providers_are_plugins_too():
    assert set(host.registry.backbones) >= {"torchvision", "timm"}
    assert host.plugins["torchvision"].distribution == "ssl-core"


def _method(method_name: str, **fields) -> type[Method]:
    args = type(
        "Args",
        (StrictArgs,),
        {
            "__annotations__": {"alpha": float},
            "alpha": Field(0.5, description="An argument."),
        },
    )
    return type(
        "M", (Method,), {"name": method_name, "args_model": args, "transform": "simclr", **fields}
    )


def _plugin_module(method_name: str, **fields) -> types.ModuleType:
    method = _method(method_name, **fields)
    module = types.ModuleType(f"plugin_{method_name}")

    @hookimpl
    def ssl_register_methods(register):
        register(method)

    module.ssl_register_methods = ssl_register_methods
    return module


def test_plugin_object_registered_without_installing():
    host.register(_plugin_module("byo"), name="byo-plugin")
    try:
        assert "byo" in ssl_core.list_methods()
        assert ssl_core.get_method("byo").args_model().alpha == 0.5
    finally:
        host.unregister("byo-plugin")
    assert "byo" not in ssl_core.list_methods()


def test_fake_entry_point_without_installing(monkeypatch):
    """Like pytest's own tests: importlib.metadata reports one more entry point."""
    module = _plugin_module("viaentrypoint")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        found = list(real(**kwargs))
        if kwargs.get("group") == "ssl_core":
            found.append(importlib.metadata.EntryPoint("viaep", module.__name__, "ssl_core"))
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "viaentrypoint" not in ssl_core.list_methods()  # the tests' allow-list
    assert host.plugins["viaep"].status == "not allowed"
    with host.allow_only([*CORE_PLUGINS, "viaep"]):
        assert "viaentrypoint" in ssl_core.list_methods()
        assert host.plugins["viaep"].registers == {"method": ["viaentrypoint"]}


def test_installed_third_party_plugin_is_discovered(installed_plugins, with_site):
    with_site(installed_plugins["fake_method"])
    assert ssl_core.list_methods() == ["byol", "dino", "fakemethod", "simclr"]
    info = host.plugins["fake"]
    assert (info.distribution, info.version) == ("ssl-fake-method", "0.3.0")
    assert ssl_core.get_method("fakemethod").default_epochs == 7


def test_broken_plugin_is_reported_by_name_and_others_still_work(installed_plugins, with_site):
    with_site(installed_plugins["broken_plugin"])
    with pytest.warns(PluginWarning, match="'broken' from ssl-broken-plugin 0.0.1 is skipped"):
        methods = ssl_core.list_methods()
    assert methods == ["byol", "dino", "simclr"]
    assert host.plugins["broken"].status == "broken"
    assert "a_module_that_does_not_exist" in host.plugins["broken"].error


def test_plugin_whose_registration_raises_is_skipped():
    module = types.ModuleType("raiser")

    @hookimpl
    def ssl_register_methods(register):
        raise RuntimeError("boom")

    module.ssl_register_methods = ssl_register_methods
    host.register(module, name="raiser")
    with pytest.warns(PluginWarning, match="'raiser' is skipped: ssl_register_methods failed"):
        assert ssl_core.list_methods() == ["byol", "dino", "simclr"]


def test_registered_schema_without_descriptions_is_rejected():
    bad_args = type("BadArgs", (StrictArgs,), {"__annotations__": {"x": int}, "x": 1})
    method = type("Bad", (Method,), {"name": "bad", "args_model": bad_args, "transform": "simclr"})
    module = types.ModuleType("badschema")
    module.ssl_register_methods = hookimpl(lambda register: register(method))
    host.register(module, name="badschema")
    with pytest.warns(PluginWarning, match="'x' has no description"):
        assert "bad" not in ssl_core.list_methods()


def test_blocked_plugin_is_not_imported(monkeypatch, installed_plugins, with_site):
    with_site(installed_plugins["broken_plugin"])
    monkeypatch.setenv(BLOCKED_ENV, "simclr, byol, dino, broken")
    assert ssl_core.list_methods() == []  # and no warning: the broken one was never imported
    assert host.plugins["simclr"].status == "blocked"
    assert host.plugins["broken"].status == "blocked"
    assert "ssl_broken_plugin" not in sys.modules
    with pytest.raises(UnknownNameError, match="No method is registered"):
        ssl_core.get_method("simclr")


def test_two_plugins_registering_one_name_make_only_that_name_an_error():
    host.register(_plugin_module("twin"), name="first-plugin")
    host.register(_plugin_module("twin"), name="second-plugin")
    assert ssl_core.list_methods() == ["byol", "dino", "simclr", "twin"]  # listed once
    assert ssl_core.get_method("simclr").name == "simclr"
    with pytest.raises(PluginError) as info:
        ssl_core.get_method("twin")
    message = str(info.value)
    assert "method 'twin' is registered by 2 plugins: 'first-plugin' and 'second-plugin'" in (
        message
    )
    assert isinstance(info.value, NameConflictError)
    assert host.plugins["first-plugin"].status == "conflict"
    assert host.plugins["second-plugin"].conflicts == [
        "method 'twin' is also registered by 'first-plugin'"
    ]
    host.unregister("second-plugin")
    assert ssl_core.get_method("twin").name == "twin"
    assert host.plugins["first-plugin"].status == "loaded"


def test_unknown_method_suggests_the_closest_name():
    with pytest.raises(KeyError) as info:
        ssl_core.get_method("simclrr")
    assert isinstance(info.value, UnknownNameError)
    assert str(info.value).startswith("Unknown method 'simclrr'. Did you mean 'simclr'?")
    assert "Available: byol, dino, simclr" in str(info.value)


def test_unknown_transform_and_model_suggest_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'simclr'"):
        ssl_core.get_transform("simclear")
    with pytest.raises(UnknownNameError, match="Did you mean 'torchvision/resnet18'"):
        ssl_core.build_backbone("torchvision/resnet81")
    with pytest.raises(UnknownNameError, match="look like 'torchvision/resnet18'"):
        ssl_core.build_backbone("resnet18")


def test_list_filters():
    assert ssl_core.list_methods("sim*") == ["simclr"]
    assert ssl_core.list_methods("CLR") == ["simclr"]
    assert ssl_core.list_methods("moco") == []
    assert ssl_core.list_methods("b*") == ["byol"]
    assert ssl_core.list_transforms() == ["byol", "dino", "simclr"]
    resnets = ssl_core.list_models("torchvision/resnet*")
    assert "torchvision/resnet18" in resnets and "torchvision/resnet50" in resnets
    assert all(name.startswith("torchvision/resnet") for name in resnets)
    assert "timm/resnet18" in ssl_core.list_models("timm/resnet1*")


# --- strict registration: the plugin author's mistakes are reported as theirs ---------------


def test_misspelled_hook_makes_the_plugin_broken_and_names_the_hook(installed_plugins, with_site):
    with_site(installed_plugins["misspelled_hook"])
    with pytest.warns(PluginWarning) as caught:
        assert ssl_core.list_methods() == ["byol", "dino", "simclr"]
    message = str(caught[0].message)
    assert message.startswith("ssl-core plugin 'misspelled' from ssl-misspelled-hook 0.1.0")
    assert "ssl_register_method is not a hook of ssl-core" in message
    assert "(did you mean 'ssl_register_methods'?)" in message
    assert host.plugins["misspelled"].status == "broken"
    with pytest.raises(UnknownNameError) as error:
        ssl_core.get_method("misspelt")
    assert "Plugin 'misspelled' (ssl-misspelled-hook 0.1.0) failed to load" in str(error.value)


def test_misspelled_hook_in_ssl_plugins(installed_plugins, with_site):
    with_site(installed_plugins["misspelled_hook"])
    code, output = both_ways("plugins", sites=(installed_plugins["misspelled_hook"],))
    assert code == 0
    assert "broken: ssl_register_method is not a hook of ssl-core" in output


def test_hook_without_hookimpl_and_unknown_marked_hook_are_reported():
    unmarked = types.ModuleType("unmarked")
    unmarked.ssl_register_methods = lambda register: None  # pluggy would ignore it silently
    marked = types.ModuleType("marked")
    marked.register_methods = hookimpl(lambda register: None)  # marked, but no such hook
    with pytest.warns(PluginWarning, match="'unmarked' is skipped"):
        host.register(unmarked, name="unmarked")
    with pytest.warns(PluginWarning, match="'marked' is skipped"):
        host.register(marked, name="marked")
    assert host.plugins["unmarked"].status == "broken"
    assert "ssl_register_methods is not decorated with @ssl_core.hookimpl" in (
        host.plugins["unmarked"].error
    )
    assert "register_methods is not a hook of ssl-core" in host.plugins["marked"].error
    assert ssl_core.list_methods() == ["byol", "dino", "simclr"]


def test_bad_transform_defaults_and_transform_name_are_blamed_on_the_plugin(
    installed_plugins, with_site
):
    with_site(installed_plugins["bad_defaults"])
    with pytest.warns(PluginWarning, match="'baddefaults' from ssl-bad-defaults 0.2.0") as caught:
        assert ssl_core.list_methods() == ["byol", "dino", "simclr"]
    error = host.plugins["baddefaults"].error
    assert (
        "method 'typodefaults' has transform_defaults that transform 'simclr' rejects: "
        "Unknown argument 'transform_defaults.image_sise'. "
        "Did you mean 'transform_defaults.image_size'?"
    ) in error
    assert "method 'losttransform' uses transform 'simclear', which no plugin registers" in error
    assert len(caught) == 1
    with pytest.raises(UnknownNameError) as info:
        ssl_core.get_method("typodefaults")
    assert str(info.value).startswith(
        "The method 'typodefaults' is not available: plugin 'baddefaults' "
        "(ssl-bad-defaults 0.2.0), which registers it, is broken: "
    )


def test_pretrain_with_a_method_whose_defaults_are_bad_blames_the_plugin(
    installed_plugins, with_site
):
    site = (installed_plugins["bad_defaults"],)
    with_site(site[0])
    code, output = both_ways(*PRETRAIN, "--method", "typodefaults", sites=site)
    assert code == 2
    assert "plugin 'baddefaults' (ssl-bad-defaults 0.2.0), which registers it, is broken" in output
    assert "transform_args.image_sise" not in output  # not the user's typo
    assert "Traceback" not in output


def _transform_module(transform_name: str, args: type) -> types.ModuleType:
    transform = type("T", (Transform,), {"name": transform_name, "args_model": args})
    module = types.ModuleType(f"plugin_{transform_name}")
    module.ssl_register_transforms = hookimpl(lambda register: register(transform))
    return module


def test_a_transform_from_a_plugin_registered_later_is_found_and_its_failure_named():
    good_args = type(
        "SizeArgs",
        (StrictArgs,),
        {"__annotations__": {"size": int}, "size": Field(8, description="Size.")},
    )
    method_plugin = _plugin_module(
        "late", transform="latetransform", transform_defaults={"size": 16}
    )
    host.register(method_plugin, name="methods-first")
    host.register(_transform_module("latetransform", good_args), name="transforms-later")
    assert ssl_core.get_method("late").transform == "latetransform"
    assert host.plugins["methods-first"].status == "loaded"

    host.unregister("transforms-later")
    bad_args = type("NoDescription", (StrictArgs,), {"__annotations__": {"size": int}, "size": 8})
    host.register(_transform_module("latetransform", bad_args), name="transforms-later")
    with pytest.warns(PluginWarning), pytest.raises(UnknownNameError) as info:
        ssl_core.get_method("late")
    assert (
        "uses transform 'latetransform', which no plugin registers (plugin 'transforms-later', "
        "which registers it, is broken)"
    ) in str(info.value)


# --- a name registered twice ------------------------------------------------------------------


def test_a_name_two_distributions_register_fails_only_where_used(installed_plugins, with_site):
    with_site(installed_plugins["fake_method"])
    with_site(installed_plugins["twin_method"])
    assert ssl_core.list_methods() == ["byol", "dino", "fakemethod", "simclr", "twinonly"]
    assert ssl_core.get_method("twinonly").default_epochs == 3
    assert ssl_core.get_method("simclr").name == "simclr"
    assert ssl_core.list_models("torchvision/resnet18") == ["torchvision/resnet18"]
    with pytest.raises(NameConflictError) as info:
        ssl_core.get_method("fakemethod")
    assert str(info.value).startswith(
        "The method 'fakemethod' is registered by 2 plugins: 'fake' (ssl-fake-method 0.3.0) "
        "and 'twin' (ssl-twin-method 0.1.0), so it cannot be used. Uninstall one, or block "
        f"one with {BLOCKED_ENV}=fake or {BLOCKED_ENV}=twin."
    )
    with pytest.raises(NameConflictError, match="'timm' is registered by 2 plugins: 'timm'"):
        ssl_core.build_backbone("timm/resnet18")
    assert host.plugins["twin"].status == host.plugins["fake"].status == "conflict"
    assert host.plugins["timm"].conflicts == [
        "backbone provider 'timm' is also registered by 'twin' (ssl-twin-method 0.1.0)"
    ]


def test_blocking_one_of_two_registrations_resolves_the_conflict(
    monkeypatch, installed_plugins, with_site
):
    with_site(installed_plugins["fake_method"])
    with_site(installed_plugins["twin_method"])
    monkeypatch.setenv(BLOCKED_ENV, "twin")
    assert ssl_core.get_method("fakemethod").default_epochs == 7
    assert host.plugins["fake"].status == "loaded"


def test_conflict_in_the_cli(installed_plugins, with_site):
    sites = (installed_plugins["fake_method"], installed_plugins["twin_method"])
    for site in sites:
        with_site(site)
    code, output = both_ways("plugins", sites=sites)
    assert code == 0
    assert "conflict: method 'fakemethod' is also registered by 'twin'" in output
    code, output = both_ways("methods", "list", sites=sites)
    assert code == 0
    assert output.count("fakemethod") == 1 and "conflict: fake, twin" in output
    assert "twinonly" in output
    code, output = both_ways("methods", "show", "twinonly", sites=sites)
    assert code == 0 and "width" in output
    code, output = both_ways(*PRETRAIN, "--method", "fakemethod", sites=sites)
    assert code == 2
    assert "ssl-fake-method 0.3.0" in output and "ssl-twin-method 0.1.0" in output
    assert f"{BLOCKED_ENV}=twin" in output and "Traceback" not in output


def test_two_distributions_with_one_entry_point_name_both_load(
    monkeypatch, installed_plugins, with_site
):
    with_site(installed_plugins["fake_method"])
    with_site(installed_plugins["fake_fork"])
    assert ssl_core.list_methods() == ["byol", "dino", "fakemethod", "forkmethod", "simclr"]
    fork, original = host.plugins["fake (ssl-fake-fork)"], host.plugins["fake (ssl-fake-method)"]
    assert fork.status == original.status == "conflict"
    assert (
        fork.conflicts
        == original.conflicts
        == [
            "entry point name 'fake' is used by ssl-fake-fork and ssl-fake-method; block one with "
            f"{BLOCKED_ENV}=<distribution>"
        ]
    )
    assert host.registry.methods["forkmethod"][0] == "fake (ssl-fake-fork)"

    monkeypatch.setenv(BLOCKED_ENV, "ssl-fake-fork")  # a distribution's name blocks it alone
    host.reset()
    assert ssl_core.list_methods() == ["byol", "dino", "fakemethod", "simclr"]
    assert host.plugins["fake (ssl-fake-method)"].status == "loaded"
    assert host.plugins["fake (ssl-fake-fork)"].status == "blocked"


# --- a method whose plugin failed ---------------------------------------------------------------


def test_method_of_a_plugin_that_failed_to_import_says_so(installed_plugins, with_site):
    with_site(installed_plugins["broken_plugin"])
    with pytest.warns(PluginWarning), pytest.raises(UnknownNameError) as info:
        ssl_core.get_method("broken")
    assert str(info.value).startswith(
        "The method 'broken' is not available: it probably comes from plugin 'broken' "
        "(ssl-broken-plugin 0.0.1), which is broken: import failed: ModuleNotFoundError: "
    )
    with pytest.raises(UnknownNameError) as info:
        ssl_core.get_method("othername")
    assert "Unknown method 'othername'" in str(info.value)
    assert "Plugin 'broken' (ssl-broken-plugin 0.0.1) failed to load and may provide it" in (
        str(info.value)
    )


def test_pretrain_method_of_a_broken_plugin_in_the_cli(installed_plugins, with_site):
    site = (installed_plugins["broken_plugin"],)
    with_site(site[0])
    code, output = both_ways(*PRETRAIN, "--method", "broken", sites=site)
    assert code == 2
    assert "plugin 'broken' (ssl-broken-plugin 0.0.1), which is broken: import failed" in output
    assert "Traceback" not in output


def test_method_of_a_plugin_whose_registration_failed_names_it():
    module = types.ModuleType("halfway")

    @hookimpl
    def ssl_register_methods(register):
        register(_method("halfway"))
        raise RuntimeError("boom after registering")

    module.ssl_register_methods = ssl_register_methods
    host.register(module, name="halfway-plugin")
    with pytest.warns(PluginWarning), pytest.raises(UnknownNameError) as info:
        ssl_core.get_method("halfway")
    assert str(info.value).startswith(
        "The method 'halfway' is not available: plugin 'halfway-plugin', which registers it, is "
        "broken: ssl_register_methods failed: RuntimeError: boom after registering."
    )


# --- the allow-list -----------------------------------------------------------------------------


def test_allow_list_loads_only_the_named_entry_points(monkeypatch, installed_plugins):
    monkeypatch.syspath_prepend(str(installed_plugins["fake_method"]))
    monkeypatch.delitem(sys.modules, "ssl_fake_method", raising=False)
    monkeypatch.setenv(ALLOWED_ENV, "torchvision, simclr")
    assert ssl_core.list_methods() == ["simclr"]
    assert host.plugins["fake"].status == host.plugins["byol"].status == "not allowed"
    assert "ssl_fake_method" not in sys.modules  # never imported
    with pytest.raises(UnknownNameError, match="'byol' .* may provide it but is not in"):
        ssl_core.get_method("byol")
    with host.allow_only({"simclr", "fake"}):  # wins over the variable
        assert ssl_core.list_methods() == ["fakemethod", "simclr"]
    assert ssl_core.list_methods() == ["simclr"]


def test_allow_list_shown_by_ssl_plugins():
    code, output = both_ways("plugins", env={ALLOWED_ENV: "torchvision,simclr"})
    assert code == 0
    assert "not allowed (not in SSL_CORE_PLUGINS)" in output
    installed = {ep.name for ep in importlib.metadata.entry_points(group="ssl_core")}
    assert {"timm", "byol", "dino"} <= installed  # and the template where nox installs it
    assert output.count("not allowed") == len(installed - {"torchvision", "simclr"})


def test_core_tests_are_isolated_from_another_installed_plugin(monkeypatch, installed_plugins):
    """An extra real distribution on the path: under the allow-list the core's results and
    its docs check are what they are without it; without the allow-list it shows."""
    site = installed_plugins["fake_method"]
    monkeypatch.syspath_prepend(str(site))
    python_path = {"PYTHONPATH": str(site)}
    assert importlib.metadata.distribution("ssl-fake-method").version == "0.3.0"
    assert ssl_core.list_methods() == ["byol", "dino", "simclr"]
    check = run_ssl("docs", "--check", "--out", str(DOCS), env=python_path)
    assert check.returncode == 0, check.stderr

    monkeypatch.delenv(ALLOWED_ENV)
    host.reset()
    assert {"byol", "dino", "fakemethod", "simclr"} <= set(ssl_core.list_methods())
    check = run_ssl("docs", "--check", "--out", str(DOCS), env=python_path)
    assert check.returncode == 1
    assert "fakemethod_method_args.md" in check.stderr


def test_the_fixture_allows_ssl_cores_own_plugins_only():
    import os

    assert os.environ[ALLOWED_ENV].split(",") == list(CORE_PLUGINS)
