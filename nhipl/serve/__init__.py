"""``nhipl serve``: the decision service over HTTP (AuthZEN Authorization API 1.0 and
nhipl's own API). Needs the ``serve`` extra (``pip install 'nhipl[serve]'``)."""

from .app import App
from .policyset import PolicySet, Snapshot
from .server import Options, ServeError, serve

__all__ = ["App", "Options", "PolicySet", "ServeError", "Snapshot", "serve"]
