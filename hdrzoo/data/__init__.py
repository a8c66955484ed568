"""Synthetic brackets, datasets and LightningDataModules."""
