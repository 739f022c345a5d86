"""Version: the release of symconv -> every banner, build key and generator fingerprint that names it."""

__version__ = "0.1.0"
