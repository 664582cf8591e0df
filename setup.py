"""The package list under its installed name: the folder agent/ imports as `fedorch`.

Everything else lives in pyproject.toml; setuptools' declarative `packages.find`
cannot rename a folder, so this lists agent/'s packages as fedorch.*.
"""

from setuptools import find_packages, setup

setup(packages=["fedorch"] + [f"fedorch.{name}" for name in find_packages("agent")])
