"""Style transfer (issue 35): MSG-Net (Zhang & Dana 2017, "Multi-style Generative Network for Real-time
Transfer") with its CoMatch layer, trained with VGG-16 perceptual losses against style images made from files the
packages ship, and Gatys et al.'s per-image optimisation as the baseline.

Modules: ``gram`` (the Gram matrix), ``vgg`` (the loss network and its named fallback), ``losses`` (content, style,
total-variation), ``images`` (style images, training content, held-out photos), ``models/`` (CoMatch, the
generator's blocks, MSG-Net), ``train`` (the trainer on :class:`genda.train.loop.TrainLoop`), ``stylize`` (the
feed-forward stylizer and its speed), ``gatys`` (per-image optimisation), ``evaluate`` (the metrics and the figure).
"""
