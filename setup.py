"""The wheel's package list, found rather than written out.

pyproject.toml maps the repository's folders into the ``nhipl`` namespace
(``[tool.setuptools.package-dir]``: ``simulator/`` is ``nhipl.simulator``,
``grammar/`` is ``nhipl.grammar``, ...). Every package under each mapped folder
is installed under its mapped name, so a new subpackage needs no edit here.
Everything else about the project is in pyproject.toml.
"""

import tomllib

from setuptools import find_packages, setup

with open("pyproject.toml", "rb") as f:
    PACKAGE_DIR = tomllib.load(f)["tool"]["setuptools"]["package-dir"]

packages = []
for name, folder in PACKAGE_DIR.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder) if f"{name}.{sub}" not in PACKAGE_DIR]

setup(packages=sorted(set(packages)))
