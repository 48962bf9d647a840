"""Networks of the domain-adaptation methods: the DANN digit network and domain head, DSN, ResNet backbones."""
