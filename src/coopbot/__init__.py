"""coopbot: a Chinese knowledge assistant that cites the passages it uses."""

__version__ = "0.1.0"
