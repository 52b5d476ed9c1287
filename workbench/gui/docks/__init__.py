"""The single-module docks of the main window: Model (with the inputs editor), Plugins (with each
plugin's parameter form), Run (settings, run buttons, progress, queue) and Log. The Live and
Results docks are larger and have their own packages."""
