"""Open a Hugging Face folder (config.json + weights + tokenizer files) as an ``HFForward``.

Always offline (``local_files_only`` and HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set before
transformers is imported), never a folder's own code without ``trust_remote_code``, never a
``.bin`` pickle without ``trust_pickle`` (and then ``weights_only=True`` first). Everything that
can be refused is refused before transformers builds anything, one line naming the file or key.
This module imports nothing heavy at import time (the parent side checks folders through it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelLoadError
from ..spec import InputSpec
from .loaded import TRUST_HINT, LoadedModel, error_detail

CONFIG = "config.json"
SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
PICKLE_BIN, PICKLE_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "tokenizer.model")
POOLING_CONFIG = Path("1_Pooling") / "config.json"
DEFAULT_MAX_SEQ = 128           # the declared sequence length, capped by the model's positions
LISTED_NAMES = 8                # a folder's contents named in a message, at most


def hf_folder_of(source: str | Path) -> Path | None:
    """The folder a source names when it is a Hugging Face model: the folder itself, or the folder
    of a ``config.json`` given directly; None for anything else."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.name == CONFIG and path.is_file():
        return path.parent
    return None


def is_hf_folder(source: str | Path) -> bool:
    folder = hf_folder_of(source)
    return folder is not None and (folder / CONFIG).is_file()


def folder_contents(folder: Path) -> str:
    """What a folder holds, in words, for a message ('it is empty', 'it holds: a, b, c and 4 more')."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as exc:
        return f"it cannot be listed: {exc.strerror or exc}"
    if not names:
        return "it is empty"
    more = f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else ""
    return "it holds: " + ", ".join(names[:LISTED_NAMES]) + more


def force_offline() -> None:
    """Set before transformers / huggingface_hub are imported: they read these at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")     # no progress bars in the worker's stderr


# -- the folder, read without transformers ------------------------------------------------------
def source_task(source: str, task: str = "auto") -> str | None:
    """The task an HF folder will open as, read without torch from its config.json (``task`` when
    it is given); None for other sources or an unreadable config."""
    from .hf_tasks import task_of_architecture
    folder = hf_folder_of(source)
    if folder is None or not (folder / CONFIG).is_file():
        return None
    if task != "auto":
        return task
    try:
        names = read_config(folder).get("architectures") or []
    except ModelLoadError:
        return None         # the worker says what is wrong with it
    return task_of_architecture(str(names[0])) if names else None


def read_config(folder: Path) -> dict:
    if not (folder / CONFIG).is_file():
        raise ModelLoadError(f"{folder} is a folder without {CONFIG}, so not a Hugging Face model folder "
                             f"({folder_contents(folder)})")
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{folder / CONFIG} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{folder / CONFIG} holds a JSON {type(config).__name__}, not an object")
    return config


def weights_files(folder: Path, trust_pickle: bool) -> tuple[str, list[Path]]:
    """``(how the weights are stored, in words; the files)``; ``("", [])`` for a config-only folder.
    A shard index naming a missing file, or pickled ``.bin`` weights without ``trust_pickle``, is refused."""
    for index_name, single in ((SAFETENSORS_INDEX, SAFETENSORS), (PICKLE_INDEX, PICKLE_BIN)):
        index = folder / index_name
        if index.is_file():
            shards = _shards(index)
            if single == PICKLE_BIN:
                _refuse_pickle(index_name, trust_pickle)
            return f"{len(shards)} {'safetensors' if single == SAFETENSORS else '.bin'} shards", shards
        if (folder / single).is_file():
            if single == PICKLE_BIN:
                _refuse_pickle(single, trust_pickle)
            return single, [folder / single]
    return "", []


def _shards(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = list(dict.fromkeys(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{index} is not a shard index (a JSON object with a 'weight_map'): "
                             f"{type(exc).__name__}: {exc}") from None
    for name in names:
        if not (index.parent / name).is_file():
            raise ModelLoadError(f"{index.name} names the weights file {name}, which is not in {index.parent}")
    return [index.parent / name for name in names]


def _refuse_pickle(name: str, trust_pickle: bool) -> None:
    if not trust_pickle:
        raise ModelLoadError(f"the weights {name} are a Python pickle (.bin), which can run code when "
                             f"loaded; a safetensors copy (model.safetensors) needs no trust. {TRUST_HINT}")


def sentence_pooling(folder: Path) -> tuple[str, str | None]:
    """``(pooling, note)`` from sentence-transformers' 1_Pooling/config.json: cls or mean."""
    path = folder / POOLING_CONFIG
    if not path.is_file():
        return "mean", None
    try:
        modes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "mean", f"{POOLING_CONFIG} is not valid JSON: mean pooling used"
    if modes.get("pooling_mode_cls_token"):
        return "cls", None
    if modes.get("pooling_mode_mean_tokens"):
        return "mean", None
    declared = [k.removeprefix("pooling_mode_") for k, v in modes.items() if k.startswith("pooling_mode") and v]
    return "mean", f"the folder's pooling ({', '.join(declared) or 'none'}) is not supported: mean pooling used"


def choose_task(config: dict, folder: Path, task: str) -> tuple[str, str]:
    """``(task, architecture named in config.json)``; ``task`` other than "auto" overrides."""
    from .hf_tasks import task_of_architecture
    architectures = config.get("architectures") or []
    named = str(architectures[0]) if architectures else ""
    if task != "auto":
        return task, named
    if not named:
        raise ModelLoadError(f"{folder / CONFIG} names no architectures, so the task is unknown: pass --task "
                             "(causal-lm, masked-lm, feature-extraction, ...)")
    found = task_of_architecture(named)
    if found is None:
        raise ModelLoadError(f"{folder / CONFIG} names the architecture {named}, which maps to no task Workbench "
                             "opens: pass --task (causal-lm, masked-lm, feature-extraction, ...)")
    return found, named


# -- building the model -------------------------------------------------------------------------
def load_hf_folder(folder: Path, trust_pickle: bool = False, trust_remote_code: bool = False, task: str = "auto",
                   on_step: Callable[[str], None] | None = None) -> Any:
    """A ``LoadedModel`` (format "hf") whose model is an ``HFForward``."""
    step = on_step or (lambda words: None)
    raw = read_config(folder)
    custom = raw.get("auto_map")
    if custom and not trust_remote_code:
        raise ModelLoadError(f"{folder / CONFIG} asks to run the folder's own Python code (auto_map: "
                             f"{', '.join(sorted(custom))}); re-run with --trust-remote-code if you trust it")
    task, named = choose_task(raw, folder, task)
    how, files = weights_files(folder, trust_pickle)
    force_offline()
    step("importing transformers")
    import torch
    import transformers

    transformers.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()      # its load reports become our notes and errors
    from .hf import AUTO_CLASSES, RANDOM_WEIGHTS_NOTE, HFForward, HFImageForward, HFModelInfo
    if not custom:
        _check_known(raw, named, task, folder, transformers)
    options = {"local_files_only": True, "trust_remote_code": bool(custom) and trust_remote_code}
    if custom:
        step(f"running the code of {folder} (--trust-remote-code)")
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), **options)
    except Exception as exc:
        raise ModelLoadError(f"{folder / CONFIG} cannot be read by transformers {transformers.__version__}: "
                             f"{error_detail(exc)}") from None
    auto = getattr(transformers, AUTO_CLASSES[task])
    auto = _with_pruned_heads(auto, config, folder)
    notes = []
    if files:
        step(f"loading the weights ({how})")
        model = _from_pretrained(auto, folder, config, options, how, task != _auto_task(named),
                                 trust_pickle, notes, transformers.__version__)
    else:
        step("building the model with random weights (config.json only)")
        try:
            model = auto.from_config(config, trust_remote_code=options["trust_remote_code"], dtype=torch.float32)
        except Exception as exc:
            raise _not_buildable(exc, config, task, auto, transformers.__version__) from None
        notes.append(RANDOM_WEIGHTS_NOTE)
    stored = raw.get("dtype") or raw.get("torch_dtype")
    if files and stored and stored != "float32":
        notes.append(f"weights stored as {stored}, loaded as float32 (--dtype {stored} runs them in {stored})")
    if custom:
        notes.append("the folder's own code ran (--trust-remote-code)")
    tokenizer = _tokenizer(folder, options, notes, step)
    pooling, pooling_note = sentence_pooling(folder)
    if pooling_note:
        notes.append(pooling_note)
    info = HFModelInfo(str(folder), task, config, tokenizer, not files, type(model).__name__, pooling=pooling,
                       weights=how)
    wrapper = (HFImageForward if info.is_image else HFForward)(model, task, pooling, tokenizer)
    inputs = declared_inputs(config, info.is_image)
    return LoadedModel(wrapper, "hf", "torch", inputs, info.is_image, default_batch=1, notes=notes, hf=info)


def _with_pruned_heads(auto: Any, config: Any, folder: Path) -> Any:
    """A folder saved after Workbench removed attention heads its config cannot express natively
    (``workbench_attention_heads``): the class that rebuilds those heads before the weights load."""
    from .hf_heads import CONFIG_KEY, model_class
    try:
        return model_class(auto, config)
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(f"{folder / CONFIG}: {CONFIG_KEY} cannot be applied: {error_detail(exc)}") from None


def _auto_task(named: str) -> str | None:
    from .hf_tasks import task_of_architecture
    return task_of_architecture(named) if named else None


def _check_known(raw: dict, named: str, task: str, folder: Path, transformers: Any) -> None:
    """An unknown model_type or architecture, refused in one line before transformers tries."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    model_type = raw.get("model_type")
    version = transformers.__version__
    if not model_type:
        raise ModelLoadError(f"{folder / CONFIG} has no model_type, so transformers cannot tell which model it is")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(f"{folder / CONFIG} names model_type {model_type!r}, which transformers {version} "
                             "does not know (a newer transformers, or a folder with custom code?)")
    if named and _auto_task(named) == task and not hasattr(transformers, named):
        raise ModelLoadError(f"{folder / CONFIG} names the architecture {named}, which transformers {version} "
                             "does not have")


def _from_pretrained(auto: Any, folder: Path, config: Any, options: dict, how: str, task_overridden: bool,
                     trust_pickle: bool, notes: list[str], version: str) -> Any:
    import torch

    # mismatched shapes come back in the loading info (refused below, naming the keys), not as an error
    kwargs = dict(options, config=config, dtype=torch.float32, output_loading_info=True,
                  ignore_mismatched_sizes=True)
    try:
        model, loading = auto.from_pretrained(str(folder), weights_only=True, **kwargs)
    except Exception as exc:
        if not (trust_pickle and ".bin" in how and _is_unpickling_error(exc)):
            raise _weights_error(exc, folder, how, config, auto, version) from None
        try:        # --trust-pickle: a .bin that needs more than weights_only
            model, loading = auto.from_pretrained(str(folder), weights_only=False, **kwargs)
        except Exception as exc2:
            raise _weights_error(exc2, folder, how, config, auto, version) from None
        notes.append("loaded with --trust-pickle (code from the weights file was executed)")
    missing = list(loading.get("missing_keys") or [])
    unexpected = list(loading.get("unexpected_keys") or [])
    mismatched = [f"{k} (weights {list(a)}, config {list(b)})" for k, a, b in sorted(loading.get("mismatched_keys") or [])]
    if mismatched:
        raise ModelLoadError(f"the weights in {folder.name} ({how}) do not fit config.json: "
                             f"shapes differ for {_keys(mismatched)}")
    if task_overridden:     # another head than the checkpoint's: its own weights are new, the old head unused
        if missing:
            notes.append(f"not in the weights, randomly initialized: {_keys(sorted(missing))}")
        if unexpected:
            notes.append(f"weights not used by this task: {_keys(sorted(unexpected))}")
    elif missing or unexpected:
        parts = ([f"missing {_keys(sorted(missing))}"] if missing else []) + \
                ([f"unexpected {_keys(sorted(unexpected))}"] if unexpected else [])
        raise ModelLoadError(f"the weights in {folder.name} ({how}) do not fit config.json: {'; '.join(parts)}")
    return model


def _keys(keys: list[str], shown: int = 3) -> str:
    """The first keys in full (a message never cuts a key), and how many more."""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _is_unpickling_error(exc: BaseException) -> bool:
    import pickle
    text = str(exc)
    return isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Weights only load failed" in text


def _weights_error(exc: BaseException, folder: Path, how: str, config: Any, auto: Any, version: str) -> ModelLoadError:
    text = str(exc)
    if "Unrecognized configuration class" in text:
        return _not_buildable(exc, config, None, auto, version)
    return ModelLoadError(f"the weights in {folder.name} ({how}) failed to load: {type(exc).__name__}: "
                          f"{error_detail(exc)}")


def _not_buildable(exc: BaseException, config: Any, task: str | None, auto: Any, version: str) -> ModelLoadError:
    if "Unrecognized configuration class" in str(exc):
        return ModelLoadError(f"a {config.model_type} model cannot be opened as {task or auto.__name__}: "
                              f"transformers {version} has no {auto.__name__} for {type(config).__name__}")
    return ModelLoadError(f"building the model from config.json failed: {type(exc).__name__}: {error_detail(exc)}")


def _tokenizer(folder: Path, options: dict, notes: list[str], step: Callable[[str], None]) -> Any:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    step("loading the tokenizer")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), **options)
    except Exception as exc:
        notes.append(f"the folder's tokenizer did not load ({type(exc).__name__}: {error_detail(exc)})")
        return None


def max_positions(config: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def declared_inputs(config: Any, image: bool) -> list[InputSpec]:
    """input_ids + attention_mask [-1, seq] (seq = min(128, positions)), or pixel_values [-1, C, H, W]."""
    if image:
        size = getattr(config, "image_size", 224)
        height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
        return [InputSpec([-1, int(getattr(config, "num_channels", 3)), int(height), int(width)], "float32",
                          "pixel_values")]
    seq = min(DEFAULT_MAX_SEQ, max_positions(config) or DEFAULT_MAX_SEQ)
    return [InputSpec([-1, seq], "int64", "input_ids"), InputSpec([-1, seq], "int64", "attention_mask")]
