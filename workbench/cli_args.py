"""The command line's arguments: the parser (global options accepted before or after the command)
and argv -> RunSpec."""
from __future__ import annotations

import argparse

from .errors import SpecError, WorkbenchError
from .spec import DEFAULT_PROMPT_LEN, MODEL_DTYPES, RUNTIMES, SCENARIOS, TASKS, InputSpec, PluginStep, RunSpec


class UsageError(WorkbenchError):
    """Bad command-line usage: exit code 2."""


# The CLI's defaults and choices are RunSpec's (one place: workbench/spec.py).
SPEC_DEFAULTS = RunSpec(model="-")
COMMAND_NAMES = ("gui", "bench", "runs", "show", "compare", "report", "plugins", "inspect", "rename", "tag",
                 "delete", "profile", "layers", "sweep", "sweeps", "show-sweep")
# Global options that take a value: skipped when looking for the command name in argv.
_VALUED_GLOBALS = ("--db",)


# -- the parser ------------------------------------------------------------------------------------
def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name (``workbench bench X --db f``).

    The copy on each subcommand defaults to SUPPRESS so that it never overwrites a value given
    before the command name."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--db", default=default(None),
                         help="results database (default: per-user data dir; env WORKBENCH_DB)")
    options.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks")
    options.add_argument("-q", "--quiet", action="count", default=default(0),
                         help="quieter: no progress line, no notes")
    options.add_argument("-v", "--verbose", action="count", default=default(0),
                         help="louder: every phase and worker message (-vv: debug logging)")
    options.add_argument("--json", dest="json_out", nargs="?", const="-", default=default(None), metavar="FILE",
                         help="write the result as JSON to FILE ('-' or no FILE: stdout, which then holds "
                              "only JSON; progress and text go to stderr)")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", parents=[_global_options(suppress=False)], description=(
        "Optimize neural networks and measure them rigorously. Without a command, opens the GUI; "
        "`workbench MODEL` opens the GUI with MODEL loaded."))
    parser.add_argument("--version", action="version", version=f"workbench {_version()}")
    sub = parser.add_subparsers(dest="command")
    common = [_global_options(suppress=True)]

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=common, **kwargs)

    gui = command("gui", help="open the desktop application (the default)")
    gui.add_argument("model", nargs="?", help="a model file or demo:NAME to open")

    bench = command("bench", help="measure a model (optionally optimized by plugins)")
    bench.add_argument("model", help="model file (.onnx, .pt2, .pt/.pth TorchScript or state_dict, .safetensors), "
                                     "a Hugging Face folder (config.json + weights), or demo:NAME")
    bench.add_argument("--factory", help="package.module:callable that builds the module for a state_dict")
    bench.add_argument("--trust-pickle", action="store_true",
                       help="allow loading a fully pickled model (executes code from the file!)")
    _language_model_options(bench)
    bench.add_argument("--plugin", "-p", action="append", default=[], metavar="NAME[:k=v,...]",
                       help="add an optimization step (repeatable, applied in order); see `workbench plugins`")
    bench.add_argument("--runtime", default=SPEC_DEFAULTS.runtime, choices=RUNTIMES)
    bench.add_argument("--device", default=SPEC_DEFAULTS.device, help="cpu, cuda or cuda:N")
    bench.add_argument("--dtype", default=SPEC_DEFAULTS.dtype, choices=MODEL_DTYPES)
    bench.add_argument("--batch", type=int, help="batch size (replaces the first dimension of every input)")
    bench.add_argument("--threads", type=int, help="intra-op CPU threads (default: see README, recorded)")
    bench.add_argument("--input", action="append", default=[], metavar="[NAME=]SHAPE:DTYPE",
                       help="input spec such as 1x3x224x224:float32 (repeat for several inputs)")
    bench.add_argument("--data", help=".npz with x_test[, y_test, x_train, y_train] for fidelity/calibration")
    bench.add_argument("--iters", type=int, help=f"minimum timed iterations (default {SPEC_DEFAULTS.iters})")
    bench.add_argument("--duration", type=float, help=f"minimum timed seconds (default {SPEC_DEFAULTS.duration_s:g})")
    bench.add_argument("--rigorous", action="store_true",
                       help="rigorous preset: >= 1000 iterations and >= 10 s, longer warm-up")
    bench.add_argument("--seed", type=int, default=SPEC_DEFAULTS.seed)
    bench.add_argument("--timeout", type=float, default=SPEC_DEFAULTS.timeout_s, help="kill the run after this many seconds")
    bench.add_argument("--telemetry-hz", type=float, default=SPEC_DEFAULTS.telemetry_hz,
                       help="telemetry sampling rate (0.5-100 Hz)")
    bench.add_argument("--label", help="a name for this run")
    bench.add_argument("--save-model", help="save the optimized model (.pt TorchScript, .pt2, or .onnx)")
    _fidelity_gate_option(bench)
    bench.add_argument("--all-combinations", action="store_true",
                       help="with several plugins: the baseline, each plugin alone, then the whole chain, "
                            "compared in one table")
    bench.add_argument("--no-baseline", action="store_true",
                       help="with plugins: do not run the plain model first when no baseline is stored")

    runs = command("runs", help="list stored runs")
    runs.add_argument("--limit", type=int, default=50)

    show = command("show", help="full details of one run")
    show.add_argument("run_id", type=int)
    _fidelity_gate_option(show)

    compare = command("compare", help="side-by-side table with ratios vs the baseline")
    compare.add_argument("run_ids", type=int, nargs="+")
    _fidelity_gate_option(compare)

    report = command("report", help="export runs as a report (.html, .pdf, .csv, .json)")
    report.add_argument("run_ids", type=int, nargs="*")
    report.add_argument("-o", "--output", required=True, help="output file; the suffix picks the format")
    report.add_argument("--criterion", default="p50", help=_criterion_help())
    report.add_argument("--sweep", type=int, metavar="ID", help="report sweep ID (.html, .csv, .json): its points, "
                                                                "scaling curves, sweet spot, frontier")
    report.add_argument("--latency-budget", help="with --sweep: the sweet spot's budget (default 2x the batch-1 p99; "
                                                 "or milliseconds, 5ms)")

    command("plugins", help="list optimization plugins and their parameters")

    inspect = command("inspect", help="describe a model (parameters, size, FLOPs, inputs, layers)")
    inspect.add_argument("model")
    inspect.add_argument("--factory")
    inspect.add_argument("--trust-pickle", action="store_true")
    inspect.add_argument("--input", action="append", default=[])
    inspect.add_argument("--trust-remote-code", action="store_true",
                         help="allow a Hugging Face folder's own Python code (auto_map) to run")
    inspect.add_argument("--task", default=SPEC_DEFAULTS.task, choices=TASKS)

    rename = command("rename", help="name a run")
    rename.add_argument("run_id", type=int)
    rename.add_argument("name")
    tag = command("tag", help="set a run's tags")
    tag.add_argument("run_id", type=int)
    tag.add_argument("tags", nargs="*")
    delete = command("delete", help="delete runs and their data")
    delete.add_argument("run_ids", type=int, nargs="+")
    _explain_commands(command)
    _sweep_commands(command, bench)
    return parser


def _sweep_commands(command, bench: argparse.ArgumentParser) -> None:
    """``sweep``, ``sweeps``, ``show-sweep`` (workbench/cli_sweep.py). A sweep takes every option of
    ``bench`` (the same action objects, as argparse's ``parents`` shares them) except the ones below."""
    sweep = command("sweep", help="run a grid of settings and plugin parameters (one run per point), here or on Ray")
    sweep.add_argument("model", nargs="?", help="as for bench (not with --resume)")
    for action in bench._actions:
        taken = any(o in sweep._option_string_actions for o in action.option_strings)   # -h and the globals
        if not taken and action.dest not in ("model", "all_combinations", "no_baseline"):
            sweep._add_action(action)
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                       help="an axis: a run setting (batch, threads, seq_len, prompt_len, gen_len, dtype, runtime, "
                            "device, scenario), a plugin parameter PLUGIN.PARAM (prune.amount), or on a GPU "
                            "power_limit (W) / sm_clock (MHz); repeat for more axes (the grid is their product)")
    sweep.add_argument("--repeat", type=int, default=1, metavar="N",
                       help="N worker processes per point, interleaved; N >= 3 measures the run-to-run noise "
                            "(speed-up CIs from the spread between processes) instead of assuming ±2 %%")
    sweep.add_argument("--all-combinations", action="store_true",
                       help="every sub-chain of the plugins (with and without each), for per-plugin contributions")
    sweep.add_argument("--yes", action="store_true", help="run a grid of more than 1000 points")
    sweep.add_argument("--resume", type=int, metavar="ID", help="continue sweep ID: run only its unfinished points")
    sweep.add_argument("--name", help="a name for the sweep")
    sweep.add_argument("--executor", default="local", choices=("local", "ray"),
                       help="where points run: here, one at a time (default), or as Ray tasks (workbench[ray])")
    sweep.add_argument("--address", default="auto", help="with --executor ray: the cluster (HOST:PORT of the head, "
                                                         "ray://HOST:PORT, or auto; default auto)")
    sweep.add_argument("--require", action="append", default=[], metavar="gpu=MODEL",
                       help="with --executor ray: run points only on nodes with this GPU model (e.g. gpu=H100)")
    sweep.add_argument("--cpus-per-point", type=int, metavar="N",
                       help="with --executor ray: CPUs each point reserves on its node (default: --threads, else 1)")
    sweep.add_argument("--latency-budget", help="the sweet spot's latency budget: 2x (the default: 2x the batch-1 "
                                                "p99) or milliseconds (5ms)")
    sweeps = command("sweeps", help="list stored sweeps")
    sweeps.add_argument("--limit", type=int, default=50)
    show = command("show-sweep", help="a sweep's points, curves, sweet spot, frontier and noise rule")
    show.add_argument("sweep_id", type=int)
    show.add_argument("--latency-budget", help="the sweet spot's latency budget (2x or 5ms)")
    _fidelity_gate_option(show)


def _explain_commands(command) -> None:
    """``profile`` and ``layers`` (workbench/cli_explain.py): why a run is as fast and as faithful as it is."""
    profile = command("profile", help="a run's per-op profile (recorded by bench --profile), or why it is faster "
                                      "or slower than another run (--vs)")
    profile.add_argument("run_id", type=int)
    profile.add_argument("--vs", type=int, metavar="RUN_A",
                         help="compare with run RUN_A (same model and device): ops faster, slower, new, gone")
    profile.add_argument("--trace", metavar="FILE", help="copy the run's Chrome/Perfetto trace (JSON) to FILE")
    profile.add_argument("--top", type=int, default=15, help="ops to list (default 15)")
    layers = command("layers", help="per layer vs the unoptimized model: output drift, weight error |w − q(w)| "
                                    "and ‖Δw‖/‖w‖, parameters and FLOPs; --scan: the fidelity each layer costs")
    layers.add_argument("run_id", type=int)
    layers.add_argument("--scan", nargs="?", const="", metavar="PLUGIN[:k=v,...]",
                        help="apply the plugin to one layer at a time and rank the layers by the fidelity they cost "
                             "(default: the run's own plugin); suggests which layers to skip")
    layers.add_argument("--top", type=int, default=40, help="layers to list (default 40)")


def _language_model_options(bench: argparse.ArgumentParser) -> None:
    """Hugging Face folders, text inputs and the generation scenario."""
    group = bench.add_argument_group("language models and Hugging Face folders")
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a Hugging Face folder's own Python code (config auto_map) to run")
    group.add_argument("--task", default=SPEC_DEFAULTS.task, choices=TASKS,
                       help="how to open a Hugging Face folder (default: from config.json's architectures)")
    group.add_argument("--scenario", default=SPEC_DEFAULTS.scenario, choices=SCENARIOS,
                       help="forward: one forward pass per iteration; generate: greedy generation with the KV "
                            "cache, prefill and every decode step timed (auto: generate for causal LMs)")
    group.add_argument("--text", help="UTF-8 text file: token inputs, calibration and perplexity "
                                      "(default for language models: the bundled corpus)")
    group.add_argument("--prompt", help="the prompt to generate from (generate scenario)")
    group.add_argument("--seq-len", type=int, help="tokens per sequence for forward runs of token models")
    group.add_argument("--prompt-len", type=int, help="prompt tokens for the generate scenario "
                                                       f"(default {DEFAULT_PROMPT_LEN})")
    group.add_argument("--gen-len", type=int, default=SPEC_DEFAULTS.gen_len,
                       help=f"new tokens to generate, exactly (EOS ignored; default {SPEC_DEFAULTS.gen_len})")
    bench.add_argument("--profile", action="store_true",
                       help="after timing, record a per-op profile (never part of the timed figures)")


def _fidelity_gate_option(parser: argparse.ArgumentParser) -> None:
    from .results.verdict import DEFAULT_MIN_FIDELITY, parse_min_fidelity

    def gate(text: str) -> float:
        try:
            return parse_min_fidelity(text)
        except SpecError as exc:   # argparse turns this into its one-line usage error (exit 2)
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument("--min-fidelity", type=gate, default=DEFAULT_MIN_FIDELITY, metavar="FRACTION",
                        help="the fidelity gate of the verdict: top-1 agreement (classifiers) or cosine similarity "
                             f"a variant needs to count as a win (default {DEFAULT_MIN_FIDELITY:g}; 99%% also works)")


def _version() -> str:
    from . import __version__
    return __version__


def _criterion_help() -> str:
    try:
        from .report import CRITERION_HELP
        return CRITERION_HELP.replace("%", "%%")
    except ImportError:
        return "how the best variant is chosen (default: fastest p50 with top-1 agreement >= 99%%)"


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    spec = RunSpec(model=args.model, factory=args.factory, trust_pickle=args.trust_pickle,
                   plugins=[PluginStep.parse(p) for p in args.plugin], runtime=args.runtime,
                   device=args.device, dtype=args.dtype, batch=args.batch, threads=args.threads,
                   inputs=[InputSpec.parse(i) for i in args.input], data=args.data, seed=args.seed,
                   timeout_s=args.timeout, telemetry_hz=args.telemetry_hz, label=args.label,
                   save_model=args.save_model, trust_remote_code=args.trust_remote_code, task=args.task,
                   scenario=args.scenario, text=args.text, prompt=args.prompt, seq_len=args.seq_len,
                   prompt_len=args.prompt_len, gen_len=args.gen_len, profile=args.profile)
    if args.rigorous:
        spec.apply_preset("rigorous")
    if args.iters is not None:
        spec.iters = args.iters
    if args.duration is not None:
        spec.duration_s = args.duration
    spec.validate()
    return spec


def with_default_command(argv: list[str]) -> list[str]:
    """`workbench MODEL` means `workbench gui MODEL` (like `netron model.onnx`)."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in _VALUED_GLOBALS:
            index += 2
            continue
        if token.startswith("-"):
            index += 1
            continue
        if token not in COMMAND_NAMES:
            return argv[:index] + ["gui"] + argv[index:]
        return argv
    return argv
