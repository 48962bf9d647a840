"""genda: reproducible image generation and domain adaptation experiments."""
__version__ = "0.1.0"
