"""Every choice list of the params, written once: the params schema (genda.config) validates against these and
the modules that implement a choice (samplers, priors, losses, ...) check the same tuples. No imports: any layer may
use it."""

DIGIT_DOMAINS = ("mnist", "mnistm", "usps", "svhn")
DATA_SOURCES = ("embedded", "npz", "course", "torchvision")
USPS_FRAMES = ("fill", "mnist")  # USPS digit fills the frame | in a 20/28 box like MNIST(-M)
BN_MODES = ("eval", "train")  # BatchNorm while a generator samples (genda.gan.bn_mode)
PRECISIONS = ("auto", "fp32", "bf16")  # compute.precision (genda.runtime.precision)
GAN_LOSSES = ("bce", "lsgan", "wgan_gp", "hinge")
GAN_ARCHS = ("dcgan", "stylegan2_lite")
GAN_D_NORMS = ("batch", "instance", "layer", "none")  # gan.d_norm (genda.gan.models.dcgan.NORMS)
DA_SETTINGS = ("source_only", "target_only", "dann", "dsn", "mean_teacher",  # = genda.da.methods.METHODS
               "resnet_source_only", "resnet_dann")
Z_PRIORS = ("normal", "uniform", "sphere")  # latent prior (genda.rng.sample_z)
GAN_OPTIMIZERS = ("adam", "sgd", "rmsprop")  # genda.train.optim.make_optimizer
LR_SCHEDULES = ("none", "linear", "cosine", "step")  # genda.train.optim.make_scheduler
DIFFAUG_OPS = ("color", "translation", "cutout")  # genda.data.augment.diff_augment
COND_METHODS = ("acgan", "ddpm", "attr_acgan", "tag_cdcgan")  # = genda.cond.methods registry
DIGIT_METHODS = ("acgan", "ddpm")     # 28x28x3 digits of `cond.domain`, 10 classes
FACE_METHODS = ("attr_acgan", "tag_cdcgan")  # the prepared faces (64x64)
DDPM_PREDICTIONS = ("eps", "v")  # cond.prediction (genda.cond.diffusion.PREDICTIONS)
DDPM_LOSS_WEIGHTS = ("none", "min_snr")  # cond.loss_weight (genda.cond.diffusion.LOSS_WEIGHTS)
DDPM_T_SAMPLINGS = ("uniform", "logit_normal")  # cond.t_sampling (genda.cond.diffusion.T_SAMPLINGS)
STYLES = ("pencil", "cartoon", "relief")  # style.styles: style images made from packaged files (genda.style.images)
