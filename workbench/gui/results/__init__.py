"""The Results dock: ``table`` (every stored run, with ``columns`` saying what each column shows)
and ``charts`` (the comparison charts of the selected runs)."""
