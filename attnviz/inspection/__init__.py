"""Looking at attention without a budget: per-layer observers, head aggregates and rollout, token labels."""
