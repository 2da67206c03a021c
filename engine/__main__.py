"""`python -m engine run|resume|ensemble ...`: the training process that cltui's executor starts.

Its stdout is a structured channel of one JSON line:
- `{"run_id": ..., "run_dir": ...}` as soon as the run record exists (then progress, the final
  status and a failure's error go to the run record, never to stdout; except that a run stopped
  because its files cannot be written, a full disk or a read-only file system, adds a second line
  `{"error": ..., "kind": "StorageError"}`, since its record may not be writable), or
- `{"error": "<one line>", "kind": "<error class>"}` when it stops before the record exists (bad
  config, no GPU, missing data, a run still being written, an unexpected crash); exit code 2.

`ensemble` (engine/ensemble.py) starts several runs in one process: one announcement line per member,
all written once every member's record exists; its exit code is the worst member's.

A finished run exits 0, a failed one 1, an interrupted one 3, a diverged one 4. Once the run exists, stderr (library
warnings, a traceback) is redirected into `<run_dir>/engine.log` (an ensemble's: its first member's), so no
output is shared between runs.
argparse, not typer: the engine never imports the UI's libraries. Start it with `python -P` (3.11+)
so an `engine/` folder in the working directory cannot shadow the installed one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

EXIT = {"finished": 0, "failed": 1, "interrupted": 3, "diverged": 4}
ENGINE_LOG = "engine.log"


class _Announcer:
    """The RunStarted sink that writes the one announcement line (and moves stderr into the run)."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self, event: Any) -> None:
        from engine.events import RunStarted

        if not isinstance(event, RunStarted):
            return
        # One line per run (an ensemble announces each member); stderr goes to the first run's log.
        print(json.dumps({"run_id": event.run_id, "run_dir": event.run_dir, "notes": list(event.notes),
                          "resumed_at_step": event.resumed_at_step}), flush=True)
        if not self.done:
            self.done = True
            try:
                sys.stderr.flush()
                fd = os.open(Path(event.run_dir) / ENGINE_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd, 2)
                os.close(fd)
            except OSError:
                pass  # keep the inherited stderr: losing warnings is better than failing the run


def error_line(error: str, kind: str) -> str:
    """The announcement channel's error object, as one line."""
    return json.dumps({"error": error, "kind": kind})


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="start a run from a resolved config (JSON file)")
    r.add_argument("--config", required=True, help="JSON file with the resolved config")
    r.add_argument("--group", default="")
    r.add_argument("--override", action="append", default=[], help="an override that made this config (recorded, hashed into the id)")
    s = sub.add_parser("resume", help="resume a stored run from its last checkpoint")
    s.add_argument("run")
    e = sub.add_parser("ensemble", help="start several runs in one process as a batched ensemble")
    e.add_argument("--spec", required=True, help='JSON file: a list of {"config": ..., "group": ..., "overrides": [...]}')
    for q in (r, s, e):
        q.add_argument("--runs-dir", required=True)
        q.add_argument("--data-dir", default=None)
        q.add_argument("--stop-at-step", type=int, default=None, help="stop (checkpoint) at this global step")
    a = p.parse_args(argv)
    announce = _Announcer()
    try:
        from engine import api
        from engine.config import config_from_dict

        if a.cmd == "run":
            cfg_path = Path(a.config)
            raw = json.loads(cfg_path.read_text())
            if cfg_path.name.startswith("cltui-config-"):
                cfg_path.unlink(missing_ok=True)  # an executor's temp file; the run stores the config
            cfg = config_from_dict(raw, where=a.config)
            res = api.run(cfg, Path(a.runs_dir), a.data_dir, sinks=[announce], group=a.group,
                          stop_at_step=a.stop_at_step, overrides=a.override)
        elif a.cmd == "ensemble":
            from engine.ensemble import EnsembleRun, run_ensemble

            spec_path = Path(a.spec)
            specs = json.loads(spec_path.read_text())
            if spec_path.name.startswith("cltui-config-"):
                spec_path.unlink(missing_ok=True)
            runs = [EnsembleRun(config_from_dict(m["config"], where=a.spec), m.get("group", ""),
                                tuple(m.get("overrides", ()))) for m in specs]
            results = run_ensemble(runs, Path(a.runs_dir), a.data_dir, sinks=[announce], stop_at_step=a.stop_at_step)
            res = max(results, key=lambda x: EXIT[x.status])  # the worst member's status is the exit code
            for other in results:
                if other.kind == "StorageError":
                    res = other
        else:
            res = api.resume(a.run, Path(a.runs_dir), a.data_dir, sinks=[announce], stop_at_step=a.stop_at_step)
    except KeyboardInterrupt:
        if announce.done:
            raise
        print(error_line("interrupted before the run existed; nothing was stored", "KeyboardInterrupt"), flush=True)
        return 2
    except Exception as e:  # every failure before the record exists becomes the error object
        if announce.done:
            raise  # after the announcement the record holds errors; this is a bug in the engine itself
        user = _is_cltui_error(e)  # a CltuiError is already one line for people
        if not user:
            traceback.print_exc()  # for someone running `python -m engine` by hand
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(error_line(msg if user else f"{type(e).__name__}: {msg}", type(e).__name__), flush=True)
        return 2
    if res.kind == "StorageError":
        # Its files could not be written (disk full, read-only), so the record may not hold this line:
        # a second line on the channel says it. Then exit at once: closing run.h5 at interpreter exit
        # would flush into the full disk (engine.store leaves it as its last flush left it).
        print(error_line(res.error, res.kind), flush=True)
        os._exit(EXIT[res.status])
    return EXIT[res.status]


def _is_cltui_error(e: BaseException) -> bool:
    from engine.errors import CltuiError

    return isinstance(e, CltuiError)


if __name__ == "__main__":
    # Until the run's own handler takes over (engine.api: checkpoint and stop), SIGTERM is Ctrl-C:
    # a run stopped while it loads data exits with its error line and leaves nothing behind.
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
