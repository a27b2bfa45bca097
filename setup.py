from setuptools import setup

# Dataflow workers install the package with --setup_file ./setup.py; metadata is in setup.cfg.
setup()
