"""How long `ssl` takes to answer listing and help commands, beside `import torch`.

Run: `python benchmarks/startup.py` (best of 5 runs each, fresh processes).
"""

from __future__ import annotations

import subprocess
import sys
import time

COMMANDS = {
    "ssl --help": ["-m", "ssl_core", "--help"],
    "ssl methods list": ["-m", "ssl_core", "methods", "list"],
    "ssl methods show simclr": ["-m", "ssl_core", "methods", "show", "simclr"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def best_of(args: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    for name, args in COMMANDS.items():
        print(f"{name:28s} {best_of(args):.2f} s")
