"""A Lotsen process that completes one task through the real app and dies by SIGKILL on the way.

Run by tests/security/test_reliability.py (security.md §5.3 test 2, §6 case 28) as
``python crash_worker.py DATABASE_URL INSTANCE_DIR TASK_ID MOMENT``. The app is the real one
(create_app, the login form, the task form); the only addition is a database hook that sends
SIGKILL to this very process at ``MOMENT``:

``mid-step``       when the engine writes the new workflow state (after its steps, before commit)
``before-commit``  when the completion's transaction is about to COMMIT
``after-commit``   right after that COMMIT succeeded (before the response is sent)

Nothing after the kill runs: no rollback, no exception handler, no atexit. The exit status
therefore tells the parent whether the kill happened (-9).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    url, instance, task_id, moment = sys.argv[1:5]
    data = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    from tests.conftest import login
    from tests.security.security_kit import post_completion, task_form
    from webapp import create_app

    app = create_app(
        {
            "LOTSEN_DATABASE_URL": url,
            "LOTSEN_ENV": "test",
            "LOTSEN_DEMO": "1",
            "LOTSEN_INSTANCE_DIR": instance,
            "TESTING": True,
        }
    )
    client = login(app.test_client(), "handlaggare")
    page, fields = task_form(client, task_id)
    engine = app.extensions["lotsen_engine"]
    armed = {"state_written": False}

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    @event.listens_for(engine, "before_cursor_execute")
    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE PROCESS_INSTANCES"):
            armed["state_written"] = True
            if moment == "mid-step":
                die()

    @event.listens_for(engine, "commit")
    def before_commit(_conn: Any) -> None:
        if armed["state_written"] and moment == "before-commit":
            die()

    @event.listens_for(app.extensions["lotsen_db"], "after_commit")
    def after_commit(_session: Any) -> None:
        if armed["state_written"] and moment == "after-commit":
            die()

    response = post_completion(client, task_id, page, fields, data)
    print(f"not killed: {response.status_code}")  # the hook never fired: the parent fails


if __name__ == "__main__":
    main()
