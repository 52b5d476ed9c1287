"""The child side of a run (``python -m workbench.worker``): everything that touches a model —
load, optimize, measure, fidelity — runs in this process, never in the GUI or CLI process.

Kept empty on purpose: the parent imports ``workbench.worker.conditions`` to start a worker and
must not pull in numpy or torch through this package."""
