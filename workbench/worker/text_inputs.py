"""Text -> inputs for token models (Hugging Face folders, ``demo:tiny-lm``).

API (the pipeline calls it once, after loading)::

    build_token_inputs(tokenizer, vocab_size, max_positions, *, text_path=None, prompt=None,
                       seq_len=None, batch=1, seed=0, task="causal-lm", prompt_len=None,
                       gen_len=None, fidelity_sequences=32, calibration_sequences=256) -> TokenInputs

``tokenizer`` is a ``transformers`` tokenizer or None; ``vocab_size`` and ``max_positions`` come from
the model's config (``vocab_size``, ``max_position_embeddings``; None = no limit). Every array is
int64. ``TokenInputs`` holds:

* ``measure``      ``[input_ids, attention_mask]``, each (batch, seq_len): the timed batch.
* ``fidelity``     the same for N held-out sequences (compared against the unoptimized model).
* ``calibration``  ``[input_ids, attention_mask]`` from the *train* part, for plugins that need data
                   (static quantization, distillation); None without real text.
* ``eval_ids`` / ``eval_mask``  causal LMs: held-out windows for perplexity (== ``fidelity``), the
                   mask 0 only on padding; None for other tasks or without a tokenizer.
* ``prompt_ids``   causal LMs: (batch, prompt_len) prompts for generation: ``--prompt`` repeated
                   over the batch, else distinct held-out windows; None for other tasks.
* ``specs``, ``seq_len``, ``prompt_len``, ``pad_token_id``, ``source`` (words), ``flags`` (strings
  to show with every figure), and ``run_inputs()`` for the forward pipeline (``inputs.RunInputs``).

Where the text comes from: ``--text FILE`` (UTF-8), else the bundled corpus (``assets/corpus.txt``,
written by ``assets/make_corpus.py``). Either is split once by :func:`split_text`: the last
``HELD_OUT_FRACTION`` of the characters, from a paragraph (or line) start, is held out for fidelity
and perplexity; calibration and training data come only from the part before it. ``demo:tiny-lm``
was trained on ``corpus_splits().train`` (``assets/make_tiny_lm.py`` uses these same functions).

Causal LMs read the text as one token stream (each paragraph, then EOS) cut into windows of
``seq_len``; other tasks (encoders, classifiers) read one example per non-empty line, with the
tokenizer's special tokens. Padding uses the tokenizer's pad token, or EOS where it has none, with
``attention_mask`` 0 on every pad. Without a tokenizer the ids are drawn uniformly from
``[0, vocab_size)`` and flagged (:data:`SYNTHETIC_FLAG`).

Bad input is one line: an empty or non-UTF-8 text file, text or a prompt without a tokenizer, a
tokenizer whose ids do not fit the model's vocabulary, a sequence or prompt longer than the model's
positions (both numbers named).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError, SpecError
from ..spec import DEFAULT_PROMPT_LEN, InputSpec

CORPUS_FILE = "corpus.txt"
HELD_OUT_FRACTION = 0.1
DEFAULT_SEQ_LEN = 128
FIDELITY_SEQUENCES = 32
CALIBRATION_SEQUENCES = 256
PROMPT_SHORTENED = "prompt shortened to"
MAX_TEXT_CHARS = 8_000_000      # a larger --text is cut here (tokenizing it all would take minutes)
SYNTHETIC_FLAG = "synthetic token ids: fidelity on meaningless input"
SHARED_SPLIT_FLAG = "the text is too short to hold a part out: calibration and evaluation use the same text"


@dataclass
class TextSplits:
    train: str          # calibration / training text
    heldout: str        # evaluation text (fidelity, perplexity), disjoint from ``train``
    boundary: int       # ``heldout`` starts at this character of the whole text
    shared: bool = False  # too short to split: both parts are the whole text


@dataclass
class TokenInputs:
    specs: list[InputSpec]
    measure: list[np.ndarray]
    fidelity: list[np.ndarray]
    calibration: list[np.ndarray] | None
    eval_ids: np.ndarray | None
    eval_mask: np.ndarray | None
    prompt_ids: np.ndarray | None
    seq_len: int
    prompt_len: int | None
    pad_token_id: int
    source: str
    flags: list[str] = field(default_factory=list)

    @property
    def eval_tokens(self) -> int:
        """Real (unpadded) held-out tokens in ``eval_ids``."""
        return 0 if self.eval_mask is None else int(self.eval_mask.sum())

    def run_inputs(self):
        """The forward pipeline's view (``inputs.RunInputs``): measure and fidelity batches."""
        from .inputs import RunInputs
        return RunInputs(self.specs, self.measure, self.fidelity, None, self.source)


# -- text ---------------------------------------------------------------------------------------
def corpus_path() -> Path:
    from ..models.demos import assets_dir
    return Path(assets_dir()) / CORPUS_FILE


def corpus_text() -> str:
    """The bundled corpus (UTF-8 English text the project generates itself; Apache-2.0)."""
    path = corpus_path()
    if not path.is_file():
        raise SpecError(f"the bundled text corpus is missing ({path}); reinstall workbench or pass --text FILE")
    return path.read_text(encoding="utf-8")


def corpus_splits() -> TextSplits:
    """The bundled corpus split into its train part and its held-out part (:func:`split_text`)."""
    return split_text(corpus_text())


def read_text_file(path: str | Path) -> str:
    """A ``--text`` file's contents; one-line errors for a missing, empty or non-UTF-8 file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SpecError(f"text file not found: {p}")
    if p.is_dir():
        raise SpecError(f"--text {p} is a folder; give a UTF-8 text file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the text file {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save it as UTF-8") from None
    if not text.strip():
        raise SpecError(f"the text file {p.name} is empty" + (" (only whitespace)" if raw else "")
                        + ": give some text, or leave out --text to use the bundled corpus")
    return text


def split_text(text: str, held_out: float = HELD_OUT_FRACTION) -> TextSplits:
    """Hold out the last ``held_out`` of the characters, from the first paragraph start (else line
    start, else word start) at or after that point; the train part is everything before it."""
    target = int(len(text) * (1.0 - held_out))
    for mark in ("\n\n", "\n", " "):
        for at in (text.find(mark, target), text.rfind(mark, 0, target)):   # after the point, else before
            boundary = at + len(mark)
            if at != -1 and text[:boundary].strip() and text[boundary:].strip():
                return TextSplits(text[:boundary], text[boundary:], boundary)
    return TextSplits(text, text, 0, shared=True)


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, stripped, empty ones dropped."""
    return [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]


def lines(text: str) -> list[str]:
    """Non-empty lines, stripped (one example each for encoders and classifiers)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


# -- tokens -------------------------------------------------------------------------------------
def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's pad token, else its EOS, else 0 (pads are masked out either way)."""
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None) if tokenizer is not None else None
        if isinstance(value, int):
            return value
    return 0


def encode(tokenizer: Any, texts: list[str], special_tokens: bool = False) -> list[list[int]]:
    """Token ids of each text (no truncation, no padding)."""
    if not texts:
        return []
    return list(tokenizer(texts, add_special_tokens=special_tokens, verbose=False)["input_ids"])


def token_stream(tokenizer: Any, text: str) -> np.ndarray:
    """The text as one stream of ids: each paragraph followed by EOS (where the tokenizer has one)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    ids: list[int] = []
    for chunk in encode(tokenizer, paragraphs(text)):
        ids.extend(chunk)
        if isinstance(eos, int):
            ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


def windows(stream: np.ndarray, seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a stream into consecutive (n, seq_len) windows; the last, partial one is padded (mask 0)."""
    n = max(1, -(-len(stream) // seq_len))
    ids = np.full((n, seq_len), pad_id, dtype=np.int64)
    mask = np.zeros((n, seq_len), dtype=np.int64)
    flat_ids, flat_mask = ids.reshape(-1), mask.reshape(-1)
    flat_ids[:len(stream)] = stream
    flat_mask[:len(stream)] = 1
    if n > 1 and mask[-1].sum() < seq_len:   # a short tail: drop it rather than pad most of a row
        ids, mask = ids[:-1], mask[:-1]
    return ids, mask


def padded_examples(tokenizer: Any, texts: list[str], seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """One row per text, with special tokens, truncated to ``seq_len`` and right-padded (mask 0)."""
    rows = encode(tokenizer, texts, special_tokens=True)
    ids = np.full((len(rows), seq_len), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), seq_len), dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[:seq_len]
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return ids, mask


def spread(arrays: list[np.ndarray], count: int | None) -> list[np.ndarray]:
    """At most ``count`` rows, evenly spaced over all of them (deterministic)."""
    n = len(arrays[0])
    if count is None or n <= count:
        return arrays
    index = np.linspace(0, n - 1, count).round().astype(np.int64)
    return [a[index] for a in arrays]


def first_rows(arrays: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The first ``count`` rows, repeating them when there are fewer."""
    n = len(arrays[0])
    index = np.arange(count) % n
    return [np.ascontiguousarray(a[index]) for a in arrays]


def check_vocabulary(arrays: list[np.ndarray], vocab_size: int | None, tokenizer: Any) -> None:
    """Every id must be a row of the model's embedding: a tokenizer from another model is refused."""
    if vocab_size is None:
        return
    top = max((int(a.max()) for a in arrays if a is not None and a.size), default=-1)
    if top >= vocab_size:
        size = len(tokenizer) if tokenizer is not None and hasattr(tokenizer, "__len__") else "?"
        raise ModelLoadError(f"the tokenizer does not match the model: it gives token id {top} but the model's "
                             f"vocabulary has {vocab_size} ids (vocab_size in config.json; the tokenizer has "
                             f"{size} tokens)")


# -- lengths ------------------------------------------------------------------------------------
def _check_fits(what: str, length: int, max_positions: int | None) -> None:
    if max_positions is not None and length > max_positions:
        raise SpecError(f"{what} is longer than the model's {max_positions} positions "
                        f"(max_position_embeddings)")


def _lengths(max_positions: int | None, seq_len: int | None, prompt_len: int | None,
             gen_len: int | None, causal: bool) -> tuple[int, int | None, list[str]]:
    notes = []
    if seq_len is not None:
        _check_fits(f"--seq-len {seq_len}", seq_len, max_positions)
    else:
        seq_len = min(DEFAULT_SEQ_LEN, max_positions or DEFAULT_SEQ_LEN)
    if not causal:
        return seq_len, None, notes
    if prompt_len is not None:
        _check_fits(f"--prompt-len {prompt_len}", prompt_len, max_positions)
        if gen_len:
            _check_fits(f"--prompt-len {prompt_len} + --gen-len {gen_len} = {prompt_len + gen_len} tokens",
                        prompt_len + gen_len, max_positions)
    else:
        prompt_len = DEFAULT_PROMPT_LEN
        if max_positions is not None and prompt_len + (gen_len or 0) > max_positions:
            prompt_len = max(1, max_positions - (gen_len or 0))
            notes.append(f"{PROMPT_SHORTENED} {prompt_len} tokens to fit the model's {max_positions} positions")
    return seq_len, prompt_len, notes


# -- the inputs of a run ------------------------------------------------------------------------
def build_token_inputs(tokenizer: Any, vocab_size: int | None, max_positions: int | None, *,
                       text_path: str | None = None, prompt: str | None = None, seq_len: int | None = None,
                       batch: int = 1, seed: int = 0, task: str = "causal-lm", prompt_len: int | None = None,
                       gen_len: int | None = None, fidelity_sequences: int = FIDELITY_SEQUENCES,
                       calibration_sequences: int | None = CALIBRATION_SEQUENCES) -> TokenInputs:
    """Inputs for a token model (see the module docstring). Refuses bad input before tokenizing."""
    causal = task == "causal-lm"
    batch = batch or 1
    seq_len, prompt_len, notes = _lengths(max_positions, seq_len, prompt_len, gen_len, causal)
    if tokenizer is None:
        if text_path or prompt:
            option = "--text" if text_path else "--prompt"
            raise SpecError(f"{option} needs a tokenizer to turn text into tokens, and this model has none "
                            "(no tokenizer.json / tokenizer files in its folder); leave it out to measure "
                            "on synthetic token ids")
        return _synthetic(vocab_size, seq_len, prompt_len, batch, seed, causal, fidelity_sequences)
    pad_id = pad_id_of(tokenizer)
    given_prompt = _given_prompt(tokenizer, prompt, max_positions, gen_len) if causal and prompt else None
    if text_path:
        text, where = read_text_file(text_path), Path(text_path).name
    else:
        text, where = corpus_text(), f"bundled corpus ({CORPUS_FILE})"
    if len(text) > MAX_TEXT_CHARS:
        notes.append(f"only the first {MAX_TEXT_CHARS:,} of its {len(text):,} characters are used")
        text = text[:MAX_TEXT_CHARS]
    parts = split_text(text)
    flags = [SHARED_SPLIT_FLAG] if parts.shared else []

    if causal:
        heldout = token_stream(tokenizer, parts.heldout)
        fidelity = spread(list(windows(heldout, seq_len, pad_id)), fidelity_sequences)
        train = token_stream(tokenizer, parts.train)
        calibration = spread(list(windows(train, seq_len, pad_id)), calibration_sequences)
        unit = f"{seq_len}-token windows"
    else:
        fidelity = spread(list(padded_examples(tokenizer, lines(parts.heldout), seq_len, pad_id)), fidelity_sequences)
        calibration = spread(list(padded_examples(tokenizer, lines(parts.train), seq_len, pad_id)),
                             calibration_sequences)
        unit = "lines"
    prompt_ids = None
    if causal:
        if given_prompt is not None:    # its own length counts, not the (shortened) default
            prompt_ids, prompt_len = np.tile(given_prompt, (batch, 1)), len(given_prompt)
            notes = [n for n in notes if not n.startswith(PROMPT_SHORTENED)]
        else:
            prompt_ids = _heldout_prompts(heldout, prompt_len, batch)
    check_vocabulary([fidelity[0], calibration[0], prompt_ids, np.asarray([pad_id])], vocab_size, tokenizer)
    source = (f"{where}, held-out {HELD_OUT_FRACTION:.0%} from character {parts.boundary}: "
              f"{len(fidelity[0])} {unit}, {int(fidelity[1].sum())} tokens")
    return TokenInputs(
        specs=_specs(batch, seq_len), measure=first_rows(fidelity, batch), fidelity=fidelity,
        calibration=calibration, eval_ids=fidelity[0] if causal else None,
        eval_mask=fidelity[1] if causal else None, prompt_ids=prompt_ids, seq_len=seq_len,
        prompt_len=prompt_len, pad_token_id=pad_id, source=source + "".join(f"; {n}" for n in notes),
        flags=flags)


def _given_prompt(tokenizer: Any, prompt: str, max_positions: int | None, gen_len: int | None) -> np.ndarray:
    """``--prompt`` as ids (with the tokenizer's special tokens), refused when it does not fit."""
    ids = encode(tokenizer, [prompt], special_tokens=True)[0]
    if not ids:
        raise SpecError("--prompt gives no tokens with this model's tokenizer; give some text")
    _check_fits(f"the prompt ({len(ids)} tokens)", len(ids), max_positions)
    if gen_len:
        _check_fits(f"the prompt's {len(ids)} tokens + --gen-len {gen_len} = {len(ids) + gen_len} tokens",
                    len(ids) + gen_len, max_positions)
    return np.asarray(ids, dtype=np.int64)


def _heldout_prompts(heldout: np.ndarray, prompt_len: int, batch: int) -> np.ndarray:
    """(batch, prompt_len): distinct consecutive held-out windows, going round a short text again."""
    stream = heldout
    if len(stream) < prompt_len * batch:
        stream = np.tile(stream, -(-prompt_len * batch // max(1, len(stream))))
    return stream[:prompt_len * batch].reshape(batch, prompt_len).astype(np.int64)


def _specs(batch: int, seq_len: int) -> list[InputSpec]:
    return [InputSpec([batch, seq_len], "int64", "input_ids"), InputSpec([batch, seq_len], "int64", "attention_mask")]


def _synthetic(vocab_size: int | None, seq_len: int, prompt_len: int | None, batch: int, seed: int,
               causal: bool, count: int) -> TokenInputs:
    if not vocab_size:
        raise ModelLoadError("the model declares no vocab_size and has no tokenizer: cannot make token inputs")
    rng = np.random.default_rng(seed)
    measure_ids = rng.integers(0, vocab_size, (batch, seq_len), dtype=np.int64)
    fidelity_ids = np.random.default_rng(seed + 1).integers(0, vocab_size, (count, seq_len), dtype=np.int64)
    prompt_ids = rng.integers(0, vocab_size, (batch, prompt_len), dtype=np.int64) if causal else None
    return TokenInputs(
        specs=_specs(batch, seq_len), measure=[measure_ids, np.ones_like(measure_ids)],
        fidelity=[fidelity_ids, np.ones_like(fidelity_ids)], calibration=None, eval_ids=None, eval_mask=None,
        prompt_ids=prompt_ids, seq_len=seq_len, prompt_len=prompt_len, pad_token_id=0,
        source=f"synthetic token ids (uniform in [0, {vocab_size}), seed {seed})", flags=[SYNTHETIC_FLAG])
