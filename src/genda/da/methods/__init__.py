"""Domain-adaptation methods: one module per method, all subclasses of :class:`DAMethod`.

``METHODS`` maps a params name to its class; :func:`build_method` instantiates one:

=====================  ===========================================================================
name                   method
=====================  ===========================================================================
source_only            CE on the labelled batch only (lower / upper bound)
dann                   domain-adversarial training (Ganin et al. 2016)
dsn                    domain separation networks (Bousmalis et al. 2016)
mean_teacher           self-ensembling with an EMA teacher (French et al. 2018)
resnet_source_only     pretrained ResNet, supervised
resnet_dann            pretrained ResNet + DANN
=====================  ===========================================================================
"""

from genda.da.methods.base import METHODS, DAMethod, build_method
from genda.da.methods.source_only import SourceOnly
from genda.da.methods.dann import DANN
from genda.da.methods.dsn import DSN
from genda.da.methods.mean_teacher import MeanTeacher
from genda.da.methods.resnet import ResNetDANN, ResNetSourceOnly

__all__ = [
    "METHODS",
    "DAMethod",
    "build_method",
    "SourceOnly",
    "DANN",
    "DSN",
    "MeanTeacher",
    "ResNetSourceOnly",
    "ResNetDANN",
]
