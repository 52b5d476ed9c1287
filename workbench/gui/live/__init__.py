"""The Live dock: ``series`` holds a running measurement's data and derived numbers (no Qt),
``plots`` draws them, ``widgets`` are its small plot building blocks."""
