"""Campaign inputs: definitions and spreadsheets to validated customers, agents and settings.

Usable without Prefect (nothing here imports it)::

    from ccm_tasks.inputs import load_definition, load_campaign_inputs, write_rejects, preflight

    definition = load_definition("campaigns/demo/demo.yaml")   # DefinitionError: file + key
    inputs = load_campaign_inputs(definition)                  # InputFileError: file (+ sheet)
    inputs.customers        # DataFrame, one row per customer to call (see campaign.py)
    inputs.agents           # list[Agent]; agent.agent_key is the dialer's lease key
    write_rejects(inputs, "demo-rejects.csv")
    print(preflight("campaigns/demo/demo.yaml").render())
"""

from ccm_tasks.inputs.agents import Agent, AgentRecord, AgentRoster, load_agents
from ccm_tasks.inputs.campaign import (
    REJECT_KINDS,
    REJECTS_FILE_COLUMNS,
    CampaignInputs,
    load_campaign_inputs,
    rejects_table,
    write_rejects,
)
from ccm_tasks.inputs.customers import (
    CUSTOMER_COLUMNS,
    EXTRA_PREFIX,
    REJECT_COLUMNS,
    SourceCount,
)
from ccm_tasks.inputs.definition import (
    AGENT_SIDE_STATUSES,
    RETRYABLE_STATUSES,
    CallbackSettings,
    CallingWindow,
    CallOptions,
    CampaignDefinition,
    CustomerColumns,
    CustomerFile,
    CustomersSpec,
    DialerSettings,
    RetryPolicy,
    Schedule,
    load_definition,
)
from ccm_tasks.inputs.errors import DefinitionError, DefinitionProblem, InputError, InputFileError
from ccm_tasks.inputs.phones import PhoneNormaliser, PhoneResult, normalise_phone
from ccm_tasks.inputs.preflight import Estimate, PreflightReport, estimate, preflight

__all__ = [
    "AGENT_SIDE_STATUSES",
    "CUSTOMER_COLUMNS",
    "EXTRA_PREFIX",
    "REJECTS_FILE_COLUMNS",
    "REJECT_COLUMNS",
    "REJECT_KINDS",
    "RETRYABLE_STATUSES",
    "Agent",
    "AgentRecord",
    "AgentRoster",
    "CallOptions",
    "CallbackSettings",
    "CallingWindow",
    "CampaignDefinition",
    "CampaignInputs",
    "CustomerColumns",
    "CustomerFile",
    "CustomersSpec",
    "DefinitionError",
    "DefinitionProblem",
    "DialerSettings",
    "Estimate",
    "InputError",
    "InputFileError",
    "PhoneNormaliser",
    "PhoneResult",
    "PreflightReport",
    "RetryPolicy",
    "Schedule",
    "SourceCount",
    "estimate",
    "load_agents",
    "load_campaign_inputs",
    "load_definition",
    "normalise_phone",
    "preflight",
    "rejects_table",
    "write_rejects",
]
