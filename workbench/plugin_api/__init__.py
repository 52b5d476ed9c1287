"""What a plugin may import from Workbench: the declared surface (first-party plugins in
``plugins/`` and third-party ones alike). Everything else in ``workbench`` is internal.

    from workbench.plugin_api import Param, Plugin, PluginContext, PluginReport, PluginError

Importing this package imports neither torch nor Qt (the GUI lists plugins without torch).
"""
from ..errors import PluginError, RunCancelled
from ..format import nbytes as format_bytes      # sizes as every face writes them (MiB)
from ..models import hf_heads     # attention heads removed from an HF model (prune plugin and loader share it)
from ..models.info import count_flops, count_parameters, model_bytes
from ..models.outputs import first_output
from ..spec import device_kind
from .api import (DEVICE_KINDS, FORMATS, Param, Plugin, PluginContext, PluginReport, match_patterns,
                  split_patterns)
from .chain import ChainStep, build_chain, chain_error, chain_warnings, require_some_change
from .registry import ENTRY_POINT_GROUP, PluginInfo, discover_plugins, get_plugin_class

__all__ = ["DEVICE_KINDS", "ENTRY_POINT_GROUP", "FORMATS", "ChainStep", "Param", "Plugin", "PluginContext",
           "PluginError", "PluginInfo", "PluginReport", "RunCancelled", "build_chain", "chain_error",
           "count_flops", "count_parameters", "device_kind", "discover_plugins", "first_output", "format_bytes", "get_plugin_class", "hf_heads",
           "model_bytes", "chain_warnings", "match_patterns", "require_some_change", "split_patterns"]
