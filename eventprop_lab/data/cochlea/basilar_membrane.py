"""The hydrodynamic basilar-membrane model of Sieroka, Dosch & Rupp (2006), as a bank of linear filters.

Sieroka N, Dosch HG, Rupp A (2006) "Semirealistic models of the cochlea", J. Acoust. Soc. Am.
120(1):297. The cochlea is a fluid-filled duct of height h divided by a membrane of mass m per area,
stiffness s(x) = s0·exp(-α x) - a and damping r(x) = δ·sqrt(s0·m)·exp(-α x / 2), x measured from
the base (oval window). A WKB solution of the shallow-water equations gives the pressure along the
duct as a Hankel function of the accumulated phase; the membrane velocity at x is that pressure over
the membrane's dynamic stiffness, relative to the pressure at the base, times an input impedance
(Bessel functions) that sets the level. That frequency response is all this module computes. The places are evenly spaced from the base (x = 0, highest best
frequency) to the apex, as in Cramer et al. (2020), so channel 0 hears the highest frequencies.

Units are CGS as in the paper (cm, g, s). The defaults are those of the SHD conversion chain.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import special


@dataclass(frozen=True)
class MembraneParams:
    """Physical parameters of the duct and membrane (CGS units)."""

    length_cm: float = 3.5          # base to apex over which the places are spread
    stiffness_base: float = 1e9     # s0: stiffness per area at the base
    stiffness_offset: float = 3500.0  # a: subtracted stiffness, sets the lowest best frequency
    stiffness_decay: float = 3.0    # α: stiffness falls as exp(-α x), per cm
    damping_ratio: float = 0.15     # δ: damping at the base in units of sqrt(s0·m)
    fluid_density: float = 1.0      # ρ, g/cm³
    duct_height: float = 0.1        # h, cm
    membrane_mass: float = 0.05     # m, g/cm²

    def places(self, n_channels):
        return np.linspace(0.0, self.length_cm, n_channels)


def velocity_response(freqs_hz, places_cm, p=MembraneParams()):
    """Complex membrane velocity per unit stapes drive: shape (len(places_cm), len(freqs_hz)).

    Frequencies must be > 0: the WKB solution has no limit at 0 Hz."""
    omega = 2 * np.pi * np.asarray(freqs_hz, np.float64)[None, :]
    x = np.asarray(places_cm, np.float64)[:, None]
    al, a, s0, m, h, rho = (p.stiffness_decay, p.stiffness_offset, p.stiffness_base, p.membrane_mass,
                            p.duct_height, p.fluid_density)
    damping_base = p.damping_ratio * np.sqrt(s0 * m)

    def impedance(x):  # ξ = s(x) - m ω² - i ω r(x), the membrane's dynamic stiffness
        return s0 * np.exp(-al * x) - a - m * omega**2 - 1j * omega * damping_base * np.exp(-al * x / 2)

    def wavenumber(xi):
        return omega * np.sqrt(rho / (h * xi))

    # The WKB phase ∫k dx has a closed form for this stiffness profile; stiff = a + m ω².
    stiff = a + m * omega**2
    root = np.sqrt(stiff)

    def phase_term(x, xi):
        return al * np.exp(al * x / 2) * (-np.sqrt(xi) + 1j * (2 * stiff + 1j * omega * damping_base
                                                              * np.exp(-al * x / 2)) / (2 * root))

    xi_base, xi = impedance(0.0), impedance(x)
    k_base, k = wavenumber(xi_base), wavenumber(xi)
    phase_base = 2 * k_base / al
    phase = phase_base - 2j * omega / (al * np.sqrt(h * stiff)) * np.log(phase_term(0.0, xi_base) / phase_term(x, xi))
    # Pressure ~ sqrt(Φ/k)·H0⁽¹⁾(Φ); the exponentially scaled Hankel function keeps the ratio
    # p(x)/p(0) finite where both factors would under- or overflow on their own.
    pressure_ratio = (np.sqrt(phase / k) / np.sqrt(phase_base / k_base)
                      * special.hankel1e(0, phase) / special.hankel1e(0, phase_base)
                      * np.exp(1j * (phase - phase_base)))
    return 2 * omega / xi * pressure_ratio * input_impedance(omega[0], p)[None, :]


def input_impedance(omega, p=MembraneParams()):
    """Impedance of the duct seen from the base (the solution for the stiff base region, in Bessel functions)."""
    q = 2 * omega / p.stiffness_decay * np.sqrt(2 / (p.duct_height * p.stiffness_base))
    return np.sqrt(2 * p.stiffness_base / p.duct_height) * 1j * special.hankel2(0, q) / special.hankel2(1, q)


def effective_frequency(freqs_hz, sample_rate):
    """The frequency at which the SHD chain evaluates the model for a signal component at f.

    Cramer et al. (2020) sample the response on an evenly spaced grid from 1 Hz to Nyquist rather
    than from 0 Hz, which maps f to 1 + f·(1 - 2/fs); keeping the map keeps our spikes on theirs and
    avoids the model's singularity at 0 Hz."""
    return 1.0 + np.asarray(freqs_hz, np.float64) * (1.0 - 2.0 / sample_rate)


IR_SECONDS = 0.25  # impulse responses span ±IR_SECONDS/2; see impulse_responses


@lru_cache(maxsize=4)
def impulse_responses(sample_rate, n_channels, params=MembraneParams()):
    """Real impulse responses, float32 (n_channels, L): lag 0 first, negative lags wrapped to the end.

    The response is evaluated on the FFT grid of a window IR_SECONDS long and transformed back;
    99.99 % of the slowest (apical) channel's energy lies within 75 ms. The SHD chain multiplies the
    signal's numpy FFT (kernel e^{+iωt}) by the model's response, written for e^{-iωt}: its filters
    are the time mirror of causal ones and ring *before* an impulse. We keep that, for spike timing
    like SHD's, which is why most of each response sits at negative lags.

    Channels tuned above Nyquist keep a slowly decaying tail from the cut at Nyquist; the window
    drops what lies beyond it, under 0.1 % of such a channel's energy."""
    n = int(sfft.next_fast_len(int(np.ceil(IR_SECONDS * sample_rate)), real=True))
    n += n % 2
    f = np.arange(n // 2 + 1) * (sample_rate / n)
    response = np.nan_to_num(velocity_response(effective_frequency(f, sample_rate), params.places(n_channels),
                                               params))
    response[:, 0] = response[:, 0].real
    response[:, -1] = response[:, -1].real
    out = sfft.irfft(response, n, axis=1).astype(np.float32)
    out.flags.writeable = False  # shared by every caller through the cache
    return out


def membrane_velocity(x, sample_rate, channels, n_channels, params=MembraneParams()):
    """Membrane velocity at the given places (rows), float32, sampled at half the audio rate.

    A linear convolution by FFT (the SHD chain's is circular over the clip; they differ only at the
    clip's ends, which its fade silences). The SHD chain runs its inner ear at half the audio rate,
    taking every second sample without an anti-alias filter; we decimate the same way, by folding
    the spectrum before the inverse FFT, which halves its length."""
    h = impulse_responses(float(sample_rate), n_channels, params)[channels]
    n, n_ir = len(x), h.shape[1]
    nfft = n + n_ir
    while True:  # a fast length that is a multiple of 4, so the folded half has an even length
        nfft = sfft.next_fast_len(nfft, real=True)
        if nfft % 4 == 0:
            break
        nfft += 1
    half = nfft // 2
    padded = np.zeros((len(channels), nfft), np.float32)
    padded[:, :n_ir // 2] = h[:, :n_ir // 2]
    padded[:, nfft - (n_ir - n_ir // 2):] = h[:, n_ir // 2:]
    spectrum = sfft.rfft(padded, axis=1)
    spectrum *= sfft.rfft(np.asarray(x, np.float32), nfft)[None, :]
    # y[2m] has the spectrum (Y[k] + Y[k + half]) / 2 on the half-length grid; Y[k + half] = conj Y[half - k]
    folded = spectrum[:, :half // 2 + 1]
    folded += np.conj(spectrum[:, half:half // 2 - 1:-1])
    folded *= 0.5
    return sfft.irfft(folded, half, axis=1)[:, :(n + 1) // 2]
