"""Conditional generators: ACGAN, attribute ACGAN, tag cDCGAN and the conditional DDPM (networks in models/, the noise scheduler in diffusion, one CondMethod per method in methods, the trainer)."""
