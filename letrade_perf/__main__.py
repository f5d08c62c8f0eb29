"""``python -m letrade_perf`` is the ``letrade-perf`` command."""
import sys

from .cli import main

sys.exit(main())
