"""Entry point for ``python -m agent``; also the file ``swaig-test`` loads.

``swaig-test`` imports this file and calls its ``main()`` with no arguments while
``sys.argv`` holds its own command line: that ``main()`` serves (to be intercepted) and
reads no arguments.
"""

import sys

from agent.cli import main as cli_main


def main() -> None:
    cli_main([])


if __name__ == "__main__":
    cli_main(sys.argv[1:])
