"""Generator and discriminator networks of the face GANs."""
