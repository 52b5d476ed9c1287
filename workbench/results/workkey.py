"""What a run's work is: everything that changes what one timed call does, as one comparable key.

A baseline is only a baseline of runs that did the same work (``compare``'s rule), so the key holds
what was really run, not only what was asked: the input shapes and dtypes the worker resolved
(``result["inputs"]``, filled from the model when the spec gives none), the threads in force, the
runtime that ran, and the *content* of the files read (model, data, text: a file changed under the
same path is different work). File digests are taken when a run is created (``store.create_run``)
and when a run is planned, so an old baseline of an edited file is never matched.

Runs stored before digests were recorded have none; they match only one another (by path).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..spec import InputSpec, resolve_runtime

FILE_FIELDS = ("model", "data", "text")   # spec fields that name files whose content changes the work
# Spec fields compared as they are (the rest is compared as resolved by the worker).
SPEC_FIELDS = ("model", "factory", "device", "dtype", "task", "prompt", "seq_len", "prompt_len", "gen_len")
_CHUNK = 1 << 20
_digests: dict[tuple, str] = {}           # (path, stat signature) -> sha256, per process


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a file's content, or of a folder's files (names and contents, e.g. a Hugging Face
    folder); None when ``path`` is not there. Cached per process by size and modification time."""
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file())
            signature = tuple((f.relative_to(p).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        elif p.is_file():
            stat = p.stat()
            files, signature = [p], ((p.name, stat.st_size, stat.st_mtime_ns),)
        else:
            return None
        key = (str(p.resolve()), signature)
        if key not in _digests:
            digest = hashlib.sha256()
            for f, (name, _size, _mtime) in zip(files, signature):
                if p.is_dir():
                    digest.update(name.encode() + b"\0")
                with open(f, "rb") as handle:
                    for chunk in iter(lambda: handle.read(_CHUNK), b""):
                        digest.update(chunk)
            _digests[key] = digest.hexdigest()
        return _digests[key]
    except OSError:
        return None


def file_digests(spec: dict) -> dict[str, str | None]:
    """The digest of every file ``spec`` reads (``FILE_FIELDS`` that are set; demos have none)."""
    found = {}
    for name in FILE_FIELDS:
        value = spec.get(name)
        if value and not (name == "model" and str(value).startswith("demo:")):
            found[name] = file_digest(value)
    return found


def native_runtime(spec: dict) -> str:
    """The runtime the model file runs on by itself: ONNX Runtime for .onnx, torch otherwise."""
    return resolve_runtime("auto", "onnx" if str(spec.get("model", "")).lower().endswith(".onnx") else "torch")


def _files(spec: dict, digests: dict | None) -> dict:
    """Each file the spec reads, by content when its digest was recorded, else by path (older runs)."""
    out = {}
    for name in FILE_FIELDS:
        value = spec.get(name)
        if value and not (name == "model" and str(value).startswith("demo:")):
            digest = (digests or {}).get(name)
            out[name] = f"sha256:{digest}" if digest else f"path:{value}"
    return out


def _spec_inputs(spec: dict) -> list[str]:
    return [str(i if isinstance(i, InputSpec) else InputSpec(**i)) for i in spec.get("inputs") or []]


def run_key(spec: dict, result: dict, runtime: str | None, digests: dict | None) -> dict[str, Any]:
    """The work a stored run did: spec fields, the files by content, and what the worker resolved
    (inputs with their batch, threads, scenario, prompt and generated tokens, runtime)."""
    latency = result.get("latency") or {}
    generation = result.get("generation") or {}
    scenario = result.get("scenario") or spec.get("scenario", "auto")
    if scenario == "auto" and result:
        scenario = "generate" if generation else "forward"
    key = {name: spec.get(name) for name in SPEC_FIELDS}
    key.update(
        files=_files(spec, digests), runtime=runtime,
        inputs=list(result["inputs"]) if result.get("inputs") else ["asked"] + _spec_inputs(spec),
        batch=latency.get("batch") or generation.get("batch") or spec.get("batch"),
        threads=result.get("threads") or spec.get("threads"), scenario=scenario,
        tokens=[generation.get("prompt_tokens"), generation.get("new_tokens")] if generation else None)
    if not result.get("inputs"):      # not resolved (older or unfinished run): what was asked counts
        key["batch"] = spec.get("batch")
    return key


def planned_key(spec: dict, runtime: str, threads: int, digests: dict) -> dict[str, Any]:
    """The part of a future run's key that is known before it runs: the spec as asked, the files by
    content, the runtime and threads it will resolve to (``matches_plan`` compares it)."""
    key = {name: spec.get(name) for name in SPEC_FIELDS}
    key.update(files=_files(spec, digests), runtime=runtime, inputs=_spec_inputs(spec), batch=spec.get("batch"),
               threads=threads, scenario=spec.get("scenario", "auto"))
    return key


def stored_plan_key(spec: dict, result: dict, runtime: str | None, digests: dict | None) -> dict[str, Any]:
    """A stored run's key in ``planned_key``'s terms (asked inputs and batch, resolved threads)."""
    key = {name: spec.get(name) for name in SPEC_FIELDS}
    key.update(files=_files(spec, digests), runtime=runtime, inputs=_spec_inputs(spec), batch=spec.get("batch"),
               threads=result.get("threads", spec.get("threads")), scenario=spec.get("scenario", "auto"))
    return key


def differences(a: dict, b: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The key fields on which ``a`` and ``b`` differ, in words ("inputs: x=1x64 vs x=1x512")."""
    out = []
    for name in a.keys() | b.keys():
        if name in ignore or a.get(name) == b.get(name):
            continue
        out.append(f"{name}: {_show(a.get(name))} vs {_show(b.get(name))}")
    return sorted(out)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {str(v)[:19]}" for k, v in sorted(value.items())) or "none"
    return str(value)
