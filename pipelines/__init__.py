"""observatoire-qpv: entrepôt et observatoire de la politique de la ville."""

__version__ = "0.1.0"
