"""``python -m nhipl``: the command line."""

from .cli import main

main()
