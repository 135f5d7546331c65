"""The ``resilient`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resilient", description="resilient: herd-proof outbound calls.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("herd", help="replay thundering herds under each strategy")
    args = parser.parse_args(argv)
    if args.command == "herd":
        print("the herd lab is not built yet")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
