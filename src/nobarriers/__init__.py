"""nobarriers: AutoNEB minimum energy paths between neural-network minima.

Reproduction of Draxler et al., "Essentially No Barriers in Neural Network Energy Landscape",
ICML 2018. See README.md ("Use the engine on your own energy") for the public API.
"""

__version__ = "0.1.0"
