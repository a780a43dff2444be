"""Engine adapters, installed as ``playhooks.adapters``: one short module per engine.

Each imports its engine only when it is itself imported, so the core never depends on one.
"""
