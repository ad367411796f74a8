"""`python -m kekong.cli`."""

from kekong.cli import main

main()
