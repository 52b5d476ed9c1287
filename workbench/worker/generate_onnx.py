"""Greedy generation on ONNX Runtime, for a causal LM exported with its KV cache
(``plugin_api.onnx_cache_export``): the same contract as ``generate.GreedyDecoder``.

Each step is one ``run_with_iobinding``: the new token(s), the attention mask over past + new,
their positions, and the previous step's ``present`` tensors bound back as ``past_key_values``
where they lie (no copy; only the logits come back to the host, for the argmax). The prefill binds
pasts of length 0. ``run`` is synchronous on every execution provider, so ``perf_counter_ns``
around a step times it.
"""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from ..errors import PluginError
from ..spec import device_kind
from .generate import Generation

_ITEM_BYTES = {"tensor(float)": 4, "tensor(float16)": 2, "tensor(bfloat16)": 2, "tensor(double)": 8}


class _Sized:
    """A cache tensor's size without its data (``generate.cache_bytes`` reads numel / element_size):
    a finished generation keeps no device memory alive."""

    def __init__(self, shape: list[int], item_bytes: int) -> None:
        self.shape, self.item_bytes = shape, item_bytes

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def element_size(self) -> int:
        return self.item_bytes


def _cache_sizes(presents: list) -> Any:
    """The presents of the last step as ``cache_tensors`` reads a cache (``layers`` of keys/values)."""
    sized = [_Sized(list(v.shape()), _ITEM_BYTES.get(v.data_type(), 4)) for v in presents]
    return SimpleNamespace(layers=[SimpleNamespace(keys=k, values=v) for k, v in zip(sized[0::2], sized[1::2])])


def layout_config(layout: Any) -> Any:
    """What ``generate.expected_cache_bytes`` and the continuation prompts read from a model config."""
    same = len(set(layout.kv_heads)) == 1 and len(set(layout.head_dims)) == 1
    return SimpleNamespace(num_hidden_layers=layout.layers if same else None,
                           num_attention_heads=layout.kv_heads[0], num_key_value_heads=layout.kv_heads[0],
                           head_dim=layout.head_dims[0], max_position_embeddings=layout.max_positions)


class OnnxGreedyDecoder:
    """Greedy decoding through a prepared ``OnnxRuntime`` whose model takes the KV cache."""

    cuda = False          # host-timed: ORT's run returns when its outputs are ready

    def __init__(self, runtime: Any) -> None:
        import torch
        self.layout = getattr(runtime, "cache_layout", None)
        if self.layout is None or getattr(runtime, "session", None) is None:
            raise PluginError("--scenario generate on ONNX Runtime needs a model exported with its KV cache "
                              "(onnx_export:with_cache=true)")
        self.torch, self.session, self.device = torch, runtime.session, runtime.device
        self.config = layout_config(self.layout)
        self.output_device = "cuda" if device_kind(runtime.device) == "cuda" else "cpu"
        self.device_id = int(runtime.device.split(":")[1]) if ":" in str(runtime.device) else 0
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.past_names = self.layout.past_names()
        self.dtype = np.dtype(self.layout.dtype) if self.layout.dtype != "bfloat16" else np.float32
        self.binding = self.session.io_binding()
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None   # dynamic_batch=false

    def step(self, ids: np.ndarray, mask: np.ndarray, pasts: list) -> tuple[np.ndarray, list]:
        """One call: the next greedy token (batch, 1) and the presents (OrtValues) for the next call.
        ``pasts``: OrtValues, or host arrays (the empty pasts of a prefill)."""
        from ..plugin_api.onnx_cache_export import positions_from_mask
        binding = self.binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        if self.layout.position_ids:
            positions = np.ascontiguousarray(positions_from_mask(mask, ids.shape[1]))
            binding.bind_cpu_input("position_ids", positions)
        for name, value in zip(self.past_names, pasts):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.output_device, self.device_id)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        logits = outputs[0].numpy()
        token = logits[:, -1].argmax(-1)[:, None].astype(np.int64)
        return token, outputs[1:]

    def empty_pasts(self, batch: int) -> list[np.ndarray]:
        return [np.zeros(self.layout.past_shape(i // 2, batch, 0), self.dtype) for i in range(len(self.past_names))]

    def run(self, prompt_ids: Any, gen_len: int, cancelled: Callable[[], bool] = lambda: False) -> Generation | None:
        """Generate exactly ``gen_len`` tokens after ``prompt_ids`` (batch, prompt_len); None if cancelled."""
        ids = np.ascontiguousarray(prompt_ids.cpu().numpy() if hasattr(prompt_ids, "cpu") else prompt_ids,
                                   dtype=np.int64)
        if self.fixed_batch is not None and len(ids) != self.fixed_batch:
            return self._run_in_chunks(ids, gen_len, cancelled)
        clock = time.perf_counter_ns
        batch, length = ids.shape
        start = clock()
        pasts = self.empty_pasts(batch)
        t0 = clock()
        token, pasts = self.step(ids, np.ones((batch, length), np.int64), pasts)
        prefill = clock() - t0
        tokens, decode = [token], []
        decode_start = time.monotonic()
        for index in range(gen_len - 1):
            if cancelled():
                return None
            t0 = clock()
            token, pasts = self.step(token, np.ones((batch, length + index + 1), np.int64), pasts)
            decode.append(clock() - t0)
            tokens.append(token)
        end = clock()
        new_tokens = self.torch.from_numpy(np.concatenate(tokens, 1))
        return Generation(prefill, decode, end - start, new_tokens, _cache_sizes(pasts), decode_start,
                          time.monotonic())

    def _run_in_chunks(self, ids: np.ndarray, gen_len: int, cancelled: Callable[[], bool]) -> Generation | None:
        """Prompts in another batch size than a fixed-batch export's (the continuation prompts): one
        generation per chunk of that size, the last padded with copies of its last row; untimed use only."""
        size, rows = self.fixed_batch, len(ids)
        chunks = []
        for start in range(0, rows, size):
            chunk = ids[start:start + size]
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), 0)]) if len(chunk) < size else chunk
            generation = self.run(chunk, gen_len, cancelled)
            if generation is None:
                return None
            chunks.append(generation)
        tokens = self.torch.cat([g.tokens for g in chunks])[:rows]
        first = chunks[0]
        return Generation(first.prefill_ns, first.decode_ns, sum(g.total_ns for g in chunks), tokens, chunks[-1].cache,
                          first.decode_start, chunks[-1].decode_end)
