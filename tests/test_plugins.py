"""Plugin discovery: entry points, fake and broken plugins, blocking, duplicates."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest
from pydantic import Field

import ssl_core
from ssl_core import Method, PluginError, StrictArgs, UnknownNameError, hookimpl
from ssl_core.plugins import BLOCKED_ENV, PluginWarning, host


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


def _plugin_module(method_name: str, **fields) -> types.ModuleType:
    args = type(
        "Args",
        (StrictArgs,),
        {
            "__annotations__": {"alpha": float},
            "alpha": Field(0.5, description="An argument."),
        },
    )
    method = type(
        "M", (Method,), {"name": method_name, "args_model": args, "transform": "simclr", **fields}
    )
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


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    host.register(_plugin_module("twin"), name="first-plugin")
    host.register(_plugin_module("twin"), name="second-plugin")
    with pytest.raises(PluginError) as info:
        ssl_core.list_methods()
    message = str(info.value)
    assert "'twin'" in message and "'first-plugin'" in message and "'second-plugin'" in message


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
