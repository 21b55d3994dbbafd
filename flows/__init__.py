"""Prefect flows: wiring only. The work is done by the ccm_tasks library."""
