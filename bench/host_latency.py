"""What this host charges any proxy hop, whatever the proxy: `uv run python -m bench.host_latency`.

1. A loopback TCP round trip between two processes, on one core and across the two cores
   (a proxy adds two process wake-ups to every request).
2. The same small piece of Python work done back to back, and after the process slept
   0.2 / 2 / 20 ms (a gateway sleeps while the backend and the client work: its request path
   then runs on cold caches).
Printed; the numbers explain bench/README.md's time-to-first-token row.
"""

from __future__ import annotations

import os
import socket
import statistics
import time

import orjson

ROUNDS = 3000


def _echo(server: socket.socket, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(64):
        conn.sendall(data)


def round_trip_us(client_cpu: int, server_cpu: int) -> float:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    pid = os.fork()
    if pid == 0:
        try:
            _echo(server, server_cpu)
        finally:
            os._exit(0)
    os.sched_setaffinity(0, {client_cpu})
    times = []
    with socket.create_connection(server.getsockname()) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(ROUNDS):
            started = time.perf_counter()
            sock.sendall(b"x")
            sock.recv(64)
            times.append((time.perf_counter() - started) * 1e6)
    os.waitpid(pid, 0)
    server.close()
    return statistics.median(times[ROUNDS // 5 :])


def work_us(pieces: int) -> float:
    data = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}] * 4})
    started = time.perf_counter_ns()
    for _ in range(pieces):
        orjson.loads(data)
        orjson.dumps({"a": [1, 2, 3], "b": "text"})
        sum(range(50))
    return (time.perf_counter_ns() - started) / 1000


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    same, other = cpus[0], cpus[-1]
    print(f"loopback round trip, one core: {round_trip_us(same, same):.1f} us")
    if other != same:
        print(f"loopback round trip, across cores: {round_trip_us(same, other):.1f} us")
    os.sched_setaffinity(0, {same})
    for pieces in (20, 200):
        warm = statistics.median(work_us(pieces) for _ in range(2000))
        after = []
        for gap in (0.0002, 0.002, 0.02):
            runs = []
            for _ in range(200):
                time.sleep(gap)
                runs.append(work_us(pieces))
            after.append(f"{gap * 1000:g} ms: {statistics.median(runs):.1f}")
        print(
            f"{pieces} pieces of work: back to back {warm:.1f} us; after a sleep of "
            + ", ".join(after)
        )
    os.sched_setaffinity(0, set(cpus))


if __name__ == "__main__":
    main()
