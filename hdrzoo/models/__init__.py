"""The networks of the zoo and their LightningModules."""
