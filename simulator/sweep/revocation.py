"""The revocation study's swarm: agents that keep working on a revoked credential.

The simulator's generator plants revocation gaps as rare faults; this study
needs three knobs it does not have (agent speed, credential TTL and a cap on
operations per credential), so it builds its own trace in the trace event
format and hands it to :func:`nhipl.simulator.simulate` like any other trace.

The model, one task per agent:

- the agent starts at ``t = 0`` and calls ``queue.process`` at ``speed``
  operations per second (Poisson arrivals, or a steady beat with a random
  phase);
- each call uses the agent's current credential; a credential is renewed when
  it expires or, with ``max_ops`` set, when it has served ``max_ops`` calls;
- at a time drawn uniformly from ``[0, ttl)`` the agent's credential is revoked
  (its authority is withdrawn): the issuer refuses every renewal from then on,
  but the resource server validates credentials offline (a bearer token checked
  against its signature and expiry, not against a revocation list), so the
  revoked credential keeps working until it expires or its operation budget is
  spent;
- the task ends when the agent is left without a usable credential.

Every call after the revocation is a ``used_after_revoke`` finding in the
simulator's report. Their expected number per agent is about ``½·min(speed·ttl,
max_ops)`` (to within half a call) for steady arrivals (``½·speed·ttl`` without a cap): exposure after
revocation grows as speed × TTL, and an operation budget caps it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TRUST_DOMAIN = "spiffe://sim.example/agents"
TOOL = "queue.process"
INTENT = "process-queue"

# The policy every run is checked against unless the config names another: it
# allows exactly the work the agents do, so every finding is a revocation gap.
POLICY = f"""\
@id("process-queue")
permit any agent to call "{TOOL}" on "queue:*"
    when task.intent == "{INTENT}";
"""


@dataclass(frozen=True, slots=True)
class RevocationSwarm:
    """A trace and what was planted in it."""

    events: list[dict]
    revoked_at: dict[str, float]  # agent id -> revocation time
    agents: int


def agent_id(index: int) -> str:
    return f"{TRUST_DOMAIN}/worker-{index}"


def build(
    *,
    agents: int,
    speed: float,
    ttl: int,
    max_ops: int,
    arrivals: str,
    seed: int,
) -> RevocationSwarm:
    """The trace of ``agents`` agents, each revoked once (see the module text)."""
    rng = random.Random(f"revocation:{seed}")
    timed: list[tuple[float, int, int, dict]] = []
    revoked_at: dict[str, float] = {}
    for index in range(agents):
        agent = agent_id(index)
        task = f"task-{index}"
        revoke_t = rng.uniform(0.0, float(ttl))
        revoked_at[agent] = revoke_t
        seq = 0

        def emit(t: float, event: dict) -> None:
            nonlocal seq
            timed.append((t, index, seq, {"t": round(t, 6), **event}))
            seq += 1

        emit(0.0, {"kind": "task_start", "task": task, "agent": agent, "intent": INTENT})
        generation = 0
        credential = f"cred-{index}-{generation}"
        expires = float(ttl)
        uses = 0
        emit(0.0, {"kind": "credential_issue", "credential": credential, "agent": agent,
                   "ttl": ttl, "task": task, "scope": [TOOL]})
        revoked = False
        phase = rng.random() / speed
        k = 0
        t = 0.0
        while True:
            if arrivals == "poisson":
                t += rng.expovariate(speed)
            else:
                t = phase + k / speed
                k += 1
            if not revoked and t >= revoke_t:
                revoked = True
                emit(revoke_t, {"kind": "credential_revoke", "credential": credential})
            spent = max_ops > 0 and uses >= max_ops
            if t >= expires or spent:
                if revoked:
                    # The issuer knows of the revocation: no new credential.
                    # The task ends when the credential dies.
                    end = min(t, expires)
                    emit(end, {"kind": "task_end", "task": task})
                    break
                generation += 1
                credential = f"cred-{index}-{generation}"
                expires = t + ttl
                uses = 0
                emit(t, {"kind": "credential_issue", "credential": credential, "agent": agent,
                         "ttl": ttl, "task": task, "scope": [TOOL]})
            uses += 1
            emit(t, {"kind": "tool_call", "task": task, "agent": agent, "tool": TOOL,
                     "resource": f"queue:{index}", "credential": credential})
    timed.sort(key=lambda item: item[:3])
    return RevocationSwarm([event for *_, event in timed], revoked_at, agents)


def expected_ops_after_revoke(speed: float, ttl: int, max_ops: int) -> float:
    """Mean calls per agent on a revoked credential, for steady arrivals."""
    budget = speed * ttl
    if max_ops > 0:
        budget = min(budget, float(max_ops))
    return budget / 2.0
