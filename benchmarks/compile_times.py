"""Wall and process-CPU time of one ``et.compile`` per model of :mod:`benchmarks.bench_compile`,
in a fresh process, as one JSON line (with the load average at the start and the end).

    python -m benchmarks.compile_times

A small conv+BN net is compiled first, so the first model does not pay the imports and the
first export. Run it from two checkouts in turn to compare them under the same load.
"""

from __future__ import annotations

import json
import os
import time

import torch

import et
from benchmarks.bench_compile import MODELS


def main() -> None:
    torch.set_num_threads(2)  # what the benchmarks' conftest sets
    warm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
    et.compile(warm.eval(), (torch.rand(1, 3, 8, 8),))
    out: dict[str, object] = {"load_start": os.getloadavg()}
    for name, (factory, clamp) in MODELS.items():
        torch.manual_seed(0)
        model = factory().eval()
        example = torch.rand(1, 3, 16, 16)
        wall, cpu = time.perf_counter(), time.process_time()
        et.compile(model, (example,), output_clamp=clamp)
        out[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    out["load_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
