"""`kekong serve` says "serving on …" only once its socket listens (issue 23 item 9)."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.server_helpers import free_port


def test_serving_is_announced_only_once_it_listens(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kekong.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path), "--no-ui"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # blocks until the announcement (click flushes each echo)
        assert line.startswith(f"kekong serving on http://127.0.0.1:{port}"), line + process.stderr.read()
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # refused if it were announced early
            pass
    finally:
        process.terminate()
        process.wait(20)
