"""MSG-Net's networks: the CoMatch layer (``comatch``), the generator's blocks (``blocks``), MSG-Net (``msgnet``)."""
from genda.style.models.msgnet import MSGNet  # noqa: F401
