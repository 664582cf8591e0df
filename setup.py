"""The package list under its installed name: the folder agent/ imports as `fedorch`.

Everything else lives in pyproject.toml; setuptools' declarative `packages.find`
cannot rename a folder, so this lists agent/'s packages as fedorch.*.
"""

from setuptools import find_namespace_packages, setup

# Namespace discovery, so that folders of data files (the console's static/ and
# templates/) are listed as what setuptools takes them for, and installed.
PACKAGES = find_namespace_packages("agent", exclude=["*__pycache__*"])
setup(packages=["fedorch"] + [f"fedorch.{name}" for name in PACKAGES])
