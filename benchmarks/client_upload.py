"""Client side of an upload: the CLI/SDK streams a model file from disk, so its memory stays
flat whatever the file's size.

Baseline in the same run: the same file read into memory and posted with httpx's `files=`.
Each side runs in a fresh process (peak RSS above the import floor) posting to a loopback
HTTP server that reads and discards the body.

    python benchmarks/client_upload.py --mb 200 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(side: str, url: str, path: Path) -> dict[str, float]:
    import httpx

    from core.client.http import FilePart, Multipart, Session

    floor = peak_mb()
    start = time.perf_counter()
    if side == "quorum":
        body = Multipart.of({"target": "y"}, [FilePart("model_file", path.name, path=path)])
        Session(url, "qrm_bench").upload("/models/m/versions", body, idempotency_key="k")
    else:
        data = path.read_bytes()
        httpx.post(f"{url}/api/v1/models/m/versions", files={"model_file": (path.name, data)},
                   data={"target": "y"}, timeout=300)  # fmt: skip
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb(), "floor_mb": floor}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["quorum", "baseline"])
    parser.add_argument("--url")
    parser.add_argument("--file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, Path(args.file))))
        return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        with path.open("wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1 << 20))
        results: dict[str, list[dict[str, float]]] = {"quorum": [], "baseline": []}
        for _ in range(args.repeat):
            for side in ("baseline", "quorum"):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", side, "--url", url, "--file", str(path)],
                    env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                    check=True,
                )  # fmt: skip
                results[side].append(json.loads(done.stdout))
    server.shutdown()
    print(f"upload of a {args.mb} MB file to a loopback server, {args.repeat} runs per side")
    for side, runs in results.items():
        extra = [r["peak_mb"] - r["floor_mb"] for r in runs]
        speed = [args.mb / r["seconds"] for r in runs]
        print(
            f"  {side:8s} memory above imports: min {min(extra):6.1f} MB, median "
            f"{statistics.median(extra):6.1f} MB; speed min {min(speed):6.0f} MB/s, median "
            f"{statistics.median(speed):6.0f} MB/s"
        )
    q = statistics.median(r["peak_mb"] - r["floor_mb"] for r in results["quorum"])
    b = statistics.median(r["peak_mb"] - r["floor_mb"] for r in results["baseline"])
    print(f"  memory ratio quorum / baseline: {q / b:.3f}")


if __name__ == "__main__":
    main()
