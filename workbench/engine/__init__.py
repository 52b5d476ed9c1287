"""The parent side of a run: plan it (baseline first, pairs, all combinations), spawn and watch the
worker process (``process``), stream its events into the results store (``session``), and record
the machine it ran on (``environment``). Nothing here loads a model."""
