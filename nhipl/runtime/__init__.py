"""Runtime enforcement: task sessions (:class:`Runtime`: steps decided from the session,
just-in-time credentials, revocation), the :class:`Guard` for Python tools, decision logs,
and the MCP proxy.

>>> import nhipl
>>> from nhipl.runtime import Guard
>>> policies = nhipl.loads('permit any agent to call "search.*" grant ttl 5m;')
>>> guard = Guard(policies, "spiffe://acme.org/agents/researcher")
>>> @guard.tool("search.web")
... def search(query):
...     return f"results for {query}"
>>> search("nhipl")
'results for nhipl'

The submodules import only the standard library when they load; signing credentials needs
joserfc (the ``runtime`` extra) and the ``redis://`` store the redis client (the ``redis``
extra), imported when first used. The MCP proxy (:mod:`nhipl.runtime.proxy`) does not need the
MCP SDK. Names are loaded on first use so that ``import nhipl`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module

from .errors import CredentialError, DecisionLogError, Denied, Expired, Invalid, Revoked

_LAZY = {
    "Guard": "guard",
    "current_task": "guard",
    "current_session": "guard",
    "current_decision": "guard",
    "delegation_chain": "guard",
    "DecisionLog": "log",
    "Redactor": "redact",
    "Pattern": "redact",
    "Runtime": "session",
    "Task": "session",
    "Credential": "session",
    "StoreError": "store",
}

__all__ = ["CredentialError", "DecisionLogError", "Denied", "Expired", "Invalid", "Revoked", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nhipl.runtime' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
