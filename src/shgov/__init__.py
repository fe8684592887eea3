"""SH-GOV: the digital government platform of a megacity (一网通办 · 一网统管 · 一体化数字底座)."""

__version__ = "0.1.0"
