"""cltui's user interface: the Typer CLI and the Textual TUI.

Never imports torch at module scope (a test checks this in a fresh interpreter); training runs
through engine.api, imported inside the functions that need it, or in a separate process.
"""
