"""`python -m ledgerflow`: the `ledgerflow` command."""

from ledgerflow.cli import main

main()
