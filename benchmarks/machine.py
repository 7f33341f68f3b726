"""The machine a benchmark ran on, for its tables' headers."""

import platform
import subprocess


def cpu_name():
    """``lscpu``'s model name (the CPU each table must name)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.startswith("Model name")), platform.processor() or "unknown CPU")
