"""Micro-benchmark: what opening one TCP connection costs the crawl (issue 20).

    .venv/bin/python scripts/bench_dial.py [--connections N] [--rounds R]

Dials a loopback listener of this process N times per round, two ways, interleaved, and
prints the CPU (``time.process_time``: the dial, its close and the listener's accept) and the
Trio task steps per connection, each round's figure and the median:

* ``open_tcp_stream``: httpcore's Trio backend, that is ``trio.open_tcp_stream`` (a nursery
  and a task per attempt: made for names with several addresses), what the crawl used;
* ``dial``: :func:`trio_crawler._http.backend.dial`, one socket and one wait, what it uses.

Task steps count what a busy crawl pays in latency: each is a turn behind every other runnable
task. Measured (500 connections, 6 rounds, twice, a shared 2-core machine):
``open_tcp_stream`` 215-366 us and 6 steps per connection, ``dial`` 109-174 us and 2 steps.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import httpcore
import trio

from trio_crawler._http.backend import dial


class _Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def _run(connections: int, rounds: int) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(connections + 16)
        port = listener.getsockname()[1]
        backend = httpcore.TrioBackend()
        steps = _Steps()
        trio.lowlevel.add_instrument(steps)
        figures: dict[str, list[tuple[float, float]]] = {"open_tcp_stream": [], "dial": []}
        for _ in range(rounds):
            for name, figure in figures.items():
                first, started = steps.count, time.process_time()
                for _ in range(connections):
                    if name == "dial":
                        stream = await dial("127.0.0.1", port, 5.0)
                    else:
                        stream = await backend.connect_tcp("127.0.0.1", port, 5.0)
                    await stream.aclose()
                    listener.accept()[0].close()
                cpu = (time.process_time() - started) / connections * 1e6
                figure.append((cpu, (steps.count - first) / connections))
        trio.lowlevel.remove_instrument(steps)
    for name, figure in figures.items():
        cpus = [round(cpu) for cpu, _ in figure]
        print(
            f"{name:16} CPU per connection {statistics.median(cpus):.0f} us (rounds: "
            f"{', '.join(map(str, cpus))}); {figure[0][1]:.1f} task steps"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if args.connections < 1 or args.rounds < 1:
        parser.error("--connections and --rounds must be at least 1")
    trio.run(_run, args.connections, args.rounds)


if __name__ == "__main__":
    main()
