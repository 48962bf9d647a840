"""Face GANs: the DCGAN and StyleGAN2-lite networks (models/), their losses, training tricks, BatchNorm sampling mode and the trainer."""
