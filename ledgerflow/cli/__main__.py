"""`python -m ledgerflow.cli`: the `ledgerflow` command."""

from ledgerflow.cli import main

main()
