"""Functions that ask for GPUs: one for a specific type, one with a preference list.

On a machine without GPUs, declare an inventory for the embedded server and surge schedules against
it exactly as it would on real hardware (the containers just find no CUDA devices):

    surge run --gpus "A100-80GB:2,H100:1" examples/gpu.py

On a machine with NVIDIA GPUs, `surge run examples/gpu.py` uses the GPUs NVML reports instead.
Each container gets `CUDA_VISIBLE_DEVICES` set to exactly the device indices it was given (no two
containers share one) and `SURGE_GPU_TYPE` set to the type it was placed on.
"""

import os

import surge

app = surge.App("gpu")


def _report() -> dict:
    return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "SURGE_GPU_TYPE": os.environ.get("SURGE_GPU_TYPE")}


@app.function(gpu="A100-80GB", scaledown_window=5)
def on_a100() -> dict:
    return _report()


# A preference list: H100 if one is free, else an A100-80GB.
@app.function(gpu=["H100", "A100-80GB"], scaledown_window=5)
def on_h100_or_a100() -> dict:
    return _report()


@app.local_entrypoint()
def main() -> None:
    for fn in (on_a100, on_h100_or_a100):
        r = fn.remote()
        print(f"{fn.tag}: SURGE_GPU_TYPE={r['SURGE_GPU_TYPE']} "
              f"CUDA_VISIBLE_DEVICES={r['CUDA_VISIBLE_DEVICES']}")
