"""Production monitoring: drift statistics and their verdicts."""
