"""The stages of the artificial cochlea behind eventprop_lab.data.audio (Cramer et al. 2020).

basilar_membrane: the Sieroka et al. (2006) membrane as a bank of filters; nerve: Meddis hair cells,
refractory fibres and bushy cells in numba; signals: the fixed sounds it is validated on."""
from .basilar_membrane import MembraneParams, impulse_responses, membrane_velocity, velocity_response
from .nerve import HairCellParams, NerveParams, run_nerve

__all__ = ["HairCellParams", "MembraneParams", "NerveParams", "impulse_responses", "membrane_velocity",
           "run_nerve", "velocity_response"]
