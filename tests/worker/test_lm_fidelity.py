"""Language-model fidelity (perplexity, next-token agreement, KL, continuation agreement), the
embedding/classifier split of output fidelity, and the verdict that uses the figure fitting the task.

The held-out text is the tiny reference model's own greedy continuations (its predictions there are
its most likely tokens, so any perturbation can only raise its perplexity on them); a sharpened
final layer norm makes those predictions confident.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from workbench.models.hf import HFForward  # noqa: E402
from workbench.results.verdict import LOSS, WIN, verdict_for  # noqa: E402
from workbench.worker.fidelity import compare_outputs  # noqa: E402
from workbench.worker.generate import GreedyDecoder  # noqa: E402
from workbench.worker.lm_fidelity import compare, continuation_prompts, continuations, scan  # noqa: E402

VOCAB = 64


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=32, n_inner=64, vocab_size=VOCAB,
                                     bos_token_id=0, eos_token_id=0)
    lm = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        lm.transformer.ln_f.weight.mul_(8)        # confident predictions
    return HFForward(lm, "causal-lm")


@pytest.fixture(scope="module")
def held_out(reference):
    start = torch.randint(1, VOCAB, (8, 2), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        tokens = GreedyDecoder(reference.model).run(start, 14).tokens
    ids = torch.cat([start, tokens], 1).numpy()
    return [ids, np.ones_like(ids)]


def perturbed(module, scale: float, seed: int = 0):
    other = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return other


def infer(module):
    def call(arrays):
        with torch.no_grad():
            return module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]).numpy()
    return call


def full_scan(module, arrays, keep=None):
    result = scan(infer(module), arrays, 4, keep)
    prompts = continuation_prompts(arrays, 4, 6, 32)
    result.continuations = continuations(GreedyDecoder(module.model), torch.from_numpy(prompts), 6)
    return result


def test_an_identical_model_changes_nothing(reference, held_out):
    ref = full_scan(reference, held_out)
    lm, fidelity = compare(ref, full_scan(copy.deepcopy(reference), held_out, len(ref.logits)))
    assert lm["perplexity"] == lm["reference_perplexity"] and lm["perplexity_delta_pct"] == 0.0
    assert lm["next_token_agreement"] == 1.0 and lm["kl_divergence"] == 0.0 and lm["continuation_agreement"] == 1.0
    assert lm["eval_tokens"] == 8 * 15 == fidelity.samples          # 15 next tokens per 16-token sequence
    assert fidelity.exact and fidelity.top1_agreement == 1.0 and fidelity.cosine == pytest.approx(1.0)


def test_a_perturbed_model_scores_worse(reference, held_out):
    ref = full_scan(reference, held_out)
    lm, fidelity = compare(ref, full_scan(perturbed(reference, 0.05), held_out, len(ref.logits)))
    assert lm["perplexity"] > lm["reference_perplexity"] and lm["perplexity_delta_pct"] > 0
    assert lm["kl_divergence"] > 0 and lm["next_token_agreement"] < 1.0 and not fidelity.exact
    assert 0 <= lm["continuation_agreement"] <= 1 and fidelity.top1_agreement == lm["next_token_agreement"]
    # perplexity is exp(mean negative log-likelihood): check it against a direct computation
    with torch.no_grad():
        logits = reference(torch.from_numpy(held_out[0])).double()
    nll = -logits[:, :-1].log_softmax(-1).gather(-1, torch.from_numpy(held_out[0][:, 1:, None])).mean()
    assert lm["reference_perplexity"] == pytest.approx(float(nll.exp()), rel=1e-5)


def test_kl_is_never_negative(reference, held_out):
    ref = scan(infer(reference), held_out, 4)
    for seed in range(2):
        lm, _ = compare(ref, scan(infer(perturbed(reference, 0.002, seed)), held_out, 4, len(ref.logits)))
        assert lm["kl_divergence"] >= 0


def test_padding_is_not_scored(reference, held_out):
    ids, mask = held_out[0].copy(), held_out[1].copy()
    mask[:, 12:] = 0                        # the last 4 tokens of every row are padding
    result = scan(infer(reference), [ids, mask], 4)
    assert result.positions == 8 * 11
    assert continuation_prompts([ids, mask], 16, 4, 32) is None     # padded prompts are not used
    assert continuation_prompts([ids, mask], 8, 4, 32).shape == (4, 8)


def test_kl_positions_are_capped_by_the_memory_budget(reference, held_out, monkeypatch):
    import workbench.worker.lm_fidelity as lm_fidelity
    monkeypatch.setattr(lm_fidelity, "KL_MAX_VALUES", VOCAB * 10)
    ref = lm_fidelity.scan(infer(reference), held_out, 4)
    assert ref.logits.shape == (10, VOCAB) and ref.positions == 120
    lm, _ = compare(ref, lm_fidelity.scan(infer(reference), held_out, 4, len(ref.logits)))
    assert lm["kl_positions"] == 10 and lm["eval_tokens"] == 120


def test_embeddings_are_compared_by_cosine_not_top1():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((6, 16))
    moved = embeddings + 0.1 * rng.standard_normal((6, 16))
    assert compare_outputs(embeddings, moved, task="feature-extraction").top1_agreement is None
    assert compare_outputs(embeddings, moved).top1_agreement is not None          # classifier logits


def row(**figures):
    base = {"status": "done", "chain": "quantize", "baseline_id": 1, "speedup": 1.5, "speedup_significant": True,
            "scenario": "generate", "top1_agreement": figures.get("next_token_agreement"), "cosine": 0.999}
    return {**base, **figures}


def test_language_model_verdict_uses_agreement_and_perplexity():
    good = verdict_for(row(next_token_agreement=0.995, perplexity=10.1, perplexity_delta_pct=1.0))
    assert good.level == WIN and good.fidelity_ok
    assert good.text == "1.50× faster decode, perplexity +1.0 %, next-token agreement 99.5 %"
    worse_ppl = verdict_for(row(next_token_agreement=0.995, perplexity=10.8, perplexity_delta_pct=8.0))
    assert worse_ppl.level == LOSS and worse_ppl.text.endswith("perplexity +8.0 %, next-token agreement 99.5 % "
                                                               "(bound +5 %)")
    low_agreement = verdict_for(row(next_token_agreement=0.95, perplexity=10.0, perplexity_delta_pct=0.5))
    assert low_agreement.level == LOSS and low_agreement.text.endswith("(gate 97 %)")   # the default, for LMs
    int8_like = verdict_for(row(next_token_agreement=0.984, perplexity=1.857, perplexity_delta_pct=0.12))
    assert int8_like.level == WIN                   # near-tie flips that cost no perplexity pass the default
    assert verdict_for(row(next_token_agreement=0.984, perplexity=1.857, perplexity_delta_pct=0.12),
                       0.995).level == LOSS         # an explicit gate applies as given
    assert verdict_for(row(next_token_agreement=0.95, perplexity=10.0, perplexity_delta_pct=0.5), 0.9).level == WIN
    assert verdict_for(row(next_token_agreement=0.995, perplexity=10.8, perplexity_delta_pct=8.0), 0.99,
                       max_perplexity_increase_pct=10).level == WIN
    same = verdict_for(row(next_token_agreement=1.0, perplexity=10.0, perplexity_delta_pct=0.0))
    assert same.fidelity_text == "predictions unchanged"


def test_encoder_verdict_names_cosine():
    encoder = {"status": "done", "chain": "quantize", "baseline_id": 1, "speedup": 2.0, "speedup_significant": True,
               "scenario": "forward", "top1_agreement": None, "cosine": 0.985}
    verdict = verdict_for(encoder)
    assert verdict.level == LOSS and "cosine 0.9850" in verdict.text and "faster decode" not in verdict.text


def test_cli_prints_perplexity_before_and_after():
    from workbench.cli_output import lm_fidelity_lines
    lm = {"reference_perplexity": 20.0, "perplexity": 20.5, "perplexity_delta_pct": 2.5, "next_token_agreement": 0.985,
          "kl_divergence": 0.0123, "continuation_agreement": 0.9, "eval_tokens": 4064}
    line = lm_fidelity_lines({"lm_fidelity": lm})[0]
    assert "perplexity 20 → 20.5 (+2.50 %)" in line and "next-token agreement 98.5%" in line
    assert "KL 0.0123 nats" in line and "continuation agreement 90.0%" in line and "4064 held-out tokens" in line
    assert lm_fidelity_lines({}) == []
