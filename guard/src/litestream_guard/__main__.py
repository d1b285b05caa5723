"""`python3 -m litestream_guard`, and the zipapp's entry point."""

from litestream_guard.cli import run

if __name__ == "__main__":
    run()
