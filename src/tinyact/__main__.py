"""``python -m tinyact`` is the ``tinyact`` command."""

from tinyact.cli import main

main()
