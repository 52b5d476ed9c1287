"""The parameter schema says which method each parameter belongs to and which devices each method
needs: forms show only what applies, the CLI's key=value parser refuses the rest in one line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.errors import PluginError
from workbench.plugin_api import Param, Plugin, build_chain, get_plugin_class
from workbench.spec import PluginStep

# What each first-party method really reads (from the plugins' code), parameter by parameter.
APPLIES = {
    "quantize": {"calibration_samples": {"static_int8"}, "group_size": {"int4"},
                 "skip": {"dynamic_int8", "static_int8", "weight_only_int8", "int4"},
                 "quantize_tied": {"dynamic_int8", "static_int8", "weight_only_int8", "int4"}},
    "fuse": {"mode": {"torch_compile"}, "freezing": {"torch_compile"}, "level": {"onnxruntime"},
             "implementation": {"attention"}},
    "prune": {"importance": {"structured"}, "round_to": {"structured"}},
    "distill": {"width": {"width"}, "inherit": {"width", "depth"}, "depth": {"depth"}, "factory": {"factory"}},
}


@pytest.mark.parametrize("name", sorted(APPLIES))
def test_first_party_parameters_name_the_methods_they_apply_to(name):
    cls = get_plugin_class(name)
    choice = cls.method_choice()
    assert choice is not None
    for param in cls.params_schema:
        expected = APPLIES[name].get(param.name)
        assert (set(param.methods) if param.methods else None) == expected, param.name
    # every method's form holds the method choice itself and the shared parameters
    for method in choice.choices:
        shown = {p.name for p in cls.params_for(method)}
        assert choice.name in shown
        hidden = {p for p, methods in APPLIES[name].items() if method not in methods}
        assert not shown & hidden, (method, shown & hidden)


def test_quantize_declares_which_methods_need_cuda():
    quantize = get_plugin_class("quantize")
    assert quantize.devices_for("int4") == ("cuda",) and quantize.devices_for("fp16") == ("cuda",)
    assert quantize.devices_for("dynamic_int8") == ("cpu",) and quantize.devices_for("static_int8") == ("cpu",)
    assert set(quantize.devices_for("weight_only_int8")) == {"cpu", "cuda"}
    # the chain check reads the same table
    assert quantize(method="fp16").supported_devices() == ("cuda",)
    with pytest.raises(PluginError, match="fp16 runs on CUDA only"):
        build_chain([PluginStep("quantize", {"method": "fp16"})], "torch", "cpu", "auto")


@pytest.mark.parametrize("step, message", [
    ("fuse:method=conv_bn,mode=max-autotune-no-cudagraphs",
     "fuse:mode applies only to method=torch_compile, not method=conv_bn"),
    ("quantize:method=dynamic_int8,calibration_samples=64",
     "quantize:calibration_samples applies only to method=static_int8, not method=dynamic_int8"),
    ("quantize:group_size=32", "quantize:group_size applies only to method=int4, not method=dynamic_int8"),
    ("prune:method=unstructured,importance=l2", "prune:importance applies only to method=structured"),
    ("distill:student=depth,width=0.3", "distill:width applies only to student=width, not student=depth"),
])
def test_a_parameter_of_another_method_is_refused_in_one_line(step, message):
    parsed = PluginStep.parse(step)
    with pytest.raises(PluginError) as caught:
        get_plugin_class(parsed.name)(**parsed.params)
    text = str(caught.value)
    assert message in text and "\n" not in text
    # the same parameters with their own method are accepted
    assert get_plugin_class("fuse")(method="torch_compile", mode="max-autotune-no-cudagraphs").params["mode"] \
        == "max-autotune-no-cudagraphs"
    assert get_plugin_class("quantize")(method="int4", group_size="32").params["group_size"] == "32"


def test_defaults_of_other_methods_stay_in_the_resolved_params():
    # resolve_params still returns every key (reports and forms rely on a full dict)
    params = get_plugin_class("fuse").resolve_params({"method": "onnxruntime", "level": "basic"})
    assert params == {"method": "onnxruntime", "mode": "default", "freezing": True, "level": "basic",
                      "implementation": "sdpa"}


def test_describe_adds_the_method_keys_and_keeps_the_old_ones():
    d = get_plugin_class("quantize").describe()
    assert {"name", "summary", "accepts", "produces", "devices", "params"} <= set(d)
    assert d["method_param"] == "method"
    assert d["method_devices"]["int4"] == ["cuda"]
    by_name = {p["name"]: p for p in d["params"]}
    assert by_name["group_size"]["methods"] == ["int4"]
    assert by_name["method"]["methods"] is None
    assert by_name["method"]["choices"][0] == "dynamic_int8"
    json.dumps(d)                                    # still plain JSON
    assert get_plugin_class("onnx_export").describe()["method_param"] is None


def test_cli_plugins_json_lists_the_new_keys():
    proc = subprocess.run([sys.executable, "-m", "workbench", "plugins", "--json", "-"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["fuse"]["method_param"] == "method"
    assert {p["name"]: p["methods"] for p in data["fuse"]["params"]}["level"] == ["onnxruntime"]
    assert data["quantize"]["devices"] == ["cpu", "cuda"]           # unchanged key


def test_a_declaration_naming_an_unknown_method_fails_at_import():
    with pytest.raises(TypeError, match="names method"):
        class _Typo(Plugin):
            name = "typo"
            params_schema = (Param("method", "choice", "a", "", choices=("a", "b")),
                             Param("knob", "int", 1, "", methods=("c",)))
    with pytest.raises(TypeError, match="method_devices"):
        class _BadDevices(Plugin):
            name = "bad_devices"
            params_schema = (Param("method", "choice", "a", "", choices=("a",)),)
            method_devices = {"z": ("cuda",)}
    with pytest.raises(ValueError, match="non-empty tuple"):
        Param("knob", "int", 1, "", methods="a")
