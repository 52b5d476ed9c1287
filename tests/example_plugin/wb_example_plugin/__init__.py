"""A third-party plugin: multiplies a torch model's outputs by a factor (so fidelity visibly moves)."""
from workbench.plugin_api import Param, Plugin, PluginReport


class ScaleOutputs(Plugin):
    name = "scale_outputs"
    summary = "Multiply the model's outputs by a constant (example third-party plugin)."
    params_schema = (Param("factor", "float", 2.0, "output multiplier", minimum=0.0, exclusive_min=True),)
    accepts = ("torch",)
    devices = ("cpu", "cuda")

    def apply(self, model, context):
        import torch

        factor = self.params["factor"]

        class Scaled(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *args):
                return self.inner(*args) * factor

        return Scaled(model), PluginReport(plugin=self.name, summary=f"outputs × {factor:g}")
