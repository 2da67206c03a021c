"""One registration per component: every registered name resolves to a documented, frozen options
dataclass and a callable implementation; every component module is listed and registers something;
duplicate names and unknown names fail with clear messages."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.catalog import PACKAGES, component_modules, load_all
from engine.errors import ConfigError
from engine.registry import (
    ANALYSES,
    BENCHMARKS,
    METHODS,
    MODELS,
    ComponentRegistry,
    default_name,
)
from engine.schema import opt

REGISTRIES = {"benchmark": BENCHMARKS, "model": MODELS, "method": METHODS, "analysis": ANALYSES}


def _all_entries() -> list[tuple[str, str]]:
    load_all()
    return [(kind, name) for kind, reg in REGISTRIES.items() for name in reg.names()]


def test_every_kind_has_components() -> None:
    load_all()
    assert {"split_mnist", "permuted_mnist", "ssmnist"} <= set(BENCHMARKS.names())
    assert {"mlp", "lstm"} <= set(MODELS.names())
    assert {"finetune", "multitask", "scratch", "ewc", "si", "masking", "masking_si", "coresets", "hnet"} <= set(
        METHODS.names())


@pytest.mark.parametrize("kind, name", _all_entries())
def test_name_resolves_to_documented_options_and_implementation(kind: str, name: str) -> None:
    from engine.methods.base import Method
    from engine.models.base import CLModel

    entry = REGISTRIES[kind].get(name)
    assert entry.name == name
    opts = entry.options
    assert dataclasses.is_dataclass(opts) and opts.__dataclass_params__.frozen, f"{kind} {name}: options not frozen"
    for f in dataclasses.fields(opts):
        assert f.metadata.get("help", "").strip(), f"{kind} {name}: option {f.name!r} has no help text"
    opts()  # every option has a default: a preset states only what differs
    assert callable(entry.impl)
    if kind == "model":
        assert inspect.isclass(entry.impl) and issubclass(entry.impl, CLModel)
    if kind == "method":
        assert inspect.isclass(entry.impl) and issubclass(entry.impl, Method)
    # Options beside the implementation: the dataclass is defined in the implementation's module.
    assert opts.__module__ == entry.impl.__module__, f"{kind} {name}: options live in {opts.__module__}"


def test_every_listed_module_registers_and_every_registering_module_is_listed() -> None:
    load_all()
    listed = component_modules()
    impl_modules = {e.impl.__module__ for reg in REGISTRIES.values() for e in reg.entries()}
    assert set(listed) == impl_modules
    # A module that registers something but is missing from its package's MODULES would silently
    # be absent from the registry: scan the package folders for decorators.
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for path in Path(pkg.__path__[0]).glob("*.py"):
            if re.search(r"^@[A-Z]+\.register\(", path.read_text(), re.MULTILINE):
                assert f"{pkg_name}.{path.stem}" in listed, f"{path} registers a component but is not in MODULES"


def test_masking_si_options_inherit_both_methods_options() -> None:
    load_all()
    fields = {f.name for f in dataclasses.fields(METHODS.get("masking_si").options)}
    si = {f.name for f in dataclasses.fields(METHODS.get("si").options)}
    masking = {f.name for f in dataclasses.fields(METHODS.get("masking").options)}
    assert fields == si | masking
    with pytest.raises(ValueError, match="mask_fraction"):
        METHODS.get("masking_si").options(mask_fraction=1.5)


@pytest.mark.parametrize("cls_name, name", [("EwcOptions", "ewc"), ("MaskingSiOptions", "masking_si"),
                                            ("SplitMnistOptions", "split_mnist"), ("LstmOptions", "lstm")])
def test_default_name_is_snake_case_without_options(cls_name: str, name: str) -> None:
    assert default_name(type(cls_name, (), {})) == name


@dataclass(frozen=True)
class FooBarOptions:
    size: int = opt(3, "how big")


def test_register_binds_name_options_and_impl_and_refuses_a_second_impl() -> None:
    reg: ComponentRegistry[object] = ComponentRegistry("widget")

    @reg.register(FooBarOptions)
    class FooBar:
        pass

    entry = reg.get("foo_bar")
    assert (entry.name, entry.options, entry.impl) == ("foo_bar", FooBarOptions, FooBar)
    reg.register(FooBarOptions)(FooBar)  # the same object again (a re-import) is fine
    with pytest.raises(ValueError, match="widget 'foo_bar' registered twice"):
        reg.register(FooBarOptions)(type("Other", (), {}))
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(FooBarOptions, name="foo_bar")(lambda: None)
    reg.register(FooBarOptions, name="other")(lambda: None)
    assert reg.names() == ["foo_bar", "other"]
    with pytest.raises(TypeError, match="options dataclass"):
        reg.register(dict)  # not a dataclass


def test_unknown_name_suggests_close_names() -> None:
    load_all()
    with pytest.raises(ConfigError, match=r"unknown method 'ewk'\. Did you mean 'ewc'\?") as e:
        METHODS.get("ewk")
    known = str(e.value).split("Known: ")[1].rstrip(".").split(", ")
    assert known == sorted(METHODS.names()) and {"coresets", "ewc"} <= set(known)
    with pytest.raises(ConfigError, match="unknown model 'lstn'. Did you mean 'lstm'"):
        MODELS.get("lstn")


def test_unknown_name_in_a_config_names_the_key_and_close_names() -> None:
    from engine.presets import load_preset

    with pytest.raises(ConfigError, match=r"--set: unknown method 'masking_sj'\. Did you mean 'masking_si'"):
        load_preset("demo", ["method.name=masking_sj"])


def test_option_docs_cover_every_option_of_a_config_with_help() -> None:
    """What `cltui presets show` and the TUI list: every key of the resolved config's component and
    settings tables, in order, each with its value and a help text."""
    from engine.catalog import DOC_SECTIONS, option_docs
    from engine.config import config_to_dict
    from engine.presets import load_preset

    cfg = load_preset("split-mnist/ewc")
    docs = option_docs(cfg)
    tables = config_to_dict(cfg)
    # analyses hold one table per observer: [analyses.curves] → keys analyses.curves.<option>
    flat = {f"{s}.{k}": v for s in DOC_SECTIONS for k, v in tables[s].items() if s != "analyses"}
    flat.update({f"analyses.{a}.{k}": v for a, opts in tables["analyses"].items() for k, v in opts.items()})
    assert [d.key for d in docs] == list(flat)
    assert all(d.value == flat[d.key] for d in docs)
    assert all(d.help.strip() for d in docs), [d.key for d in docs if not d.help.strip()]
    by_key = {d.key: d for d in docs}
    assert by_key["method.name"].value == "ewc" and by_key["model.hidden"].value_text == "[400, 400]"
