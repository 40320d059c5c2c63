"""Makes augment_reference (slow NumPy/SciPy references) importable by the test modules under any
pytest import mode (with --import-mode=importlib test folders are not put on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
