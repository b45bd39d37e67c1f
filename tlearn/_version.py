"""tlearn's version, in a module of its own so that nothing imports the package root to read it."""
__version__ = "0.1.0"
