"""Scoped approvals: what one human approval in a task counts for.

An approval names a tool and carries ``{granted, by}``. By default it counts for the next
call of that tool in the task; it may instead count for ``uses`` calls (None: any number),
only for calls whose arguments include ``args``, and only until ``expires`` (seconds since
the epoch). The runtime and the simulator's replay keep approvals with this one class, so
an approval covers the same calls live and in replay.
"""

from __future__ import annotations

from typing import Any, Mapping


class ScopedApproval:
    __slots__ = ("granted", "args", "uses", "expires")

    def __init__(self, granted: dict, args: Mapping[str, Any] | None = None, uses: int | float | None = 1,
                 expires: float | None = None):
        self.granted = granted
        self.args = dict(args) if args else None
        self.uses = uses
        self.expires = expires

    def applies(self, args: Mapping[str, Any] | None, now: float) -> bool:
        """Whether a call with ``args`` at ``now`` is covered."""
        if self.expires is not None and now >= self.expires:
            return False
        if self.args is not None:
            given = args or {}
            return all(name in given and given[name] == value for name, value in self.args.items())
        return True

    def use(self) -> bool:
        """Count one call; True when the approval is used up."""
        if self.uses is None:
            return False
        self.uses -= 1
        return self.uses <= 0


def take(approvals: dict[str, ScopedApproval], tool: str, args: Mapping[str, Any] | None, now: float) -> dict | None:
    """The ``{granted, by}`` in force for a call of ``tool``, counted as used (and dropped
    from ``approvals`` when used up); None when no approval covers the call."""
    grant = approvals.get(tool)
    if grant is None or not grant.applies(args, now):
        return None
    if grant.use():
        del approvals[tool]
    return grant.granted
