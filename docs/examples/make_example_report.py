"""Regenerate the example report (docs/examples/example-report.html / .pdf) from real benchmarks.

    python docs/examples/make_example_report.py [--duration 2] [--screenshot]

Runs the bundled demos in worker processes exactly as ``workbench bench`` does, into a fresh
results store (a temporary folder, or ``--db``):

* demo:digits-cnn          baseline, prune (structured, 3 recovery epochs) → fuse (conv_bn), and fuse alone
* demo:digits-transformer  baseline, quantize (dynamic_int8)
* demo:digits-cnn          quantize int4, which needs a GPU: a run that fails, to show how a
                           failure is reported

with one intra-op thread by default (``--threads``: a single thread is far less disturbed by
other programs on a small shared machine than two that must meet at every operator), then writes
the report in HTML and PDF (and, with ``--screenshot``, a PNG of the HTML taken by
headless Chromium to ``docs/report-screenshot.png``). Needs the demo assets
(``python -m workbench.assets.make_demos``) and the quantize/prune/fuse plugins.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def plan(duration: float, threads: int | None) -> list[dict]:
    from workbench.spec import PluginStep
    common = {"duration_s": duration, "iters": 700, "threads": threads}   # >= 662: p99 is reported
    return [
        dict(model="demo:digits-cnn", label="cnn baseline", **common),
        dict(model="demo:digits-cnn", label="cnn pruned + fused",
             plugins=[PluginStep("prune", {"method": "structured", "amount": "0.5", "finetune_epochs": "3"}),
                      PluginStep("fuse", {"method": "conv_bn"})], **common),
        dict(model="demo:digits-cnn", label="cnn fused", plugins=[PluginStep("fuse", {"method": "conv_bn"})], **common),
        dict(model="demo:digits-transformer", label="transformer baseline", **common),
        dict(model="demo:digits-transformer", label="transformer int8",
             plugins=[PluginStep("quantize", {"method": "dynamic_int8"})], **common),
        dict(model="demo:digits-cnn", label="cnn int4 (needs a GPU)",
             plugins=[PluginStep("quantize", {"method": "int4"})], **common),
    ]


def screenshot(html: Path, png: Path, height: int = 3200) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no chromium found: screenshot skipped", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size=1400,{height}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {png}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="minimum timed seconds per run")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: steadier numbers on a shared machine; 0 = torch's default)")
    parser.add_argument("--db", help="results store to use (default: a temporary one)")
    parser.add_argument("--out", default=str(HERE / "example-report"), help="output path without suffix")
    parser.add_argument("--screenshot", action="store_true", help="also write docs/report-screenshot.png")
    args = parser.parse_args(argv)

    from workbench.report import write_report
    from workbench.engine.session import Session
    from workbench.spec import RunSpec
    from workbench.results.store import ResultsStore

    tmp = None
    if args.db:
        db = Path(args.db)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="workbench-example-")
        db = Path(tmp.name) / "runs.sqlite"
    store = ResultsStore(db)
    session = Session(store)
    ids = []
    for fields in plan(args.duration, args.threads or None):
        spec = RunSpec(**fields)
        record = session.run(spec)
        p50 = (record.latency or {}).get("median_ms")
        print(f"#{record.id} {spec.label:<24} {record.status:<7} "
              + (f"p50 {p50:.3f} ms" if p50 else f"({record.error})"), flush=True)
        ids.append(record.id)
    out = Path(args.out)
    for suffix in (".html", ".pdf"):
        print(f"wrote {write_report(store, ids, out.with_suffix(suffix))}")
    if args.screenshot:
        screenshot(out.with_suffix(".html"), ROOT / "docs" / "report-screenshot.png")
    store.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
