"""loyalty-connector: the core that knows no wire format (see DESIGN.md §1)."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("loyalty-connector")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
