"""nhipl: the Non-Human Identity Policy Language.

>>> import nhipl
>>> policies = nhipl.loads('permit any agent to call "search.*" grant ttl 5m;')
>>> policies.evaluate({"principal": "spiffe://acme.org/a", "tool": "search.web"}).effect
'allow'
"""

from .decision import Decision, EvalError
from .errors import Diagnostic, NhiplError, PolicyError, RequestError
from .loader import load, loads
from .policies import Policies
from .runtime.errors import Denied
from .values import ListView

__version__ = "0.1.0"

__all__ = [
    "Decision",
    "Denied",
    "Diagnostic",
    "EvalError",
    "ListView",
    "NhiplError",
    "Policies",
    "PolicyError",
    "RequestError",
    "load",
    "loads",
    "__version__",
]
