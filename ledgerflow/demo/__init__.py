"""`ledgerflow demo`: bundled example workflows and the script that runs them."""

from ledgerflow.demo._run import DemoReport, run_demo
from ledgerflow.demo.workflows import CHECKOUT, CHECKOUT_FAILING, REMINDER

__all__ = ["CHECKOUT", "CHECKOUT_FAILING", "REMINDER", "DemoReport", "run_demo"]
