import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("BOOK_WIDGETS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
