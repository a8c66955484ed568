"""Training losses shared by the models."""
