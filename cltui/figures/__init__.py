"""Figures of a run record: `cltui plot` and the TUI's figure export share everything in here.

* `cltui.figures.data`: what each figure shows, read out of a RunRecord into plain numpy dataclasses
  (no matplotlib), so the TUI's terminal panels and a later seed-group figure (mean ± std bands)
  use the same numbers.
* `cltui.figures.draw`: one matplotlib function per figure, drawing those dataclasses.
* `cltui.figures.export`: which figures a run has data for, and writing them to files.

Matplotlib is imported only inside the drawing functions: importing any module here loads neither
matplotlib nor torch (`cltui --help` and the TUI start without them).
"""
