"""What the command line prints: the progress line, a run's summary, and where text and JSON go.

With ``--json -`` stdout carries JSON only; every human line goes to stderr instead."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from . import format as fmt
from .results.compare import verdict_text


def open_store(args: Any):
    """The results store, with runs whose owning process is gone settled first (so no command
    ever reports a dead run as `running`)."""
    from .results.store import ResultsStore
    store = ResultsStore(args.db)
    store.settle_orphaned_runs()
    return store


def output(args: Any) -> Output:
    return Output(args.json_out, quiet=args.quiet, verbose=args.verbose)


class Output:
    """Routes a command's text and JSON by its ``--json`` and ``-q`` options."""

    def __init__(self, json_target: str | None, quiet: int = 0, verbose: int = 0) -> None:
        self.json_target = json_target
        self.quiet = quiet
        self.verbose = verbose

    @property
    def json_to_stdout(self) -> bool:
        return self.json_target == "-"

    @property
    def text_stream(self):
        return sys.stderr if self.json_to_stdout else sys.stdout

    def text(self, line: str = "") -> None:
        print(line, file=self.text_stream)

    def note(self, line: str) -> None:
        """Side information (on stderr); -q drops it."""
        if not self.quiet:
            print(line, file=sys.stderr)

    def json(self, payload: Any) -> None:
        text = json.dumps(payload, indent=2, default=str)
        if self.json_target in (None, "-"):
            print(text)
        else:
            Path(self.json_target).expanduser().write_text(text + "\n")

    def error(self, message: str, kind: str) -> None:
        """A one-line error on stderr, and as ``{"error", "kind"}`` where JSON was asked for."""
        print(f"workbench: error: {message}", file=sys.stderr)
        if self.json_target is not None:
            try:
                self.json({"error": message, "kind": kind})
            except OSError:
                pass



class Progress:
    """One status line on stderr (redrawn on a TTY; phase changes only when piped)."""

    PHASES = ("load", "reference", "optimize", "save", "prepare", "cold", "warmup", "measure", "fidelity")

    def __init__(self, label: str, stream=sys.stderr, quiet: int = 0, verbose: int = 0) -> None:
        self.stream = stream
        self.quiet, self.verbose = quiet, verbose
        self.tty = stream.isatty() and not verbose   # -v: one line per phase and message, never redrawn
        self.label = label
        self.phase = ""
        self.measured = 0
        self.last_draw = 0.0
        self.recent: list[int] = []

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        kind = event["type"]
        if self.verbose and kind in ("log", "warning") and event.get("message"):
            print(f"[{self.label}] {kind}: {event['message']}", file=self.stream, flush=True)
        if kind == "phase" and event["phase"] != self.phase:
            self.phase = event["phase"]
            if not self.tty:
                message = event.get("message") or ""
                print(f"[{self.label}] {self.phase}{': ' + message if message else ''}", file=self.stream, flush=True)
            self.draw(force=True)
        elif kind == "latency_batch" and event["phase"] == "measure":
            self.measured += len(event["values_ns"])
            self.recent = (self.recent + event["values_ns"])[-200:]
            self.draw()
        elif kind == "progress" and event.get("message"):
            self.draw(message=event["message"], fraction=event.get("fraction"))
        elif kind == "train":
            message = f"epoch {event.get('epoch')} step {event.get('step')} loss {event.get('loss', 0):.4f}"
            self.draw(message=message)
        elif kind == "run_finished" and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def draw(self, force: bool = False, message: str = "", fraction: float | None = None) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        text = f"[{self.label}] {self.phase:<9}"
        if fraction is not None:
            filled = int(20 * min(1.0, fraction))
            text += " " + "█" * filled + "░" * (20 - filled) + f" {100 * fraction:3.0f}%"
        if self.phase == "measure" and self.recent:
            median = sorted(self.recent)[len(self.recent) // 2] / 1e6
            text += f" {self.measured} iters, median {fmt.ms(median)}"
        if message:
            text += " " + message
        self.stream.write("\r\033[K" + text[:150])
        self.stream.flush()



def render_run(run, row: dict | None) -> str:
    lines = [f"run #{run.id}  {run.model}  [{run.chain}]  {run.runtime} on {run.device}  → {run.status}"]
    if run.status != "done":
        lines.append(f"  reason: {run.error}")
        partial = (run.result or {}).get("latency") or {}
        if partial.get("n"):   # what was measured before the stop: shown, and never compared
            lines.append(f"  partial   median {fmt.ms(partial['median_ms'])} (95% CI {fmt.ci(partial['median_ci_ms'])}) "
                         f"over the {partial['n']} iterations timed before the run stopped; no speed-up or verdict")
        return "\n".join(lines)
    r = run.result
    lat = r["latency"]
    lines += generation_lines(r)
    lines.append(f"  latency   median {fmt.ms(lat['median_ms'])} (95% CI {fmt.ci(lat['median_ci_ms'])}, "
                 f"IQR {fmt.ms(lat['iqr_ms'])}), mean {fmt.ms(lat['mean_ms'])} ± {fmt.ms(lat['std_ms'])}")
    lines.append(f"            min {fmt.ms(lat['min_ms'])}  p90 {fmt.ms(lat['p90_ms'])}  p95 {fmt.ms(lat['p95_ms'])}  "
                 f"p99 {fmt.ms(lat['p99_ms'])}  max {fmt.ms(lat['max_ms'])}  (n={lat['n']}, batch {lat['batch']})")
    lines.append(f"  throughput {lat['throughput_per_s']:.1f} samples/s   cold first call {fmt.ms(r['cold_ms'])}   "
                 f"threads {r['threads']}")
    tel = r.get("telemetry") or {}
    mem = r.get("device_memory") or {}
    lines.append(f"  memory    host peak RSS {fmt.nbytes(tel.get('host_peak_rss_bytes'))}"
                 + (f", torch peak allocated {fmt.nbytes(mem['torch_peak_allocated_bytes'])}"
                    f" / reserved {fmt.nbytes(mem['torch_peak_reserved_bytes'])}" if mem else "")
                 + (f", GPU process {fmt.nbytes(tel.get('gpu_proc_mem_peak_bytes'))}"
                    f", GPU device {fmt.nbytes(tel.get('gpu_mem_used_peak_bytes'))}"
                    if tel.get("gpu_mem_used_peak_bytes") is not None else ""))
    energy = r.get("energy") or {}
    status = r.get("telemetry_status") or {}
    if energy.get("joules_per_inference") is not None:
        lines.append(f"  power     mean {fmt.num(tel.get('gpu_power_mean_w'), '.1f', ' W')}, energy "
                     f"{energy['joules_per_inference'] * 1e3:.3f} mJ/inference ({energy['method']})")
    else:
        lines.append(f"  power     not measured: NVML {status.get('nvml', 'not sampled')}")
    fid = r["fidelity"]
    lines.append(f"  fidelity  cosine {fid['cosine']:.6f}, max |err| {fid['max_abs_error']:.3g}, top-1 agreement "
                 f"{fmt.pct(fid['top1_agreement'])}, accuracy {fmt.pct(fid['accuracy'])} "
                 f"({fid['samples']} samples, {r['fidelity_inputs']})")
    for rep in r.get("plugin_reports") or []:
        lines.append(f"  plugin    {rep['plugin']}: {rep['summary']} ({rep['seconds']:.2f} s)")
    lines += lm_fidelity_lines(r)
    if row and row.get("speedup") is not None:
        sig = "" if row["speedup_significant"] else "  (inside the noise)"
        what = f" ({row['baseline_runtime']} original)" if row.get("cross_runtime") else ""
        lines.append(f"  vs #{row['baseline_id']}{what}   speed-up {fmt.ratio(row['speedup'])} "
                     f"[{row['speedup_ci'][0]:.2f}, {row['speedup_ci'][1]:.2f}]{sig}{_prefill_text(row)}, "
                     f"size {fmt.ratio(row['size_ratio'])}")
    if row and row.get("runtime_speedup") is not None:      # a cross-runtime chain: what its steps did
        sig = "" if row["runtime_speedup_significant"] else "  (inside the noise)"
        lines.append(f"  vs #{row['runtime_baseline_id']} ({row['runtime']} fp32, same runtime)   speed-up "
                     f"{fmt.ratio(row['runtime_speedup'])} [{row['runtime_speedup_ci'][0]:.2f}, "
                     f"{row['runtime_speedup_ci'][1]:.2f}]{sig}")
    if row and row.get("speedup") is not None:
        lines.append(f"  verdict   {verdict_text(row)}")
    for text in (lat.get("warnings") or []) + r.get("notes", []) + r.get("flags", []):
        lines.append(f"  note      {text}")
    for text in status.get("warnings") or []:
        lines.append(f"  warning   {text}")
    return "\n".join(lines)


def generation_lines(result: dict) -> list[str]:
    """A generate run's figures: TTFT with its CI, per-token decode percentiles, tokens/s, KV cache,
    peak memory and energy per token (the 'latency' lines below it are the per-token decode stats)."""
    gen = result.get("generation")
    if not gen:
        return []
    lines = [f"  generate  {gen['prompt_tokens']}-token prompt → {gen['new_tokens']} new tokens (greedy, KV cache on), "
             f"batch {gen['batch']}, {gen['repetitions']} timed generations"]
    lines.append(f"  prefill   time to first token {fmt.ms(gen['ttft_ms'])} (95% CI {fmt.ci(gen['ttft_ci_ms'])}), "
                 f"cold {fmt.ms(gen.get('cold_ttft_ms'))}")
    decode = gen.get("decode_token")
    if decode:
        lines.append(f"  decode    per token p50 {fmt.ms(decode['median_ms'])} (95% CI {fmt.ci(decode['median_ci_ms'])})  "
                     f"p90 {fmt.ms(decode['p90_ms'])}  p99 {fmt.ms(decode['p99_ms'])}  (n={decode['n']} steps)")
    lines.append(f"  tokens/s  decode {fmt.num(gen.get('decode_tokens_per_s'), '.1f')}, "
                 f"end-to-end {fmt.num(gen.get('e2e_tokens_per_s'), '.1f')}"
                 + (f", energy {gen['energy_j_per_token'] * 1e3:.3f} mJ/token"
                    if gen.get("energy_j_per_token") is not None else ""))
    expected = gen.get("kv_cache_expected_bytes")
    check = "" if expected is None else (" (= the config's arithmetic)" if expected == gen["kv_cache_bytes"]
                                         else f" (the config's arithmetic says {fmt.nbytes(expected)})")
    lines.append(f"  KV cache  {fmt.nbytes(gen['kv_cache_bytes'])} for {gen['kv_cache_tokens']} tokens{check}; "
                 f"peak memory {fmt.nbytes(gen.get('peak_memory_bytes'))} ({gen.get('peak_memory_kind')})")
    return lines


def lm_fidelity_lines(result: dict) -> list[str]:
    """A causal LM's fidelity on held-out text: perplexity before → after, agreement, KL."""
    lm = result.get("lm_fidelity")
    if not lm:
        return []
    delta = lm.get("perplexity_delta_pct")
    change = "" if delta is None else f" ({delta:+.2f} %)".replace("-", "−")
    line = (f"  LM        perplexity {fmt.num(lm.get('reference_perplexity'), '.4g')} → "
            f"{fmt.num(lm.get('perplexity'), '.4g')}{change}, next-token agreement "
            f"{fmt.pct(lm.get('next_token_agreement'))}, KL {fmt.num(lm.get('kl_divergence'), '.3g')} nats")
    if lm.get("continuation_agreement") is not None:
        line += f", continuation agreement {fmt.pct(lm['continuation_agreement'])}"
    return [line + f" ({lm.get('eval_tokens')} held-out tokens)"]


def _prefill_text(row: dict) -> str:
    """" per decoded token, prefill 1.29× [1.25, 1.32]" for a generate run, else nothing."""
    if row.get("prefill_speedup") is None:
        return ""
    ci = row.get("prefill_speedup_ci")
    return (f" per decoded token, prefill {fmt.ratio(row['prefill_speedup'])}"
            + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
