"""ccmine library: text, language ID, encoders and margin math shared by the pipeline stages."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccmine")
except PackageNotFoundError:  # run from a checkout that is not installed
    __version__ = "0+unknown"
