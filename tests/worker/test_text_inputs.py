"""Text -> token inputs (workbench/worker/text_inputs.py), with the real tokenizer of demo:tiny-lm:
the held-out split, windows and padding masks, prompts, synthetic ids, and one-line refusals."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ModelLoadError, SpecError
from workbench.worker import text_inputs as ti

POSITIONS = 256


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from workbench.models.demos import assets_dir
    return AutoTokenizer.from_pretrained(str(assets_dir() / "tiny-lm"), local_files_only=True)


def write(tmp_path, text: str | bytes, name: str = "text.txt"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


# -- the split --------------------------------------------------------------------------------
def test_corpus_split_holds_out_the_last_tenth_from_a_paragraph_start():
    text = ti.corpus_text()
    parts = ti.corpus_splits()
    assert parts.train + parts.heldout == text and not parts.shared
    assert parts.train.endswith("\n\n") and parts.heldout[:1].strip()      # a paragraph starts there
    assert 0.09 < len(parts.heldout) / len(text) < 0.11
    assert parts.heldout.split("\n\n")[0] not in parts.train                # generated text, distinct paragraphs


def test_split_of_short_texts():
    lines = ti.split_text("one line\ntwo line\nthree\n")
    assert lines.train == "one line\ntwo line\n" and lines.heldout == "three\n"
    words = ti.split_text("just some words on a single line")
    assert words.heldout == "line" and words.train.endswith("single ")
    alone = ti.split_text("word")
    assert alone.shared and alone.train == alone.heldout == "word"


# -- a language model on the bundled corpus -------------------------------------------------------
def test_causal_lm_inputs_come_from_the_corpus_held_out_part(tokenizer):
    inputs = ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, batch=3, seq_len=32, seed=0,
                                   fidelity_sequences=8, calibration_sequences=16)
    parts = ti.corpus_splits()
    ids, mask = inputs.measure
    assert ids.shape == mask.shape == (3, 32) and ids.dtype == mask.dtype == np.int64
    assert [s.name for s in inputs.specs] == ["input_ids", "attention_mask"] and inputs.specs[0].shape == [3, 32]
    assert inputs.fidelity[0].shape == (8, 32) and np.array_equal(inputs.eval_ids, inputs.fidelity[0])
    assert inputs.eval_mask.all() and inputs.eval_tokens == 8 * 32     # full windows: nothing padded
    assert np.array_equal(ids, inputs.fidelity[0][:3])
    first = tokenizer.decode(inputs.fidelity[0][0])
    assert tokenizer.eos_token not in first and first in parts.heldout and first not in parts.train
    pieces = tokenizer.decode(inputs.calibration[0][5]).split(tokenizer.eos_token)   # paragraphs end in EOS
    assert inputs.calibration[0].shape == (16, 32) and all(piece in parts.train for piece in pieces)
    assert inputs.prompt_ids.shape == (3, ti.DEFAULT_PROMPT_LEN) and inputs.prompt_len == ti.DEFAULT_PROMPT_LEN
    assert len({tuple(row) for row in inputs.prompt_ids}) == 3            # distinct prompts per row
    assert tokenizer.decode(inputs.prompt_ids[0]) in parts.heldout
    assert inputs.flags == [] and "corpus.txt" in inputs.source and "held-out" in inputs.source
    run = inputs.run_inputs()
    assert run.measure is inputs.measure and run.labels is None


def test_a_short_text_is_padded_with_eos_and_masked(tokenizer, tmp_path):
    path = write(tmp_path, "The cat sat.\n\nThe dog ran home.\n")
    inputs = ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, text_path=path, seq_len=16, batch=2)
    assert tokenizer.pad_token_id is None and inputs.pad_token_id == tokenizer.eos_token_id
    ids, mask = inputs.fidelity
    held = ti.token_stream(tokenizer, "The dog ran home.")
    assert ids.shape == (1, 16) and mask[0].tolist() == [1] * len(held) + [0] * (16 - len(held))
    assert ids[0, :len(held)].tolist() == held.tolist() and (ids[0, len(held):] == tokenizer.eos_token_id).all()
    assert inputs.eval_tokens == len(held)
    assert inputs.measure[0].shape == (2, 16) and (inputs.measure[0][0] == inputs.measure[0][1]).all()
    assert tokenizer.decode(inputs.calibration[0][0][inputs.calibration[1][0] == 1]).startswith("The cat sat.")


def test_encoder_inputs_are_one_line_each_with_padding(tokenizer, tmp_path):
    lines = [f"Sentence number {i} is here." for i in range(9)] + ["A much shorter one.", "Short."]
    path = write(tmp_path, "\n".join(lines) + "\n")
    inputs = ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, text_path=path, seq_len=12,
                                   batch=2, task="feature-extraction")
    ids, mask = inputs.fidelity
    held = ti.lines(ti.split_text(open(path, encoding="utf-8").read()).heldout)
    assert inputs.prompt_ids is None and inputs.eval_ids is None
    assert held == lines[-len(held):] and ids.shape == (len(held), 12)    # the held-out lines, one row each
    for row, text in enumerate(held):
        n = len(tokenizer(text)["input_ids"])
        assert mask[row].tolist() == [1] * n + [0] * (12 - n)
        assert tokenizer.decode(ids[row][:n]) == text
    assert len(inputs.calibration[0]) == len(lines) - len(held)


def test_a_given_prompt_is_repeated_over_the_batch(tokenizer):
    inputs = ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, prompt="Once upon a time", batch=2,
                                   seq_len=16, fidelity_sequences=2, calibration_sequences=2)
    expected = tokenizer("Once upon a time")["input_ids"]
    assert inputs.prompt_len == len(expected)
    assert inputs.prompt_ids.tolist() == [expected, expected]


# -- no tokenizer ---------------------------------------------------------------------------------
def test_without_a_tokenizer_ids_are_uniform_over_the_vocabulary_and_flagged():
    inputs = ti.build_token_inputs(None, 50, 64, seq_len=16, batch=4, seed=3)
    ids, mask = inputs.measure
    assert ids.shape == (4, 16) and mask.all() and 0 <= ids.min() and ids.max() < 50
    assert len(np.unique(inputs.fidelity[0])) > 40                 # the whole vocabulary, not [0, 10)
    assert inputs.flags == [ti.SYNTHETIC_FLAG] and inputs.calibration is None and inputs.eval_ids is None
    assert inputs.prompt_ids.shape == (4, ti.DEFAULT_PROMPT_LEN)
    again = ti.build_token_inputs(None, 50, 64, seq_len=16, batch=4, seed=3)
    assert np.array_equal(again.measure[0], ids)


def test_text_without_a_tokenizer_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"--text needs a tokenizer"):
        ti.build_token_inputs(None, 50, 64, text_path=write(tmp_path, "hello"))
    with pytest.raises(SpecError, match=r"--prompt needs a tokenizer"):
        ti.build_token_inputs(None, 50, 64, prompt="hello")


# -- bad input: one line each ---------------------------------------------------------------------
def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("content, words", [(b"", "is empty"), (b"  \n\t\n", "only whitespace")])
def test_an_empty_text_file_is_refused(tokenizer, tmp_path, content, words):
    with pytest.raises(SpecError) as caught:
        ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, text_path=write(tmp_path, content))
    assert words in _one_line(caught) and "text.txt" in str(caught.value)


def test_a_text_file_that_is_not_utf8_is_refused(tokenizer, tmp_path):
    path = write(tmp_path, "café au lait".encode("latin-1"), "latin1.txt")
    with pytest.raises(SpecError) as caught:
        ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, text_path=path)
    assert "latin1.txt is not UTF-8 text (byte 0xe9 at offset 3)" in _one_line(caught)


def test_a_missing_text_file_is_refused(tokenizer, tmp_path):
    with pytest.raises(SpecError, match="text file not found"):
        ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, text_path=str(tmp_path / "nope.txt"))


def test_a_tokenizer_that_does_not_match_the_vocabulary_is_refused(tokenizer):
    with pytest.raises(ModelLoadError) as caught:
        ti.build_token_inputs(tokenizer, 100, POSITIONS, seq_len=16, fidelity_sequences=2)
    message = _one_line(caught)
    assert "does not match the model" in message and "100 ids" in message and f"{len(tokenizer)} tokens" in message


def test_a_prompt_longer_than_the_positions_is_refused(tokenizer):
    prompt = "the cat " * 20
    with pytest.raises(SpecError) as caught:
        ti.build_token_inputs(tokenizer, len(tokenizer), 16, prompt=prompt, seq_len=8)
    tokens = len(tokenizer(prompt)["input_ids"])
    assert f"the prompt ({tokens} tokens) is longer than the model's 16 positions" in _one_line(caught)
    with pytest.raises(SpecError, match=r"prompt's 4 tokens \+ --gen-len 20 = 24 tokens .* 16 positions"):
        ti.build_token_inputs(tokenizer, len(tokenizer), 16, prompt="Once upon a time", seq_len=8, gen_len=20)


def test_lengths_longer_than_the_positions_are_refused_naming_both_numbers(tokenizer):
    with pytest.raises(SpecError, match=r"--seq-len 300 is longer than the model's 256 positions"):
        ti.build_token_inputs(tokenizer, len(tokenizer), POSITIONS, seq_len=300)
    with pytest.raises(SpecError, match=r"--prompt-len 400 is longer than the model's 256 positions"):
        ti.build_token_inputs(None, 50, POSITIONS, prompt_len=400)
    short = ti.build_token_inputs(None, 50, 40, gen_len=32)       # the default prompt shrinks to fit
    assert short.prompt_len == 8 and short.seq_len == 40
