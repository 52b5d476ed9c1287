"""Regenerate the example report (docs/examples/example-report.html / .pdf) from real benchmarks.

    python docs/examples/make_example_report.py [--duration 2] [--screenshot]
    python docs/examples/make_example_report.py --smoke [--out DIR]    # a quick check that it still works

Runs the bundled demos in worker processes exactly as ``workbench bench`` does, into a fresh
results store (a temporary folder, or ``--db``):

* demo:digits-cnn          baseline, prune (structured, 3 recovery epochs) → fuse (conv_bn), and fuse alone
* demo:digits-transformer  baseline, quantize (dynamic_int8)
* demo:digits-cnn          given a 3-channel input shape it does not take: a run that fails, to
                           show how a failure is reported (a chain the model refuses, such as int4
                           on a CPU, is refused before anything runs and never becomes a run)

with one intra-op thread by default (``--threads``: a single thread is far less disturbed by
other programs on a small shared machine than two that must meet at every operator), then writes
the report in HTML and PDF (and, with ``--screenshot``, a PNG of the HTML taken by
headless Chromium to ``docs/report-screenshot.png``). Needs the demo assets
(``python -m workbench.assets.make_demos``) and the quantize/prune/fuse plugins.

``--smoke`` checks every planned run's settings and plugin chain (no run needed), then runs only the
digits-cnn part of the plan (the smallest demo; 1 recovery epoch instead of 3) with 20 iterations,
0.05 s and one thread each, writes ``example-report.html``/``.pdf`` to ``--out DIR`` (else a new
temporary folder, never over the committed report), and reads them back.
"""
from __future__ import annotations

import argparse
import html as html_lib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SMOKE = {"duration_s": 0.05, "iters": 20, "threads": 1, "warmup_min_iters": 2, "warmup_max_s": 0.2}
SMOKE_MODEL = "demo:digits-cnn"          # the smallest demo
EXPECTED_FAILURE = "cnn, wrong input shape"


def plan(duration: float, threads: int | None, smoke: bool = False) -> list[dict]:
    from workbench.spec import InputSpec, PluginStep
    common = {"duration_s": duration, "iters": 700, "threads": threads}   # >= 662: p99 is reported
    if smoke:
        common = dict(SMOKE)
    epochs = "1" if smoke else "3"
    runs = [
        dict(model="demo:digits-cnn", label="cnn baseline", **common),
        dict(model="demo:digits-cnn", label="cnn pruned + fused",
             plugins=[PluginStep("prune", {"method": "structured", "amount": "0.5", "finetune_epochs": epochs}),
                      PluginStep("fuse", {"method": "conv_bn"})], **common),
        dict(model="demo:digits-cnn", label="cnn fused", plugins=[PluginStep("fuse", {"method": "conv_bn"})], **common),
        dict(model="demo:digits-transformer", label="transformer baseline", **common),
        dict(model="demo:digits-transformer", label="transformer int8",
             plugins=[PluginStep("quantize", {"method": "dynamic_int8"})], **common),
        # 3 channels where the model and its data have 1: the worker stops with the reason
        dict(model="demo:digits-cnn", label=EXPECTED_FAILURE, inputs=[InputSpec([1, 3, 8, 8], "float32")], **common),
    ]
    return [r for r in runs if r["model"] == SMOKE_MODEL] if smoke else runs


def check_plan(runs: list[dict]) -> None:
    """Every run of the full plan still a valid spec with a valid chain (as ``workbench bench``
    checks it before running)."""
    from workbench.engine.plan import check_chain
    from workbench.errors import WorkbenchError
    from workbench.spec import RunSpec
    for fields in runs:
        try:
            spec = RunSpec(**fields)
            spec.validate()
            check_chain(spec)
        except WorkbenchError as exc:
            raise SystemExit(f"smoke check FAILED: {fields['label']}: {exc}") from None
    print(f"all {len(runs)} planned runs valid", flush=True)


def check_outputs(out: Path, statuses: dict[str, str]) -> None:
    """The runs ended as planned; the HTML is a whole page naming every run; the PDF is a PDF."""
    def fail(message: str):
        raise SystemExit(f"smoke check FAILED: {message}")
    for label, status in statuses.items():
        if status != "done" and label != EXPECTED_FAILURE:
            fail(f"run {label!r} {status}")
    if statuses.get(EXPECTED_FAILURE) not in (None, "failed"):
        fail(f"run {EXPECTED_FAILURE!r} {statuses[EXPECTED_FAILURE]}, expected failed")
    page, pdf = out.with_suffix(".html"), out.with_suffix(".pdf")
    for path in (page, pdf):
        if not path.is_file() or path.stat().st_size < 1000:
            fail(f"{path} missing or nearly empty")
    text = page.read_text(encoding="utf-8")
    if "<html" not in text[:500].lower() or "</html>" not in text[-200:].lower():
        fail(f"{page} is not a whole HTML page")
    labels = list(statuses)
    missing = [label for label in labels if html_lib.escape(label) not in text and label not in text]
    if missing:
        fail(f"{page} does not name the runs {missing}")
    data = pdf.read_bytes()
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-64:]:
        fail(f"{pdf} is not a whole PDF")
    print(f"smoke check passed: {page.name} ({page.stat().st_size // 1024} KiB, {len(labels)} runs), "
          f"{pdf.name} ({pdf.stat().st_size // 1024} KiB) in {out.parent}", flush=True)


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
    parser.add_argument("--out", help=f"output path without suffix, or a folder to write example-report.* into "
                                      f"(default: {HERE / 'example-report'}; with --smoke: always a folder, by "
                                      f"default a new temporary one)")
    parser.add_argument("--screenshot", action="store_true",
                        help="also write docs/report-screenshot.png (with --smoke: beside the report)")
    parser.add_argument("--smoke", action="store_true",
                        help="quick check: the digits-cnn runs only, smallest settings, output to --out or a "
                             "temporary folder, then the report files are read back and checked")
    args = parser.parse_args(argv)
    out = output_path(args)

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
    if args.smoke:
        check_plan(plan(args.duration, args.threads or None))
    ids, statuses = [], {}
    for fields in plan(args.duration, args.threads or None, smoke=args.smoke):
        spec = RunSpec(**fields)
        record = session.run(spec)
        p50 = (record.latency or {}).get("median_ms")
        print(f"#{record.id} {spec.label:<24} {record.status:<7} "
              + (f"p50 {p50:.3f} ms" if p50 else f"({record.error})"), flush=True)
        ids.append(record.id)
        statuses[spec.label] = record.status
    for suffix in (".html", ".pdf"):
        print(f"wrote {write_report(store, ids, out.with_suffix(suffix))}")
    if args.screenshot:
        screenshot(out.with_suffix(".html"),
                   out.parent / "report-screenshot.png" if args.smoke else ROOT / "docs" / "report-screenshot.png")
    store.close()
    if tmp is not None:
        tmp.cleanup()
    if args.smoke:
        check_outputs(out, statuses)
    return 0


def output_path(args: argparse.Namespace) -> Path:
    """The report's path without suffix; a smoke run never writes over the committed example."""
    committed = HERE / "example-report"
    if args.out is None:
        return Path(tempfile.mkdtemp(prefix="wb-smoke-example-")) / "example-report" if args.smoke else committed
    out = Path(args.out)
    if args.smoke or out.is_dir() or args.out.endswith(("/", "\\")):   # --smoke: --out is always a folder
        out = out / "example-report"
    if args.smoke and out.resolve().with_suffix("") == committed:
        raise SystemExit(f"--smoke never writes over the committed {committed}.html/.pdf: pass another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
