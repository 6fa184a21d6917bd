"""Stands in for ``python -m vllm.entrypoints.openai.api_server`` on a GPU node of the local cluster
(GPU GRES backed by dummy files): records the flags and the GPUs Slurm bound to its step, answers
``/health``. ``fake_python.sh`` runs it instead of vLLM."""

from __future__ import annotations

import http.server
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    record = {"port": port, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "args": args,
              "started": time.time(), "step": os.environ.get("SLURM_STEP_ID")}
    Path(os.environ["FAKE_JUDGE_RECORDS"], f"{port}.json").write_text(json.dumps(record))

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    http.server.HTTPServer(("0.0.0.0", port), Health).serve_forever()


if __name__ == "__main__":
    main()
