"""The nhipl standard library of policies, importable by name (``import "baseline";``)."""
