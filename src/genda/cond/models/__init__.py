"""Networks of the conditional generators: ACGAN, tag cDCGAN, and the DDPM denoisers (ContextUnet, FiLMUnet)."""
