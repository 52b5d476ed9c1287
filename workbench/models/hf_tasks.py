"""Which task a Hugging Face architecture name means (GPT2LMHeadModel -> causal-lm), torch-free so
the parent can refuse a scenario a folder cannot run before any worker starts."""
from __future__ import annotations

# Architecture-name suffix -> task (a plain *Model is an encoder giving features).
ARCHITECTURE_SUFFIXES = (
    ("ForCausalLM", "causal-lm"), ("LMHeadModel", "causal-lm"), ("ForMaskedLM", "masked-lm"),
    ("ForSequenceClassification", "sequence-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForImageClassification", "image-classification"), ("Model", "feature-extraction"),
)

def task_of_architecture(architecture: str) -> str | None:
    """The task an ``architectures`` entry names (GPT2LMHeadModel -> causal-lm), or None."""
    for suffix, task in ARCHITECTURE_SUFFIXES:
        if architecture.endswith(suffix):
            return task
    return None
