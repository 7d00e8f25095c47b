"""Entry point for ``python -m agent``; also the file ``swaig-test`` loads."""

from agent.cli import main

if __name__ == "__main__":
    main()
