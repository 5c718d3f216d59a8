"""The stages of the artificial cochlea behind eventprop_lab.data.audio (Cramer et al. 2020)."""
from .basilar_membrane import MembraneParams, impulse_responses, velocity_response
from .nerve import HairCellParams, NerveParams, run_nerve

__all__ = ["HairCellParams", "MembraneParams", "NerveParams", "impulse_responses", "run_nerve", "velocity_response"]
