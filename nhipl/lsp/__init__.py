"""The nhipl language server (``nhipl lsp``): diagnostics from the checks and the
linter as the author types, hover, go to definition and references, symbols,
completion, formatting, quick fixes and code lenses that run tests.

Needs the ``lsp`` extra (pygls). The editor-independent parts (analysis,
navigation, completion, fixes) live in their own modules; :mod:`.server` wires
them to the protocol.
"""
