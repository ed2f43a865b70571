"""A small HTTP load loop: N keep-alive clients GET one path for D seconds against a running web process.

    python bench/http_load.py PORT [CLIENTS=8] [SECONDS=10] [PATH=/health]

Prints requests/s of 200 answers, the other answers and errors, and the p50/p99 latency.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time


def main(port: int, clients: int, seconds: float, path: str) -> None:
    ok = [0] * clients
    other = [0] * clients
    latencies: list[float] = []

    def client(i: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                other[i] += 1
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            if response.status == 200:
                ok[i] += 1
            else:
                other[i] += 1
            latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    print(
        f"{clients} clients, {seconds:g} s, {path}: {sum(ok) / seconds:.0f} req/s, "
        f"{sum(ok)} ok, {sum(other)} other/errors, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]),
        int(args[1]) if len(args) > 1 else 8,
        float(args[2]) if len(args) > 2 else 10.0,
        args[3] if len(args) > 3 else "/health",
    )
