"""`import taichi` done quietly (no banner, no locale DeprecationWarning), for the kernel modules.

Importing taichi does not initialise it; `runtime.ensure_initialized()` does, at first use.
"""

import os
import warnings

os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "0")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import taichi as ti

__all__ = ["ti"]
