"""Fan-out, outbox, RQ jobs, rate limits, providers, feedback and progress."""
