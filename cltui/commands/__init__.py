"""The `cltui` commands, one module per group (cltui/cli.py imports them in help order and holds `main`):

- common: the Typer apps, consoles, option types and shared helpers;
- running: run, sweep, resume, watch;
- browse: presets, presets show, runs, show;
- output: export, plot;
- bench: bench.
"""
