"""What runs leave behind and how they compare: the SQLite store, the one baseline rule, the
statistics (CIs, the noise rule) and the comparison rows every face shows."""
