"""The nhipl grammar (``nhipl.lark``), shipped as package data of ``nhipl.grammar``."""
