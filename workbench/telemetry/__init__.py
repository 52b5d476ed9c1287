"""Telemetry: psutil readings of the worker process and NVML readings of the GPU, sampled in a
background thread, plus energy-per-inference from those samples.

Importing this package never imports pynvml (that happens when a GPU is selected), torch or Qt.
"""
from .contention import assess_cpu_contention
from .energy import EnergyEstimate, energy_per_inference
from .host import HostProcessProbe, current_load_average, host_environment
from .nvml import NvmlGpu, NvmlUnavailable, gpu_environment
from .sampler import SAMPLE_FIELDS, TelemetrySample, TelemetrySampler

__all__ = [
    "assess_cpu_contention",
    "EnergyEstimate", "energy_per_inference",
    "HostProcessProbe", "current_load_average", "host_environment",
    "NvmlGpu", "NvmlUnavailable", "gpu_environment",
    "SAMPLE_FIELDS", "TelemetrySample", "TelemetrySampler",
]
