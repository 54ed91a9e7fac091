"""gankit: Generative Adversarial Nets (Goodfellow et al., 2014) as a library and a command-line tool."""

from gankit.config import Config

__version__ = "0.1.0"
__all__ = ["Config", "__version__"]
