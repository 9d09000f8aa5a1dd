"""bdray: distributed sweeps of backdoor attacks and defenses on Ray."""
__version__ = "0.1.0"
