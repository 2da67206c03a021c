"""One module per screen: presets, runs, live, compare, plus the help and confirmation modals."""
