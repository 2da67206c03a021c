"""`python -m engine run|resume ...`: the training process that cltui launches.

Prints one JSON line `{"run_id": ..., "run_dir": ...}` on stdout as soon as the run exists, then
nothing else (progress goes to the run store). A problem the user can fix is one line on stderr
and exit code 2; a failed run exits 1, an interrupted one 3. argparse, not typer: the engine
never imports the UI's libraries.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT = {"finished": 0, "failed": 1, "interrupted": 3}


def _announce(event: Any) -> None:
    from engine.events import RunStarted

    if isinstance(event, RunStarted):
        print(json.dumps({"run_id": event.run_id, "run_dir": event.run_dir}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="start a run from a resolved config (JSON file)")
    r.add_argument("--config", required=True, help="JSON file with the resolved config")
    r.add_argument("--group", default="")
    s = sub.add_parser("resume", help="resume a stored run from its last checkpoint")
    s.add_argument("run")
    for q in (r, s):
        q.add_argument("--runs-dir", required=True)
        q.add_argument("--data-dir", default=None)
        q.add_argument("--stop-at-step", type=int, default=None, help="stop (checkpoint) at this global step")
    a = p.parse_args(argv)

    from engine import api
    from engine.config import config_from_dict
    from engine.errors import CltuiError

    try:
        if a.cmd == "run":
            cfg_path = Path(a.config)
            raw = json.loads(cfg_path.read_text())
            if cfg_path.name.startswith("cltui-config-"):
                cfg_path.unlink(missing_ok=True)  # a launcher's temp file; the run stores the config
            cfg = config_from_dict(raw, where=a.config)
            res = api.run(cfg, Path(a.runs_dir), a.data_dir, sinks=[_announce], group=a.group,
                          stop_at_step=a.stop_at_step)
        else:
            res = api.resume(a.run, Path(a.runs_dir), a.data_dir, sinks=[_announce], stop_at_step=a.stop_at_step)
    except CltuiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if res.status == "failed":
        print(f"error: run {res.run_id} failed: {res.error} (details in {res.run_dir}/run.h5 /error)", file=sys.stderr)
    return EXIT[res.status]


if __name__ == "__main__":
    sys.exit(main())
