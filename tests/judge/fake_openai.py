"""A small OpenAI-compatible chat-completions server for tests, on 127.0.0.1.

The candidate text picks the behaviour with a ``MODE=<name>`` tag:
good (JSON), lines (``Name: x`` and ``x/10``), partial (four dimensions), malformed
(prose only), slow (the first answer comes after the client's timeout), ratelimit
(429 twice, then good), error500 (always 500).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GOOD = {"Accuracy": 4.5, "Safety": 4.0, "Medical Groundedness": 3.5, "Clinical Coverage": 3.0,
        "Reasoning Coherence": 4.0, "Description Precision": 2.5}


def _answer(mode: str) -> str:
    if mode == "lines":
        return ("Here is my assessment.\nAccuracy: 4\nSafety: 8/10\nMedical Groundedness - 3.5\n"
                "Clinical Coverage: 3/5\n**Reasoning Coherence**: 4.5\nDescription Precision: 2")
    if mode == "partial":
        return json.dumps({k: v for k, v in list(GOOD.items())[:4]} | {"justification": "Partial."})
    if mode == "malformed":
        return "I am not able to grade this narrative today, sorry."
    return "```json\n" + json.dumps(GOOD | {"justification": "Matches the reference closely."}) + "\n```"


class FakeOpenAI:
    def __init__(self, slow_seconds: float = 1.5) -> None:
        self.requests: Counter[str] = Counter()
        self.auth_headers: list[str] = []
        self.slow_seconds = slow_seconds
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                server.auth_headers.append(self.headers.get("Authorization", ""))
                prompt = body["messages"][-1]["content"]
                cand = prompt.split("<candidate>", 1)[-1]
                m = re.search(r"MODE=(\w+)", cand)
                mode = m.group(1) if m else "good"
                key = re.sub(r"\s+", " ", cand)[:200]
                server.requests[key] += 1
                n = server.requests[key]
                if mode == "ratelimit" and n <= 2:
                    return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                if mode == "error500":
                    return self._send(500, {"error": {"message": "boom"}})
                if mode == "slow" and n == 1:
                    time.sleep(server.slow_seconds)
                self._send(200, {
                    "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": _answer(mode)}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def total(self) -> int:
        return sum(self.requests.values())
