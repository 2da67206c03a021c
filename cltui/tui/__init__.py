"""The Textual TUI of cltui: presets, live runs, the runs list and comparisons.

Built by `cltui.tui.app.create_app(store, executor, settings)`; `run_tui()` is what bare `cltui`
calls. Everything here is torch-free: runs train in their own processes (engine.executor) and the
TUI only reads the run store (engine.store), so it starts fast and quitting it leaves runs going.
"""
