"""Demo services, the demo mesh runner and the broker helper."""
