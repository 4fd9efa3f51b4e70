"""Entry point as the seed's README shows it: `python main.py [--host H] [--port 8020] [--reload]`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from position_order_service.cli import main_py

if __name__ == "__main__":
    sys.exit(main_py())
