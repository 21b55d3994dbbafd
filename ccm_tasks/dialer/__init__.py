"""The engine: queue, agents, poller, API budget, retry policy, calling window."""
