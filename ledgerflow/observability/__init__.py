"""Operating ledgerflow: Prometheus metrics (`metrics`), health checks (`doctor`),
structured logs (`logs`). Each module states its interface in its docstring."""
