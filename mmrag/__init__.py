"""mmrag: search and question your images."""

__version__ = "0.1.0"
