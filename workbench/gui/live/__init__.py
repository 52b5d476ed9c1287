"""The Live dock: ``series`` holds a running measurement's data and derived numbers (no Qt),
``status`` its words (no Qt), ``plots`` draws them, ``gpu_panel`` is the GPU plots or why there
are none, ``widgets`` are its small plot building blocks."""
