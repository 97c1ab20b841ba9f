"""``python -m snapreport``: the same command line as the ``snapreport`` script."""

from __future__ import annotations

from snapreport.cli import main

if __name__ == "__main__":
    main()
