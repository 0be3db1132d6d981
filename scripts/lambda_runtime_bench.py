"""Times each Lambda binary's cold start against a minimal Lambda runtime API.

For every function: start a fresh process with AWS_LAMBDA_RUNTIME_API pointing here, record when
it first asks for an event (`GET /2018-06-01/runtime/invocation/next`: its init is over) and when
it posts that event's response; five cold starts each, medians printed, JSON in
target/bench-lambdas.json.
"""

import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The HTTP API's one binary serves both HTTP Lambdas (the token and history functions).
FUNCTIONS = {
    "http": "http-history.json",
    "ws-connect": "ws-connect.json",
    "ws-message": "ws-message.json",
    "ws-disconnect": "ws-disconnect.json",
    "worker": "worker-schedule.json",
}
SAM_NAMES = {
    "http": "TokenFunction",
    "ws-connect": "WsConnectFunction",
    "ws-message": "WsMessageFunction",
    "ws-disconnect": "WsDisconnectFunction",
    "worker": "WorkerFunction",
}
RUNS = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runtime(BaseHTTPRequestHandler):
    event = b"{}"
    asked = None
    answered = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/invocation/next"):
            # Every `next` gets the event until it is answered: a request from the previous,
            # killed process can arrive late, and must not take the new process's event.
            if Runtime.answered is None:
                if Runtime.asked is None:
                    Runtime.asked = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(Runtime.event)))
                self.end_headers()
                try:
                    self.wfile.write(Runtime.event)
                except BrokenPipeError:
                    pass  # that late request's process is gone
            else:
                time.sleep(5)  # no second event: the process is killed meanwhile
                self.send_response(500)
                self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if "/response" in self.path or "/error" in self.path:
            Runtime.answered = time.perf_counter()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    data = tempfile.mkdtemp(prefix="bench-lambdas-")
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", data],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
        AWS_LAMBDA_FUNCTION_NAME="bench",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench",
        AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}",
        OPENAI_API_KEY="bench",
        RUST_LOG="error",
    )
    sizes = {}
    if os.path.exists("target/lambda-sizes.json"):
        sizes = json.load(open("target/lambda-sizes.json"))
    results = {}
    print(f"{'function':<15} {'arm64 bootstrap':>16} {'init (ms)':>10} {'first event (ms)':>17}")
    for binary, fixture in FUNCTIONS.items():
        Runtime.event = open(f"functions/tests/fixtures/{fixture}", "rb").read().replace(b"TOKEN", b"unknown")
        inits, firsts = [], []
        for _ in range(RUNS):
            Runtime.asked = Runtime.answered = None
            started = time.perf_counter()
            process = subprocess.Popen([f"target/release/{binary}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = started + 10
            while Runtime.answered is None and time.perf_counter() < deadline:
                time.sleep(0.0005)
            process.kill()
            process.wait()
            # Let a request the killed process had in flight reach the server while this run's
            # event is still answered (it is then turned away), not after the next run starts.
            time.sleep(0.1)
            if Runtime.answered is None:
                raise SystemExit(f"{binary} did not answer its first event")
            inits.append((Runtime.asked - started) * 1000)
            firsts.append((Runtime.answered - started) * 1000)
        size = sizes.get(SAM_NAMES[binary])
        results[binary] = {
            "init_ms": statistics.median(inits),
            "first_event_ms": statistics.median(firsts),
            "arm64_bootstrap_bytes": size,
        }
        size_text = f"{size / 1e6:.2f} MB" if size else "(run check-deploy)"
        print(f"{binary:<15} {size_text:>16} {results[binary]['init_ms']:>10.1f} {results[binary]['first_event_ms']:>17.1f}")
    server.shutdown()
    redis.kill()
    os.makedirs("target", exist_ok=True)
    json.dump(results, open("target/bench-lambdas.json", "w"), indent=2)
    print("figures written to target/bench-lambdas.json (targets: <= 8 MB, <= 50 ms init)")


if __name__ == "__main__":
    main()
