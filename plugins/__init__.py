"""First-party Workbench plugins (import name ``workbench_plugins``)."""
