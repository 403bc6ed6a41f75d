"""One module per verb and the pure planners behind them: what the CLI and the web UI call."""
