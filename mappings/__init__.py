"""Shipped YAML mappings, one file per (system, configuration, document kind); package data."""

from pathlib import Path

__all__ = ["MAPPINGS_DIR"]

MAPPINGS_DIR = Path(__file__).resolve().parent
