"""Deployment steps of our own, for ``prefect.yaml``.

Prefect resolves ``{{ $VAR }}`` in ``prefect.yaml`` when ``prefect deploy`` runs, so
``set_working_directory: {directory: "{{ $CCM_HOME }}"}`` stores the deploying machine's path in
every deployment, and a worker elsewhere starts its runs in a folder it may not have. This step reads
its variable when the run starts, on the machine that runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

WORKDIR_VARIABLE = "CCM_WORKDIR"
"""The worker's folder for flow runs: a checkout with ``flows/`` and ``campaigns/``."""


def working_directory_from_env(variable: str = WORKDIR_VARIABLE) -> dict[str, str]:
    """Pull step: change to the folder the worker's environment variable ``variable`` names."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise RuntimeError(f"{variable} is not set on this worker: set it to this machine's folder with "
                           "flows/ and campaigns/ (a checkout) before `prefect worker start`")
    folder = Path(value).expanduser()
    if not (folder / "flows").is_dir():
        raise RuntimeError(f"{variable}={value}: no flows/ folder there (it must be a checkout)")
    os.chdir(folder)
    return {"directory": os.getcwd()}
