"""The version of symconv: it enters every banner, build key and generator fingerprint."""

__version__ = "0.1.0"
