"""The nhipl simulator, installed as ``nhipl.simulator``."""
