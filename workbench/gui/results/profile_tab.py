"""The Results dock's Profile tab: where the selected run spends its time, and why it is faster or
slower than its baseline.

It reads the per-op profile stored with a ``--profile`` run (``result["profile"]``, through
``workbench.results.explain``), so an old run is explained later, without running anything:

* **Top ops**: self time per iteration, calls, share of the total and the costliest input shapes;
* **vs baseline**: the ops grouped into slower / new / faster / gone, with the share of the latency
  change each explains (``results.profile_diff``), and above both the one-sentence explanation.

A run without a profile gets a hint: tick Profile in the Run dock, or the CLI command with ``--profile``.
"""
from __future__ import annotations

from typing import Sequence

from PySide6.QtWidgets import QStackedWidget, QTabWidget, QVBoxLayout, QWidget

from ... import format as fmt
from ...results.explain import stored_profile
from ...results.profile_diff import GROUPS, ProfileMismatch, check_comparable, diff_profiles, explain_diff
from ...results.store import ResultsStore, RunRecord
from .. import plot_style as style
from .explain_widgets import (Cell, CommandLine, ReadOnlyTable, Selected, TabLayout, command_for, escape, hint_label,
                              pick_run, run_title)

GROUP_COLORS = {"slower": "#c0392b", "new": "#d35400", "faster": "#2e8540", "gone": "#1f5fa8"}
NO_RUN = "Select a run in the table to see where its time goes."
OPS_HEADERS = ("op", "self time / iter", "% of total", "calls / iter", "input shapes (costliest first)")
OPS_TIPS = ("", "time spent in the op itself (children excluded), per profiled iteration",
            "share of the profiled time of all ops", "", "the input shapes that cost the most, with their calls")
DIFF_HEADERS = ("group", "op", "before", "after", "change", "of change", "calls / iter")
DIFF_TIPS = ("slower / faster: the op ran in both; new / gone: only in one run",
             "", "time per iteration in the baseline", "time per iteration in the selected run", "",
             "the op's share of the change in profiled time (negative: it moved the other way)", "")


def us_text(value: float) -> str:
    """Microseconds as the CLI writes them (``fmt.ms`` of the magnitude, a real minus sign)."""
    return ("−" if value < 0 else "") + fmt.ms(abs(value) / 1000)


def share_text(share: float | None) -> str:
    """A share of the change in whole percent, with a real minus sign and no "-0 %"."""
    if share is None:
        return "—"
    return ("−" if round(100 * share) < 0 else "") + f"{abs(round(100 * share))}%"


RECORD_HINT = ("Tick <b>Profile</b> in the Run dock and run it again (the profile is taken after the timed "
               "iterations, so the timings do not change), or from a terminal:")


class ProfileTab(QWidget):
    """Top ops of the selected run and its diff against the baseline, from stored profiles."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("profileTab")
        self.selected: Selected | None = None
        self.diff: dict | None = None
        self.sentence = ""

        self.hint = hint_label("profileHint")
        self.hint_command = CommandLine("profileHintCommand")
        hint_page = QWidget()
        hint_layout = QVBoxLayout(hint_page)
        hint_layout.addWidget(self.hint)
        hint_layout.addWidget(self.hint_command)
        hint_layout.addStretch(1)

        self.header = hint_label("profileHeader")
        self.sentence_label = hint_label("profileSentence")
        self.ops_table = ReadOnlyTable(OPS_HEADERS, OPS_TIPS)
        self.ops_table.setObjectName("profileOps")
        self.diff_groups = hint_label("profileGroups")
        self.diff_table = ReadOnlyTable(DIFF_HEADERS, DIFF_TIPS)
        self.diff_table.setObjectName("profileDiff")
        self.diff_hint = hint_label("profileDiffHint")
        self.diff_command = CommandLine("profileDiffCommand")
        diff_page = QWidget()
        diff_layout = QVBoxLayout(diff_page)
        diff_layout.setContentsMargins(0, 0, 0, 0)
        diff_layout.setSpacing(0)
        for widget in (self.diff_groups, self.diff_table, self.diff_hint, self.diff_command):
            diff_layout.addWidget(widget, 1 if widget is self.diff_table else 0)
        self.diff_spacer = QWidget()          # keeps the hint at the top while the table is hidden
        diff_layout.addWidget(self.diff_spacer, 1)
        self.views = QTabWidget()
        self.views.setObjectName("profileViews")
        self.views.setDocumentMode(True)
        self.views.addTab(self.ops_table, "Top ops")
        self.views.addTab(diff_page, "vs baseline")
        self.notes = hint_label("profileNotes")
        self.notes.setStyleSheet(f"color: {style.muted().name()};")
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.setSpacing(0)
        content_layout.addWidget(self.header)
        content_layout.addWidget(self.sentence_label)
        content_layout.addWidget(self.views, 1)
        content_layout.addWidget(self.notes)

        self.stack = QStackedWidget()
        self.stack.addWidget(hint_page)
        self.stack.addWidget(content)
        layout = TabLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self._show_hint(NO_RUN)

    # -- public API ------------------------------------------------------------------------------
    def show_runs(self, store: ResultsStore | None, run_ids: Sequence[int]) -> None:
        """Explain the run of the selection (``explain_widgets.pick_run``) from what it stored."""
        self.selected = pick_run(store, list(run_ids))
        self.diff, self.sentence = None, ""
        if self.selected is None:
            self._show_hint(NO_RUN)
            return
        run = self.selected.run
        if run.status != "done":
            self._show_hint(f"Run {escape(run_title(run))} is {escape(run.status)}: only a finished run has a profile.")
            return
        profile = stored_profile(run)
        if profile is None:
            self._show_hint(f"Run {escape(run_title(run))} has no per-op profile. {RECORD_HINT}",
                            command_for(run.spec, "--profile"))
            return
        if profile.get("error"):
            self._show_hint(f"The profile of run {escape(run_title(run))} failed: {escape(profile['error'])}. "
                            f"{RECORD_HINT}", command_for(run.spec, "--profile"))
            return
        self.stack.setCurrentIndex(1)
        self._fill_header(run, profile)
        self._fill_ops(profile)
        notes = list(profile.get("notes") or [])
        notes += self._fill_diff(store, run, profile)
        trace = profile.get("trace_path")
        if trace:
            notes.append(f"Chrome/Perfetto trace: {trace} (open it in ui.perfetto.dev or chrome://tracing)")
        self.notes.setText("<br>".join(escape(n) for n in notes))
        self.notes.setVisible(bool(notes))

    def hint_text(self) -> str:
        """What the tab says instead of a table ('' when it shows a profile)."""
        return self.hint.text() if self.stack.currentIndex() == 0 else ""

    # -- filling -------------------------------------------------------------------------------------
    def _show_hint(self, text: str, command: str | None = None) -> None:
        self.hint.setText(text)
        self.hint_command.set_command(command)
        self.stack.setCurrentIndex(0)

    def _fill_header(self, run: RunRecord, profile: dict) -> None:
        basis = "GPU kernel" if profile.get("time_basis") == "device" else "CPU self"
        self.header.setText(
            f"<b>{escape(run_title(run))}</b> · {escape(run.model)} on {escape(run.device or 'cpu')} — "
            f"{escape(profile.get('source'))}, {profile.get('iterations')} iterations after timing ({basis} "
            f"time): ops {us_text(profile.get('total_us') or 0.0)} per iteration; timed p50 "
            f"{fmt.ms((run.latency or {}).get('median_ms'))}")

    def _fill_ops(self, profile: dict) -> None:
        rows = []
        for op in profile.get("ops") or []:
            shapes = op.get("shapes") or []
            first = shapes[0].get("shapes", "") if shapes else ""
            tip = "\n".join(f"{s.get('shapes') or '(no tensor inputs)'}: {s.get('calls', 0):g} calls, "
                            f"{us_text(s.get('time_us') or 0.0)}" for s in shapes)
            rows.append([Cell(op["op"]), Cell(us_text(op["time_us"]), op["time_us"], align_right=True),
                         Cell(fmt.pct(op.get("share")), op.get("share"), align_right=True),
                         Cell(f"{op['calls']:g}", op["calls"], align_right=True),
                         Cell(first + (f"  (+{len(shapes) - 1} more)" if len(shapes) > 1 else ""), first, tip)])
        self.ops_table.set_rows(rows)
        hidden = (profile.get("ops_total") or 0) - len(rows)
        self.views.setTabToolTip(0, f"{hidden} cheaper ops are not stored" if hidden > 0 else "")

    def _fill_diff(self, store: ResultsStore | None, run: RunRecord, profile: dict) -> list[str]:
        """The diff page (or why there is none); returns notes for below the tables."""
        base = self.selected.baseline if self.selected else None
        self.diff_table.hide()
        self.diff_spacer.show()
        self.diff_groups.hide()
        self.diff_command.set_command(None)
        self.sentence_label.hide()
        if base is None:
            why = ("this run is a baseline: select one of its variants to see which ops it changed"
                   if not run.spec.get("plugins") else "no baseline of this run is stored: run the plain model")
            return self._diff_unavailable(why)
        self.views.setTabText(1, f"vs baseline #{base.id}")
        try:
            notes = check_comparable(base, run)
        except ProfileMismatch as exc:
            return self._diff_unavailable(str(exc))
        base_profile = stored_profile(base)
        if base_profile is None or base_profile.get("error"):
            what = "has no per-op profile" if base_profile is None else f"failed to profile ({base_profile['error']})"
            self._diff_unavailable(f"The baseline {run_title(base)} {what}, so there is nothing to compare "
                                   "with. Run the baseline with Profile ticked, or from a terminal:")
            self.diff_command.set_command(command_for(base.spec, "--profile"))
            return []
        self.diff = diff_profiles(base_profile, profile)
        self.sentence = explain_diff(self.diff, f"run #{base.id} ({base.chain})", f"run #{run.id} ({run.chain})")
        self.sentence_label.setText(f"<b>{escape(self.sentence)}.</b>")
        self.sentence_label.show()
        self.diff_hint.hide()
        self.diff_groups.setText(self._groups_text(base, run))
        self.diff_groups.show()
        self.diff_table.setHorizontalHeaderLabels(["group", "op", f"#{base.id}", f"#{run.id}", "change",
                                                  "of change", "calls / iter"])
        self.diff_table.set_rows(self._diff_rows())
        self.diff_table.show()
        self.diff_spacer.hide()
        latency = [(r.latency or {}).get("median_ms") for r in (base, run)]
        if all(latency) and self.diff["change_us"] and (latency[1] > latency[0]) != (self.diff["change_us"] > 0):
            notes.append("the timed p50 and the profile disagree on which run is faster: the profile covers a few "
                         "iterations only (and the profiler's own overhead); trust the timed figures, and profile "
                         "again on a quiet machine to see why")
        return notes

    def _diff_unavailable(self, why: str) -> list[str]:
        if self.selected is None or self.selected.baseline is None:
            self.views.setTabText(1, "vs baseline")
        self.diff_hint.setText(escape(why))
        self.diff_hint.show()
        return []

    def _groups_text(self, base: RunRecord, run: RunRecord) -> str:
        diff = self.diff
        parts = []
        for group in GROUPS[:4]:
            summary = diff["groups"][group]
            if not summary["ops"]:
                continue
            sign = "+" if summary["change_us"] > 0 else ""
            parts.append(f"<span style='color:{GROUP_COLORS[group]}'><b>{group}</b></span> {summary['ops']} "
                         f"op{'s' if summary['ops'] > 1 else ''} {sign}{us_text(summary['change_us'])} "
                         f"({share_text(summary['share_of_change'])})")
        total = (f"profiled ops {us_text(diff['total_before_us'])} (#{base.id}) → "
                 f"{us_text(diff['total_after_us'])} (#{run.id}) per iteration")
        return total + (": " + " · ".join(parts) if parts else "")

    def _diff_rows(self) -> list[list[Cell]]:
        order = {g: i for i, g in enumerate(GROUPS)}
        rows = sorted(self.diff["ops"], key=lambda r: (order[r["group"]], -abs(r["change_us"])))
        muted = style.muted().name()
        cells = []
        for row in rows:
            color = GROUP_COLORS.get(row["group"])
            sign = "+" if row["change_us"] > 0 else ""
            before = "—" if row["group"] == "new" else us_text(row["before_us"])     # the op did not run
            after = "—" if row["group"] == "gone" else us_text(row["after_us"])
            cells.append([Cell(row["group"], order[row["group"]], color=color or muted),
                          Cell(row["op"], color=None if color else muted),
                          Cell(before, row["before_us"], align_right=True),
                          Cell(after, row["after_us"], align_right=True),
                          Cell(sign + us_text(row["change_us"]), row["change_us"], align_right=True),
                          Cell(share_text(row["share_of_change"]), row["share_of_change"], align_right=True),
                          Cell(f"{row['calls_before']:g} → {row['calls_after']:g}", row["calls_after"])])
        return cells
