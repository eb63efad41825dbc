"""`make run`'s last step: a Celery worker with beat beside Django's server, stopped together.

Prints the URL and the demo logins. Environment: PORT (default 8000), HOST (default 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    os.chdir(ROOT)
    # Stop the children on SIGTERM/SIGHUP too, not only on Ctrl-C: SystemExit runs the finally below.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(0))
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "advisor", "worker", "--beat", "--loglevel", "INFO", "--concurrency", "2"],
    )
    sys.path.insert(0, str(ROOT))
    from advisor.demo import ADMIN, ADVISOR, DEMO_PASSWORD, INVESTOR

    banner = f"""
  Advisor is running at http://{host}:{port}/
    investor  {INVESTOR:<24} password {DEMO_PASSWORD}
    advisor   {ADVISOR:<24} password {DEMO_PASSWORD}
    admin     {ADMIN:<24} password {DEMO_PASSWORD}
  API docs:  http://{host}:{port}/api/docs/    health: http://{host}:{port}/healthz
  A Celery worker with beat runs beside the server. Ctrl-C stops both.
"""
    print(banner, flush=True)
    server = subprocess.Popen([str(BIN / "python"), "manage.py", "runserver", "--noreload", f"{host}:{port}"])
    try:
        while True:
            for proc in (server, worker):
                if proc.poll() is not None:
                    return proc.returncode or 0
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=1)
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (server, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (server, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
