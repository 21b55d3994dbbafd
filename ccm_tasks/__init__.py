"""CCM campaign runner: outbound call campaigns on Exotel CCM.

The library (this package) runs without a Prefect server; ``flows/`` wires it into Prefect.
"""

__version__ = "0.1.0"
