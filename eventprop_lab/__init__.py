"""The training domain: configuration, parameters, losses, optimiser, training."""
__version__ = "0.1.0"
