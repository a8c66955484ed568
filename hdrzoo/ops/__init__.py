"""Model-agnostic building blocks (pure torch, documented shapes)."""
