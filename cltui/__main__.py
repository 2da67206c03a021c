"""`python -m cltui` = the `cltui` command."""

from cltui.cli import main

main()
